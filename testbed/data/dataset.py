"""`load_dataset`: one entry point for every dataset spec."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from testbed.data.audio_io import read_audio
from testbed.data.corpus import CorpusConfig, build_corpus, read_index
from testbed.data.folders import load_ambient, load_folder, load_speech_commands
from testbed.data.labels import KWS_LABELS
from testbed.data.splits import index_splits, split_hash, stratified_split, time_split
from testbed.data.types import Dataset, Split
from testbed.errors import DataError

SPECS = ("synthetic", "speech-commands:PATH", "folder:PATH", "ambient:PATH")
AMBIENT_CHUNK_S = 3.0
#: train / val / test shares of each long scene recording split by time: a larger test share
#: than the KWS 0.8 / 0.1 / 0.1, because four one-minute recordings give 9 test chunks at 0.1
#: (Wilson intervals of +-30 points) and 24 at 0.3, while the 50 training chunks still separate the scenes
AMBIENT_TIME_FRACTIONS = (0.6, 0.1, 0.3)


def _split_of(xs: list[np.ndarray], ys: list[int], meta: list[dict], idx: np.ndarray, clip_samples: int) -> Split:
    if len(idx) == 0:
        return Split(np.zeros((0, clip_samples), np.float32), np.zeros(0, np.int64), [])
    return Split(np.stack([xs[i] for i in idx]).astype(np.float32), np.asarray([ys[i] for i in idx], np.int64),
                 [meta[i] for i in idx])


def _assemble(spec: str, labels: list[str], xs: list[np.ndarray], ys: list[int], meta: list[dict], seed: int,
              sample_rate: int, clip_samples: int, groups: list[str] | None = None,
              parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Dataset:
    tr, va, te = parts if parts is not None else stratified_split(np.asarray(ys), seed, groups)
    splits = [_split_of(xs, ys, meta, i, clip_samples) for i in (tr, va, te)]
    return Dataset(spec=spec, labels=list(labels), sample_rate=sample_rate, clip_samples=clip_samples,
                   train=splits[0], val=splits[1], test=splits[2],
                   split_hash=split_hash([[m["id"] for m in s.meta] for s in splits]))


def load_synthetic(config: CorpusConfig, cache_dir: Path | None = None,
                   progress: Callable[[int, int], None] | None = None, spec: str = "synthetic") -> Dataset:
    """Build (or read from cache) the synthetic corpus of ``config``, split 80/10/10 by speaker as
    its index records (no TTS voice in two splits)."""
    folder = build_corpus(config, cache_dir, progress=progress)
    rows = read_index(folder)
    xs = []
    for r in rows:
        try:
            xs.append(read_audio(folder / r["file"], config.sample_rate, config.clip_samples))
        except DataError:
            raise DataError(f"corpus cache {folder} is damaged ({r['file']} unreadable): delete that folder "
                            "and run again to rebuild it") from None
    ys = [KWS_LABELS.index(r["label"]) for r in rows]
    meta = [dict(r, source="synthetic") for r in rows]
    return _assemble(spec, list(KWS_LABELS), xs, ys, meta, config.seed, config.sample_rate, config.clip_samples,
                     parts=index_splits([r["split"] for r in rows]))


def load_dataset(spec: str = "synthetic", *, quick: bool = False, seed: int = 0, cache_dir: Path | None = None,
                 progress: Callable[[int, int], None] | None = None, config: CorpusConfig | None = None) -> Dataset:
    """Load a dataset with a stratified, seeded 80/10/10 split.

    Parameters
    ----------
    spec : ``synthetic`` (offline TTS corpus, the default) | ``speech-commands:PATH`` (local Google
        Speech Commands copy) | ``folder:PATH`` (one sub-folder per class) | ``ambient:PATH`` (scene
        recordings, 3 s chunks)
    quick : smaller data (synthetic: 40 clips per class; speech-commands: at most 60 per word)
    seed : split seed (and, for ``synthetic``, the corpus seed)
    cache_dir : synthetic corpus cache root (default env ``TESTBED_CACHE_DIR`` or ``~/.cache/ota-testbed``)
    progress : called as ``progress(done, total)`` while building or reading
    config : synthetic only: a full :class:`CorpusConfig` (overrides ``quick`` and ``seed``)

    Returns
    -------
    Dataset with ``x`` (n, 16000) float32 at 16 kHz (ambient: (n, 48000)) and ``y`` indexing ``labels``.

    Raises
    ------
    DataError : unknown spec, missing folder, empty class.
    """
    kind, _, arg = spec.partition(":")
    sr = 16000
    if kind == "synthetic":
        if arg:
            raise DataError(f"--data {spec}: 'synthetic' takes no path")
        cfg = config or (CorpusConfig.quick(seed=seed) if quick else CorpusConfig(seed=seed))
        return load_synthetic(cfg, cache_dir, progress, spec)
    if kind not in ("speech-commands", "folder", "ambient") or not arg:
        raise DataError(f"--data {spec!r}: unknown dataset spec (use one of: {', '.join(SPECS)})")
    root = Path(arg).expanduser()
    if kind == "folder":
        labels, xs, ys, meta = load_folder(root, spec, sr, sr, progress)
        return _assemble(spec, labels, xs, ys, meta, seed, sr, sr)
    if kind == "ambient":
        n = int(AMBIENT_CHUNK_S * sr)
        labels, xs, ys, meta, groups = load_ambient(root, spec, sr, AMBIENT_CHUNK_S, progress)
        recordings = {c: len({g for g, y in zip(groups, ys) if y == c}) for c in set(ys)}
        if min(recordings.values()) >= 3:   # enough recordings per scene: split by recording
            return _assemble(spec, labels, xs, ys, meta, seed, sr, n, groups)
        # few long recordings per scene: split each by time, a guard chunk between splits
        parts = time_split(np.asarray(ys), groups, [m["offset_s"] for m in meta], fractions=AMBIENT_TIME_FRACTIONS)
        return _assemble(spec, labels, xs, ys, meta, seed, sr, n, parts=parts)
    parts, has_lists = load_speech_commands(root, spec, seed, quick, sr, sr, progress)
    if not has_lists:
        xs, ys, meta = parts["all"]
        return _assemble(spec, list(KWS_LABELS), xs, ys, meta, seed, sr, sr)
    splits = [_split_of(*parts.get(k, ([], [], [])), np.arange(len(parts.get(k, ([], [], []))[1])), sr)
              for k in ("train", "val", "test")]
    return Dataset(spec=spec, labels=list(KWS_LABELS), sample_rate=sr, clip_samples=sr, train=splits[0],
                   val=splits[1], test=splits[2], split_hash=split_hash([[m["id"] for m in s.meta] for s in splits]))
