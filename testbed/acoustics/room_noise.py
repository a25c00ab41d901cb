"""Background noise recorded in a measured room (``[room] noise = "FILE"``).

A measured-room rig may name a recording of the room's background (a WAV or FLAC, any sample
rate, bit depth and channel count; the first channel is used, resampled to the rig rate with
:func:`scipy.signal.resample_poly`). It replaces the simulated pink diffuse field: each mic
hears a stretch of the recording starting at a random offset (wrapping around), scaled to the
RMS the diffuse field at ``room.noise_dbspl`` would have at that mic
(:func:`room_noise_rms`), so the rig's level keeps its meaning and only the spectrum and the
texture (hum, fans, voices) come from the room. Mic self-noise stays white on top.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from testbed.errors import RigError

if TYPE_CHECKING:
    from testbed.rig import Rig

_READ: OrderedDict[tuple, np.ndarray] = OrderedDict()


def room_noise_path(rig: "Rig") -> Path | None:
    """The rig's noise recording (``room.noise`` relative to the rig file), None when it has none."""
    if rig.room.noise is None:
        return None
    p = Path(rig.room.noise).expanduser()
    if not p.is_absolute() and rig.source is not None:
        p = Path(rig.source).parent / p
    return p


def read_room_noise(rig: "Rig") -> np.ndarray | None:
    """The recording at the rig rate, first channel, mean removed, scaled to RMS 1; float64 (n,),
    read-only and cached per (file, modification time, rate). None when the rig names none.

    Raises
    ------
    RigError
        No such file, not audio, empty, NaN/inf samples, silent, or shorter than 0.1 s, naming the file.
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    path = room_noise_path(rig)
    if path is None:
        return None
    where = f"{rig.source or rig.name}: room.noise: {path}"
    try:
        st = path.stat()
    except OSError as exc:
        raise RigError(f"{where}: cannot read the noise recording: {exc.strerror or exc}") from None
    fs_out = int(rig.sample_rate)
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, fs_out)
    if key in _READ:
        return _READ[key]
    try:
        data, fs = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RigError(f"{where}: not an audio file libsndfile reads ({first})") from None
    if data.shape[0] == 0:
        raise RigError(f"{where}: empty recording (0 samples)")
    x = data[:, 0]
    if not np.all(np.isfinite(x)):
        raise RigError(f"{where}: {int(np.count_nonzero(~np.isfinite(x)))} NaN or infinite sample(s)")
    if int(fs) != fs_out:
        g = math.gcd(int(fs), fs_out)
        x = resample_poly(x, fs_out // g, int(fs) // g)
    if x.size < fs_out // 10:
        raise RigError(f"{where}: {x.size / fs_out:.3f} s at {fs_out} Hz; give at least 0.1 s of background")
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x ** 2)))
    if not rms > 1e-12:
        raise RigError(f"{where}: the recording is silent")
    x = np.ascontiguousarray(x / rms)
    x.setflags(write=False)
    _READ[key] = x
    while len(_READ) > 8:
        _READ.popitem(last=False)
    return x


def room_noise_rms(rig: "Rig", mic: str) -> float:
    """RMS (digital units) the diffuse field at ``room.noise_dbspl`` has at ``mic``: the level the
    recording is mixed at."""
    from testbed.acoustics.noise import diffuse_noise_rms
    from testbed.acoustics.responses import mic_facts, mic_response_db

    facts = mic_facts(rig.mics[mic])
    tier = rig.mics[mic].tier
    return diffuse_noise_rms(rig.room.noise_dbspl, facts.gain_per_pa,
                             lambda f: mic_response_db(tier, f, rig), rig.sample_rate)


def segment(bed: np.ndarray, n: int, start: int) -> np.ndarray:
    """``n`` samples of ``bed`` from ``start``, wrapping around its end."""
    idx = (int(start) + np.arange(int(n))) % bed.size
    return bed[idx]


def recorded_noise(rig: "Rig", mics, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """Each mic's stretch of the room's recording: float64 (len(mics), n), row ``i`` at
    :func:`room_noise_rms` of ``mics[i]``, each from its own random offset. None without a recording."""
    bed = read_room_noise(rig)
    if bed is None:
        return None
    out = np.empty((len(mics), int(n)))
    for i, m in enumerate(mics):
        out[i] = room_noise_rms(rig, m) * segment(bed, n, int(rng.integers(bed.size)))
    return out
