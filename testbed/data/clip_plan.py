"""The corpus's clip plan: which word, voice, speaker and split every clip gets, seeded.

A voice (a speaker, see :mod:`testbed.data.splits`) says clips of one split only, so the
test split is spoken by voices the model never heard in training.
"""

from __future__ import annotations

import numpy as np

from testbed.data.labels import KWS_LABELS, SILENCE, UNKNOWN
from testbed.data.corpus_config import CorpusConfig
from testbed.data.splits import SPLIT_NAMES, assign_voice_splits, speaker_of, split_counts
from testbed.data.synth import get_synthesizer

_PUNCT = ("", "", ".", "!", "?")


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
