"""The held-out-channel protocol: craft over the air through one rig, evaluate through others."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import tomli_w

from testbed.analysis.stats import wilson_interval
from testbed.attacks.heldout import Rate, gap, heldout_eval
from testbed.rig import load_rig
from tests.acoustics.irs import measured_rig


def test_rate_and_gap_intervals():
    r = Rate.of(np.array([1, 1, 0, 1] * 5, dtype=bool))
    assert r.value == 0.75 and r.n == 20 and r.ci95 == pytest.approx(wilson_interval(15, 20))
    same = gap(r, r)
    assert same["value"] == 0 and same["ci95"][0] < 0 < same["ci95"][1]
    lo = Rate.of(np.zeros(20, dtype=bool))
    g = gap(r, lo)
    assert g["value"] == 0.75 and 0 < g["ci95"][0] < 0.75 < g["ci95"][1] <= 1.0


def _rigs(tmp_path, office_rig_path):
    sim = tmp_path / "sim"
    sim.mkdir()
    data = tomllib.loads(office_rig_path.read_text())
    data["room"]["rt60_s"] = 0.2
    (sim / "office.toml").write_text(tomli_w.dumps(data))
    meas = tmp_path / "meas"
    meas.mkdir()
    return load_rig(sim / "office.toml"), load_rig(measured_rig(meas, office_rig_path))


def test_heldout_eval_plays_the_same_perturbations_through_every_rig(tiny_model, tiny_data, tmp_path,
                                                                      office_rig_path):
    x, y = tiny_data
    craft_rig, measured = _rigs(tmp_path, office_rig_path)
    params = {"steps": 3, "n_channels": 2, "eot_samples": 1, "delay_ms": (0.0, 0.0)}
    rows = heldout_eval(tiny_model, x[:12].numpy(), y[:12].numpy(), craft_rig=craft_rig,
                        eval_rigs=[craft_rig, measured], eps=[0.05], params=params, n_eval_channels=2, seed=1)
    assert [(r.kind, r.rig) for r in rows] == [("craft", "office-sim"), ("sim", "office-sim"),
                                               ("measured", "office-measured")]
    for r in rows:
        assert r.n == 12 and r.error_rate.n == 12
        assert r.clean_error.ci95[0] <= r.clean_error.value <= r.clean_error.ci95[1]
    assert rows[0].gap_vs_craft["value"] == 0.0
    assert rows[2].gap_vs_craft["value"] == pytest.approx(rows[0].error_rate.value - rows[2].error_rate.value)
    # the same seed gives the same numbers
    again = heldout_eval(tiny_model, x[:12].numpy(), y[:12].numpy(), craft_rig=craft_rig,
                         eval_rigs=[craft_rig, measured], eps=[0.05], params=params, n_eval_channels=2, seed=1)
    assert [r.as_dict() for r in again] == [r.as_dict() for r in rows]


def test_cli_eval_rig_reports_one_row_per_eval_rig(cli, untrained_zoo, tmp_path, office_rig_path):
    craft_rig, measured = _rigs(tmp_path, office_rig_path)
    out = tmp_path / "ho"
    r = cli(["attack", "eval", "--model", "lm-raw", "--attack", "ota-pgd", "--eps", "0.01", "--n", "6",
             "--steps", "2", "--param", "n_channels=2", "--param", "eot_samples=1",
             "--rig", craft_rig.source, "--eval-rig", craft_rig.source, "--eval-rig", measured.source,
             "--eval-channels", "2", "--eval-jitter-m", "0.4", "--root", untrained_zoo, "--out", out, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["rig"] for row in doc["eval_rigs"]] == ["office-sim", "office-measured"]
    assert [row["kind"] for row in doc["eval_rigs"]] == ["sim", "measured"]
    assert len(doc["craft"]) == 1 and doc["eval_jitter_m"] == 0.4
    for row in doc["eval_rigs"]:
        assert row["n"] == 6
        for k in ("clean_error", "error_rate", "digital_pgd_error"):
            lo, hi = row[k]["ci95"]
            assert 0 <= lo <= row[k]["value"] <= hi <= 1
        assert row["gap_vs_craft"]["value"] == pytest.approx(
            doc["craft"][0]["error_rate"]["value"] - row["error_rate"]["value"])
    assert json.loads((out / "heldout.json").read_text()) == doc
    bad = cli(["attack", "eval", "--model", "lm-raw", "--attack", "pgd", "--eval-rig", measured.source,
               "--n", "2", "--root", untrained_zoo, "--out", out])
    assert bad.exit_code == 2 and "ota-pgd" in bad.output and "Traceback" not in bad.output
