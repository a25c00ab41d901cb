"""Datasets read from disk: folder-per-class, Google Speech Commands, ambient scene recordings."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from testbed.data.audio_io import read_audio
from testbed.data.labels import KEYWORDS, KWS_LABELS, SILENCE, UNKNOWN, canonical_label
from testbed.errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
Progress = Callable[[int, int], None] | None


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _require_dir(path: Path, spec: str) -> Path:
    if not path.is_dir():
        raise DataError(f"--data {spec}: folder {path} does not exist")
    return path


def read_many(paths: list[Path], sample_rate: int, n_samples: int | None,
              progress: Progress = None) -> tuple[list[np.ndarray], list[Path]]:
    """Read ``paths``; unreadable ones are skipped and listed in ONE warning. Returns (signals, read paths)."""
    out, ok, bad = [], [], []
    for k, p in enumerate(paths):
        try:
            out.append(read_audio(p, sample_rate, n_samples))
            ok.append(p)
        except DataError:
            bad.append(p)
        if progress and (k % 50 == 0 or k == len(paths) - 1):
            progress(k + 1, len(paths))
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable audio file(s): {', '.join(str(b) for b in bad)}",
                      stacklevel=3)
    return out, ok


def load_folder(root: Path, spec: str, sample_rate: int = 16000, clip_samples: int = 16000,
                progress: Progress = None) -> tuple[list[str], list[np.ndarray], list[int], list[dict]]:
    """One sub-folder per class. Names that map onto :data:`KWS_LABELS` (``unknown`` / ``_unknown_``
    -> unknown, ``_silence_`` -> silence) give a KWS dataset with the model label order; otherwise the
    labels are the sorted folder names.

    Returns labels, signals, label indices and per-clip meta.
    """
    _require_dir(root, spec)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"--data {spec}: {root} has no class sub-folders (one folder per class expected)")
    mapped = {c.name: canonical_label(c.name) for c in classes}
    labels = list(KWS_LABELS) if all(mapped.values()) else sorted(c.name for c in classes)
    if not all(mapped.values()):
        mapped = {c.name: c.name for c in classes}
    xs, ys, meta = [], [], []
    files = {c: _audio_files(c) for c in classes}
    total = sum(len(f) for f in files.values())
    done = 0
    for c in classes:
        sig, ok = read_many(files[c], sample_rate, clip_samples)
        if not sig:
            raise DataError(f"--data {spec}: class folder {c} holds no readable audio files")
        lab = mapped[c.name]
        xs.extend(sig)
        ys.extend([labels.index(lab)] * len(sig))
        meta.extend({"id": str(p.relative_to(root)), "label": lab, "source": str(p), "folder": c.name} for p in ok)
        done += len(files[c])
        if progress:
            progress(done, total)
    return labels, xs, ys, meta


def _noise_chunks(files: list[Path], sample_rate: int, clip_samples: int, n: int,
                  rng: np.random.Generator) -> tuple[list[np.ndarray], list[dict]]:
    recs, ok = read_many(files, sample_rate, None)
    recs_ok = [(r, p) for r, p in zip(recs, ok) if len(r) >= clip_samples]
    if not recs_ok:
        return [], []
    xs, meta = [], []
    for i in range(n):
        r, p = recs_ok[int(rng.integers(len(recs_ok)))]
        s = int(rng.integers(0, len(r) - clip_samples + 1))
        level = 10 ** (rng.uniform(-1.0, 0.0))
        xs.append((r[s:s + clip_samples] * level).astype(np.float32))
        meta.append({"id": f"silence-{i:05d}", "label": SILENCE, "source": f"{p}@{s}"})
    return xs, meta


def load_speech_commands(root: Path, spec: str, seed: int, quick: bool, sample_rate: int = 16000,
                         clip_samples: int = 16000, progress: Progress = None) -> tuple[dict[str, tuple], bool]:
    """A local Google Speech Commands copy (v0.01 or v0.02 layout) as the paper's 12-class task.

    The ten keywords, ``unknown`` (every other word folder, sampled to the keywords' mean count)
    and ``silence`` (1 s chunks of ``_background_noise_``, same count). ``validation_list.txt`` and
    ``testing_list.txt`` decide the split when present. ``quick`` keeps at most 60 clips per word.

    Returns ``({"train"|"val"|"test"|"all": (xs, ys, meta)}, has_lists)``; without the list files
    everything is under ``"all"`` for a stratified split.
    """
    _require_dir(root, spec)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5C]))
    words = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_") and not p.name.startswith("."))
    if not words:
        raise DataError(f"--data {spec}: {root} has no word folders (expected yes/, no/, ... as in Speech Commands)")
    lists = {}
    for name, key in (("validation_list.txt", "val"), ("testing_list.txt", "test")):
        f = root / name
        if f.is_file():
            lists[key] = {line.strip() for line in f.read_text().splitlines() if line.strip()}
    has_lists = bool(lists)
    cap = 60 if quick else None
    per_split: dict[str, list[tuple[Path, str]]] = {}
    by_word = {w.name: sorted(w.glob("*.wav")) for w in words}
    for kw in KEYWORDS:
        if not by_word.get(kw):
            raise DataError(f"--data {spec}: keyword folder {root / kw} is missing or empty")
    counts = []
    unknown_pool: dict[str, list[tuple[Path, str]]] = {}
    for w, files in by_word.items():
        if cap:
            files = [files[i] for i in sorted(rng.permutation(len(files))[:cap])]
        lab = w if w in KEYWORDS else UNKNOWN
        for p in files:
            rel = f"{w}/{p.name}"
            split = "all"
            if has_lists:
                split = "val" if rel in lists.get("val", ()) else "test" if rel in lists.get("test", ()) else "train"
            target = per_split if lab != UNKNOWN else unknown_pool
            target.setdefault(split, []).append((p, lab))
        if lab != UNKNOWN:
            counts.append(len(files))
    per_kw = int(np.mean(counts))
    total_kw = sum(counts)
    out: dict[str, tuple] = {}
    noise = sorted((root / "_background_noise_").glob("*.wav"))
    for split, items in per_split.items():
        pool = unknown_pool.get(split, [])
        n_kw_split = len(items)
        n_unk = min(len(pool), int(round(per_kw * n_kw_split / total_kw)))
        if n_unk:
            items = items + [pool[i] for i in sorted(rng.permutation(len(pool))[:n_unk])]
        sig, ok = read_many([p for p, _ in items], sample_rate, clip_samples, progress)
        lab_of = {p: lab for p, lab in items}
        xs = list(sig)
        ys = [KWS_LABELS.index(lab_of[p]) for p in ok]
        meta = [{"id": f"{p.parent.name}/{p.name}", "label": lab_of[p], "source": str(p)} for p in ok]
        n_sil = int(round(per_kw * n_kw_split / total_kw))
        sx, sm = _noise_chunks(noise, sample_rate, clip_samples, n_sil, rng)
        for m in sm:
            m["id"] = f"{split}-{m['id']}"
        xs += sx
        ys += [KWS_LABELS.index(SILENCE)] * len(sx)
        meta += sm
        out[split] = (xs, ys, meta)
    for lab in (UNKNOWN, SILENCE):
        idx = KWS_LABELS.index(lab)
        if not any(idx in v[1] for v in out.values()):
            where = "word folders besides the keywords" if lab == UNKNOWN else f"{root / '_background_noise_'}"
            raise DataError(f"--data {spec}: class {lab!r} is empty (needs {where})")
    return out, has_lists


_TRAILING_ID = re.compile(r"[\s_\-]*\d+$")


def load_ambient(root: Path, spec: str, sample_rate: int = 16000, chunk_s: float = 3.0,
                 progress: Progress = None) -> tuple[list[str], list[np.ndarray], list[int], list[dict], list[str]]:
    """Scene recordings cut into ``chunk_s`` chunks (LITIS-Rouen-like).

    Classes are sub-folders, or, in a flat folder, the file name without its trailing number
    (``bus12.wav`` -> ``bus``). Returns labels, chunks, label indices, meta and each chunk's
    recording (so a split never puts chunks of one recording on both sides).
    """
    _require_dir(root, spec)
    files = _audio_files(root)
    if not files:
        raise DataError(f"--data {spec}: {root} holds no audio files")

    def cls(p: Path) -> str:
        if p.parent != root:
            return p.relative_to(root).parts[0]
        return _TRAILING_ID.sub("", p.stem) or p.stem

    sig, ok = read_many(files, sample_rate, None, progress)
    n = int(round(chunk_s * sample_rate))
    labels = sorted({cls(p) for p in files})
    xs, ys, meta, groups = [], [], [], []
    for x, p in zip(sig, ok):
        lab = cls(p)
        for k in range(len(x) // n):
            xs.append(x[k * n:(k + 1) * n].astype(np.float32))
            ys.append(labels.index(lab))
            meta.append({"id": f"{p.relative_to(root)}#{k}", "label": lab, "source": str(p), "offset_s": k * chunk_s})
            groups.append(str(p))
    for i, lab in enumerate(labels):
        if i not in ys:
            raise DataError(f"--data {spec}: class {lab!r} has no readable recording of at least {chunk_s:g} s")
    return labels, xs, ys, meta, groups
