"""Ambient scenes split by time: each long recording's chunks go to train, val and test as
contiguous blocks, with a guard chunk between them, so no chunk's neighbour is in another split."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from testbed.data import load_dataset
from testbed.data.splits import time_split


def _split_of(parts):
    return {int(i): k for k, idx in enumerate(parts) for i in idx}


def test_no_chunk_has_a_neighbour_in_another_split():
    groups = ["a"] * 30 + ["b"] * 12
    order = list(range(30)) + list(range(12))
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(groups))          # input order must not matter
    y = np.zeros(len(groups), int)
    parts = time_split(y[perm], [groups[i] for i in perm], [order[i] for i in perm])
    where = _split_of(parts)
    for g in ("a", "b"):
        chunks = sorted((order[perm[j]], j) for j in range(len(perm)) if groups[perm[j]] == g)
        seen = [where.get(j) for _, j in chunks]
        kept = [s for s in seen if s is not None]
        assert kept == sorted(kept)                                  # train, then val, then test
        assert set(kept) == {0, 1, 2}
        for left, right in zip(seen, seen[1:]):
            if left is not None and right is not None:
                assert left == right                                 # neighbours share a split


def test_ambient_recordings_split_by_time(tmp_path):
    sr = 16000
    for name in ("bus", "cafe"):
        t = np.arange(40 * sr) / sr
        sf.write(tmp_path / f"{name}.wav", (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    ds = load_dataset(f"ambient:{tmp_path}")
    assert ds.labels == ["bus", "cafe"]
    for lab in ds.labels:
        off = {k: sorted(m["offset_s"] for m in s.meta if m["label"] == lab)
               for k, s in (("train", ds.train), ("val", ds.val), ("test", ds.test))}
        assert off["train"] and off["val"] and off["test"]
        assert max(off["train"]) < min(off["val"]) - 3.0 and max(off["val"]) < min(off["test"]) - 3.0
