"""The pyaudio backend never waits forever for a stream that will not finish (issue #22)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from testbed.audio import Playback
from testbed.errors import DeviceError
from testbed.rig import load_rig

pytestmark = pytest.mark.jack


def test_a_stream_that_never_goes_inactive_is_a_one_line_device_error(jack_loopback, monkeypatch):
    """The device stops draining after the last block: a DeviceError naming it, not a hang."""
    import pyaudio

    from testbed.audio import pyaudio_backend
    from tests.conftest import RIGS

    monkeypatch.setattr(pyaudio_backend, "STALL_MARGIN_S", 0.5)
    monkeypatch.setattr(pyaudio.PyAudio.Stream, "is_active", lambda self: True)   # a device stuck "playing"
    rig = load_rig(RIGS / "jack-loopback.toml")
    t0 = time.monotonic()
    with pyaudio_backend.PyAudioBackend(rig, latency_samples=0.0) as be:
        with pytest.raises(DeviceError) as err:
            be.run_trial({"user": Playback(np.zeros(800, np.float32), 0.0)}, record_s=0.1)
    msg = str(err.value)
    assert "\n" not in msg and "did not finish within" in msg
    assert be.output_device.full_name in msg
    assert time.monotonic() - t0 < 30.0     # bounded (margin 0.5 s plus latency), never a hang
