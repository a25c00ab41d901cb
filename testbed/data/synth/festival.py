"""The Festival speech synthesis system, run in batch mode (Debian ``festival`` + ``festvox-*`` voices)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from testbed.data.synth.base import SynthRequest, Synthesizer

#: Voice -> (Debian package, default mean F0 in Hz or None where the pitch cannot be set).
FESTIVAL_VOICES: dict[str, tuple[str, float | None]] = {
    "kal_diphone": ("festvox-kallpc16k", 105.0),
    "ked_diphone": ("festvox-kdlpc16k", 105.0),
    "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", None),
}
_VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices"))


def _installed_voices() -> set[str]:
    found = set()
    for root in _VOICE_DIRS:
        if root.is_dir():
            found.update(p.name for p in root.glob("*/*") if p.is_dir())
    return found


class FestivalSynthesizer(Synthesizer):
    """Festival voices, a few utterances per ``festival --batch`` process.

    Festival occasionally crashes part-way through a long batch (seen with ``ked_diphone``), so
    requests are sent ``batch_size`` at a time and a crashed batch is retried one request per
    process; a request that still fails comes back as None.
    """

    engine = "festival"
    package = "festival"

    def __init__(self, binary: str = "festival", batch_size: int = 16, timeout_s: float = 60.0) -> None:
        self.binary = binary
        self.batch_size = batch_size
        self.timeout_s = timeout_s

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def voices(self) -> list[str]:
        if not self.available():
            return []
        have = _installed_voices()
        return [v for v in FESTIVAL_VOICES if v in have]

    def missing_voice_packages(self) -> list[str]:
        """Debian packages of the known voices that are not installed."""
        have = set(self.voices())
        return [pkg for v, (pkg, _) in FESTIVAL_VOICES.items() if v not in have]

    def _script(self, requests: Sequence[SynthRequest], tmp: Path, first: int) -> str:
        lines = []
        for i, r in enumerate(requests):
            lines.append(f"(voice_{r.voice})")
            lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / r.rate:.3f})")
            f0 = FESTIVAL_VOICES[r.voice][1]
            if f0 is not None:
                lines.append(f"(set! int_lr_params '((target_f0_mean {f0 * r.pitch:.1f}) (target_f0_std "
                             f"{0.15 * f0 * r.pitch:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
            text = r.text.replace('"', "")
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{tmp / f"{first + i}.wav"}" \'riff)')
        return "\n".join(lines) + "\n"

    def _run(self, requests: Sequence[SynthRequest], tmp: Path, first: int) -> list[tuple[np.ndarray, int] | None]:
        script = tmp / f"batch-{first}.scm"
        script.write_text(self._script(requests, tmp, first))
        try:
            subprocess.run([self.binary, "--batch", str(script)], capture_output=True, timeout=self.timeout_s)
        except (subprocess.SubprocessError, OSError):
            pass
        out: list[tuple[np.ndarray, int] | None] = []
        for i in range(len(requests)):
            wav = tmp / f"{first + i}.wav"
            try:
                pcm, rate = sf.read(wav, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, OSError):
                out.append(None)
                continue
            out.append((pcm.mean(axis=1), int(rate)) if len(pcm) else None)
        return out

    def _synth_native(self, requests: Sequence[SynthRequest]) -> list[tuple[np.ndarray, int] | None]:
        out: list[tuple[np.ndarray, int] | None] = []
        with tempfile.TemporaryDirectory(prefix="testbed-festival-") as tmp_s:
            tmp = Path(tmp_s)
            for start in range(0, len(requests), self.batch_size):
                batch = list(requests[start:start + self.batch_size])
                res = self._run(batch, tmp, start)
                for j, item in enumerate(res):
                    if item is None:  # crashed batch: retry this one alone
                        res[j] = self._run([batch[j]], tmp, start + j)[0]
                out.extend(res)
        return out
