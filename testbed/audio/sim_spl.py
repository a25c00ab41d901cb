"""The simulator's SPL side (issue 23): its own calibration, each speaker's level at each mic,
and sound injected at the mics (a test hook: a door slam, an acoustic calibrator).

:class:`testbed.audio.sim.SimBackend` calls these from three small hooks in ``run_trial``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.acoustics import mic_facts
from testbed.acoustics.responses import mic_response_db
from testbed.acoustics.weighting import REFERENCE_DBSPL, a_weighting_db
from testbed.errors import DeviceError

#: Kinds of injected sound.
INJECTION_KINDS = ("noise", "tone")


def _gain(rig, mic: str, freq_hz: float) -> float:
    """Digital units per pascal (instantaneous) of ``mic`` at ``freq_hz``: sensitivity and response."""
    m = rig.mics[mic]
    return mic_facts(m).gain_per_pa * 10 ** (float(mic_response_db(m.tier, np.array([freq_hz]), rig)[0]) / 20)


def sim_dbfs_at_94(rig, freq_hz: float = 1000.0) -> dict[str, float]:
    """Each mic's RMS dBFS for a 94 dB SPL (1 Pa RMS) tone at ``freq_hz``, as the simulator models
    it (the mic's sensitivity and its response there): the sim's own ``calibrate --what spl``."""
    pa = 10 ** ((REFERENCE_DBSPL - 94.0) / 20)
    return {m: float(20 * np.log10(_gain(rig, m, freq_hz) * pa)) for m in rig.mics}


@dataclass
class Injection:
    """Sound added at the mics for the next ``remaining`` captures: ``kind`` "noise" (white,
    ``level_dbspl`` broadband, unweighted) or "tone" (a ``freq_hz`` sine at ``level_dbspl``),
    on ``mics`` (None: every mic)."""

    level_dbspl: float
    remaining: int
    kind: str = "noise"
    freq_hz: float = 1000.0
    mics: tuple[str, ...] | None = None

    @classmethod
    def checked(cls, rig, level_dbspl: float, n_captures: int, kind: str, freq_hz: float,
                mics) -> "Injection":
        """An injection for ``rig``; DeviceError for an unknown kind or mic."""
        if kind not in INJECTION_KINDS:
            raise DeviceError(f"sim backend: inject kind must be 'noise' or 'tone', got {kind!r}")
        unknown = [m for m in (mics or ()) if m not in rig.mics]
        if unknown:
            raise DeviceError(f"sim rig {rig.name!r}: no mic {unknown[0]!r} (have: {', '.join(rig.mics)})")
        return cls(float(level_dbspl), int(n_captures), kind, float(freq_hz), tuple(mics) if mics else None)


def injected(rig, injections: list[Injection], mic: str, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """What ``injections`` add at ``mic`` to one ``n``-sample capture, digital units (float64
    (n,)), or None; each mic hears it through its sensitivity (a tone: and its response)."""
    out = None
    for inj in injections:
        if inj.remaining <= 0 or (inj.mics is not None and mic not in inj.mics):
            continue
        pa = 20e-6 * 10 ** (inj.level_dbspl / 20)
        if inj.kind == "noise":
            x = pa * mic_facts(rig.mics[mic]).gain_per_pa * rng.standard_normal(n)
        else:
            t = np.arange(n) / rig.sample_rate
            x = np.sqrt(2) * pa * _gain(rig, mic, inj.freq_hz) * np.sin(2 * np.pi * inj.freq_hz * t)
        out = x if out is None else out + x
    return out


def spend(injections: list[Injection]) -> list[Injection]:
    """One capture later: the injections still to come."""
    for inj in injections:
        inj.remaining -= 1
    return [inj for inj in injections if inj.remaining > 0]


class SourceLevels:
    """RMS dBFS (unweighted, A-weighted) per mic of one speaker's contribution, from the rfft bins
    of what it plays and of its channels (Parseval), so the simulator reports each source's level
    without another inverse FFT: the contribution's power at mic ``m`` is ``|X|^2 |H_m|^2``, and
    ``|H_m|^2`` times the two frequency weightings is computed once per channel."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self._w: dict[int, np.ndarray] = {}
        self._q: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _weights(self, nfft: int) -> np.ndarray:
        """(nfft // 2 + 1, 2): Parseval's one-sided bin weights, unweighted and A-weighted."""
        if nfft not in self._w:
            if len(self._w) > 8:
                self._w.clear()
            w = np.full(nfft // 2 + 1, 2.0)
            w[0] = 1.0
            if nfft % 2 == 0:
                w[-1] = 1.0
            freqs = np.fft.rfftfreq(nfft, 1.0 / self.sample_rate)
            self._w[nfft] = np.stack([w, w * 10 ** (a_weighting_db(freqs, self.sample_rate) / 10)]).T
        return self._w[nfft]

    def __call__(self, played: np.ndarray, channel: np.ndarray, nfft: int,
                 n_play: int) -> tuple[np.ndarray, np.ndarray]:
        """``played``: rfft bins of the speaker's signal, shape (nfft // 2 + 1,); ``channel``: its
        spectra at each mic, shape (n_mics, nfft // 2 + 1) (the same array object on every trial
        of a channel: it keys the cache); levels over ``n_play`` samples of playback.

        Returns two float arrays of shape (n_mics,): unweighted and A-weighted RMS dBFS.
        """
        hit = self._q.get(id(channel))
        if hit is None or hit[0] is not channel:
            if len(self._q) > 32:
                self._q.clear()
            h2 = channel.real.astype(np.float64) ** 2 + channel.imag.astype(np.float64) ** 2
            q = (h2[:, :, None] * self._weights(nfft)[None]).transpose(1, 0, 2).reshape(h2.shape[1], -1)
            hit = self._q[id(channel)] = (channel, np.ascontiguousarray(q))
        p = played.real.astype(np.float64) ** 2 + played.imag.astype(np.float64) ** 2
        e = (p @ hit[1]).reshape(-1, 2) / (nfft * max(n_play, 1))   # (n_mics, 2): mean square
        db = 10 * np.log10(np.maximum(e, 1e-20))
        return db[:, 0], db[:, 1]
