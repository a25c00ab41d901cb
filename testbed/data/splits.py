"""Stratified, seeded train/val/test splits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

FRACTIONS = (0.8, 0.1, 0.1)


def stratified_split(y: np.ndarray, seed: int, groups: Sequence[str] | None = None,
                     fractions: tuple[float, float, float] = FRACTIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train, val and test, the same proportion of every class in each.

    Parameters
    ----------
    y : (n,) int class indices
    seed : int
        Same seed and same ``y`` -> same split.
    groups : optional (n,) group names (e.g. a recording a chunk was cut from); a group never
        straddles two splits.
    fractions : train, val, test shares (sum 1).

    Returns
    -------
    three sorted int64 index arrays.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A17]))
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if groups is None:
            units = [[i] for i in idx]
        else:
            by: dict[str, list[int]] = {}
            for i in idx:
                by.setdefault(groups[i], []).append(int(i))
            units = [by[g] for g in sorted(by)]
        order = rng.permutation(len(units))
        n = len(units)
        n_val = int(round(fractions[1] * n))
        n_test = int(round(fractions[2] * n))
        if n_val + n_test >= n:  # tiny class: keep at least one for training
            n_val, n_test = max(0, min(n_val, n - 1 - n_test)), max(0, min(n_test, n - 1))
        cut = [n - n_val - n_test, n - n_test]
        for k, u in enumerate(order):
            which = 0 if k < cut[0] else (1 if k < cut[1] else 2)
            parts[which].extend(units[u])
    return tuple(np.array(sorted(p), dtype=np.int64) for p in parts)  # type: ignore[return-value]


def split_hash(ids_by_split: Sequence[Sequence[str]]) -> str:
    """A short hex digest of the clip ids in each split."""
    h = hashlib.sha256()
    for ids in ids_by_split:
        h.update("\n".join(sorted(ids)).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]
