"""Stratified, seeded train/val/test splits, and speaker-disjoint voice splits for the TTS corpus."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_NAMES = ("train", "val", "test")

#: TTS voices of different engines built from one recorded speaker's database: one speaker
#: (``kal``: CMU Kal diphones; ``slt``: CMU ARCTIC SLT), so they always share a split
SHARED_SPEAKERS: dict[tuple[str, str], str] = {
    ("flite", "kal"): "kal", ("flite", "kal16"): "kal", ("festival", "kal_diphone"): "kal",
    ("flite", "slt"): "slt", ("festival", "cmu_us_slt_arctic_hts"): "slt",
}


def split_counts(n: int, fractions: tuple[float, float, float] = FRACTIONS) -> tuple[int, int, int]:
    """Train, val and test counts of ``n`` units (at least one kept for training)."""
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    if n_val + n_test >= n:  # tiny class: keep at least one for training
        n_val, n_test = max(0, min(n_val, n - 1 - n_test)), max(0, min(n_test, n - 1))
    return n - n_val - n_test, n_val, n_test


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
        n_train, n_val, _ = split_counts(n, fractions)
        cut = [n_train, n_train + n_val]
        for k, u in enumerate(order):
            which = 0 if k < cut[0] else (1 if k < cut[1] else 2)
            parts[which].extend(units[u])
    return tuple(np.array(sorted(p), dtype=np.int64) for p in parts)  # type: ignore[return-value]


def time_split(y: np.ndarray, groups: Sequence[str], order: Sequence[float], guard: int = 1,
               fractions: tuple[float, float, float] = FRACTIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / val / test indices of chunks cut from long recordings, split by time.

    Each recording's chunks, in time order (``order``: e.g. their offset in seconds), go to
    train, then val, then test as three contiguous blocks, with ``guard`` chunks dropped at each
    boundary so that no chunk's neighbour lies in another split. Used where a class has too few
    recordings to split by recording (the ambient scenes of ``../shared/data/noise``: one each).

    Parameters
    ----------
    y : (n,) class indices; groups : (n,) recording of each chunk; order : (n,) time of each chunk.
    guard : chunks dropped between two splits.

    Returns
    -------
    three sorted int64 index arrays (dropped guard chunks are in none).
    """
    parts: list[list[int]] = [[], [], []]
    by: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    for g in sorted(by):
        idx = sorted(by[g], key=lambda i: float(order[i]))
        usable = len(idx) - 2 * guard
        if usable < 3:
            parts[0].extend(idx)        # too short to split: training only
            continue
        n_train, n_val, _ = split_counts(usable, fractions)
        a, b = n_train, n_train + guard + n_val
        parts[0].extend(idx[:a])
        parts[1].extend(idx[a + guard:b])
        parts[2].extend(idx[b + guard:])
    return tuple(np.array(sorted(p), dtype=np.int64) for p in parts)  # type: ignore[return-value]


def split_hash(ids_by_split: Sequence[Sequence[str]]) -> str:
    """A short hex digest of the clip ids in each split."""
    h = hashlib.sha256()
    for ids in ids_by_split:
        h.update("\n".join(sorted(ids)).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def speaker_of(engine: str, voice: str) -> str:
    """The speaker a TTS voice belongs to: the unit a speaker-disjoint split keeps together.

    espeak-ng voices are ``accent+variant``; the variant sets the voice's timbre (formants,
    pitch, breathiness) and the accent only the pronunciation rules, so all accents of one
    variant are one speaker (``espeak:m1``). Flite and Festival voices built from the same
    recorded speaker are one speaker across engines (:data:`SHARED_SPEAKERS`); any other
    voice is its own speaker (``flite:awb``).
    """
    if (engine, voice) in SHARED_SPEAKERS:
        return SHARED_SPEAKERS[(engine, voice)]
    if engine == "espeak" and "+" in voice:
        return f"espeak:{voice.split('+', 1)[1]}"
    return f"{engine}:{voice}"


def assign_voice_splits(voices: dict[str, Sequence[str]], seed: int,
                        fractions: tuple[float, float, float] = FRACTIONS) -> dict[tuple[str, str], int]:
    """Put every speaker (and so every voice) in exactly one of train (0), val (1), test (2).

    Each engine with at least three speakers gets ``round(fraction * n_speakers)`` of its
    speakers (at least one) in val and in test, so every split hears every such engine;
    engines with the fewest speakers choose first, preferring speakers shared with engines
    that still need one in that split. Seeded; the voices' order does not matter.

    Parameters
    ----------
    voices : engine -> its installed voice names.
    seed : same seed and same voices -> same assignment.

    Returns
    -------
    ``{(engine, voice): split}`` for every voice given.
    """
    members: dict[str, set[tuple[str, str]]] = {}
    for engine, names in voices.items():
        for v in names:
            members.setdefault(speaker_of(engine, v), set()).add((engine, v))
    speakers = sorted(members)
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5BEA])).permutation(len(speakers))
    order = [speakers[i] for i in perm]
    engines_of = {s: {e for e, _ in members[s]} for s in speakers}
    by_engine = {e: [s for s in order if e in engines_of[s]] for e in voices}
    need: dict[tuple[str, int], int] = {}
    for e, spk in by_engine.items():
        n = len(spk)
        if n >= 3:
            _, n_val, n_test = split_counts(n, fractions)
            need[(e, 1)], need[(e, 2)] = max(1, n_val), max(1, n_test)
    split_of: dict[str, int] = {}
    for e in sorted(by_engine, key=lambda e: (len(by_engine[e]), e)):
        for part in (2, 1):
            while need.get((e, part), 0) > 0:
                free = [s for s in by_engine[e] if s not in split_of]
                if len(free) <= 1:         # keep the engine's last free speaker for training
                    break
                best = max(free, key=lambda s: sum(need.get((x, part), 0) > 0 for x in engines_of[s]))
                split_of[best] = part
                for x in engines_of[best]:
                    if (x, part) in need:
                        need[(x, part)] -= 1
    return {ev: split_of.get(s, 0) for s in speakers for ev in members[s]}


def index_splits(split_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, val and test indices of rows whose split is named (``train``, ``val``, ``test``)."""
    names = np.asarray(list(split_names), dtype=object)
    bad = sorted({str(n) for n in names if n not in SPLIT_NAMES})
    if bad:
        raise ValueError(f"unknown split name(s) {', '.join(bad)} (have: {', '.join(SPLIT_NAMES)})")
    return tuple(np.flatnonzero(names == k).astype(np.int64) for k in SPLIT_NAMES)  # type: ignore[return-value]
