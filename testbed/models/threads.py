"""torch's intra-op thread count as a scoped setting: whoever changes it puts it back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None = None) -> Iterator[int]:
    """Run a block with ``n`` intra-op threads (None: leave the count as it is) and restore the
    count found on entry when the block ends, by an exception too.

    Yields
    ------
    int : the thread count in effect inside the block.
    """
    before = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise ValueError(f"torch_threads: n must be >= 1, got {n}")
        torch.set_num_threads(int(n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
