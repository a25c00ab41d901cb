"""The limiter's output pinned on seeded signals: a faster limiter must give the same signal.

``data/limiter_pinned.npz`` holds what :func:`testbed.audio.limiter.limit` returned for each case
of :data:`CASES` before the limiter was optimised (commit 7b9b06a): the float32 signal and the
scalar fields of :class:`~testbed.audio.limiter.LimitResult`. Regenerate it only for an intended
change of behaviour: ``python -m tests.audio.test_limiter_pinned`` (from the repository root).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from testbed.audio.limiter import ceiling, limit, true_peak

PINNED = Path(__file__).parent / "data" / "limiter_pinned.npz"
#: The sim's per-speaker caps (``limit_for`` with the rig schema's defaults).
RIG_CAPS = {"max_rms_dbfs": 0.0, "max_seconds_at_ceiling": 1.0}
#: Scalar fields of LimitResult compared to the pinned ones (dB, seconds).
FIELDS = ("input_peak_dbfs", "output_peak_dbfs", "input_true_peak_dbtp", "output_true_peak_dbtp",
          "output_rms_dbfs", "seconds_at_ceiling", "rms_gain_db", "duration_gain_db")


def _speech(seed: int, n: int, amp: float) -> np.ndarray:
    """The sim bench's utterance stand-in: Hann-enveloped Gaussian noise, float32."""
    rng = np.random.default_rng(seed)
    return (amp * np.hanning(n) * rng.standard_normal(n)).astype(np.float32)


def _sign(seed: int, n: int, amp: float) -> np.ndarray:
    return amp * np.sign(np.random.default_rng(seed).standard_normal(n))


def _with_nonfinite(seed: int, n: int) -> np.ndarray:
    x = 0.8 * np.random.default_rng(seed).standard_normal(n)
    x[::97] = np.nan
    x[5::211] = np.inf
    x[7::307] = -np.inf
    return x


def _tone(n: int, sr: int, hz: float, amp: float) -> np.ndarray:
    return amp * np.sin(2 * np.pi * hz * np.arange(n) / sr + 0.3)


#: name -> (signal, max_dbfs, sample_rate, keyword arguments of limit)
CASES = {
    # does not clip: under the knee, true peak provably under the cap (quiet path)
    "quiet_speech": (lambda: _speech(1, 4000, 0.05), -3.0, 16000, RIG_CAPS),
    # the sim bench's adversary: a small uniform perturbation
    "bench_perturbation": (lambda: (0.01 * np.random.default_rng(2).uniform(-1, 1, 4000)).astype(np.float32),
                           -3.0, 16000, RIG_CAPS),
    # the sim bench's utterance: a few samples into the knee and over the true-peak cap
    "bench_speech": (lambda: _speech(0, 16000, 0.2), -3.0, 16000, RIG_CAPS),
    "bench_speech_2": (lambda: _speech(7, 8000, 0.2), -3.0, 16000, RIG_CAPS),
    # clips hard: 10 dB of Gaussian noise over the cap
    "hard_clip": (lambda: 3.0 * np.random.default_rng(3).standard_normal(4000), -3.0, 16000, RIG_CAPS),
    # sample peak at the cap, true peak up to 6 dB over: only the true-peak stage acts
    "sign_at_cap": (lambda: _sign(4, 4000, ceiling(-6.0)), -6.0, 16000, {"fade_ms": 0.0}),
    "sign_overdriven": (lambda: _sign(5, 4000, 2.0), -6.0, 16000, RIG_CAPS),
    "tone_near_fs4": (lambda: _tone(4000, 16000, 3990.0, 2.0), -6.0, 16000, {}),
    "tone_knee": (lambda: _tone(4000, 16000, 440.0, 0.8), -3.0, 16000, RIG_CAPS),
    "rms_limited": (lambda: _sign(6, 4000, 0.6), -3.0, 16000, {"max_rms_dbfs": -15.0}),
    "duration_limited": (lambda: _tone(4000, 16000, 500.0, 1.0), -6.0, 16000, {"max_seconds_at_ceiling": 0.1}),
    "nonfinite": (lambda: _with_nonfinite(8, 3000), -1.0, 16000, RIG_CAPS),
    "float64_speech_48k": (lambda: 0.3 * np.hanning(6000) * np.random.default_rng(9).standard_normal(6000),
                           -2.0, 48000, RIG_CAPS),
    "full_scale_cap": (lambda: _sign(10, 3000, 1.5), 0.0, 16000, RIG_CAPS),
    "huge": (lambda: 1e6 * np.random.default_rng(11).standard_normal(2000), -3.0, 16000, RIG_CAPS),
    "short": (lambda: np.array([0.9, -1.2, 0.95, -0.99, 1.1]), -3.0, 16000, RIG_CAPS),
    "one_sample": (lambda: np.array([2.0]), -6.0, 16000, {}),
}


def _run(name: str):
    make, max_dbfs, sr, kwargs = CASES[name]
    return limit(make(), max_dbfs, sr, **kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_limiter_output_matches_the_pinned_output(name):
    pinned = np.load(PINNED, allow_pickle=False)
    res = _run(name)
    ref = pinned[f"{name}/signal"]
    assert res.signal.dtype == np.float32 and res.signal.shape == ref.shape
    np.testing.assert_allclose(res.signal, ref, rtol=0, atol=1e-6)
    assert res.engaged == bool(pinned[f"{name}/engaged"])
    assert res.n_nonfinite == int(pinned[f"{name}/n_nonfinite"])
    for field in FIELDS:
        np.testing.assert_allclose(getattr(res, field), float(pinned[f"{name}/{field}"]), rtol=0, atol=1e-5,
                                   err_msg=field)
    _, max_dbfs, _, _ = CASES[name]
    assert true_peak(res.signal) <= ceiling(max_dbfs)


def test_the_pinned_cases_cover_both_quiet_and_hard_clipping_signals():
    """The pins mean something only if some cases engage the limiter heavily and some not at all."""
    pinned = np.load(PINNED, allow_pickle=False)
    assert not bool(pinned["quiet_speech/engaged"]) and not bool(pinned["bench_perturbation/engaged"])
    assert bool(pinned["hard_clip/engaged"]) and float(pinned["hard_clip/input_peak_dbfs"]) > 10.0
    assert bool(pinned["sign_at_cap/engaged"]) and float(pinned["sign_at_cap/input_true_peak_dbtp"]) > -3.0
    assert float(pinned["duration_limited/duration_gain_db"]) < 0.0
    assert float(pinned["rms_limited/rms_gain_db"]) < 0.0


def _write_pins() -> None:
    arrays: dict[str, np.ndarray] = {}
    for name in sorted(CASES):
        res = _run(name)
        arrays[f"{name}/signal"] = res.signal
        arrays[f"{name}/engaged"] = np.array(res.engaged)
        arrays[f"{name}/n_nonfinite"] = np.array(res.n_nonfinite)
        for field in FIELDS:
            arrays[f"{name}/{field}"] = np.array(float(getattr(res, field)))
    PINNED.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(PINNED, **arrays)


if __name__ == "__main__":
    _write_pins()
