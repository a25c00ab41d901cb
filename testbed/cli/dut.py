"""`testbed dut ...`: the serial device under test: check it, or emulate one."""

from __future__ import annotations

from pathlib import Path

import typer

from testbed.cli.common import console, err_console, finite_float, print_json

app = typer.Typer(help="The serial device under test (DUT): check one, or emulate one.", no_args_is_help=True)


@app.command("check")
def check(
    rig_path: Path = typer.Argument(..., help="rig TOML file with [dut] transport = 'serial'", show_default=False),
    probe: bool = typer.Option(True, "--probe/--no-probe",
                               help="also run one trial (silence injected, or the DUT's own mic)"),
    window_ms: float = typer.Option(1000.0, "--window-ms", callback=finite_float, help="listening window of the probe trial, ms"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Talk to the rig's serial DUT: handshake, then one probe trial; report what it said.

    Example: testbed dut check rigs/lab-dut.toml
    """
    import numpy as np

    from testbed.errors import RigError
    from testbed.rig import load_rig
    from testbed.serial import DutClient

    rig = load_rig(rig_path)
    if rig.dut.transport != "serial" or rig.dut.serial is None:
        raise RigError(f"{rig_path}: dut.transport is {rig.dut.transport!r}: there is no serial DUT to check "
                       "(set transport = 'serial' and [dut.serial] port = ...)")
    with DutClient.open(rig.dut.serial) as client:
        info = client.info
        report: dict = {"rig": rig.name, "port": rig.dut.serial.port, "baud": rig.dut.serial.baud,
                        "dut": info.as_dict(), "probe": None,
                        "model_in_rig": info.model in rig.dut.models if rig.dut.models else None}
        if probe:
            sr = info.sample_rate or rig.sample_rate
            if info.input == "mic":
                result = client.evaluate("check", None, window_ms=window_ms, sample_rate=sr)
            else:
                pcm = np.zeros(int(sr * window_ms / 1000.0), dtype=np.float32)
                result = client.evaluate("check", pcm, window_ms=window_ms, sample_rate=sr)
            report["probe"] = result.as_dict()
    if json_out:
        print_json(report)
        return
    console.print(f"[green]ok[/green] DUT on {report['port']} ({report['baud']} baud): model {info.model!r}, "
                  f"{len(info.labels)} labels ({', '.join(info.labels)}), "
                  f"sample rate {info.sample_rate or 'not stated'}, firmware {info.firmware or 'not stated'}")
    if report["model_in_rig"] is False:
        console.print(f"[yellow]note[/yellow] {info.model!r} is not in the rig's dut.models "
                      f"({', '.join(rig.dut.models)})")
    p = report["probe"]
    if p is not None:
        if p["ok"]:
            console.print(f"probe trial: label {p['label']!r}, DUT latency {p['latency_ms']} ms, "
                          f"round trip {p['round_trip_ms']:.1f} ms")
        else:
            console.print(f"[red]probe trial failed[/red]: {p['reason']}")
        for note in p["notes"]:
            console.print(f"  note: {note}")


@app.command("emulate")
def emulate(
    port: str = typer.Option(..., "--port", help="serial port to answer on, or 'pty' for a new pseudo-terminal",
                             show_default=False),
    model: str = typer.Option(..., "--model", help="zoo model the DUT runs, e.g. lm-int8", show_default=False),
    models_dir: Path = typer.Option(None, "--models-dir", help="model zoo root (default: $TESTBED_MODELS_DIR or ./models)"),
    mic: str = typer.Option(None, "--mic", help="sounddevice input to listen to after 'arm' "
                                                "(default: audio arrives by injection)"),
    baud: int = typer.Option(115200, "--baud", help="line speed of --port, bit/s"),
    link: Path = typer.Option(None, "--link", help="with --port pty: make this symlink point at the pty"),
    max_trials: int = typer.Option(0, "--max-trials", min=0, help="stop after this many answered trials (0: run until Ctrl-C)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON line per message sent"),
) -> None:
    """Run a zoo model as a DUT would, answering the serial protocol (docs/serial-protocol.md).

    Example: testbed dut emulate --port pty --link /tmp/ttyDUT --model lm-int8
    """
    import json
    import sys
    import threading

    import torch

    from testbed.errors import DeviceError
    from testbed.serial import DutEmulator, PtyPort, SerialStream, load_zoo_classifier, make_mic_listener
    from testbed.serial.ports import open_serial

    torch.set_num_threads(1)
    classifier = load_zoo_classifier(model, models_dir)
    listen = make_mic_listener(mic, classifier.sample_rate) if mic else None
    if port == "pty":
        stream = PtyPort(link)
        where = stream.path + (f" (-> {stream.device})" if link else "")
    else:
        if link is not None:
            raise DeviceError("--link: only with --port pty")
        stream = SerialStream(open_serial(port, baud, field="--port"))
        where = port
    emu = DutEmulator(stream, classifier, listen=listen)
    stop = threading.Event()

    def on_message(msg: dict) -> None:
        if json_out:
            sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
            sys.stdout.flush()
        elif "label" in msg:
            console.print(f"trial {msg['trial']}: {msg['label']} ({msg['latency_ms']:.1f} ms)")
        elif "error" in msg:
            err_console.print(f"[yellow]answered error[/yellow]: {msg['error']}")
        if max_trials and emu.trials_answered >= max_trials:
            stop.set()

    err_console.print(f"DUT emulator: model {model!r} ({len(classifier.labels)} labels, "
                      f"{classifier.sample_rate} Hz), {'mic ' + repr(mic) if mic else 'audio by injection'}, "
                      f"serving on {where}; Ctrl-C to stop")
    try:
        emu.serve(stop, on_message)
    except KeyboardInterrupt:
        pass
    finally:
        if isinstance(stream, PtyPort):
            stream.drain(2.0)  # let the host read the last answer: closing a pty discards it
            stream.close()
        else:
            stream.ser.close()
    err_console.print(f"DUT emulator stopped after {emu.trials_answered} trials")
