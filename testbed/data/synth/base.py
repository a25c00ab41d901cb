"""The `Synthesizer` interface every offline text-to-speech engine implements."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from testbed.errors import DataError


class EngineUnavailable(DataError):
    """A speech synthesiser is not installed; the message names the package that provides it."""


@dataclass(frozen=True)
class SynthRequest:
    """One utterance to synthesise.

    Attributes
    ----------
    text : str
        The words to say (letters, spaces, apostrophes and ``.,!?`` only).
    voice : str
        An engine voice name from :meth:`Synthesizer.voices`.
    rate : float
        Speaking-rate factor; 1.0 is the engine default, 1.2 is 20 % faster.
    pitch : float
        Fundamental-frequency factor; 1.0 is the voice's own F0.
    """

    text: str
    voice: str
    rate: float = 1.0
    pitch: float = 1.0


_SAFE_TEXT = re.compile(r"^[A-Za-z' .,!?-]+$")


def check_text(text: str) -> str:
    """Return ``text`` if it is safe to hand to an engine's command line, else raise DataError."""
    if not text.strip() or not _SAFE_TEXT.match(text):
        raise DataError(f"synthesis text {text!r}: use letters, spaces and .,!?'- only")
    return text


def to_rate(signal: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample a float signal with a polyphase filter (``scipy.signal.resample_poly``)."""
    if from_hz == to_hz:
        return signal.astype(np.float32, copy=False)
    g = gcd(int(from_hz), int(to_hz))
    return resample_poly(signal, to_hz // g, from_hz // g).astype(np.float32)


class Synthesizer(ABC):
    """An offline speech synthesiser.

    Subclasses set ``engine`` (the short name used in corpus configs and clip metadata) and
    ``package`` (the Debian or PyPI package that provides it, named in errors).
    """

    engine: str = ""
    package: str = ""

    @abstractmethod
    def available(self) -> bool:
        """Whether the engine can run on this machine."""

    @abstractmethod
    def voices(self) -> list[str]:
        """Voice names this engine offers here (only the installed ones)."""

    @abstractmethod
    def _synth_native(self, requests: Sequence[SynthRequest]) -> list[tuple[np.ndarray, int] | None]:
        """Synthesise each request at the engine's own rate: ``(float32 PCM, rate_hz)`` or None on failure."""

    def require(self) -> None:
        """Raise :class:`EngineUnavailable` naming the package to install if the engine is missing."""
        if not self.available():
            raise EngineUnavailable(
                f"speech engine {self.engine!r} is not installed: install the {self.package!r} package "
                f"(see scripts/system-deps.sh) or leave {self.engine!r} out of the corpus engines"
            )

    def synth_many(
        self, requests: Sequence[SynthRequest], sample_rate: int = 16000
    ) -> list[np.ndarray | None]:
        """Synthesise several requests.

        Parameters
        ----------
        requests : sequence of SynthRequest
        sample_rate : int
            Output rate in Hz.

        Returns
        -------
        list of (n_samples,) float32 arrays in [-1, 1], or None where the engine failed on that item.
        """
        self.require()
        for r in requests:
            check_text(r.text)
            if r.voice not in self.voices():
                raise DataError(
                    f"{self.engine} voice {r.voice!r} is not installed (have: {', '.join(self.voices())})"
                )
        out: list[np.ndarray | None] = []
        for res in self._synth_native(requests):
            if res is None:
                out.append(None)
                continue
            pcm, rate = res
            out.append(np.clip(to_rate(pcm, rate, sample_rate), -1.0, 1.0).astype(np.float32))
        return out

    def synth(self, request: SynthRequest, sample_rate: int = 16000) -> np.ndarray:
        """Synthesise one request; raises DataError if the engine fails."""
        (res,) = self.synth_many([request], sample_rate)
        if res is None:
            raise DataError(f"{self.engine} failed to say {request.text!r} with voice {request.voice!r}")
        return res
