"""Flite (CMU Festival-lite), run as the ``flite`` command of the Debian package ``flite``."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from testbed.data.synth.base import SynthRequest, Synthesizer

#: Voice -> its default mean F0 in Hz (pitch factors scale this).
FLITE_VOICES: dict[str, float] = {"kal": 100.0, "kal16": 100.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}


class FliteSynthesizer(Synthesizer):
    """Flite's built-in voices (diphone ``kal``/``kal16``, clustergen ``awb``/``rms``/``slt``)."""

    engine = "flite"
    package = "flite"

    def __init__(self, binary: str = "flite", timeout_s: float = 20.0) -> None:
        self.binary = binary
        self.timeout_s = timeout_s
        self._voices: list[str] | None = None

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def voices(self) -> list[str]:
        if self._voices is None:
            if not self.available():
                return []
            res = subprocess.run([self.binary, "-lv"], capture_output=True, text=True, timeout=self.timeout_s)
            have = set(res.stdout.replace("Voices available:", "").split())
            self._voices = [v for v in FLITE_VOICES if v in have]
        return list(self._voices)

    def _synth_native(self, requests: Sequence[SynthRequest]) -> list[tuple[np.ndarray, int] | None]:
        out: list[tuple[np.ndarray, int] | None] = []
        with tempfile.TemporaryDirectory(prefix="testbed-flite-") as tmp:
            for i, r in enumerate(requests):
                wav = Path(tmp) / f"{i}.wav"
                cmd = [self.binary, "-voice", r.voice, "-t", r.text, "-o", str(wav),
                       "--setf", f"duration_stretch={1.0 / r.rate:.3f}",
                       "--setf", f"int_f0_target_mean={FLITE_VOICES[r.voice] * r.pitch:.1f}"]
                try:
                    subprocess.run(cmd, capture_output=True, timeout=self.timeout_s, check=True)
                    pcm, rate = sf.read(wav, dtype="float32", always_2d=True)
                except (subprocess.SubprocessError, OSError, sf.LibsndfileError):
                    out.append(None)
                    continue
                out.append((pcm.mean(axis=1), int(rate)) if len(pcm) else None)
        return out
