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
from pydantic import BaseModel, ConfigDict, Field, field_validator

from testbed.data.audio_io import trim_silence, write_flac
from testbed.data.labels import KWS_LABELS, SILENCE, SPEECH_COMMANDS_AUX_WORDS, UNKNOWN, UNKNOWN_WORDS
from testbed.data.splits import SPLIT_NAMES, assign_voice_splits, speaker_of, split_counts
from testbed.data.synth import ENGINES, EngineUnavailable, SynthRequest, get_synthesizer
from testbed.data.transforms import TRANSFORM_ORDER, TRANSFORMS, Onset, Reverb
from testbed.errors import DataError

#: bump when the build procedure changes in a way the config does not show
#: (4: speaker-disjoint splits recorded in the index)
CORPUS_FORMAT = 4
DEFAULT_ENGINES: dict[str, float] = {"espeak": 0.4, "flite": 0.35, "festival": 0.25}
#: the default corpus's transform strengths (tuned for transfer to real speech, docs/sim-to-real.md):
#: every randomisation acts on about half the clips, with moderate ranges; heavy noise, reverb
#: and EQ on every clip made the LM model underfit and lose the ``unknown`` class
DEFAULT_TRANSFORM_PARAMS: dict[str, dict[str, Any]] = {
    "speed": {"p": 0.5, "factor": [0.9, 1.1]},
    "pitch": {"p": 0.4, "semitones": [-2.0, 2.0]},
    "formant": {"p": 0.5, "alpha": [0.9, 1.12]},
    "loudness": {"p": 0.5, "depth_db": 4.0},
    "eq": {"p": 0.6},
    "reverb": {"p": 0.5, "rt60_s": [0.1, 0.5]},
    "noise": {"p": 0.7, "snr_db": [12.0, 40.0]},
}
_PUNCT = ("", "", ".", "!", "?")


