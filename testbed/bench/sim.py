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
from contextlib import contextmanager

import numpy as np

#: Sync delays cycled through the trials, milliseconds.
DELAYS_MS = (0.0, 50.0, 100.0, 250.0, 500.0)


#: Simulator features timed on their own: rig edits (room fields, speaker directivity).
FEATURES = {
    "bands": {"room": {"rt60_bands_s": [0.5, 0.45, 0.4, 0.4, 0.35, 0.3]}},
    "air_absorption": {"room": {"air_absorption": True}},
    "directivity": {"speakers": {"directivity": "subcardioid"}},
    "ray_tracing": {"room": {"ray_tracing": True}},
}


def bench_rig(feature: str | None = None):
    """The benchmark's rig: the issue's reference set-up (2 sources, 4 mics, RT60 0.4 s).

    ``feature`` (a key of :data:`FEATURES`) switches one simulator feature on.
    """
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
    edit = FEATURES.get(feature, {}) if feature else {}
    data["room"].update(edit.get("room", {}))
    for spk in data["speakers"].values():
        spk.update(edit.get("speakers", {}))
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


#: Length of the impulse responses the bench synthesises for its measured-room rig, seconds
#: (a real room's measured IR is longer than the 0.4 s shoebox: the honest comparison).
MEASURED_IR_S = 1.0


def measured_bench_rig(folder, rt60_s: float = 0.4, ir_s: float = MEASURED_IR_S, seed: int = 0):
    """The bench rig as a measured room: one synthetic IR per path written to ``folder``.

    Each IR is a direct impulse at the path's geometric delay and an exponentially decaying
    noise tail (60 dB in ``rt60_s``), ``ir_s`` seconds long, 32-bit float WAV at the rig
    rate. Same speakers, mics and geometry as :func:`bench_rig`.
    """
    from pathlib import Path

    import soundfile as sf

    from testbed.rig import parse_rig, path_geometry

    base = bench_rig()
    fs = base.sample_rate
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(ir_s * fs)
    t = np.arange(n) / fs
    for g in path_geometry(base, None):
        onset = int(round(g.delay_samples))
        h = 0.02 * rng.standard_normal(n) * 10 ** (-3 * (t - onset / fs) / rt60_s) * (np.arange(n) > onset + 16)
        h[onset] = 1.0 / max(g.distance_m, 0.1)
        sf.write(folder / f"{g.speaker}__{g.mic}.wav", h.astype(np.float32), fs, subtype="FLOAT")
    data = base.model_dump(mode="json", exclude={"source"})
    data["room"].update(model="measured", irs=str(folder.resolve()))
    for k in ("rt60_s", "rt60_bands_s"):
        data["room"].pop(k, None)
    return parse_rig(data, folder / "bench-measured.toml")


def measured_vs_sim(trials, record_s: float) -> dict:
    """Per-trial cost of the measured-room bench rig against the simulated one, same trials.

    Both are timed warm (trial 1, which computes or reads the paths, is left out) and from
    cold caches; ``measured_vs_sim_trial_ratio`` is measured warm ms / simulated warm ms.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-measured-") as tmp:
        mrig = measured_bench_rig(tmp)
        m_total, m_first = _sim(mrig, trials, record_s)
    s_total, s_first = _sim(bench_rig(), trials, record_s)
    n = max(len(trials) - 1, 1)
    m_warm, s_warm = (m_total - m_first) / n, (s_total - s_first) / n
    return {
        "measured_vs_sim_trial_ratio": round(m_warm / s_warm, 3),
        "measured_ms_per_trial_warm": round(m_warm * 1e3, 2),
        "measured_ms_first_trial_cold": round(m_first * 1e3, 2),
        "sim_ms_per_trial_warm_same_trials": round(s_warm * 1e3, 2),
        "measured_ir_s": MEASURED_IR_S,
    }


def naive_shoebox(rig):
    """What a naive simulator builds for every trial of ``rig``: ``build(plays) -> ShoeBox``.

    ``plays`` maps a speaker name to ``(signal, delay_s)``. The room is the simulator's: the same
    calibrated absorption, image-source order, ray-tracing parameters (rays, receiver radius,
    energy and time thresholds), air absorption and source directivities
    (:func:`testbed.acoustics.room._shoebox`); the absorption is calibrated here, untimed.
    Render it inside :func:`naive_constants`, as the simulator does.
    """
    from testbed.acoustics.room import RoomSpec, _pra_directivity, _shoebox, absorption_bands, source_directivities

    room = RoomSpec.from_rig(rig)
    coeffs, order = absorption_bands(room)
    dirs = dict(zip(rig.speakers, source_directivities(rig)))
    mics = np.array([m.position_m for m in rig.mics.values()]).T

    def build(plays):
        box = _shoebox(room, coeffs, order)
        for name, (signal, delay_s) in plays.items():
            box.add_source(list(rig.speakers[name].position_m), signal=signal, delay=delay_s,
                           directivity=_pra_directivity(dirs[name]))
        box.add_microphone_array(mics)
        return box

    return build


@contextmanager
def naive_constants():
    """pyroomacoustics without its optional 10 Hz high-pass on each RIR (the simulator has none)."""
    from testbed.acoustics.pra import pyroomacoustics

    pra = pyroomacoustics()
    hpf = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        yield
    finally:
        pra.constants.set("rir_hpf_enable", hpf)


def _naive(rig, trials, record_s: float) -> float:
    """Wall time of building a ShoeBox with the rig's room features and ``simulate()`` per trial
    (:func:`naive_shoebox`: the simulator's room, parameters and RIRs)."""
    fs = rig.sample_rate
    build = naive_shoebox(rig)
    with naive_constants():
        t0 = time.perf_counter()
        for speech, pert, delay in trials:
            box = build({"user": (speech, 0.0), "adversary": (pert, delay / fs)})
            box.simulate()
            _ = box.mic_array.signals[:, : int(record_s * fs)]
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
    features = {}
    for feature in FEATURES:
        frig = bench_rig(feature)
        n_f = n_sim
        f_naive = _naive(frig, trials[:n_naive], record_s) / n_naive
        f_total, _ = _sim(frig, trials[:n_f], record_s)
        features[f"sim_speedup_vs_naive_{feature}"] = round(f_naive / (f_total / n_f), 2)
        features[f"sim_ms_per_trial_{feature}"] = round(f_total / n_f * 1e3, 2)
        features[f"naive_ms_per_trial_{feature}"] = round(f_naive * 1e3, 2)
    measured = measured_vs_sim(trials, record_s)
    return {
        "sim_speedup_vs_naive": round(naive_s / sim_s, 2),
        **features,
        **measured,
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
                 "naive ms/trial is measured on the first n_trials_naive of the same trials (its room: the "
                 "sim's calibrated absorption, ISM order, ray-tracing parameters, no RIR high-pass); each "
                 "sim_speedup_vs_naive_<feature> switches one feature on (naive: n_trials_naive trials, sim: "
                 "n_trials_sim trials from cold caches, absorption calibration included in the sim's time); "
                 "measured_vs_sim_trial_ratio: warm ms/trial of the same rig with measured_ir_s synthetic "
                 "IRs per path ([room] model = measured) over the shoebox's, same trials"),
    }
