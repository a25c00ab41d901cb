"""Trial timing and levels: speaker offsets for a sync delay, the evaluation window, SPR and SNR.

All offsets are in samples at the rig's sample rate, relative to the trial's time zero
(the start of the recording). Path delays are direct-path flight times from the rig's
geometry, or a calibration profile's measured ``"speaker->mic"`` latencies when present.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.rig import Rig, geometry_table


@dataclass(frozen=True)
class TrialTiming:
    """Where each speaker starts and how long to record."""

    offsets_samples: dict[str, float]     # speaker -> start offset (>= 0)
    record_s: float
    path_delay_samples: dict[str, dict[str, float]]   # speaker -> mic -> delay


def path_delays(rig: Rig, placement: str | None, calibration: object | None = None) -> dict[str, dict[str, float]]:
    """``{speaker: {mic: delay in samples}}``: measured latency if calibrated, else flight time."""
    measured = dict(getattr(calibration, "latency_samples", None) or {})
    out: dict[str, dict[str, float]] = {}
    for spk, mics in geometry_table(rig, placement).items():
        for mic, g in mics.items():
            out.setdefault(spk, {})[mic] = float(measured.get(f"{spk}->{mic}", g.delay_samples))
    return out


def trial_timing(
    rig: Rig,
    placement: str | None,
    n_user: int,
    n_adv: int,
    delay_ms: float,
    reference: str,
    *,
    preroll_s: float,
    tail_s: float,
    calibration: object | None = None,
) -> TrialTiming:
    """Speaker start offsets realising ``delay_ms`` (adversary start minus user start).

    Parameters
    ----------
    n_user, n_adv : lengths in samples of the command and of the perturbation (0: no adversary).
    reference : ``"playback"`` (the delay between speaker starts) or ``"arrival"`` (between
        the arrivals of the two signals at the DUT mic).
    preroll_s, tail_s : silence recorded before the first playback and after the last arrival.
    """
    sr = rig.sample_rate
    delays = path_delays(rig, placement, calibration)
    user = rig.user_speaker
    adv = rig.adversary_speaker
    pre = preroll_s * sr
    offsets = {user: pre}
    if adv is not None and n_adv > 0:
        rel = delay_ms * 1e-3 * sr
        if reference == "arrival":
            rel -= delays[adv][rig.dut.mic] - delays[user][rig.dut.mic]
        offsets = {user: pre + max(0.0, -rel), adv: pre + max(0.0, rel)}
    lengths = {user: n_user, adv: n_adv}
    end = max(offsets[s] + lengths[s] + max(delays[s].values()) for s in offsets)
    return TrialTiming(offsets, float(end / sr + tail_s), delays)


def eval_window(capture: np.ndarray, start: float, n: int) -> np.ndarray:
    """``n`` samples of ``capture`` from ``start`` (rounded), zero-padded past the end."""
    i = max(0, int(round(start)))
    out = np.zeros(n, dtype=np.float32)
    seg = capture[i:i + n]
    out[: len(seg)] = seg
    return out


def rms(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def spr_db(rig: Rig, clean: np.ndarray, delta: np.ndarray | None, dist_user_m: float,
           dist_adv_m: float | None) -> float | None:
    """Signal-to-perturbation ratio at a mic, dB (free-field estimate).

    The played ratio ``rms(clean) / rms(delta)`` corrected by the two speakers'
    sensitivities (``spl_at_1m_db``) and the 1/r law of their distances to the mic.
    None when there is no perturbation.
    """
    if delta is None or dist_adv_m is None:
        return None
    r_d = rms(delta)
    r_c = rms(clean)
    if r_d <= 0 or r_c <= 0:
        return None
    spk_u = rig.speakers[rig.user_speaker]
    spk_a = rig.speakers[rig.adversary_speaker]
    return float(20 * np.log10(r_c / r_d) + (spk_u.spl_at_1m_db - spk_a.spl_at_1m_db)
                 + 20 * np.log10(max(dist_adv_m, 1e-3) / max(dist_user_m, 1e-3)))


def snr_db(capture: np.ndarray, noise_n: int, start: float, n: int) -> float | None:
    """Capture SNR, dB: power in the command window over the noise power of the pre-roll.

    None when there is no pre-roll (``noise_n == 0``) or it is digital silence.
    """
    if noise_n <= 0:
        return None
    noise = rms(capture[:noise_n])
    if noise <= 0:
        return None
    sig = rms(eval_window(capture, start, n))
    p = max(sig * sig - noise * noise, 1e-20)
    return float(10 * np.log10(p / (noise * noise)))
