"""Audio backends behind one interface: the simulated room and real sound cards.

``open_backend(rig)`` picks the backend the rig names; the session runner cannot
tell them apart. ``open_backend(rig, raw=True)`` is the same backend with no latency
compensation, which calibration measures through. This package never imports
``testbed.calibration``: callers load a profile and pass it in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from testbed.audio.types import AudioBackend, Capture, Playback, TrialFacts, dbfs

if TYPE_CHECKING:
    from testbed.rig import Rig

__all__ = ["AudioBackend", "Capture", "Playback", "TrialFacts", "dbfs", "open_backend"]


def open_backend(rig: "Rig", calibration: object | None = None, seed: int | None = None, *,
                 raw: bool = False) -> AudioBackend:
    """Open the backend ``rig.backend`` names.

    Parameters
    ----------
    rig : the validated rig.
    calibration : a calibration profile (``testbed.calibration.load_profile(rig)``, loaded by
        the caller) whose device latency the hardware backends skip to align captures;
        ignored by the simulator.
    seed : the simulator's noise seed (defaults to ``rig.room.seed``).
    raw : no latency compensation at all (hardware captures keep the device's own latency,
        0 samples skipped): what calibration measures through. Takes no ``calibration``.

    Raises
    ------
    ValueError
        An unknown backend name, or ``raw`` with a calibration.
    """
    if raw and calibration is not None:
        raise ValueError("open_backend: a raw backend applies no calibration; pass calibration=None")
    hw_kw: dict = {"latency_samples": 0.0} if raw else {"calibration": calibration}
    if rig.backend == "sim":
        from testbed.audio.sim import SimBackend

        return SimBackend(rig, seed=seed)
    if rig.backend == "sounddevice":
        from testbed.audio.sounddevice_backend import SounddeviceBackend

        return SounddeviceBackend(rig, **hw_kw)
    if rig.backend == "pyaudio":
        from testbed.audio.pyaudio_backend import PyAudioBackend

        return PyAudioBackend(rig, **hw_kw)
    raise ValueError(f"unknown backend {rig.backend!r}")
