"""Acoustic statistics of simulated rooms against measured impulse responses, per simulator feature.

For every channel of every measured IR in a folder (resampled to 16 kHz), a simulated room of
random size is asked for the measured IR's mid-frequency RT60 (and, for the "bands" feature, its
per-band RT60s), with the source and mic at the measured IR's direct-path distance. Each feature
set is simulated and its statistics (band RT60 shape, DRR, C50, late spectral tilt) are compared
with the measured ones. The table says which feature brings the simulator closer to real rooms.

Usage: python scripts/sim_vs_measured_rooms.py ../shared/data/rir-dev [--draws 1] [--seed 0] [--only 0,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from testbed.acoustics.irstats import ir_stats
from testbed.acoustics.room import BANDS_HZ, RoomSpec, SourceDirectivity, compute_rirs

FS = 16000
#: Feature sets, cheapest first (band-wise image sources cost ~10x a flat room).
FEATURES = {
    "flat ISM (old default)": {},
    "+ directivity (subcardioid)": {"directivity": "subcardioid"},
    "+ ray tracing": {"ray_tracing": True},
    "+ air absorption": {"air_absorption": True},
    "+ band RT60s": {"bands": True},
    "bands + air + ray tracing": {"bands": True, "air_absorption": True, "ray_tracing": True},
    "all": {"bands": True, "air_absorption": True, "directivity": "subcardioid", "ray_tracing": True},
}
#: Requested RT60s are clipped to this range, seconds (a clap IR's low bands read its noise floor).
RT60_RANGE_S = (0.15, 1.2)


def measured_paths(folder: Path) -> list[tuple[str, np.ndarray]]:
    """Every channel of every .wav/.flac in ``folder``, at 16 kHz, cut 16 samples before the peak."""
    out = []
    for p in sorted(folder.glob("*.wav")) + sorted(folder.glob("*.flac")):
        x, fs = sf.read(p, always_2d=True, dtype="float64")
        g = np.gcd(FS, fs)
        for c in range(x.shape[1]):
            h = resample_poly(x[:, c], FS // g, fs // g)
            peak = int(np.argmax(np.abs(h)))
            out.append((f"{p.stem}[{c}]", h[max(peak - 16, 0):]))
    return out


def stats_row(h: np.ndarray) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = ir_stats(h, FS)
    bands = np.array([s.band_rt60_s.get(b, np.nan) for b in BANDS_HZ])
    mid = 0.5 * (bands[2] + bands[3])
    return {"rt60_mid_s": mid, "band_shape": bands / mid, "bands_s": bands,
            "drr_db": s.drr_db, "c50_db": s.c50_db, "tilt_db": s.late_tilt_db}


def simulate(meas: dict, feature: dict, rng: np.random.Generator, distance_m: float) -> np.ndarray:
    size = (rng.uniform(5.0, 9.0), rng.uniform(4.0, 7.0), rng.uniform(2.7, 3.5))
    bands = None
    if feature.get("bands"):
        b = meas["bands_s"].copy()
        b[~np.isfinite(b)] = meas["rt60_mid_s"]
        bands = tuple(float(np.clip(v, *RT60_RANGE_S)) for v in b)
    spec = RoomSpec(tuple(round(v, 2) for v in size), float(np.clip(meas["rt60_mid_s"], *RT60_RANGE_S)), FS,
                    rt60_bands_s=bands, air_absorption=bool(feature.get("air_absorption")),
                    ray_tracing=bool(feature.get("ray_tracing")), seed=int(rng.integers(1 << 30)))
    src = np.array([rng.uniform(1.0, size[0] - 1.0), rng.uniform(1.0, size[1] - 1.0), 1.4])
    ang = rng.uniform(0, 2 * np.pi)
    mic = src + distance_m * np.array([np.cos(ang), np.sin(ang), 0.0])
    mic = np.clip(mic, 0.3, np.array(size) - 0.3)
    facing = float(np.degrees(np.arctan2(*(mic - src)[1::-1])))
    d = SourceDirectivity(feature.get("directivity", "omni"), facing)
    return compute_rirs(spec, [tuple(src)], [tuple(mic)], [d])[0][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--draws", type=int, default=1, help="simulated rooms per measured path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distance-m", type=float, default=2.0, help="source-mic distance of the simulated paths")
    ap.add_argument("--only", default="", help="comma-separated indices of FEATURES to run (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    meas = [(name, stats_row(h)) for name, h in measured_paths(args.folder)]
    rows = {}
    if not args.json:
        print("mean |sim - measured| (band_shape: RT60_band / RT60_mid, unitless; rt60_mid: relative; dB otherwise)")
        print(f"{'feature':32s} {'band_shape':>10s} {'rt60_mid':>9s} {'drr_db':>7s} {'c50_db':>7s} {'tilt_db':>7s}",
              flush=True)
    picked = {int(i) for i in args.only.split(",") if i.strip()} or set(range(len(FEATURES)))
    for fname, feature in [kv for i, kv in enumerate(FEATURES.items()) if i in picked]:
        rng = np.random.default_rng(args.seed)
        err = {"band_shape": [], "drr_db": [], "c50_db": [], "tilt_db": [], "rt60_mid": []}
        for _, m in meas:
            for _ in range(args.draws):
                s = stats_row(simulate(m, feature, rng, args.distance_m))
                err["band_shape"].append(np.nanmean(np.abs(s["band_shape"] - m["band_shape"])))
                err["rt60_mid"].append(abs(s["rt60_mid_s"] - m["rt60_mid_s"]) / m["rt60_mid_s"])
                for k in ("drr_db", "c50_db", "tilt_db"):
                    err[k].append(abs(s[k] - m[k]))
        rows[fname] = {k: round(float(np.nanmean(v)), 3) for k, v in err.items()}
        if not args.json:
            r = rows[fname]
            print(f"{fname:32s} {r['band_shape']:10.3f} {r['rt60_mid']:9.3f} {r['drr_db']:7.2f} "
                  f"{r['c50_db']:7.2f} {r['tilt_db']:7.2f}", flush=True)
    measured = {n: {"rt60_mid_s": round(float(m["rt60_mid_s"]), 3), "bands_s": [round(float(v), 3) for v in m["bands_s"]],
                    "drr_db": round(m["drr_db"], 2), "c50_db": round(m["c50_db"], 2), "tilt_db": round(m["tilt_db"], 2)}
                for n, m in meas}
    if args.json:
        print(json.dumps({"measured": measured, "mean_abs_error": rows}, indent=1))
        return
    print("\nmeasured paths:")
    for n, m in measured.items():
        print(f"  {n}: {m}")


if __name__ == "__main__":
    main()
