"""Audio device discovery through PortAudio, as ``sounddevice`` and ``pyaudio`` see it.

Both libraries wrap the same PortAudio; each numbers devices its own way, so a
device is always looked up through the library the backend uses. A rig names a
device as ``sounddevice`` does: an index, or whitespace-separated substrings that
must appear in order in ``"device name, host API name"`` (case-insensitive); an
exact device name wins over partial matches.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Literal

from testbed.errors import DeviceError

LIBRARIES = ("sounddevice", "pyaudio")
Kind = Literal["input", "output"]


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device as a library lists it."""

    library: str
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    @property
    def full_name(self) -> str:
        """``"device name, host API name"``: the string a rig's ``device`` is matched against."""
        return f"{self.name}, {self.hostapi}"

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"[{self.index}] {self.full_name} ({self.max_input_channels} in, {self.max_output_channels} out)"


def refresh() -> None:
    """Re-scan PortAudio devices (e.g. after a JACK server started) in the ``sounddevice`` library.

    PortAudio enumerates devices once per initialisation; ``sounddevice`` initialises
    on import, so a server started later is invisible until this runs. PyAudio
    instances initialise on creation and see the new list if no other one is alive.
    """
    sd = sys.modules.get("sounddevice")
    if sd is None:
        return
    sd._terminate()
    sd._initialize()


def _sounddevice_devices() -> list[AudioDevice]:
    try:
        import sounddevice as sd
    except OSError as exc:  # libportaudio missing
        raise DeviceError(f"sounddevice: PortAudio library not found ({exc}); install libportaudio2") from None
    apis = sd.query_hostapis()
    out = []
    for i, info in enumerate(sd.query_devices()):
        out.append(AudioDevice(
            library="sounddevice", index=i, name=info["name"], hostapi=apis[info["hostapi"]]["name"],
            max_input_channels=int(info["max_input_channels"]),
            max_output_channels=int(info["max_output_channels"]),
            default_samplerate=float(info["default_samplerate"]),
        ))
    return out


def _pyaudio_devices() -> list[AudioDevice]:
    try:
        import pyaudio
    except ImportError as exc:
        raise DeviceError(f"pyaudio: cannot import ({exc}); pip install pyaudio") from None
    pa = pyaudio.PyAudio()
    try:
        apis = {i: pa.get_host_api_info_by_index(i)["name"] for i in range(pa.get_host_api_count())}
        out = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            out.append(AudioDevice(
                library="pyaudio", index=i, name=info["name"], hostapi=apis.get(info["hostApi"], "?"),
                max_input_channels=int(info["maxInputChannels"]),
                max_output_channels=int(info["maxOutputChannels"]),
                default_samplerate=float(info["defaultSampleRate"]),
            ))
        return out
    finally:
        pa.terminate()


def list_devices(library: str = "sounddevice") -> list[AudioDevice]:
    """Every audio device ``library`` ('sounddevice' or 'pyaudio') can open.

    Raises
    ------
    DeviceError
        The library or PortAudio itself is missing.
    """
    if library == "sounddevice":
        return _sounddevice_devices()
    if library == "pyaudio":
        return _pyaudio_devices()
    raise DeviceError(f"unknown audio library {library!r} (use one of {', '.join(LIBRARIES)})")


def describe_devices(devices: list[AudioDevice], kind: Kind | None = None) -> str:
    """One line listing ``devices`` (those with ``kind`` channels), for error messages."""
    sel = [d for d in devices if kind is None or _channels(d, kind) > 0]
    return "; ".join(d.describe() for d in sel) or "no devices at all (is the sound card or JACK server running?)"


def _channels(dev: AudioDevice, kind: Kind) -> int:
    return dev.max_input_channels if kind == "input" else dev.max_output_channels


def match_device(spec: str | int | None, devices: list[AudioDevice], kind: Kind, *, where: str = "hardware.device") -> AudioDevice:
    """The device ``spec`` names among ``devices`` that has ``kind`` channels.

    Parameters
    ----------
    spec : an index, a substring query as sounddevice takes, or None for the first
        device with ``kind`` channels whose host API is the default one (PortAudio's
        list order).
    devices : from :func:`list_devices`.
    kind : 'input' or 'output'.
    where : the rig field named in errors.

    Raises
    ------
    DeviceError
        No device (or several) match; the message names the query and lists what exists.
    """
    have = describe_devices(devices, kind)
    cands = [d for d in devices if _channels(d, kind) > 0]
    if spec is None:
        if not cands:
            raise DeviceError(f"{where}: no {kind} device found (have: {have})")
        return cands[0]
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        for d in devices:
            if d.index == idx:
                if _channels(d, kind) == 0:
                    raise DeviceError(f"{where}: device {idx} ({d.full_name}) has no {kind} channels (have: {have})")
                return d
        raise DeviceError(f"{where}: no {kind} device with index {idx} (have: {have})")
    query = spec.lower().split()
    matches, exact = [], []
    for d in cands:
        full = d.full_name.lower()
        pos = 0
        for sub in query:
            pos = full.find(sub, pos)
            if pos < 0:
                break
            pos += len(sub)
        else:
            matches.append(d)
            if d.name.lower() == spec.lower():
                exact.append(d)
    if not matches:
        raise DeviceError(f"{where}: no {kind} device matching {spec!r} (have: {have})")
    if len(matches) > 1:
        if len(exact) == 1:
            return exact[0]
        names = "; ".join(d.describe() for d in matches)
        raise DeviceError(f"{where}: {spec!r} matches several {kind} devices ({names}); use a longer name or an index")
    return matches[0]
