"""The calibration measurements, on any AudioBackend that does not compensate latency itself.

Every measurement plays its test signal framed by two sync clicks (one before, one
after). The clicks must come back with the same delay (within 2 samples plus 300 ppm
of clock drift); a dropout or an inserted block shifts one against the other and
fails the measurement, as does a click that does not come back at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from testbed.audio.types import Capture, Playback, dbfs
from testbed.calibration.farina import SweepResponse, sweep_response
from testbed.calibration.gccphat import gcc_phat
from testbed.calibration.signals import exp_sweep, sync_click, tone
from testbed.errors import CalibrationError

#: Silence before the first sync click, in seconds.
LEAD_S = 0.05
#: Gap after each click and after the payload, in seconds; the longest latency measurable.
GAP_S = 0.3
#: Normalised GCC-PHAT peak below which a click or sweep "did not come back".
MIN_PEAK = 0.2
#: Attempts per trial when the backend reports xruns.
ATTEMPTS = 3

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Framed:
    """A payload between two sync clicks; indices in samples from the signal's start."""

    signal: np.ndarray
    payload_at: int
    payload_len: int
    click_at: tuple[int, int]
    click_len: int
    sample_rate: int


def frame(payload: np.ndarray, sample_rate: int, click_amplitude: float) -> Framed:
    """``[lead][click][gap][payload][gap][click][gap]`` as one float32 signal."""
    c = sync_click(sample_rate, click_amplitude)
    lead, gap = int(LEAD_S * sample_rate), int(GAP_S * sample_rate)
    z = lambda n: np.zeros(n, np.float32)  # noqa: E731
    parts = [z(lead), c, z(gap), np.asarray(payload, np.float32), z(gap), c, z(gap)]
    sig = np.concatenate(parts)
    p_at = lead + len(c) + gap
    c2 = p_at + len(payload) + gap
    return Framed(sig, p_at, len(payload), (lead, c2), len(c), sample_rate)


def check_sync(x: np.ndarray, fr: Framed, where: str) -> tuple[float, float]:
    """Delays (samples) of the two sync clicks in capture ``x``; raises on a dropout or a missing click."""
    sr = fr.sample_rate
    gap = int(GAP_S * sr)
    delays = []
    margin = int(0.1 * sr)  # a lost block moves the second click *earlier*: search before it too
    for at in fr.click_at:
        lo, hi = max(0, at - margin), min(len(x), at + fr.click_len + gap - int(0.02 * sr))
        d, peak = gcc_phat(x[lo:hi], fr.signal[at:at + fr.click_len], sr)
        d -= at - lo
        if peak < MIN_PEAK:
            raise CalibrationError(
                f"{where}: sync click at {at / sr:.2f} s did not come back (correlation {peak:.2f}); "
                "check the wiring, the channel numbers and the levels"
            )
        delays.append(d)
    tol = 2.0 + 300e-6 * (fr.click_at[1] - fr.click_at[0])
    if abs(delays[1] - delays[0]) > tol:
        raise CalibrationError(
            f"{where}: sync clicks came back {delays[0]:.1f} and {delays[1]:.1f} samples late: samples were "
            "dropped or inserted (xrun); close other audio programs or raise hardware.blocksize"
        )
    return delays[0], delays[1]


def _trial(backend, speaker: str, fr: Framed) -> Capture:
    """Play ``fr`` on ``speaker``; retry (up to ATTEMPTS) on xruns or a dropout the sync clicks reveal.

    A single dropout on a busy machine is not a property of the rig; one that persists
    over every attempt is, and the caller's own ``check_sync`` then reports it.
    """
    cap = None
    for _ in range(ATTEMPTS):
        cap = backend.run_trial({speaker: Playback(fr.signal, 0.0)}, record_s=len(fr.signal) / fr.sample_rate)
        if cap.facts.xruns:
            continue
        try:
            for mic, x in cap.mics.items():
                if _present(x, fr):
                    check_sync(x, fr, mic)
        except CalibrationError:
            continue
        break
    assert cap is not None
    return cap