class CorpusConfig(BaseModel):
    """Everything that determines a synthetic corpus.

    Attributes
    ----------
    per_class : clips per label (12 labels); 500 by default (lm-fp32 0.908 on its 600 test clips, real-dev
        0.750; 300 gave 0.894 and 0.783)
    seed : master seed; every clip's randomness derives from (seed, label, index)
    engines : engine name -> share of the speech clips (missing engines are skipped with a warning)
    transforms : names of the enabled transforms, applied in :data:`TRANSFORM_ORDER`
    transform_params : per-transform parameters, e.g. ``{"noise": {"snr_db": [10, 30]}}``; a transform's
        entry here is laid over its :data:`DEFAULT_TRANSFORM_PARAMS` entry, which is laid over the
        transform class's own defaults
    engine_rate, engine_pitch : ranges of the speaking-rate and F0 factors asked of the engine
    level_dbfs : range of the final speech RMS level (dBFS over the word)
    silence_dbfs : range of the RMS level of ``silence`` clips (dBFS)
    unknown_words : vocabulary of the ``unknown`` class
    unknown_focus_words, unknown_focus : that share of the ``unknown`` clips speaks the focus words (by
        default the Speech Commands auxiliary words, the other words a keyword spotter of the paper's task
        meets); the rest cycles through all of ``unknown_words``. With 80 words each said a few times,
        the model had learnt too little of any one non-keyword and sent real ones to near keywords.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_class: int = Field(500, ge=1)
    seed: int = 0
    sample_rate: int = 16000
    clip_samples: int = 16000
    engines: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_ENGINES))
    transforms: tuple[str, ...] = TRANSFORM_ORDER
    transform_params: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: json.loads(json.dumps(DEFAULT_TRANSFORM_PARAMS)))
    engine_rate: tuple[float, float] = (0.8, 1.25)
    engine_pitch: tuple[float, float] = (0.8, 1.3)
    level_dbfs: tuple[float, float] = (-32.0, -14.0)
    silence_dbfs: tuple[float, float] = (-65.0, -25.0)
    unknown_words: tuple[str, ...] = UNKNOWN_WORDS
    unknown_focus_words: tuple[str, ...] = SPEECH_COMMANDS_AUX_WORDS
    unknown_focus: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("engines")
    @classmethod
    def _known_engines(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [e for e in v if e not in ENGINES]
        if bad:
            raise ValueError(f"unknown engine {', '.join(bad)} (have: {', '.join(ENGINES)})")
        if not v or any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("engine shares must be >= 0 and not all zero")
        return v

    @field_validator("transforms")
    @classmethod
    def _known_transforms(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [t for t in v if t not in TRANSFORMS]
        if bad:
            raise ValueError(f"unknown transform {', '.join(bad)} (have: {', '.join(TRANSFORM_ORDER)})")
        return tuple(t for t in TRANSFORM_ORDER if t in v)

    @classmethod
    def quick(cls, **kw: Any) -> CorpusConfig:
        """A small corpus (40 clips per class) for tests and ``--quick`` runs."""
        return cls(per_class=kw.pop("per_class", 40), **kw)

    def without(self, *names: str) -> CorpusConfig:
        """The same config with the named transforms switched off (for ablations)."""
        return self.model_copy(update={"transforms": tuple(t for t in self.transforms if t not in names)})

    def build_transforms(self) -> dict[str, Any]:
        """Instances of the enabled transforms with their parameter overrides applied."""
        out = {}
        for name in self.transforms:
            merged = {**DEFAULT_TRANSFORM_PARAMS.get(name, {}), **self.transform_params.get(name, {})}
            params = {k: tuple(v) if isinstance(v, list) else v for k, v in merged.items()}
            try:
                out[name] = TRANSFORMS[name](**params)
            except TypeError as exc:
                raise DataError(f"corpus transform_params.{name}: {exc}") from None
        return out


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


def _shares(n: int, weights: dict[str, float]) -> dict[str, int]:
    names = sorted(weights)
    w = np.array([weights[k] for k in names], dtype=float)
    raw = n * w / w.sum()
    base = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - base))[: n - base.sum()]:
        base[i] += 1
    return dict(zip(names, base.tolist()))


def _word_sequence(config: CorpusConfig, rng: np.random.Generator) -> list[str]:
    """The ``per_class`` words of the ``unknown`` clips, in random order: ``unknown_focus`` of them
    cycle through the focus words, the rest through all unknown words (each cycle shuffled)."""
    n_focus = int(round(config.per_class * config.unknown_focus)) if config.unknown_focus_words else 0
    out: list[str] = []
    for vocab, n in ((list(config.unknown_focus_words), n_focus), (list(config.unknown_words),
                                                                   config.per_class - n_focus)):
        order = rng.permutation(len(vocab)) if vocab else []
        out.extend(vocab[order[k % len(vocab)]] for k in range(n))
    return [out[k] for k in rng.permutation(len(out))]


def voice_splits(config: CorpusConfig, engines: dict[str, tuple[float, list[str]]]) -> dict[tuple[str, str], int]:
    """Split (0 train, 1 val, 2 test) of every voice of the corpus's engines, plus espeak-ng's
    (the fallback engine), from :func:`~testbed.data.splits.assign_voice_splits`."""
    voices = {e: v for e, (_, v) in engines.items()}
    if "espeak" not in voices:
        synth = get_synthesizer("espeak")
        if synth.available():
            voices["espeak"] = synth.voices()
    return assign_voice_splits(voices, config.seed)


def _clip_splits(engines_of_clips: list[str], has_split: dict[str, set[int]], per_class: int,
                 rng: np.random.Generator) -> list[int]:
    """Split of each clip of one label: 80/10/10 of the label's clips, a clip only going to a
    split where its engine has voices (the rest to train)."""
    _, n_val, n_test = split_counts(per_class)
    out = [0] * len(engines_of_clips)
    order = rng.permutation(len(engines_of_clips)).tolist()
    for part, n in ((2, n_test), (1, n_val)):
        for i in order:
            if n == 0:
                break
            if out[i] == 0 and part in has_split[engines_of_clips[i]]:
                out[i], n = part, n - 1
    return out


def plan_clips(config: CorpusConfig, engines: dict[str, tuple[float, list[str]]]) -> list[dict]:
    """One plan row per clip (label, text, engine, voice, speaker, split, engine rate/pitch, clip
    seed), seeded; a voice says clips of one split only."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xC0]))
    split_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x5B]))
    assigned = voice_splits(config, engines)
    in_split = {(e, part): [v for v in voices if assigned[(e, v)] == part]
                for e, (_, voices) in engines.items() for part in range(3)}
    has_split = {e: {part for part in range(3) if in_split[(e, part)]} for e in engines}
    has_split["none"] = {0, 1, 2}
    fallback = {part: sorted(v for (e, v), p in assigned.items() if e == "espeak" and p == part)
                for part in range(3)}
    rows = []
    shares = {k: s for k, (s, _) in engines.items()}
    for li, label in enumerate(KWS_LABELS):
        if label == SILENCE:
            parts = _clip_splits(["none"] * config.per_class, has_split, config.per_class, split_rng)
            for i in range(config.per_class):
                rows.append({"id": f"{label}-{i:05d}", "label": label, "engine": "none", "voice": "",
                             "speaker": "", "split": SPLIT_NAMES[parts[i]],
                             "text": "", "rate": 1.0, "pitch": 1.0, "seed": [config.seed, li, i]})
            continue
        counts = _shares(config.per_class, shares)
        engine_of = [e for e, c in counts.items() for _ in range(c)]
        parts = _clip_splits(engine_of, has_split, config.per_class, split_rng)
        i = 0
        words = _word_sequence(config, rng) if label == UNKNOWN else [label] * config.per_class
        for engine, count in counts.items():
            vorder = {part: rng.permutation(len(in_split[(engine, part)])) for part in has_split[engine]}
            used = {part: 0 for part in range(3)}
            for _ in range(count):
                part = parts[i]
                voices = in_split[(engine, part)]
                voice = voices[vorder[part][used[part] % len(voices)]]
                used[part] += 1
                word = words[i]
                text = word.capitalize() if rng.random() < 0.3 else word
                text += _PUNCT[int(rng.integers(len(_PUNCT)))]
                fb = fallback[part] or fallback[0] or ["en-us+m3"]
                rows.append({"id": f"{label}-{i:05d}", "label": label, "engine": engine, "voice": voice,
                             "speaker": speaker_of(engine, voice), "split": SPLIT_NAMES[part], "text": text,
                             "rate": round(float(rng.uniform(*config.engine_rate)), 3),
                             "pitch": round(float(rng.uniform(*config.engine_pitch)), 3),
                             "fallback": fb[(li * 7 + i) % len(fb)], "seed": [config.seed, li, i]})
                i += 1
    return rows


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
        transforms["reverb"] = Reverb(p=tr.p, rt60_s=tr.rt60_s, pool_size=tr.pool_size, rirs=_RIRS)
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
        from testbed.data.rooms import rir_pool

        rv = transforms["reverb"]
        rirs = tuple(rir_pool(rv.pool_size, config.seed, config.sample_rate, rv.rt60_s))
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
