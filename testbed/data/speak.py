"""Single utterances for people and sessions: :func:`synthesize` and :func:`command_utterances`."""

from __future__ import annotations

import numpy as np

from testbed.data.audio_io import trim_silence
from testbed.data.corpus import CorpusConfig, render_speech, resolve_engines
from testbed.data.labels import KWS_LABELS, SILENCE, UNKNOWN, UNKNOWN_WORDS
from testbed.data.synth import SynthRequest, get_synthesizer
from testbed.data.types import Utterance
from testbed.errors import DataError


def synthesize(text: str, *, engine: str = "espeak", voice: str | None = None, sample_rate: int = 16000,
               seed: int = 0) -> np.ndarray:
    """Say ``text`` with an offline engine.

    Parameters
    ----------
    text : words (letters, spaces, .,!?'- only)
    engine : ``espeak`` | ``flite`` | ``festival``
    voice : an engine voice; None picks one of the installed voices from ``seed``
    sample_rate : Hz

    Returns
    -------
    (n_samples,) float32 PCM, leading/trailing silence trimmed, peak 0.5.

    Raises
    ------
    DataError / EngineUnavailable : unknown engine or voice, engine not installed (names the package).
    """
    synth = get_synthesizer(engine)
    synth.require()
    if voice is None:
        voices = synth.voices()
        voice = voices[int(np.random.default_rng(seed).integers(len(voices)))]
    x = trim_silence(synth.synth(SynthRequest(text, voice), sample_rate), sample_rate)
    return (x / (np.max(np.abs(x)) + 1e-9) * 0.5).astype(np.float32)


def _synthetic_utterances(labels: list[str], per_label: int, seed: int) -> list[Utterance]:
    # clean, close-talk versions: the rig (or the simulator) adds the room, the noise and the devices
    config = CorpusConfig(seed=seed, transforms=("speed", "pitch", "formant"),
                          transform_params={"speed": {"factor": [0.92, 1.08]}, "pitch": {"semitones": [-2, 2]},
                                            "formant": {"alpha": [0.94, 1.06]}})
    engines = resolve_engines(config)
    transforms = config.build_transforms()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x07]))
    out = []
    for label in labels:
        for i in range(per_label):
            uid = f"syn-{label}-{seed}-{i}"
            if label == SILENCE:
                x = np.zeros(config.clip_samples, np.float32)
                out.append(Utterance(uid, label, x, {"engine": "none", "voice": "", "text": ""}))
                continue
            names = sorted(engines)
            engine = names[int(rng.integers(len(names)))]
            voices = engines[engine][1]
            voice = voices[int(rng.integers(len(voices)))]
            word = UNKNOWN_WORDS[int(rng.integers(len(UNKNOWN_WORDS)))] if label == UNKNOWN else label
            pcm = get_synthesizer(engine).synth(SynthRequest(word, voice), config.sample_rate)
            clip_rng = np.random.default_rng(np.random.SeedSequence([seed, KWS_LABELS.index(label), i, 0x07]))
            x, facts = render_speech(pcm, config, transforms, clip_rng)
            x = x / (np.max(np.abs(x)) + 1e-9) * 0.5
            out.append(Utterance(uid, label, x.astype(np.float32),
                                 {"engine": engine, "voice": voice, "text": word, "source": "synthetic", **facts}))
    return out


def command_utterances(source: str, labels: list[str], per_label: int, seed: int) -> list[Utterance]:
    """Held-out spoken commands for a session, ``per_label`` of each label, in label order.

    Parameters
    ----------
    source : ``synthetic`` (fresh clips, never in any training corpus: a separate seed stream and
        no room/noise, since the rig adds those) | ``speech-commands:PATH`` | ``folder:PATH``
        (drawn from the dataset's test split, then val, then train)
    labels : labels to draw (each must exist in the source)
    per_label : clips per label
    seed : selection / synthesis seed

    Returns
    -------
    list of Utterance, each ``signal`` (16000,) float32 at 16 kHz, peak 0.5 for synthetic clips.
    """
    bad = [lab for lab in labels if lab not in KWS_LABELS]
    if source == "synthetic":
        if bad:
            raise DataError(f"utterances.labels: {', '.join(bad)} not in {', '.join(KWS_LABELS)}")
        return _synthetic_utterances(labels, per_label, seed)
    from testbed.data.dataset import load_dataset

    ds = load_dataset(source, seed=seed)
    missing = [lab for lab in labels if lab not in ds.labels]
    if missing:
        raise DataError(f"utterances.labels: {', '.join(missing)} not in {source} (has: {', '.join(ds.labels)})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x08]))
    out = []
    for label in labels:
        k = ds.labels.index(label)
        picked: list[tuple[np.ndarray, dict]] = []
        for split in (ds.test, ds.val, ds.train):
            idx = np.flatnonzero(split.y == k)
            for i in rng.permutation(idx):
                if len(picked) < per_label:
                    picked.append((split.x[i], split.meta[i]))
        if len(picked) < per_label:
            raise DataError(f"utterances.per_label: {source} has only {len(picked)} clip(s) of {label!r}, "
                            f"{per_label} asked")
        out.extend(Utterance(f"{m['id']}", label, x.copy(), dict(m)) for x, m in picked)
    return out


__all__ = ["command_utterances", "synthesize"]
