"""The ``sounddevice`` backend: one full-duplex PortAudio stream per trial.

See :mod:`testbed.audio.hardware` for scheduling, limiting and alignment; this
module only drives the stream.
"""

from __future__ import annotations

import threading

import numpy as np

from testbed.audio.hardware import HardwareBackend
from testbed.errors import DeviceError

#: sounddevice CallbackFlags attribute names, in PortAudio's order.
FLAG_NAMES = ("input_underflow", "input_overflow", "output_underflow", "output_overflow", "priming_output")


class SounddeviceBackend(HardwareBackend):
    """AudioBackend on a PortAudio device through ``sounddevice``.

    Parameters are those of :class:`testbed.audio.hardware.HardwareBackend`.

    Example
    -------
    >>> backend = SounddeviceBackend(load_rig("rigs/jack-loopback.toml"), load_profile(rig))
    >>> cap = backend.run_trial({"user": Playback(click)}, record_s=0.5)
    """

    library = "sounddevice"

    def _duplex(self, out: np.ndarray) -> tuple[np.ndarray, list[str], float]:
        import sounddevice as sd

        n_total = out.shape[0]
        raw = np.zeros((n_total, self.n_in), np.float32)
        flags: list[str] = []
        pos = [0]
        done = threading.Event()

        def callback(indata, outdata, frames, time, status):  # PortAudio thread: no allocation-heavy work
            if status:
                flags.extend(n for n in FLAG_NAMES if getattr(status, n))
            i = pos[0]
            m = max(0, min(frames, n_total - i))
            outdata[:m] = out[i:i + m]
            outdata[m:] = 0.0
            raw[i:i + m] = indata[:m]
            pos[0] = i + frames
            if pos[0] >= n_total:
                raise sd.CallbackStop

        dev = (self.input_device.index, self.output_device.index)
        try:
            stream = sd.Stream(
                samplerate=self.sample_rate, blocksize=self.stream_blocksize, device=dev,
                channels=(self.n_in, self.n_out), dtype="float32", latency=self.rig.hardware.latency,
                callback=callback, finished_callback=done.set,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(
                f"sounddevice: cannot open {self.input_device.full_name} -> {self.output_device.full_name} "
                f"at {self.sample_rate} Hz with {self.n_in} in / {self.n_out} out channels: {exc}"
            ) from None
        try:
            in_lat, out_lat = stream.latency
            with stream:
                if not done.wait(timeout=n_total / self.sample_rate + 10.0):
                    raise DeviceError(
                        f"sounddevice: stream on {self.output_device.full_name} stalled "
                        f"(no audio callbacks); is the device or JACK server still running?"
                    )
        except sd.PortAudioError as exc:
            raise DeviceError(f"sounddevice: stream on {self.output_device.full_name} failed: {exc}") from None
        return raw, flags, (in_lat + out_lat) * self.sample_rate
