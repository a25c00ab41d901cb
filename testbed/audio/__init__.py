"""Audio backends behind one interface: the simulated room and real sound cards.

``open_backend(rig)`` picks the backend the rig names; the session runner cannot
tell them apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from testbed.audio.types import AudioBackend, Capture, Playback, TrialFacts, dbfs

if TYPE_CHECKING:
    from testbed.rig import Rig

__all__ = ["AudioBackend", "Capture", "Playback", "TrialFacts", "dbfs", "open_backend"]


def open_backend(rig: "Rig", calibration: object | None = None, seed: int | None = None) -> AudioBackend:
    """Open the backend ``rig.backend`` names.

    Parameters
    ----------
    rig : the validated rig.
    calibration : a calibration profile (see ``testbed.calibration``) whose latency
        the hardware backends use to align captures; ignored by the simulator.
    seed : the simulator's noise seed (defaults to ``rig.room.seed``).
    """
    if rig.backend == "sim":
        from testbed.audio.sim import SimBackend

        return SimBackend(rig, seed=seed)
    if rig.backend == "sounddevice":
        from testbed.audio.sounddevice_backend import SounddeviceBackend

        return SounddeviceBackend(rig, calibration=calibration)
    if rig.backend == "pyaudio":
        from testbed.audio.pyaudio_backend import PyAudioBackend

        return PyAudioBackend(rig, calibration=calibration)
    raise ValueError(f"unknown backend {rig.backend!r}")
