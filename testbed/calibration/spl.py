"""SPL calibration with an acoustic calibrator: each mic's dBFS at 94 dB SPL (REW's convention).

The operator holds a calibrator (94 dB or 114 dB SPL, 1 kHz) on each mic in turn; the mic
is recorded with nothing playing and its RMS level over the steady middle is its
``dbfs_at_94`` (minus ``calibrator_db - 94``). The recording must be a steady tone near
the calibrator's frequency, or the measurement fails: a calibrator that slipped off the
mic, or one left on the wrong mic, is not stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from testbed.acoustics.weighting import REFERENCE_DBSPL, rms_dbfs
from testbed.audio.types import Playback
from testbed.calibration.measure import ATTEMPTS
from testbed.errors import CalibrationError

#: Per-mic answer of the operator: "ok" (calibrator on), "skip" (leave this mic out), "quit".
Prompt = Callable[[str], str]
#: Largest spread of 100 ms block levels of a steady calibrator tone, dB.
MAX_SPREAD_DB = 1.0
#: Smallest share of the recording's power near the calibrator frequency.
MIN_TONE_SHARE = 0.9


def _check_tone(x: np.ndarray, sample_rate: int, freq_hz: float, where: str) -> None:
    """Raise unless ``x`` is a steady tone near ``freq_hz``."""
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(n))) ** 2
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    near = (f > freq_hz / 1.12) & (f < freq_hz * 1.12)
    share = float(spec[near].sum() / max(spec.sum(), 1e-30))
    if share < MIN_TONE_SHARE:
        peak = float(f[int(np.argmax(spec))])
        raise CalibrationError(f"{where}: no {freq_hz:g} Hz calibrator tone ({100 * share:.0f}% of the power "
                               f"near it, loudest at {peak:.0f} Hz); is the calibrator on this mic and switched on?")
    blk = int(0.1 * sample_rate)
    lv = [rms_dbfs(x[i:i + blk]) for i in range(0, n - blk + 1, blk)]
    if len(lv) >= 2 and max(lv) - min(lv) > MAX_SPREAD_DB:
        raise CalibrationError(f"{where}: the calibrator tone is not steady ({max(lv) - min(lv):.1f} dB "
                               f"between 100 ms blocks); hold the calibrator still and measure again")


def measure_spl(backend, rig, *, calibrator_db: float = 94.0, freq_hz: float = 1000.0, duration_s: float = 2.0,
                mics: list[str] | None = None, prompt: Prompt | None = None,
                stimulus: Callable[[str], Mapping[str, Playback]] | None = None,
                progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """Each mic's RMS dBFS at 94 dB SPL, from a calibrator of ``calibrator_db`` held on it in turn.

    Parameters
    ----------
    backend : an :class:`~testbed.audio.AudioBackend`.
    rig : the rig.
    calibrator_db : the calibrator's level, dB SPL (94 or 114 usually).
    freq_hz : the calibrator's frequency, Hz.
    duration_s : recording per mic, seconds (the first and last 20% are left out).
    mics : which mics, in order (default: every mic).
    prompt : called with a mic's name before it is recorded; returns "ok", "skip" or "quit".
        None: record straight away (``--yes``).
    stimulus : called with a mic's name; what to play while it is recorded (speaker ->
        :class:`Playback`), for loopback tests where a speaker output stands in for the
        calibrator. None: play nothing.
    progress : called with a short label after each mic.

    Returns
    -------
    ``{mic: dbfs_at_94}`` for every mic measured (skipped mics are absent).

    Raises
    ------
    CalibrationError
        A mic's recording was not a steady calibrator tone (a recording with xruns is
        taken again, up to ``ATTEMPTS`` times; the last one stands if its tone is steady).
    """
    if not (0.0 < calibrator_db < 200.0):
        raise CalibrationError(f"--calibrator-db: must be a level in dB SPL (94 or 114), got {calibrator_db}")
    sr = rig.sample_rate
    out: dict[str, float] = {}
    for mic in mics or list(rig.mics):
        if mic not in rig.mics:
            raise CalibrationError(f"spl: rig {rig.name!r} has no mic {mic!r} (have: {', '.join(rig.mics)})")
        answer = prompt(mic) if prompt is not None else "ok"
        if answer == "quit":
            break
        if answer == "skip":
            continue
        plays = dict(stimulus(mic)) if stimulus is not None else {}
        for attempt in range(1, ATTEMPTS + 1):
            cap = backend.run_trial(plays, record_s=duration_s)
            x = np.asarray(cap.mics[mic], dtype=np.float64)
            seg = x[int(0.2 * len(x)):int(0.8 * len(x))]
            # an xrun that dropped or repeated a block shows as an unsteady tone; a clean one is harmless
            if not cap.facts.xruns or attempt == ATTEMPTS:
                break
        _check_tone(seg, sr, freq_hz, f"spl {mic}")
        out[mic] = rms_dbfs(seg) - (calibrator_db - REFERENCE_DBSPL)
        if progress:
            progress(f"spl {mic}")
    return out


def calibrate_spl(backend, rig, profile, results: dict, *, calibrator_db: float = 94.0,
                  prompt: Prompt | None = None, stimulus: Callable[[str], Mapping[str, Playback]] | None = None,
                  progress: Callable[[str], None] | None = None) -> None:
    """``calibrate --what spl``: :func:`measure_spl` into ``profile`` (merged per mic) and ``results``.

    On the simulator (a backend with ``inject``) and with no ``stimulus``, the simulated
    operator holds a simulated calibrator on each mic: a ``calibrator_db`` 1 kHz tone is
    injected at that mic only.
    """
    if stimulus is None and hasattr(backend, "inject"):
        asked = prompt

        def prompt(mic: str) -> str:  # noqa: F811 - the sim holds its calibrator on the mic
            answer = asked(mic) if asked is not None else "ok"
            if answer == "ok":
                backend.inject(calibrator_db, 1, kind="tone", mics=[mic])
            return answer

    got = measure_spl(backend, rig, calibrator_db=calibrator_db, prompt=prompt, stimulus=stimulus,
                      progress=progress)
    profile.spl_dbfs_at_94 = {**profile.spl_dbfs_at_94, **{m: round(v, 3) for m, v in got.items()}}
    profile.spl_calibrator_db = float(calibrator_db)
    results["spl_dbfs_at_94"] = dict(profile.spl_dbfs_at_94)
    results["spl_calibrator_db"] = float(calibrator_db)
