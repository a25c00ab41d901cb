"""scripts/measured_rooms_table.py end to end on the quick zoo with synthetic room IRs."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import soundfile as sf

from testbed.acoustics import sample_channel
from testbed.rig import load_rig
from tests.acoustics.irs import synthetic_ir
from tests.conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("measured_rooms_table", REPO / "scripts" / "measured_rooms_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def rooms(tmp_path):
    """Two rooms: a 44.1 kHz mono clap (loud, as recorded) and a 48 kHz two-channel one."""
    d = tmp_path / "rooms"
    d.mkdir()
    sf.write(d / "hall.wav", 0.9 * synthetic_ir(44100, rt60_s=0.8, seed=1), 44100, subtype="PCM_16")
    two = np.stack([synthetic_ir(48000, rt60_s=0.3, seed=2), synthetic_ir(48000, rt60_s=0.3, seed=3)], axis=1)
    sf.write(d / "booth.flac", 0.5 * two, 48000, subtype="PCM_24")
    (d / "README.md").write_text("two rooms")
    return d


def test_the_table_has_crafting_fresh_and_every_measured_room(quick_zoo, rooms, tmp_path, office_rig_path):
    mod = _script()
    out, keep = tmp_path / "out", tmp_path / "rigs"
    res = mod.main(["--root", quick_zoo, "--rig", office_rig_path, "--irs", rooms, "--model", "lm-fp32",
                    "--eps", "0.01,0.005", "--n", "4", "--steps", "1", "--param", "n_channels=2",
                    "--param", "eot_samples=1", "--eval-channels", "2", "--out", out, "--keep", keep, "--json"])
    assert [r["room"] for r in res["rooms"]] == ["booth", "hall"]
    assert [r["channels"] for r in res["rooms"]] == [2, 1]
    assert res["eps"] == [0.01, 0.005]
    for eps in (0.01, 0.005):
        rows = [r for r in res["rows"] if r["eps"] == eps]
        assert [(r["channels"], r["where"]) for r in rows] == [
            ("a", "office-sim (crafting channels)"), ("b", "office-sim (fresh simulated draws)"),
            ("c", "booth"), ("c", "hall")]
        for r in rows:
            for k in ("clean_error", "digital_pgd_error", "ota_pgd_error"):
                assert r[k]["n"] == 4 and 0 <= r[k]["ci95"][0] <= r[k]["value"] <= r[k]["ci95"][1] <= 1
            assert r["gap_vs_craft"]["value"] == pytest.approx(rows[0]["ota_pgd_error"]["value"]
                                                               - r["ota_pgd_error"]["value"])
    # gain_db brings each room's mean path energy to the simulated rig's
    office = load_rig(office_rig_path)
    target = mod.simulated_energy_db(office)
    for room in res["rooms"]:
        rig = load_rig(keep / room["room"] / "rig.toml")
        assert rig.room.model == "measured" and list(rig.mics) == [office.dut.mic]
        ch = sample_channel(rig, rig.dut.mic, None, rng=np.random.default_rng(0))
        got = np.mean([mod.energy_db(ch.h[s]) for s in ("user", "adversary")])
        assert got == pytest.approx(np.mean(list(target.values())), abs=0.1)
    assert abs(res["rooms"][1]["gain_db"]) > 5   # the loud clap really was turned down
    assert json.loads((out / "table.json").read_text()) == res
    md = (out / "table.md").read_text()
    assert md.count("| 0.01 | (c) ") == 2 and "| 0.005 | (a) office-sim (crafting channels)" in md


def test_a_folder_without_irs_stops_with_one_line(quick_zoo, tmp_path, office_rig_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no .wav or .flac"):
        _script().main(["--root", quick_zoo, "--rig", office_rig_path, "--irs", tmp_path / "empty"])
