"""Synthetic impulse responses and measured-room rigs for tests (no file ships with the repo)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import soundfile as sf
import tomli_w


def synthetic_ir(sample_rate: int, rt60_s: float = 0.3, onset_s: float = 0.004, seed: int = 0,
                 n_s: float = 0.6, drr: float = 1.0) -> np.ndarray:
    """A direct impulse at ``onset_s`` and an exponentially decaying noise tail (60 dB in ``rt60_s``)."""
    rng = np.random.default_rng(seed)
    n = int(n_s * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10 ** (-3 * (t - onset_s) / rt60_s) * (t > onset_s + 0.002)
    h = 0.05 * drr * tail
    h[int(round(onset_s * sample_rate))] = 0.5
    return h.astype(np.float64)


def measured_rig(tmp_path: Path, office_rig_path: Path, irs: dict[str, np.ndarray] | None = None, *,
                 sample_rate: int = 16000, subtype: str = "FLOAT", ext: str = "wav",
                 edit=None, quiet: bool = False) -> Path:
    """Copy the office rig as a measured-room rig whose IR folder holds one file per path.

    ``irs`` maps ``"speaker__mic"`` to an IR at ``sample_rate``; missing paths get a seeded
    synthetic IR. ``quiet`` lowers the room noise and the mics' self-noise and makes the ADCs
    32-bit so a capture is the noise-free convolution to ~1e-7.
    """
    data = tomllib.loads(office_rig_path.read_text())
    data["name"] = "office-measured"
    data["room"].update(model="measured", irs="irs")
    data.pop("placements", None)
    folder = tmp_path / "irs"
    folder.mkdir(exist_ok=True)
    irs = dict(irs or {})
    for k, (s, m) in enumerate((s, m) for s in data["speakers"] for m in data["mics"]):
        h = irs.get(f"{s}__{m}")
        if h is None:
            h = synthetic_ir(sample_rate, seed=k)
        sf.write(folder / f"{s}__{m}.{ext}", h, sample_rate, subtype=subtype)
    if quiet:
        data["room"]["noise_dbspl"] = -20
        for mic in data["mics"].values():
            mic.update(self_noise_dba=-20.0, bits=32, clock_ppm=0.0)
    if edit is not None:
        edit(data)
    p = tmp_path / "measured.toml"
    p.write_text(tomli_w.dumps(data))
    return p
