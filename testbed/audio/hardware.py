"""What the sounddevice and pyaudio backends share: device checks, scheduling, alignment, facts.

A trial is one full-duplex PortAudio stream. The output buffer holds a short
pre-roll of silence (the stream settles, and on JACK the loopback gets wired),
then every speaker's signal at its start offset on its output channel (integer part
by position, fractional part by ``testbed.acoustics.fractional_delay``), each
through the safety limiter, then silence while the last sounds and the device
latency come back. The input buffer is cut so that sample 0 of every capture is the
moment the user speaker's first sample left the speaker: the calibrated device
latency of each mic (see ``testbed.calibration``) is skipped, with sub-sample
accuracy.

Subclasses implement only :meth:`HardwareBackend._duplex`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from testbed.audio.devices import AudioDevice, list_devices, match_device
from testbed.audio.limiter import ceiling32, hard_cap, limit_for, record_limit
from testbed.audio.types import Capture, Playback, TrialFacts, dbfs
from testbed.errors import DeviceError

if TYPE_CHECKING:
    from testbed.rig import Rig

#: Silence played before the trial's time zero, in seconds (stream start-up, JACK wiring).
PRE_ROLL_S = 0.3
#: Input samples at or above this magnitude count as clipped.
CLIP_LEVEL = 0.999
#: PortAudio status flags that mean samples were lost or invented.
XRUN_FLAGS = ("input_underflow", "input_overflow", "output_underflow", "output_overflow")


def _shift(x: np.ndarray, start: float, n: int) -> np.ndarray:
    """``y[i] = x[start + i]`` for ``i < n``, ``start`` possibly fractional (zero outside ``x``)."""
    k = math.floor(start)
    f = start - k
    if abs(f) < 1e-9:
        seg = x[k:k + n] if k >= 0 else np.concatenate([np.zeros(-k, x.dtype), x[:max(0, k + n)]])
        out = np.zeros(n, np.float32)
        out[:len(seg)] = seg[:n]
        return out
    from testbed.acoustics import fractional_delay

    pad = 64
    lo = k + 1 - pad
    seg = np.zeros(n + 2 * pad, np.float64)
    src_lo, src_hi = max(lo, 0), min(lo + len(seg), len(x))
    if src_hi > src_lo:
        seg[src_lo - lo:src_hi - lo] = x[src_lo:src_hi]
    # seg[m] = x[lo + m]; delaying by (1 - f) gives x[lo + m - 1 + f]; m = pad + i -> x[k + f + i]
    y = np.asarray(fractional_delay(seg, 1.0 - f, len(seg)), dtype=np.float32)
    return y[pad:pad + n]


class HardwareBackend:
    """Base of the PortAudio backends; see the module docstring.

    Parameters
    ----------
    rig : a rig whose ``backend`` is this one's library (not checked, so tests can
        drive either library with one rig).
    calibration : a ``CalibrationProfile`` for this rig (``testbed.calibration.load_profile``);
        its ``device_latency_samples`` align the captures.
    latency_samples : overrides the calibration: one latency for every mic, or one per
        mic name, in samples (0 gives raw, uncompensated captures, as calibration needs).
    pre_roll_s : silence before time zero, in seconds.

    Raises
    ------
    DeviceError
        The device or a speaker/mic channel does not exist; the message lists what does.
    """

    library = "?"

    def __init__(
        self,
        rig: "Rig",
        calibration: object | None = None,
        *,
        latency_samples: float | Mapping[str, float] | None = None,
        pre_roll_s: float = PRE_ROLL_S,
    ) -> None:
        self.rig = rig
        self.name = self.library
        self.sample_rate = int(rig.sample_rate)
        self.pre_roll_s = float(pre_roll_s)
        self.notes: list[str] = []
        hw = rig.hardware
        src = f"{rig.source}: " if rig.source else ""
        devices = list_devices(self.library)
        in_spec, in_where = (hw.input_device, "hardware.input_device") if hw.input_device is not None else (hw.device, "hardware.device")
        out_spec, out_where = (hw.output_device, "hardware.output_device") if hw.output_device is not None else (hw.device, "hardware.device")
        try:
            self.input_device: AudioDevice = match_device(in_spec, devices, "input", where=in_where)
            self.output_device: AudioDevice = match_device(out_spec, devices, "output", where=out_where)
        except DeviceError as exc:
            raise DeviceError(f"{src}{exc} [{self.library}]") from None
        if self.input_device.index != self.output_device.index:
            self.notes.append(
                f"input ({self.input_device.full_name}) and output ({self.output_device.full_name}) are "
                "different devices: their clocks may drift; latency comes from calibration"
            )
        for name, spk in rig.speakers.items():
            if spk.channel > self.output_device.max_output_channels:
                raise DeviceError(
                    f"{src}speakers.{name}.channel: output channel {spk.channel} does not exist on "
                    f"{self.output_device.full_name} [{self.library}] (it has output channels "
                    f"1..{self.output_device.max_output_channels})"
                )
        for name, mic in rig.mics.items():
            if mic.channel > self.input_device.max_input_channels:
                raise DeviceError(
                    f"{src}mics.{name}.channel: input channel {mic.channel} does not exist on "
                    f"{self.input_device.full_name} [{self.library}] (it has input channels "
                    f"1..{self.input_device.max_input_channels})"
                )
        # JACK sets the period itself; a fixed PortAudio block size there only adds a buffer of latency.
        self.stream_blocksize = 0 if "jack" in self.output_device.hostapi.lower() else hw.blocksize
        self.n_out = max(s.channel for s in rig.speakers.values())
        self.n_in = max(m.channel for m in rig.mics.values())
        self.calibration = calibration
        self.latency: dict[str, float] | None = self._resolve_latency(latency_samples, calibration)
        self._closed = False

    # -- latency -----------------------------------------------------------
    def _resolve_latency(self, latency_samples, calibration) -> dict[str, float] | None:
        if latency_samples is not None:
            if isinstance(latency_samples, Mapping):
                missing = [m for m in self.rig.mics if m not in latency_samples]
                if missing:
                    raise DeviceError(f"latency_samples: no latency for mic(s) {', '.join(missing)}")
                return {m: float(latency_samples[m]) for m in self.rig.mics}
            return {m: float(latency_samples) for m in self.rig.mics}
        if calibration is not None:
            dev = getattr(calibration, "device_latency_samples", None) or {}
            missing = [m for m in self.rig.mics if m not in dev]
            if missing:
                raise DeviceError(
                    f"calibration profile of rig {getattr(calibration, 'rig', '?')!r} has no latency for "
                    f"mic(s) {', '.join(missing)}; run: testbed calibrate {self.rig.source or self.rig.name} --what latency"
                )
            if int(getattr(calibration, "sample_rate", self.sample_rate)) != self.sample_rate:
                raise DeviceError(
                    f"calibration profile was measured at {calibration.sample_rate} Hz but the rig runs at "
                    f"{self.sample_rate} Hz; recalibrate"
                )
            return {m: float(dev[m]) for m in self.rig.mics}
        return None  # reported by PortAudio once the stream is open

    # -- the trial ---------------------------------------------------------
    def run_trial(self, plays: Mapping[str, Playback], record_s: float, placement: str | None = None) -> Capture:
        """Play ``plays`` on their speakers, record every mic for ``record_s`` seconds.

        Parameters
        ----------
        plays : speaker name -> Playback (float32 signal, offset in samples >= 0).
        record_s : seconds of capture returned per mic, from the user speaker's start.
        placement : recorded in the facts; moving things is the positioner's job.

        Returns
        -------
        Capture
            ``mics[name]`` float32, shape (round(record_s * sample_rate),), aligned to the
            user speaker's start; ``facts`` with latency, xruns, clipping and levels.

        Raises
        ------
        DeviceError
            Unknown speaker, or the stream failed or stalled.
        """
        if self._closed:
            raise DeviceError(f"{self.library} backend is closed")
        sr = self.sample_rate
        unknown = [s for s in plays if s not in self.rig.speakers]
        if unknown:
            raise DeviceError(f"run_trial: unknown speaker(s) {', '.join(unknown)} (rig has: {', '.join(self.rig.speakers)})")
        n_rec = int(round(record_s * sr))
        if n_rec <= 0:
            raise DeviceError(f"run_trial: record_s must be > 0, got {record_s}")
        pre = int(round(self.pre_roll_s * sr))
        known_lat = max(self.latency.values()) if self.latency else 0.5 * sr
        end_play = max((math.ceil(p.offset_samples) + len(p.signal) for p in plays.values()), default=0)
        n_total = pre + max(n_rec, end_play) + math.ceil(known_lat) + int(round(self.rig.hardware.tail_s * sr)) + 2 * self.rig.hardware.blocksize + 64
        out = np.zeros((n_total, self.n_out), np.float32)
        facts = TrialFacts(backend=self.library, sample_rate=sr, placement=placement, notes=list(self.notes))
        for name, play in plays.items():
            spk = self.rig.speakers[name]
            off = float(play.offset_samples)
            if not math.isfinite(off) or off < 0:
                raise DeviceError(f"run_trial: speaker {name!r} offset must be a finite number >= 0, got {off}")
            sig = np.asarray(play.signal, dtype=np.float32).reshape(-1)
            k = math.floor(off)
            frac = off - k
            if frac > 1e-9:
                from testbed.acoustics import fractional_delay

                sig = np.asarray(fractional_delay(sig, frac, len(sig) + 1), dtype=np.float32)
            res = limit_for(spk, sig, sr)
            record_limit(facts, name, res, spk.max_dbfs)
            facts.speaker_rms_dbfs[name] = dbfs(res.signal, "rms")
            col = spk.channel - 1
            start = pre + k
            out[start:start + len(res.signal), col] += res.signal
            facts.realised_offsets_samples[name] = off
        ceilings = np.ones(self.n_out, np.float32)
        for spk in self.rig.speakers.values():
            ceilings[spk.channel - 1] = min(ceilings[spk.channel - 1], ceiling32(spk.max_dbfs))
        hard_cap(out, ceilings)
        for name in plays:
            col = out[:, self.rig.speakers[name].channel - 1]
            facts.speaker_peak_dbfs[name] = dbfs(col, "peak")

        raw, flags, reported = self._duplex(out)

        facts.status_flags = sorted(set(flags))
        facts.xruns = sum(1 for f in flags if f in XRUN_FLAGS)
        if self.latency is None:
            lat = {m: float(reported) for m in self.rig.mics}
            facts.notes.append(
                f"uncalibrated: using PortAudio's reported latency ({reported:.0f} samples); "
                f"run 'testbed calibrate' for the measured one"
            )
        else:
            lat = self.latency
        mics: dict[str, np.ndarray] = {}
        for mname, mic in self.rig.mics.items():
            col = raw[:, mic.channel - 1]
            facts.clipped_samples[mname] = int(np.count_nonzero(np.abs(col) >= CLIP_LEVEL))
            y = _shift(col, pre + lat[mname], n_rec)
            mics[mname] = y
            facts.mic_peak_dbfs[mname] = dbfs(y, "peak")
            facts.mic_rms_dbfs[mname] = dbfs(y, "rms")
        user = self.rig.user_speaker
        facts.latency_samples = float(lat[self.rig.dut.mic])
        paths = getattr(self.calibration, "latency_samples", None) or {}
        for sname in plays:
            for mname in self.rig.mics:
                key = f"{sname}->{mname}"
                if key in paths:
                    facts.arrival_offsets_samples.setdefault(sname, {})[mname] = (
                        facts.realised_offsets_samples[sname] + float(paths[key]) - lat[mname]
                    )
        if user not in plays:
            facts.notes.append(f"user speaker {user!r} did not play; captures are aligned to time zero")
        return Capture(mics=mics, facts=facts)

    def _duplex(self, out: np.ndarray) -> tuple[np.ndarray, list[str], float]:
        """Play ``out`` (n_frames, n_out) and record as many frames of ``n_in`` channels.

        Returns
        -------
        raw : float32, shape (n_frames, n_in); frame i was captured in the same
            callback as output frame i.
        flags : one name per PortAudio status flag raised in a callback.
        reported_latency_samples : PortAudio's input + output latency estimate.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the library; the backend is unusable afterwards."""
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
