"""Impulse responses kept by ``testbed calibrate --what response``, and the measured rig made from them.

Each path's sweep capture is deconvolved (Farina) into its linear impulse response,
the device latency is removed so that sample 0 is the instant the speaker is sent its
first sample, and the IR is written as 32-bit float WAV (``irs/<speaker>__<mic>.wav``
beside the response CSVs, at the rig's rate, levels digital-to-digital as measured).
Float WAV, not FLAC: FLAC has no float samples, and a 24-bit FLAC would need a
normalisation scale stored elsewhere to keep the level; a float WAV is the level, read
back by any tool. The folder is a measured-room IR folder as it stands, so
``calibrate --write-rig`` only has to point a rig at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from testbed.acoustics.irstats import ir_stats

if TYPE_CHECKING:
    from testbed.calibration.profile import CalibrationProfile
    from testbed.rig import Rig

#: Length of a kept IR after the emission, seconds (the sweep capture runs 0.25 s past the sweep).
IR_LENGTH_S = 0.24
#: Raised-cosine fade at the IR's end, seconds.
FADE_S = 0.01
#: Sub-folder of the profile folder holding the IRs.
IR_DIR = "irs"


@dataclass(frozen=True)
class PathIr:
    """One path's impulse response: float64 (n,), sample 0 = emission, at ``sample_rate`` Hz."""

    key: str
    ir: np.ndarray
    sample_rate: int
    latency_samples: float


def extract_ir(segment: np.ndarray, sweep, latency_samples: float, length_s: float = IR_LENGTH_S) -> np.ndarray:
    """The linear IR of a sweep capture, starting at the emission.

    Parameters
    ----------
    segment : float (n,), the capture from the instant the sweep was sent.
    sweep : the :class:`~testbed.calibration.signals.Sweep` played.
    latency_samples : the device's latency (output to input, without acoustics), samples.
    length_s : IR length after the emission, seconds.

    Returns
    -------
    float64 (round(length_s * fs),): ``h[n]`` is the response ``n`` samples after emission.
    """
    from testbed.calibration.farina import deconvolve

    sr = sweep.sample_rate
    zero = len(sweep.signal) - 1
    h = deconvolve(segment, sweep)
    wire = deconvolve(sweep.signal, sweep)   # what a wire gives: a delta band-limited to the sweep
    start = zero + int(round(latency_samples))
    n = int(round(length_s * sr))
    pre = int(0.005 * sr)
    nfft = 1 << int(np.ceil(np.log2(2 * (n + pre))))

    def window(x, at):
        w = np.zeros(n + pre)
        lo = max(at - pre, 0)
        seg = x[lo:at + n]
        w[lo - (at - pre):lo - (at - pre) + seg.size] = seg
        return w

    # divide by the wire's response inside the sweep's band (regularised outside it), so a
    # wire measures as a delta and the IR's level and shape are the path's own
    H = np.fft.rfft(window(h, start), nfft)
    R = np.fft.rfft(window(wire, zero), nfft)
    lam = 1e-4 * float(np.max(np.abs(R)) ** 2)
    out = np.fft.irfft(H * np.conj(R) / (np.abs(R) ** 2 + lam), nfft)[:n]
    f = int(FADE_S * sr)
    out[n - f:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(f) / f)
    return out


def phase_deg(resp, sample_rate: int) -> np.ndarray:
    """Phase (degrees, wrapped to [-180, 180)) of a sweep response at its ``freqs_hz``.

    Taken from the windowed linear IR (``resp.ir``, main peak 5 ms in) with the peak's
    delay removed, so it is the path's phase around its direct sound (REW's "phase").
    """
    ir = np.asarray(resp.ir, dtype=np.float64)
    peak = int(np.argmax(np.abs(ir)))
    f = np.asarray(resp.freqs_hz, dtype=np.float64)
    n = np.arange(ir.size) - peak
    H = np.exp(-2j * np.pi * np.outer(f / sample_rate, n)) @ ir
    return (np.rad2deg(np.angle(H)) + 180.0) % 360.0 - 180.0


def write_irs(directory: Path, irs: dict[str, PathIr]) -> dict[str, str]:
    """Write ``irs/<speaker>__<mic>.wav`` (32-bit float) per path; returns path key -> file relative to ``directory``."""
    import io

    import soundfile as sf

    from testbed.fileio import atomic_write

    folder = Path(directory) / IR_DIR
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, p in irs.items():
        spk, mic = key.split("->")
        buf = io.BytesIO()
        sf.write(buf, p.ir.astype(np.float32), p.sample_rate, format="WAV", subtype="FLOAT")
        atomic_write(folder / f"{spk}__{mic}.wav", buf.getvalue())
        out[key] = f"{IR_DIR}/{spk}__{mic}.wav"
    return out


