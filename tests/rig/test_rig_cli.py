"""Rig files through the CLI: every bad-rig case is one line, exit 2, naming the field; check, map, init, listen."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tomli_w

from testbed.rig import SPEED_OF_SOUND_M_S, load_rig


def write_rig(tmp_path: Path, office_rig_path: Path, edit, name: str = "rig.toml") -> Path:
    """Copy the office rig with ``edit(data)`` applied and return the new file."""
    data = tomllib.loads(office_rig_path.read_text())
    edit(data)
    p = tmp_path / name
    p.write_text(tomli_w.dumps(data))
    return p


def _unknown_key(d):
    d["speakers"]["user"]["volume"] = 3


def _missing_key(d):
    del d["mics"]["ref"]["position_m"]


def _wrong_type(d):
    d["room"]["rt60_s"] = "long"


def _outside(d):
    d["mics"]["cheap"]["position_m"] = [3.2, 7.5, 1.0]


def _two_users(d):
    d["speakers"]["adversary"]["role"] = "user"


def _unknown_tier(d):
    d["mics"]["phone"]["tier"] = "studio-condenser"


def _missing_csv(d):
    d["mics"]["phone"]["tier"] = "responses/phone.csv"


def _bad_placement(d):
    d["placements"]["P2"]["adversary"] = [9.0, 2.6, 1.0]


BAD_RIGS = {
    "unknown key": (_unknown_key, "speakers.user.volume", "unknown field"),
    "missing key": (_missing_key, "mics.ref.position_m", "required"),
    "wrong type": (_wrong_type, "room.rt60_s", "'long'"),
    "position outside the room": (_outside, "mics.cheap.position_m", "outside the room"),
    "two speakers with the same role": (_two_users, "speakers", "role 'user'"),
    "unknown mic tier": (_unknown_tier, "mics.phone.tier", "studio-condenser"),
    "unreadable response CSV": (_missing_csv, "mics.phone.tier", "phone.csv"),
    "placement outside the room": (_bad_placement, "placements.P2.adversary", "outside the room"),
}


def assert_one_line_error(res, *needles: str) -> str:
    assert res.exit_code == 2, res.output
    out = res.output
    assert "Traceback" not in out
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, out
    for n in needles:
        assert n in out, (n, out)
    return out


@pytest.mark.parametrize("case", list(BAD_RIGS))
def test_bad_rig_is_one_line_exit_2_naming_the_field(cli, tmp_path, office_rig_path, case):
    edit, field, what = BAD_RIGS[case]
    path = write_rig(tmp_path, office_rig_path, edit)
    res = cli(["rig", "check", path])
    assert_one_line_error(res, str(path), field, what)


def test_unreadable_csv_content_names_the_line(cli, tmp_path, office_rig_path):
    (tmp_path / "resp.csv").write_text("hz,db\n100,-3\n1000,zero\n")
    path = write_rig(tmp_path, office_rig_path, lambda d: d["mics"]["phone"].update(tier="resp.csv"))
    res = cli(["rig", "check", path])
    assert_one_line_error(res, "mics.phone.tier", "line 3", "1000,zero")


def test_malformed_toml_and_missing_file(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[room\n")
    assert_one_line_error(cli(["rig", "check", bad]), str(bad), "malformed TOML")
    assert_one_line_error(cli(["rig", "check", tmp_path / "nope.toml"]), "nope.toml", "no such file")


def test_unknown_placement_is_an_error(cli, office_rig_path):
    assert_one_line_error(cli(["rig", "check", office_rig_path, "--placement", "P9"]), "P9", "P1")


def test_csv_tier_rig_is_valid(cli, tmp_path, office_rig_path):
    (tmp_path / "resp.csv").write_text("# measured\nhz,db\n50,-20\n200,-2\n1000,0\n6000,3\n8000,-10\n")
    path = write_rig(tmp_path, office_rig_path, lambda d: d["mics"]["phone"].update(tier="resp.csv"))
    res = cli(["rig", "check", path])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("ok")


def test_rig_check_json_geometry_matches_positions(cli, office_rig_path):
    res = cli(["rig", "check", office_rig_path, "--json", "--placement", "P2"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    rig = load_rig(office_rig_path)
    assert doc["rig"] == "office-sim" and doc["placement"] == "P2"
    assert len(doc["paths"]) == len(rig.speakers) * len(rig.mics)
    pos = rig.positions("P2")
    for p in doc["paths"]:
        d = math.dist(pos[p["speaker"]], pos[p["mic"]])
        assert p["distance_m"] == pytest.approx(d)
        assert p["delay_ms"] == pytest.approx(d / SPEED_OF_SOUND_M_S * 1e3)
        assert p["delay_samples"] == pytest.approx(d / SPEED_OF_SOUND_M_S * 16000)
        assert 0.0 <= p["angle_deg"] <= 180.0
    adv = [p for p in doc["paths"] if p["speaker"] == "adversary" and p["mic"] == "ref"][0]
    assert adv["distance_m"] == pytest.approx(math.dist((3.8, 2.6, 1.0), (3.0, 2.5, 1.0)))


def test_rig_check_table(cli, office_rig_path):
    res = cli(["rig", "check", office_rig_path])
    assert res.exit_code == 0, res.output
    assert "office-sim" in res.output and "adversary" in res.output and "cheap" in res.output


def test_rig_map_writes_a_png(cli, tmp_path, office_rig_path):
    out = tmp_path / "maps" / "office.png"
    res = cli(["rig", "map", office_rig_path, "-o", out, "--placement", "P3"])
    assert res.exit_code == 0, res.output
    head = out.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert np.std(img[..., :3]) > 0.05  # something was drawn


def test_init_creates_a_workspace_with_valid_example_rigs(cli, tmp_path):
    ws = tmp_path / "lab"
    res = cli(["init", ws])
    assert res.exit_code == 0, res.output
    for sub in ("rigs", "calibration", "sessions/plans", "analysis"):
        assert (ws / sub).is_dir(), sub
    rigs = sorted((ws / "rigs").glob("*.toml"))
    assert len(rigs) >= 2
    backends = {load_rig(p).backend for p in rigs}
    assert "sim" in backends and backends & {"sounddevice", "pyaudio"}
    for p in rigs:
        assert cli(["rig", "check", p]).exit_code == 0
    # a second init keeps what the operator edited
    (ws / "rigs" / rigs[0].name).write_text("# mine\n" + rigs[0].read_text())
    assert cli(["init", ws]).exit_code == 0
    assert (ws / "rigs" / rigs[0].name).read_text().startswith("# mine")


def test_rig_listen_writes_one_flac_per_mic(cli, tmp_path, office_rig_path, monkeypatch):
    import testbed.data

    def synthesize(text, *, engine="espeak", voice=None, sample_rate=16000, seed=0):
        # a vowel-like stand-in for speech: 0.8 s of harmonics under an envelope
        t = np.arange(int(0.8 * sample_rate)) / sample_rate
        sig = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12)) * np.hanning(t.size)
        return (0.5 * sig / np.max(np.abs(sig))).astype(np.float32)

    monkeypatch.setattr(testbed.data, "synthesize", synthesize, raising=False)
    out = tmp_path / "listen"
    res = cli(["rig", "listen", office_rig_path, "--out", out, "--placement", "P2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    rig = load_rig(office_rig_path)
    assert {m["mic"] for m in doc["mics"]} == set(rig.mics)
    for m in doc["mics"]:
        y, fs = sf.read(m["path"])
        assert fs == 16000 and y.ndim == 1
        assert y.size == round(doc["record_s"] * fs)
        utt = y[: int(0.8 * fs)]
        burst = y[int(doc["burst_start_s"] * fs) + 400: int((doc["burst_start_s"] + 0.5) * fs)]
        gap = y[int(0.95 * fs): int((doc["burst_start_s"] - 0.05) * fs)]
        # both the utterance and the burst are clearly above the gap between them
        assert np.sqrt(np.mean(utt**2)) > 3 * np.sqrt(np.mean(gap**2)), m["mic"]
        assert np.sqrt(np.mean(burst**2)) > 3 * np.sqrt(np.mean(gap**2)), m["mic"]
        assert m["rms_dbfs"] < 0 and m["clipped_samples"] == 0
    assert doc["facts"]["placement"] == "P2"


def test_rig_listen_table_output(cli, tmp_path, office_rig_path, monkeypatch):
    import testbed.data

    monkeypatch.setattr(testbed.data, "synthesize",
                        lambda text, **kw: np.sin(np.linspace(0, 2000, 8000)).astype(np.float32),
                        raising=False)
    res = cli(["rig", "listen", office_rig_path, "--out", tmp_path])
    assert res.exit_code == 0, res.output
    for mic in ("ref", "phone", "cheap"):
        assert mic in res.output
        assert (tmp_path / f"{mic}.flac").is_file()


def test_rig_listen_without_synthesiser_is_a_clear_error(cli, tmp_path, office_rig_path, monkeypatch):
    import testbed.data

    monkeypatch.delattr(testbed.data, "synthesize", raising=False)
    res = cli(["rig", "listen", office_rig_path, "--out", tmp_path])
    assert_one_line_error(res, "synthes")
    assert not list(tmp_path.glob("*.flac"))
