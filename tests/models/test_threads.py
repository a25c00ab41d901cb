"""torch's thread count as a scoped setting (:func:`testbed.models.threads.torch_threads`)."""

from __future__ import annotations

import pytest
import torch

from testbed.models.threads import torch_threads


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_the_count_is_set_inside_and_restored_after():
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_the_count_is_restored_after_an_exception_and_after_a_change_inside():
    with pytest.raises(RuntimeError, match="boom"):
        with torch_threads():
            torch.set_num_threads(1)
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_a_count_below_one_is_refused_and_nothing_changes():
    with pytest.raises(ValueError, match="n must be >= 1"):
        with torch_threads(0):
            pass
    assert torch.get_num_threads() == 2