def path_stats(irs: dict[str, PathIr]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per path, RT60 by band and DRR: ``({key: {"broadband_t20_s": .., "1000_t30_s": .., ...}}, {key: drr_db})``.

    Bands whose decay is not measurable (too little dynamic range) are left out.
    """
    rt60: dict[str, dict[str, float]] = {}
    drr: dict[str, float] = {}
    for key, p in irs.items():
        st = ir_stats(p.ir, p.sample_rate)
        row = {}
        for name, val in (("broadband_t20_s", st.t20_s), ("broadband_t30_s", st.t30_s)):
            if np.isfinite(val):
                row[name] = round(float(val), 4)
        for fc, b in st.bands.items():
            for k, v in b.items():
                if np.isfinite(v):
                    row[f"{fc}_{k}"] = round(float(v), 4)
        rt60[key] = row
        if np.isfinite(st.drr_db):
            drr[key] = round(float(st.drr_db), 3)
    return rt60, drr


def measured_rig_toml(rig: "Rig", profile_dir: Path, out: Path, name: str | None = None) -> str:
    """A simulated measured-room twin of ``rig`` whose paths are the IRs of its calibration profile.

    Same speakers, mics, positions and DUT (placements are left out: the calibration
    measured the base positions only); ``[room] model = "measured"`` with
    ``irs`` pointing at ``profile_dir/irs`` (relative to ``out``); backend ``sim``.
    """
    import os

    import tomli_w

    data = rig.model_dump(mode="json", exclude_none=True)
    data.pop("hardware", None)
    data.pop("positioner", None)
    dropped = sorted(data.pop("placements", {}) or {})  # calibration measures the base positions only
    data["name"] = name or f"{rig.name}-measured"
    data["backend"] = "sim"
    irs = os.path.relpath((Path(profile_dir) / IR_DIR).resolve(), Path(out).resolve().parent)
    room = {k: v for k, v in data["room"].items() if k in ("size_m", "noise_dbspl", "seed")}
    data["room"] = {**room, "model": "measured", "irs": irs, "align": "file"}
    from testbed.rig import resolve_response

    for kind, field in (("speakers", "response"), ("mics", "tier")):
        for thing in data[kind].values():  # response CSVs stay readable from the new rig's folder
            p = resolve_response(rig, thing[field])
            if p is not None:
                thing[field] = str(p.resolve())
    head = (f"# Measured-room twin of rig {rig.name!r}: its paths are the impulse responses that\n"
            f"# `testbed calibrate` measured ({Path(profile_dir) / IR_DIR}).\n")
    if dropped:
        head += (f"# Placements {', '.join(dropped)} are left out: only the base positions were measured; add\n"
                 "# <speaker>__<mic>__<placement>.wav files to the folder and the placements here to use them.\n")
    return head + tomli_w.dumps(data)


def calibrated_twin(rig: "Rig", profile: "CalibrationProfile | None" = None, root: Path | None = None):
    """The measured-room twin of a physical ``rig`` from its calibration profile's IRs, or None.

    None when the rig is already a measured room, or has no profile, or its profile holds no
    impulse responses (``--what response`` never ran). The twin is built in memory (no file):
    ``[room] model = "measured"``, ``irs`` = the profile's ``irs/`` folder, ``align = "file"``.
    """
    from testbed.calibration.profile import load_profile, profile_dir
    from testbed.rig import parse_rig

    if rig.room.model == "measured":
        return None
    prof = profile if profile is not None else load_profile(rig, root)
    if prof is None or not prof.ir_wav:
        return None
    cands = [profile_dir(rig, root)]
    if root is None and rig.source is not None:
        cands.append(Path(rig.source).resolve().parent.parent / "calibration" / rig.name)
    folder = next((c for c in cands if (c / IR_DIR).is_dir()), None)
    if folder is None:
        return None
    out = folder / f".{rig.name}-measured.toml"  # only names the twin's folder; never written
    import tomllib

    data = tomllib.loads(measured_rig_toml(rig, folder, out, name=rig.name))
    data["room"]["irs"] = str((folder / IR_DIR).resolve())
    return parse_rig(data, out)
