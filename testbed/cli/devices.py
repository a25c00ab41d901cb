"""`testbed devices`: audio devices as sounddevice and pyaudio see them, and serial ports."""

from __future__ import annotations

import typer

from testbed.cli.common import console, print_json


def devices(
    json_out: bool = typer.Option(False, "--json", help="print the devices as JSON"),
    library: str = typer.Option("all", "--library", "-l", help="sounddevice | pyaudio | all"),
) -> None:
    """List audio devices (index, name, host API, channels, default rate) and serial ports.

    A rig's [hardware].device is matched against "device name, host API name" of the
    library its backend uses; use the index or a distinctive part of that string.

    Example: testbed devices --json
    """
    from rich.table import Table

    from testbed.audio.devices import LIBRARIES, list_devices
    from testbed.errors import DeviceError, TestbedError

    libs = LIBRARIES if library == "all" else (library,)
    if library != "all" and library not in LIBRARIES:
        raise TestbedError(f"--library: {library!r} is not one of sounddevice, pyaudio, all")
    audio: dict[str, list] = {}
    errors: dict[str, str] = {}
    for lib in libs:
        try:
            audio[lib] = [d.as_dict() for d in list_devices(lib)]
        except DeviceError as exc:
            audio[lib] = []
            errors[lib] = str(exc)
    try:
        from testbed.serial import list_ports

        serial = list_ports()
    except Exception as exc:  # noqa: BLE001 - a broken serial stack must not hide the audio list
        serial, errors["serial"] = [], f"cannot list serial ports: {exc}"
    if json_out:
        print_json({"audio": audio, "serial": serial, "errors": errors})
        return
    for lib, devs in audio.items():
        t = Table(title=f"audio devices ({lib})")
        for col in ("index", "name", "host API", "in", "out", "default Hz"):
            t.add_column(col, justify="right" if col in ("index", "in", "out", "default Hz") else "left")
        for d in devs:
            t.add_row(str(d["index"]), d["name"], d["hostapi"], str(d["max_input_channels"]),
                      str(d["max_output_channels"]), f"{d['default_samplerate']:.0f}")
        console.print(t)
        if not devs:
            console.print(f"  no audio devices ({errors.get(lib, 'is a sound card plugged in, or JACK running?')})")
    t = Table(title="serial ports")
    for col in ("device", "description", "hwid"):
        t.add_column(col)
    for p in serial:
        t.add_row(str(p.get("device", "")), str(p.get("description", "")), str(p.get("hwid", "")))
    console.print(t)
    if not serial:
        console.print(f"  no serial ports{(' (' + errors['serial'] + ')') if 'serial' in errors else ''}")
