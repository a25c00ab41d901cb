"""The ``pyaudio`` backend: one full-duplex PortAudio stream per trial.

PyAudio opens a duplex stream with one channel count for both directions, so the
stream uses ``max(input channels, output channels)`` and the device must offer that
many of each. See :mod:`testbed.audio.hardware` for scheduling and alignment.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from testbed.audio.hardware import HardwareBackend
from testbed.errors import DeviceError

#: Grace beyond a trial's own duration (and the output latency) before a silent stream is an error, s.
STALL_MARGIN_S = 10.0
#: PortAudio status flag bits (paInputUnderflow ... paPrimingOutput).
FLAG_BITS = {
    0x1: "input_underflow", 0x2: "input_overflow", 0x4: "output_underflow",
    0x8: "output_overflow", 0x10: "priming_output",
}


class PyAudioBackend(HardwareBackend):
    """AudioBackend on a PortAudio device through ``pyaudio``.

    Parameters are those of :class:`testbed.audio.hardware.HardwareBackend`.
    """

    library = "pyaudio"

    def __init__(self, rig, calibration=None, **kw) -> None:
        super().__init__(rig, calibration, **kw)
        n = max(self.n_in, self.n_out)
        for dev, kind, have in ((self.input_device, "input", self.input_device.max_input_channels),
                                (self.output_device, "output", self.output_device.max_output_channels)):
            if have < n:
                raise DeviceError(
                    f"pyaudio: a duplex stream needs {n} {kind} channels (pyaudio uses one channel count "
                    f"for both directions) but {dev.full_name} has {have}; use backend = \"sounddevice\""
                )
        self.n_ch = n

    def _duplex(self, out: np.ndarray) -> tuple[np.ndarray, list[str], float]:
        import pyaudio

        n_total = out.shape[0]
        n_ch = self.n_ch
        buf = np.zeros((n_total + 16384, n_ch), np.float32)  # zero tail: every callback slices whole
        buf[:n_total, : out.shape[1]] = out
        raw = np.zeros((n_total, n_ch), np.float32)
        flags: list[str] = []
        pos = [0]
        done = threading.Event()

        def callback(in_data, frame_count, time_info, status):
            if status:
                flags.extend(name for bit, name in FLAG_BITS.items() if status & bit)
            i = pos[0]
            m = max(0, min(frame_count, n_total - i))
            if in_data is not None:
                got = np.frombuffer(in_data, dtype=np.float32).reshape(-1, n_ch)
                raw[i:i + min(m, len(got))] = got[:m]
            chunk = buf[i:i + frame_count].tobytes() if i + frame_count <= len(buf) else bytes(4 * n_ch * frame_count)
            pos[0] = i + frame_count
            if pos[0] >= n_total:
                done.set()
                return chunk, pyaudio.paComplete
            return chunk, pyaudio.paContinue

        pa = pyaudio.PyAudio()
        try:
            try:
                stream = pa.open(
                    format=pyaudio.paFloat32, channels=n_ch, rate=self.sample_rate, input=True, output=True,
                    input_device_index=self.input_device.index, output_device_index=self.output_device.index,
                    frames_per_buffer=self.stream_blocksize or pyaudio.paFramesPerBufferUnspecified,
                    stream_callback=callback,
                )
            except (OSError, ValueError) as exc:
                raise DeviceError(
                    f"pyaudio: cannot open {self.input_device.full_name} -> {self.output_device.full_name} "
                    f"at {self.sample_rate} Hz with {n_ch} channels: {exc}"
                ) from None
            try:
                reported = (stream.get_input_latency() + stream.get_output_latency()) * self.sample_rate
                stream.start_stream()
                if not done.wait(timeout=n_total / self.sample_rate + STALL_MARGIN_S):
                    raise DeviceError(
                        f"pyaudio: stream on {self.output_device.full_name} stalled (no audio callbacks); "
                        "is the device or JACK server still running?"
                    )
                # the last block is queued; the stream goes inactive once the device has played it
                drain_s = stream.get_output_latency() + STALL_MARGIN_S
                deadline = time.monotonic() + drain_s
                while stream.is_active():
                    if time.monotonic() > deadline:
                        raise DeviceError(
                            f"pyaudio: stream on {self.output_device.full_name} did not finish within "
                            f"{drain_s:.1f} s of its last block; is the device or JACK server still running?"
                        )
                    threading.Event().wait(0.01)
                stream.stop_stream()
            except OSError as exc:
                raise DeviceError(f"pyaudio: stream on {self.output_device.full_name} failed: {exc}") from None
            finally:
                stream.close()
        finally:
            pa.terminate()
        return raw[:, : self.n_in], flags, reported
