"""Measured-room rigs through the CLI: malformed IR folders, rig check / from-irs / map / listen."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import soundfile as sf

from testbed.rig import load_rig
from tests.acoustics.irs import measured_rig, synthetic_ir
from tests.rig.test_rig_cli import assert_one_line_error


def _missing_pair(d):
    (d / "user__cheap.wav").unlink()
    return "user__cheap.wav"


def _empty(d):
    sf.write(d / "user__ref.wav", np.zeros(0), 16000, subtype="FLOAT")
    return "user__ref.wav"


def _nan(d):
    h = synthetic_ir(16000)
    h[100] = np.nan
    sf.write(d / "user__phone.wav", h, 16000, subtype="FLOAT")
    return "user__phone.wav"


def _inf(d):
    h = synthetic_ir(16000)
    h[5] = np.inf
    sf.write(d / "adversary__ref.wav", h, 16000, subtype="FLOAT")
    return "adversary__ref.wav"


def _not_audio(d):
    (d / "adversary__phone.wav").write_text("this is not a RIFF file\n")
    return "adversary__phone.wav"


def _unknown_speaker(d):
    sf.write(d / "villain__ref.wav", synthetic_ir(16000), 16000)
    return "villain__ref.wav"


def _unknown_mic(d):
    sf.write(d / "user__kitchen.flac", synthetic_ir(16000), 16000)
    return "user__kitchen.flac"


def _unknown_placement(d):
    sf.write(d / "adversary__ref__P9.wav", synthetic_ir(16000), 16000)
    return "adversary__ref__P9.wav"


def _bad_name(d):
    sf.write(d / "clap-in-the-hall.wav", synthetic_ir(16000), 16000)
    return "clap-in-the-hall.wav"


BAD_FOLDERS = {
    "missing pair": (_missing_pair, "missing impulse response"),
    "empty file": (_empty, "empty"),
    "NaN samples": (_nan, "NaN or infinite"),
    "inf samples": (_inf, "NaN or infinite"),
    "not audio": (_not_audio, "not an audio file"),
    "unknown speaker": (_unknown_speaker, "unknown speaker 'villain'"),
    "unknown mic": (_unknown_mic, "unknown mic 'kitchen'"),
    "placement no rig has": (_unknown_placement, "unknown placement 'P9'"),
    "malformed name": (_bad_name, "<speaker>__<mic>"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_a_malformed_ir_folder_is_one_line_naming_the_file(cli, tmp_path, office_rig_path, case):
    path = measured_rig(tmp_path, office_rig_path)
    spoil, what = BAD_FOLDERS[case]
    name = spoil(tmp_path / "irs")
    before = {p.name: p.read_bytes() for p in (tmp_path / "irs").iterdir()}
    for cmd in (["rig", "check", path], ["rig", "listen", path, "--out", tmp_path / "out"]):
        assert_one_line_error(cli(cmd), name, what)
    # nothing already there was touched, and nothing was recorded
    assert {p.name: p.read_bytes() for p in (tmp_path / "irs").iterdir()} == before
    assert not (tmp_path / "out").exists()


def test_a_missing_ir_folder_names_the_field(cli, tmp_path, office_rig_path):
    path = measured_rig(tmp_path, office_rig_path, edit=lambda d: d["room"].update(irs="nowhere"))
    assert_one_line_error(cli(["rig", "check", path]), "room.irs", "nowhere")


def test_rig_check_reports_every_measured_path(cli, tmp_path, office_rig_path):
    irs = {"user__ref": synthetic_ir(16000, rt60_s=0.6, onset_s=0.02, n_s=1.0)}
    path = measured_rig(tmp_path, office_rig_path, irs)
    res = cli(["rig", "check", path, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    rig = load_rig(path)
    assert len(doc["measured"]) == len(rig.speakers) * len(rig.mics)
    row = next(r for r in doc["measured"] if r["speaker"] == "user" and r["mic"] == "ref")
    geo = next(g for g in doc["paths"] if g["speaker"] == "user" and g["mic"] == "ref")
    assert row["length_s"] == pytest.approx(1.0)
    assert row["rt60_s"] == pytest.approx(0.6, rel=0.15)
    assert row["onset_ms"] == pytest.approx(20.0, abs=0.07)
    assert row["geometric_delay_ms"] == pytest.approx(geo["delay_ms"])
    assert row["drr_db"] is not None and row["file"].endswith("user__ref.wav")
    h = irs["user__ref"]
    assert row["energy_db"] == pytest.approx(10 * np.log10(np.sum(h ** 2)), abs=0.01)
    table = cli(["rig", "check", path])
    assert table.exit_code == 0 and "measured impulse responses" in table.output and "geometric" in table.output


def test_from_irs_writes_a_rig_that_checks_maps_and_listens(cli, tmp_path, monkeypatch):
    import testbed.data

    folder = tmp_path / "lab-irs"
    folder.mkdir()
    for k, (s, m) in enumerate([("talker", "ref"), ("talker", "dut"), ("attacker", "ref"), ("attacker", "dut")]):
        sf.write(folder / f"{s}__{m}.wav", 0.5 * synthetic_ir(48000, seed=k), 48000, subtype="PCM_24")
    for m in ("ref", "dut"):
        sf.write(folder / f"attacker__{m}__near.flac", synthetic_ir(44100, seed=7), 44100)
    (folder / "README.md").write_text("not an IR\n")
    out = tmp_path / "rigs" / "lab.toml"
    res = cli(["rig", "from-irs", folder, "-o", out])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "PLACEHOLDER" in text
    data = tomllib.loads(text)
    assert data["room"]["model"] == "measured" and set(data["mics"]) == {"dut", "ref"}
    rig = load_rig(out)
    assert {s.role for s in rig.speakers.values()} == {"user", "adversary"} and "near" in rig.placements
    assert cli(["rig", "from-irs", folder, "-o", out]).exit_code == 2  # no silent overwrite
    assert cli(["rig", "check", out, "--placement", "near"]).exit_code == 0
    png = tmp_path / "lab.png"
    assert cli(["rig", "map", out, "-o", png]).exit_code == 0 and png.stat().st_size > 1000

    def synthesize(text, *, engine="espeak", voice=None, sample_rate=16000, seed=0):
        t = np.arange(int(0.8 * sample_rate)) / sample_rate
        return (0.3 * np.sin(2 * np.pi * 220 * t) * np.hanning(t.size)).astype(np.float32)

    monkeypatch.setattr(testbed.data, "synthesize", synthesize, raising=False)
    res = cli(["rig", "listen", out, "--out", tmp_path / "listen", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert {m["mic"] for m in doc["mics"]} == {"ref", "dut"}
    for m in doc["mics"]:
        y, fs = sf.read(m["path"])
        assert fs == 16000 and np.sqrt(np.mean(y[:12800] ** 2)) > 1e-3
