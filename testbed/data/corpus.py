"""The synthetic spoken-command corpus: configuration, parallel build, on-disk cache.

A corpus is fully described by :class:`CorpusConfig`; its cache folder
``<cache_dir>/corpus/<hash>/`` holds ``config.json``, ``index.csv`` (one row per clip: id,
label, file, engine, voice, speaker, split, text, transform values) and
``clips/<label>/<id>.flac``.

The split is speaker-disjoint: every speaker (a TTS voice, or the voices of several engines
built from one recorded speaker, :func:`~testbed.data.splits.speaker_of`) says words of
exactly one of train / val / test (:func:`~testbed.data.splits.assign_voice_splits`), and the
index records each clip's speaker and split. The hash
covers the config, the resolved transform parameters, the voices used and a format version, so a
change to any of them builds a new corpus and an unchanged one is read back from disk.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from testbed.data.audio_io import trim_silence, write_flac
from testbed.data.labels import SILENCE
from testbed.data.clip_plan import plan_clips, voice_splits  # noqa: F401  (re-exported)
from testbed.data.corpus_config import (  # noqa: F401  (re-exported)
    CORPUS_FORMAT,
    DEFAULT_ENGINES,
    DEFAULT_TRANSFORM_PARAMS,
    CorpusConfig,
)
from testbed.data.splits import speaker_of
from testbed.data.synth import EngineUnavailable, SynthRequest, get_synthesizer
from testbed.data.transforms import Onset, Reverb

def default_cache_dir() -> Path:
    """``$TESTBED_CACHE_DIR`` or ``~/.cache/ota-testbed``."""
    env = os.environ.get("TESTBED_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ota-testbed"


def resolve_engines(config: CorpusConfig) -> dict[str, tuple[float, list[str]]]:
    """Installed engines with their share and voices; missing ones are dropped with a warning.

    Raises EngineUnavailable when none of the configured engines is installed.
    """
    out: dict[str, tuple[float, list[str]]] = {}
    missing = []
    for name, share in config.engines.items():
        if share <= 0:
            continue
        synth = get_synthesizer(name)
        voices = synth.voices() if synth.available() else []
        if not voices:
            missing.append(f"{name} (install {synth.package})")
            continue
        out[name] = (share, voices)
    if missing and out:
        warnings.warn(f"speech engines skipped, not installed: {'; '.join(missing)}", stacklevel=3)
    if not out:
        raise EngineUnavailable(f"no speech engine of the corpus is installed: {'; '.join(missing)}")
    return out


def corpus_hash(config: CorpusConfig, engines: dict[str, tuple[float, list[str]]]) -> str:
    """Hex digest identifying a corpus: config, resolved transform parameters, voices, format."""
    payload = {
        "format": CORPUS_FORMAT,
        "config": config.model_dump(mode="json"),
        "transforms": {n: t.params() for n, t in config.build_transforms().items()},
        "engines": {n: [s, v] for n, (s, v) in sorted(engines.items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:16]


# -- the per-clip pipeline (runs in worker processes) -------------------------------------------

_RIRS: tuple[np.ndarray, ...] = ()


def _init_worker(rirs: tuple[np.ndarray, ...]) -> None:
    global _RIRS
    _RIRS = rirs
    if "torch" in sys.modules:  # keep a worker from spreading over every core
        sys.modules["torch"].set_num_threads(1)


def _level(x: np.ndarray, core: int, dbfs: float) -> np.ndarray:
    p = float(np.sum(x.astype(np.float64) ** 2) / max(core, 1))
    y = x * (10 ** (dbfs / 20) / np.sqrt(p + 1e-20))
    peak = float(np.max(np.abs(y)))
    return (y * (0.99 / peak) if peak > 0.99 else y).astype(np.float32)


def render_speech(pcm: np.ndarray, config: CorpusConfig, transforms: dict[str, Any],
                  rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Turn one synthesised word into a corpus clip: transforms, onset, noise, level.

    Returns the (clip_samples,) float32 clip and the values the transforms drew.
    """
    sr, facts = config.sample_rate, {}
    x = trim_silence(pcm, sr)
    x = x / (np.max(np.abs(x)) + 1e-9) * 0.5
    for name in ("speed", "pitch", "formant", "loudness", "eq"):
        if name in transforms:
            x, f = transforms[name](x, rng, sr)
            facts.update(f)
    core = len(x)
    if "reverb" in transforms:
        x, f = transforms["reverb"](x, rng, sr)
        facts.update(f)
    x, f = transforms.get("onset", Onset())(x, rng, config.clip_samples, core=core, sample_rate=sr,
                                            random="onset" in transforms)
    facts.update(f)
    core = min(core, config.clip_samples)
    if "noise" in transforms:
        x, f = transforms["noise"](x, rng, sr, core=core)
        facts.update(f)
    dbfs = float(rng.uniform(*config.level_dbfs)) if "loudness" in transforms else float(np.mean(config.level_dbfs))
    facts["level_dbfs"] = round(dbfs, 2)
    return _level(x, core, dbfs), facts


