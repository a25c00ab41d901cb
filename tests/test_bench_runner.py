"""The benchmark runner: areas do not leak settings into the areas after them."""

from __future__ import annotations

import torch

from testbed.bench import _isolated


def test_an_area_that_pins_one_thread_does_not_pin_the_next():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = _isolated(lambda quick: {"threads": (torch.set_num_threads(1), torch.get_num_threads())[1]}, False)
        assert got == {"threads": 1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
