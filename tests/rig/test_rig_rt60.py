"""`rig check` shows the RT60 the simulator delivers next to the requested one, and says by how much it misses."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import tomli_w

from testbed.rig import load_rig


def _rig(tmp_path: Path, office_rig_path: Path, **room) -> Path:
    data = tomllib.loads(office_rig_path.read_text())
    data["room"].update(room)
    p = tmp_path / "rig.toml"
    p.write_text(tomli_w.dumps(data))
    return p


def test_rig_check_shows_requested_and_delivered_rt60(cli, tmp_path, office_rig_path):
    path = _rig(tmp_path, office_rig_path, rt60_s=0.3)
    res = cli(["rig", "check", path, "--json"])
    assert res.exit_code == 0, res.output
    rt = json.loads(res.output)["rt60"]
    assert rt["requested_s"] == 0.3
    assert abs(rt["delivered_s"] - 0.3) / 0.3 <= 0.20
    assert rt["within_tolerance"] is True
    assert len(rt["paths"]) == 6  # 2 speakers x 3 mics
    assert all(p["delivered_s"] > 0.1 for p in rt["paths"])
    text = cli(["rig", "check", path])
    assert text.exit_code == 0, text.output
    flat = " ".join(text.output.split())
    assert "RT60 requested 0.30 s, delivered" in flat
    assert "within 20 %" in flat


def test_rig_check_says_by_how_much_the_delivered_rt60_misses(cli, tmp_path, office_rig_path, monkeypatch):
    import testbed.acoustics.delivered as delivered

    monkeypatch.setattr(delivered, "RT60_TOLERANCE", 0.001)  # no simulated room is that exact
    path = _rig(tmp_path, office_rig_path, rt60_s=0.3)
    res = cli(["rig", "check", path])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "misses by more than 0 %" in flat
    assert "from the requested 0.30 s" in flat  # one line per path that misses
    js = json.loads(cli(["rig", "check", path, "--json"]).output)["rt60"]
    assert js["within_tolerance"] is False
    assert abs(js["miss_pct"] - 100 * (js["delivered_s"] - 0.3) / 0.3) < 0.5


def test_band_rt60s_and_directivity_in_a_rig(cli, tmp_path, office_rig_path):
    data = tomllib.loads(office_rig_path.read_text())
    data["room"]["rt60_bands_s"] = [0.45, 0.45, 0.45, 0.35, 0.2, 0.15]
    data["room"]["air_absorption"] = True
    data["speakers"]["adversary"]["directivity"] = "omni"  # the user keeps the default, "model"
    p = tmp_path / "rig.toml"
    p.write_text(tomli_w.dumps(data))
    rig = load_rig(p)
    assert rig.room.rt60_s == 0.4
    from testbed.acoustics.room import source_directivities

    d = source_directivities(rig)
    assert d[0].pattern == "subcardioid" and d[0].facing_deg == 35.0  # small-bookshelf, facing_deg
    assert d[1].pattern == "omni"
    res = cli(["rig", "check", p, "--json"])
    assert res.exit_code == 0, res.output
    rt = json.loads(res.output)["rt60"]
    assert rt["requested_bands_s"] == [0.45, 0.45, 0.45, 0.35, 0.2, 0.15]
    got = dict(zip(rt["bands_hz"], rt["delivered_bands_s"]))
    assert got[500] > got[4000] * 1.5


def test_bad_directivity_is_one_line_exit_2(cli, tmp_path, office_rig_path):
    data = tomllib.loads(office_rig_path.read_text())
    data["speakers"]["user"]["directivity"] = "shotgun"
    p = tmp_path / "rig.toml"
    p.write_text(tomli_w.dumps(data))
    res = cli(["rig", "check", p])
    assert res.exit_code == 2
    assert "directivity" in res.output and "Traceback" not in res.output
