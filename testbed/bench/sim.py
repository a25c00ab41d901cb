"""Benchmark ``sim``: simulated-rig throughput against naive per-trial pyroomacoustics.

The same trials (a 6 x 5 x 3 m room, RT60 0.4 s, 2 speakers, 4 mics of different
tiers, a 1 s utterance-like signal and a perturbation at varying sync delays) are
rendered twice: by :class:`~testbed.audio.sim.SimBackend` (RIRs cached per geometry,
one batched FFT convolution per speaker, plus mic models, noise, clocks and ADC) from
cold caches, and by building a ``pyroomacoustics.ShoeBox`` and calling
``Room.simulate()`` for every trial, which is what a naive simulator does.
"""

from __future__ import annotations

import time

import numpy as np

#: Sync delays cycled through the trials, milliseconds.
DELAYS_MS = (0.0, 50.0, 100.0, 250.0, 500.0)


def bench_rig():
    """The benchmark's rig: the issue's reference set-up (2 sources, 4 mics, RT60 0.4 s)."""
    from testbed.rig import parse_rig

    tiers = ("reference", "smartphone", "mems", "electret-cheap")
    data = {
        "name": "bench-sim", "sample_rate": 16000, "backend": "sim",
        "room": {"size_m": [6.0, 5.0, 3.0], "rt60_s": 0.4, "noise_dbspl": 35.0, "seed": 1},
        "speakers": {
            "user": {"role": "user", "position_m": [2.0, 1.5, 1.2], "response": "small-bookshelf"},
            "adversary": {"role": "adversary", "position_m": [4.5, 3.0, 1.0], "response": "small-bookshelf"},
        },
        "mics": {t: {"tier": t, "position_m": [3.0 + 0.1 * i, 2.5, 1.0],
                     "clock_ppm": 40.0 if t == "electret-cheap" else 0.0}
                 for i, t in enumerate(tiers)},
        "dut": {"mic": "electret-cheap"},
    }
    return parse_rig(data, "<bench-sim>")


def _trials(n: int, fs: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        env = np.hanning(fs)
        speech = (0.2 * env * rng.standard_normal(fs)).astype(np.float32)
        pert = (0.01 * rng.uniform(-1, 1, fs)).astype(np.float32)
        out.append((speech, pert, DELAYS_MS[i % len(DELAYS_MS)] * 1e-3 * fs))
    return out


def _naive(rig, trials, record_s: float) -> float:
    from testbed.acoustics.pra import pyroomacoustics

    pra = pyroomacoustics()

    from testbed.acoustics.room import RoomSpec, absorption

    fs = rig.sample_rate
    e_abs, order = absorption(RoomSpec.from_rig(rig))
    mics = np.array([m.position_m for m in rig.mics.values()]).T
    t0 = time.perf_counter()
    for speech, pert, delay in trials:
        room = pra.ShoeBox(list(rig.room.size_m), fs=fs, materials=pra.Material(e_abs), max_order=order)
        room.add_source(list(rig.speakers["user"].position_m), signal=speech)
        room.add_source(list(rig.speakers["adversary"].position_m), signal=pert, delay=delay / fs)
        room.add_microphone_array(mics)
        room.simulate()
        _ = room.mic_array.signals[:, : int(record_s * fs)]
    return time.perf_counter() - t0


def _sim(rig, trials, record_s: float) -> tuple[float, float]:
    from testbed.acoustics import clear_caches
    from testbed.audio import Playback
    from testbed.audio.sim import SimBackend

    clear_caches()
    backend = SimBackend(rig, seed=0)
    t0 = time.perf_counter()
    first = None
    for speech, pert, delay in trials:
        backend.run_trial({"user": Playback(speech, 0.0), "adversary": Playback(pert, delay)}, record_s)
        if first is None:
            first = time.perf_counter() - t0
    return time.perf_counter() - t0, first or 0.0


def run(quick: bool = False) -> dict:
    """Time the simulated rig against naive ``Room.simulate()`` per trial on the same trials.

    Returns
    -------
    dict with ``sim_speedup_vs_naive`` (naive wall time / sim wall time, sim from cold
    caches), ``capture_seconds_per_wall_second`` (seconds of n-mic capture the sim
    produces per wall-clock second), per-trial times in milliseconds and the workload.
    """
    import torch  # noqa: F401  the sim's noise sampler; imports are not per-trial work (the naive
    # run imports pyroomacoustics before either is timed, likewise)

    rig = bench_rig()
    fs = rig.sample_rate
    record_s = 1.6
    n_sim = 20 if quick else 200
    n_naive = 2 if quick else 5
    trials = _trials(n_sim, fs)
    naive_s = _naive(rig, trials[:n_naive], record_s) / n_naive
    sim_total, sim_first = _sim(rig, trials, record_s)
    sim_s = sim_total / n_sim
    warm_s = (sim_total - sim_first) / max(n_sim - 1, 1)
    return {
        "sim_speedup_vs_naive": round(naive_s / sim_s, 2),
        "sim_speedup_vs_naive_warm": round(naive_s / warm_s, 2),
        "capture_seconds_per_wall_second": round(record_s * n_sim / sim_total, 2),
        "naive_ms_per_trial": round(naive_s * 1e3, 2),
        "sim_ms_per_trial": round(sim_s * 1e3, 2),
        "sim_ms_per_trial_warm": round(warm_s * 1e3, 2),
        "sim_ms_first_trial_cold": round(sim_first * 1e3, 2),
        "n_trials_sim": n_sim,
        "n_trials_naive": n_naive,
        "n_mics": len(rig.mics),
        "n_speakers": len(rig.speakers),
        "record_s": record_s,
        "rt60_s": rig.room.rt60_s,
        "note": ("sim_speedup_vs_naive includes the sim's cold start (RIRs computed in trial 1); "
                 "naive ms/trial is measured on the first n_trials_naive of the same trials"),
    }