def _level(rig, speakers: list[str] | None = None, below_max_db: float = 6.0, at_most: float = -12.0) -> float:
    """A test-signal peak (linear) safely under every speaker's cap and the limiter's knee."""
    names = speakers or list(rig.speakers)
    db = min([at_most] + [rig.speakers[s].max_dbfs - below_max_db for s in names])
    return float(10 ** (db / 20))


def _present(x: np.ndarray, fr: Framed) -> bool:
    """Whether anything of ``fr`` came back in ``x`` at all (a wired path in loopback mode)."""
    _, peak = gcc_phat(x, fr.signal, fr.sample_rate, max_delay=int(GAP_S * fr.sample_rate) - 1)
    return peak >= MIN_PEAK


def measure_latency(backend, rig, *, repeats: int = 3, sweep_s: float = 0.5, skip_silent: bool = False,
                    progress: Progress | None = None) -> dict[str, dict]:
    """Latency of every speaker->mic path by sweep + GCC-PHAT, ``repeats`` times.

    With ``skip_silent`` (loopback cabling, where output N feeds only input N) a path
    where nothing comes back is left out instead of failing; every mic still needs one.

    Returns
    -------
    dict
        ``"speaker->mic" -> {"mean": samples, "spread": max - min, "std": samples,
        "repeats": [samples, ...], "peak": min correlation}``.
    """
    sr = rig.sample_rate
    amp = _level(rig)
    sw = exp_sweep(sr, sweep_s, f1_hz=100.0, amplitude=amp)
    fr = frame(sw.signal, sr, amp)
    runs: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}
    for r in range(repeats):
        for spk in rig.speakers:
            cap = _trial(backend, spk, fr)
            for mic in rig.mics:
                where = f"latency {spk}->{mic} (repeat {r + 1})"
                x = cap.mics[mic]
                if skip_silent and not _present(x, fr):
                    continue
                check_sync(x, fr, where)
                d, peak = gcc_phat(x, fr.signal, sr, band_hz=(sw.f1_hz, sw.f2_hz), max_delay=int(GAP_S * sr) - 1)
                if peak < MIN_PEAK:
                    raise CalibrationError(f"{where}: the sweep did not come back (correlation {peak:.2f})")
                runs.setdefault(f"{spk}->{mic}", []).append(d)
                peaks[f"{spk}->{mic}"] = min(peaks.get(f"{spk}->{mic}", 1.0), peak)
            if progress:
                progress(f"latency {spk} ({r + 1}/{repeats})")
    unheard = [m for m in rig.mics if not any(k.endswith(f"->{m}") for k in runs)]
    if unheard:
        raise CalibrationError(f"latency: no speaker came back at mic(s) {', '.join(unheard)}; check the wiring")
    return {
        k: {"mean": float(np.mean(v)), "spread": float(np.max(v) - np.min(v)), "std": float(np.std(v)),
            "repeats": [float(a) for a in v], "peak": peaks[k]}
        for k, v in runs.items()
    }


def measure_response(backend, rig, *, sweep_s: float = 2.0, progress: Progress | None = None,
                     captures: dict | None = None, skip_silent: bool = False) -> dict[str, SweepResponse]:
    """Frequency response of every speaker->mic path by Farina's exponential sweep.

    With ``skip_silent`` (loopback cabling) a path where nothing comes back is left out
    instead of failing.

    ``captures``, if given, receives ``"speaker->mic" -> (segment, sweep)``: the capture from
    the instant the sweep was sent, for :func:`testbed.calibration.irs.extract_ir`.
    """
    sr = rig.sample_rate
    amp = _level(rig)
    sw = exp_sweep(sr, sweep_s, f1_hz=50.0, amplitude=amp)
    fr = frame(sw.signal, sr, amp)
    out: dict[str, SweepResponse] = {}
    for spk in rig.speakers:
        cap = _trial(backend, spk, fr)
        for mic in rig.mics:
            where = f"response {spk}->{mic}"
            x = cap.mics[mic]
            if skip_silent and not _present(x, fr):
                continue
            check_sync(x, fr, where)
            seg = x[fr.payload_at:fr.payload_at + fr.payload_len + int(0.25 * sr)]
            d, peak = gcc_phat(seg, sw.signal, sr, band_hz=(100.0, sw.f2_hz), max_delay=int(0.25 * sr))
            if peak < MIN_PEAK:
                raise CalibrationError(f"{where}: the sweep did not come back (correlation {peak:.2f})")
            out[f"{spk}->{mic}"] = sweep_response(seg, sw, d)
            if captures is not None:
                captures[f"{spk}->{mic}"] = (seg, sw)
        if progress:
            progress(f"response {spk}")
    return out


