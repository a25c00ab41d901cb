"""`testbed dut check|emulate` and `testbed positioner check`, against emulators on real ptys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from testbed.serial import DutClient, DutEmulator, GrblEmulator


def _no_traceback(res) -> None:
    assert "Traceback" not in res.output and "Traceback" not in (res.stderr or "")


def test_dut_check_reports_model_and_probe(cli, tmp_path, dut_port, classifier, office_rig_path, write_rig):
    rig = write_rig(tmp_path / "rig.toml", office_rig_path, dut_port=dut_port.path)
    with DutEmulator(dut_port, classifier).running():
        res = cli(["dut", "check", rig, "--json"])
        text = cli(["dut", "check", rig])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["dut"]["model"] == "loudness-3" and report["dut"]["labels"] == ["yes", "no", "silence"]
    assert report["probe"]["ok"] and report["probe"]["label"] == "silence"
    assert report["model_in_rig"] is False  # office rig lists lm-* models
    assert text.exit_code == 0 and "loudness-3" in text.stdout and "probe trial: label 'silence'" in text.stdout
    assert "not in the rig's dut.models" in text.stdout


def test_dut_check_wrong_port_exit_2_lists_ports(cli, tmp_path, office_rig_path, write_rig):
    rig = write_rig(tmp_path / "rig.toml", office_rig_path, dut_port="/dev/ttyNOPE42")
    res = cli(["dut", "check", rig])
    assert res.exit_code == 2
    _no_traceback(res)
    line = res.stderr.strip()
    assert "\n" not in line
    assert "dut.serial.port" in line and "/dev/ttyNOPE42" in line
    assert "ports that exist:" in line or "no serial ports were found" in line


def test_dut_check_host_transport_exit_2(cli, office_rig_path):
    res = cli(["dut", "check", office_rig_path])
    assert res.exit_code == 2
    _no_traceback(res)
    assert "dut.transport" in res.stderr and "office-sim.toml" in res.stderr


def test_dut_check_silent_device_exit_2(cli, tmp_path, dut_port, office_rig_path, write_rig):
    rig = write_rig(tmp_path / "rig.toml", office_rig_path, dut_port=dut_port.path, timeout_s=0.3)
    res = cli(["dut", "check", rig])
    assert res.exit_code == 2
    _no_traceback(res)
    assert "no answer to 'hello'" in res.stderr and dut_port.path in res.stderr


def test_positioner_check_home_and_tour(cli, tmp_path, grbl_port, office_rig_path, write_rig):
    rig = write_rig(tmp_path / "rig.toml", office_rig_path, positioner_port=grbl_port.path)
    emu = GrblEmulator(grbl_port, start_in_alarm=True, speed_mm_s=50000.0)
    with emu.running():
        res = cli(["positioner", "check", rig, "--home", "--tour", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["status"]["state"] == "Alarm" and report["homed"]
    visited = {v["placement"]: v for v in report["visited"]}
    assert list(visited) == ["P1", "P2", "P3", "(rig position)"]
    for v in visited.values():
        assert np.allclose(v["reported_m"], v["target_m"], atol=1e-3)
    assert visited["P3"]["target_m"] == [5.5, 4.5]
    assert (5000.0, 4250.0) in emu.moves  # P3 minus origin_m [0.5, 0.25], in mm
    assert report["final"]["state"] == "Idle"


def test_positioner_alarm_exit_2_one_line(cli, tmp_path, grbl_port, office_rig_path, write_rig):
    rig = write_rig(tmp_path / "rig.toml", office_rig_path, positioner_port=grbl_port.path)
    with GrblEmulator(grbl_port, alarm_on_move=2, speed_mm_s=10000.0).running():
        res = cli(["positioner", "check", rig, "--tour"])
    assert res.exit_code == 2
    _no_traceback(res)
    assert "ALARM:1" in res.stderr and "hard limit" in res.stderr and "(3.800, 2.600)" in res.stderr


def test_positioner_check_wrong_port_and_missing_section(cli, tmp_path, office_rig_path, write_rig):
    rig = write_rig(tmp_path / "rig.toml", office_rig_path, positioner_port="/dev/ttyGANTRY9")
    res = cli(["positioner", "check", rig])
    assert res.exit_code == 2
    _no_traceback(res)
    assert "positioner.port" in res.stderr and "/dev/ttyGANTRY9" in res.stderr and "does not exist" in res.stderr
    res = cli(["positioner", "check", office_rig_path])
    assert res.exit_code == 2 and "no [positioner] section" in res.stderr


def test_dut_emulate_unknown_model_exit_2(cli, tmp_path):
    res = cli(["dut", "emulate", "--port", "pty", "--model", "no-such-model", "--models-dir", tmp_path])
    assert res.exit_code == 2
    _no_traceback(res)
    assert "no-such-model" in res.stderr


def _tiny_zoo(root: Path) -> Path:
    """A zoo holding one untrained (seeded) lm model: serving it needs no training."""
    import torch

    from testbed.models import Zoo, build_model

    torch.manual_seed(0)
    model = build_model("lm", ["yes", "no", "up", "down", "unknown", "silence"])
    Zoo(root).save("lm-tiny", model, {"arch": "lm", "variant": "fp32", "labels": list(model.labels),
                                      "sample_rate": 16000, "clip_samples": 16000,
                                      "compression": {"kind": "none"}})
    return root


def test_dut_emulate_serves_a_zoo_model_over_a_pty(tmp_path):
    """The real command in its own process: a zoo model answers two injected trials, then exits."""
    import torch

    from testbed.models import load_model, predict

    zoo = _tiny_zoo(tmp_path / "zoo")
    link = tmp_path / "ttyDUT"
    exe = Path(sys.executable).with_name("testbed")
    proc = subprocess.Popen([str(exe), "dut", "emulate", "--port", "pty", "--link", str(link),
                             "--model", "lm-tiny", "--models-dir", str(zoo), "--max-trials", "2", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 90
        while not link.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "emulator did not create its pty"
            time.sleep(0.1)
        rng = np.random.default_rng(3)
        clips = [(0.3 * rng.standard_normal(16000)).astype(np.float32), np.zeros(16000, np.float32)]
        with DutClient(str(link), timeout_s=20.0) as client:
            info = client.connect()
            results = [client.evaluate(i, clip) for i, clip in enumerate(clips)]
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert info.model == "lm-tiny" and info.sample_rate == 16000
    torch.set_num_threads(1)
    model = load_model("lm-tiny", root=zoo)
    assert info.labels == list(model.labels)
    quantised = np.stack([np.round(c * 32767) / 32767 for c in clips]).astype(np.float32)
    pred, probs = predict(model, quantised)
    for r, p, pr in zip(results, pred, probs):
        assert r.ok, r.reason
        assert r.label == model.labels[int(p)]
        assert np.allclose(r.scores, pr, atol=1e-4)
    sent = [json.loads(line) for line in out.splitlines()]
    assert [m["trial"] for m in sent if "label" in m] == [0, 1]
    assert "stopped after 2 trials" in err
    assert not link.exists()  # the pty is gone with the emulator
