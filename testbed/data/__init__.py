"""Datasets: the synthetic spoken-command corpus (offline TTS + domain randomisation), local
Speech Commands, folder-per-class and ambient-scene recordings, and utterances for sessions."""

from __future__ import annotations

from testbed.data.audio_io import fit_length, read_audio, resample, trim_silence
from testbed.data.corpus import CorpusConfig, build_corpus, default_cache_dir, read_index
from testbed.data.dataset import SPECS, load_dataset
from testbed.data.labels import KEYWORDS, KWS_LABELS, SILENCE, UNKNOWN, UNKNOWN_WORDS, canonical_label
from testbed.data.speak import command_utterances, synthesize
from testbed.data.synth import ENGINES, EngineUnavailable, SynthRequest, Synthesizer, get_synthesizer
from testbed.data.transforms import TRANSFORM_ORDER, TRANSFORMS
from testbed.data.types import Dataset, Split, Utterance

__all__ = [
    "ENGINES", "KEYWORDS", "KWS_LABELS", "SILENCE", "SPECS", "TRANSFORMS", "TRANSFORM_ORDER", "UNKNOWN",
    "UNKNOWN_WORDS", "CorpusConfig", "Dataset", "EngineUnavailable", "Split", "SynthRequest", "Synthesizer",
    "Utterance", "build_corpus", "canonical_label", "command_utterances", "default_cache_dir", "fit_length",
    "get_synthesizer", "load_dataset", "read_audio", "read_index", "resample", "synthesize", "trim_silence",
]