def measure_level(backend, rig, *, freq_hz: float = 1000.0, duration_s: float = 1.0,
                  progress: Progress | None = None) -> tuple[float, dict[str, float]]:
    """RMS level (dBFS) at every mic of a reference tone played by each speaker.

    Returns
    -------
    reference_rms_dbfs : the tone's RMS as sent, dBFS.
    levels : ``"speaker->mic" -> RMS dBFS`` over the tone's steady part.
    """
    sr = rig.sample_rate
    amp = min(10 ** ((-20.0 + 3.0103) / 20), _level(rig))  # -20 dBFS RMS where the caps allow
    t = tone(sr, freq_hz, duration_s, amp)
    fr = frame(t, sr, _level(rig))
    ref = dbfs(t[int(0.1 * sr):-int(0.1 * sr)], "rms")
    out: dict[str, float] = {}
    for spk in rig.speakers:
        cap = _trial(backend, spk, fr)
        for mic in rig.mics:
            x = cap.mics[mic]
            d, _ = check_sync(x, fr, f"level {spk}->{mic}")
            lo = fr.payload_at + int(round(d)) + int(0.1 * sr)
            hi = fr.payload_at + int(round(d)) + fr.payload_len - int(0.1 * sr)
            out[f"{spk}->{mic}"] = dbfs(x[lo:hi], "rms")
        if progress:
            progress(f"level {spk}")
    return ref, out


def measure_drift(backend, rig, *, duration_s: float = 4.0, period_s: float = 0.5,
                  progress: Progress | None = None) -> dict[str, float]:
    """Clock drift (ppm) of each input against the output, from clicks every ``period_s``.

    A line through the clicks' arrival delays against their send times gives the
    drift: +40 ppm means the input clock runs 40 ppm fast (delays grow by 0.64 samples
    per second at 16 kHz).
    """
    sr = rig.sample_rate
    amp = _level(rig)
    spk = rig.user_speaker
    click = sync_click(sr, amp)
    n_clicks = max(3, int(round(duration_s / period_s)) + 1)
    per = int(round(period_s * sr))
    lead = int(LEAD_S * sr)
    sig = np.zeros(lead + per * n_clicks + int(GAP_S * sr), np.float32)
    at = [lead + k * per for k in range(n_clicks)]
    for a in at:
        sig[a:a + len(click)] = click
    cap = None
    for _ in range(ATTEMPTS):
        cap = backend.run_trial({spk: Playback(sig, 0.0)}, record_s=len(sig) / sr)
        if not cap.facts.xruns:
            break
    assert cap is not None
    out: dict[str, float] = {}
    for mic in rig.mics:
        x = cap.mics[mic]
        delays = []
        for a in at:
            lo, hi = max(0, a - int(0.01 * sr)), min(len(x), a + per - int(0.02 * sr))
            d, peak = gcc_phat(x[lo:hi], sig[lo:hi], sr, max_delay=hi - lo - len(click))
            if peak < MIN_PEAK:
                raise CalibrationError(f"drift {spk}->{mic}: click at {a / sr:.2f} s did not come back")
            delays.append(d)
        delays_a = np.array(delays)
        jumps = np.abs(np.diff(delays_a))
        if np.any(jumps > 2.0 + 300e-6 * per):
            raise CalibrationError(
                f"drift {spk}->{mic}: click delays jump by {jumps.max():.1f} samples: samples were dropped "
                "or inserted (xrun)"
            )
        slope = np.polyfit(np.array(at, float), delays_a, 1)[0]
        out[mic] = float(slope * 1e6)
    if progress:
        progress("drift")
    return out
