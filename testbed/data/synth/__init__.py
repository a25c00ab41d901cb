"""Offline speech synthesisers behind one :class:`Synthesizer` interface."""

from __future__ import annotations

from testbed.data.synth.base import EngineUnavailable, SynthRequest, Synthesizer, check_text, to_rate
from testbed.data.synth.espeak import EspeakSynthesizer
from testbed.data.synth.festival import FestivalSynthesizer
from testbed.data.synth.flite import FliteSynthesizer
from testbed.errors import DataError

#: engine name -> Synthesizer class
ENGINES: dict[str, type[Synthesizer]] = {
    "espeak": EspeakSynthesizer,
    "flite": FliteSynthesizer,
    "festival": FestivalSynthesizer,
}


def get_synthesizer(engine: str) -> Synthesizer:
    """The synthesiser called ``engine`` (one of :data:`ENGINES`); DataError for an unknown name."""
    try:
        return ENGINES[engine]()
    except KeyError:
        raise DataError(f"unknown speech engine {engine!r} (have: {', '.join(ENGINES)})") from None


__all__ = ["ENGINES", "EngineUnavailable", "EspeakSynthesizer", "FestivalSynthesizer", "FliteSynthesizer",
           "SynthRequest", "Synthesizer", "check_text", "get_synthesizer", "to_rate"]