def render_silence(config: CorpusConfig, transforms: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A ``silence`` clip: background noise only, at a random level. (clip_samples,) float32."""
    from testbed.data.noise import noise_chunk

    x, src = noise_chunk(config.clip_samples, rng, config.sample_rate)
    facts: dict[str, Any] = {"noise": src}
    if "eq" in transforms:
        x, f = transforms["eq"](x, rng, config.sample_rate)
        facts.update(f)
    dbfs = float(rng.uniform(*config.silence_dbfs))
    facts["level_dbfs"] = round(dbfs, 2)
    return _level(x, len(x), dbfs), facts


def _render_job(config_json: str, rows: list[dict], out_dir: str) -> list[dict]:
    """Synthesise and render ``rows`` (one engine), write their FLACs, return their index rows."""
    config = CorpusConfig.model_validate_json(config_json)
    transforms = config.build_transforms()
    if "reverb" in transforms and _RIRS:
        tr: Reverb = transforms["reverb"]
        transforms["reverb"] = dataclasses.replace(tr, rirs=_RIRS)
    engine = rows[0]["engine"]
    pcms: list[np.ndarray | None]
    if engine == "none":
        pcms = [None] * len(rows)
    else:
        reqs = [SynthRequest(r["text"], r["voice"], r["rate"], r["pitch"]) for r in rows]
        pcms = get_synthesizer(engine).synth_many(reqs, config.sample_rate)
    out = []
    for row, pcm in zip(rows, pcms):
        rng = np.random.default_rng(np.random.SeedSequence(row["seed"]))
        row = dict(row)
        if row["label"] == SILENCE:
            clip, facts = render_silence(config, transforms, rng)
        else:
            if pcm is None or len(pcm) < config.sample_rate // 20 or np.max(np.abs(pcm)) < 1e-4:
                # engine failed on this item: say it with an espeak voice of the same split instead,
                # and record that
                row["engine"], row["voice"] = "espeak", row["fallback"]
                row["speaker"] = speaker_of("espeak", row["voice"])
                pcm = get_synthesizer("espeak").synth(SynthRequest(row["text"], row["voice"]), config.sample_rate)
            clip, facts = render_speech(pcm, config, transforms, rng)
        rel = f"clips/{row['label']}/{row['id']}.flac"
        (Path(out_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
        write_flac(Path(out_dir) / rel, clip, config.sample_rate)
        row.pop("seed")
        row.pop("fallback", None)
        row["file"] = rel
        row["transforms"] = json.dumps(facts, sort_keys=True)
        out.append(row)
    return out


INDEX_FIELDS = ("id", "label", "file", "engine", "voice", "speaker", "split", "text", "rate", "pitch", "transforms")


def build_corpus(config: CorpusConfig, cache_dir: Path | None = None, *, workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the corpus of ``config`` unless it is already cached; return its folder.

    Parameters
    ----------
    config : CorpusConfig
    cache_dir : root of the cache (default :func:`default_cache_dir`)
    workers : processes for synthesis and rendering (default: 2, or 1 for 200 clips or fewer)
    progress : called as ``progress(done_clips, total_clips)``

    Returns
    -------
    Path of ``<cache_dir>/corpus/<hash>`` holding ``index.csv``, ``config.json`` and ``clips/``.
    """
    engines = resolve_engines(config)
    root = (cache_dir or default_cache_dir()) / "corpus"
    final = root / corpus_hash(config, engines)
    if (final / "index.csv").is_file():
        return final
    rows = plan_clips(config, engines)
    total = len(rows)
    tmp = root / f"{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    transforms = config.build_transforms()
    rirs: tuple[np.ndarray, ...] = ()
    if "reverb" in transforms:
        rirs = transforms["reverb"].pool(config.seed, config.sample_rate)  # measured IRs and/or shoeboxes
    jobs: list[list[dict]] = []
    chunk = 24
    by_engine: dict[str, list[dict]] = {}
    for r in rows:
        by_engine.setdefault(r["engine"], []).append(r)
    for group in by_engine.values():
        jobs.extend(group[i:i + chunk] for i in range(0, len(group), chunk))
    n_workers = workers if workers is not None else (2 if total > 200 else 1)
    cfg_json = config.model_dump_json()
    index: list[dict] = []
    done = 0
    if progress:
        progress(0, total)
    if n_workers <= 1:
        _init_worker(rirs)
        for job in jobs:
            index.extend(_render_job(cfg_json, job, str(tmp)))
            done += len(job)
            if progress:
                progress(done, total)
    else:
        # fork: workers need no re-import and user scripts need no __main__ guard; they use no torch
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        with ProcessPoolExecutor(n_workers, mp_context=get_context(method), initializer=_init_worker,
                                 initargs=(rirs,)) as pool:
            futs = [pool.submit(_render_job, cfg_json, job, str(tmp)) for job in jobs]
            for fut in as_completed(futs):
                res = fut.result()
                index.extend(res)
                done += len(res)
                if progress:
                    progress(done, total)
    order = {r["id"]: k for k, r in enumerate(rows)}
    index.sort(key=lambda r: order[r["id"]])
    (tmp / "config.json").write_text(json.dumps({"format": CORPUS_FORMAT, "config": config.model_dump(mode="json"),
                                                 "engines": {k: v[1] for k, v in engines.items()}}, indent=1))
    with open(tmp / "index.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=INDEX_FIELDS)
        w.writeheader()
        w.writerows(index)
    if final.exists():  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(final)
    return final


def read_index(corpus_dir: Path) -> list[dict]:
    """The rows of a corpus's ``index.csv`` (transform values parsed back from JSON)."""
    with open(corpus_dir / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["transforms"] = json.loads(r["transforms"]) if r.get("transforms") else {}
        r["rate"], r["pitch"] = float(r["rate"]), float(r["pitch"])
    return rows


__all__ = ["CORPUS_FORMAT", "DEFAULT_ENGINES", "DEFAULT_TRANSFORM_PARAMS", "CorpusConfig", "build_corpus", "corpus_hash", "default_cache_dir",
           "plan_clips", "read_index", "render_silence", "render_speech", "resolve_engines", "voice_splits"]
