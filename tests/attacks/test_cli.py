"""`testbed attack eval`: bad arguments exit 2 with one line; a real run writes CSV, plots, JSON."""

from __future__ import annotations

import json

import pandas as pd
import pytest


def _assert_one_line_error(result, *needles):
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, out
    for n in needles:
        assert n in out, out


@pytest.mark.parametrize("eps, needle", [("0", "--eps: 0 is not in (0, 1]"),
                                         ("0.01,-0.5", "--eps: -0.5 is not in (0, 1]"),
                                         ("abc", "--eps: 'abc' is not a number")])
def test_bad_eps(cli, untrained_zoo, eps, needle):
    r = cli(["attack", "eval", "--model", "lm-raw", "--eps", eps, "--root", untrained_zoo])
    _assert_one_line_error(r, needle)


def test_unknown_attack(cli, untrained_zoo):
    r = cli(["attack", "eval", "--model", "lm-raw", "--attack", "deepfool", "--root", untrained_zoo])
    _assert_one_line_error(r, "unknown attack 'deepfool'", "pgd")


def test_unknown_model(cli, untrained_zoo):
    r = cli(["attack", "eval", "--model", "lm-nope", "--root", untrained_zoo])
    _assert_one_line_error(r, "unknown model 'lm-nope'", "lm-raw")
    r = cli(["attack", "eval", "--model", "lm-raw", "--targets", "lm-raw,lm-gone", "--root", untrained_zoo])
    _assert_one_line_error(r, "unknown model 'lm-gone'")


def test_target_label_not_in_model(cli, untrained_zoo):
    r = cli(["attack", "eval", "--model", "lm-raw", "--target-label", "banana", "--root", untrained_zoo])
    _assert_one_line_error(r, "target label 'banana' is not one of the model's labels", "yes")


def test_bad_hyper_parameters(cli, untrained_zoo):
    r = cli(["attack", "eval", "--model", "lm-raw", "--steps", "0", "--root", untrained_zoo])
    _assert_one_line_error(r, "steps must be a positive integer")
    r = cli(["attack", "eval", "--model", "lm-raw", "--param", "wobble=3", "--root", untrained_zoo])
    _assert_one_line_error(r, "unknown parameter 'wobble'")
    r = cli(["attack", "eval", "--model", "lm-raw", "--attack", "ota-pgd", "--root", untrained_zoo])
    _assert_one_line_error(r, "--rig")
    r = cli(["attack", "eval", "--model", "lm-raw", "--loss", "hinge", "--root", untrained_zoo])
    _assert_one_line_error(r, "loss must be one of ce, margin, got 'hinge'")


def test_eval_writes_csv_plots_and_json(cli, quick_zoo, tmp_path):
    out = tmp_path / "ev"
    r = cli(["attack", "eval", "--model", "lm-fp32", "--attack", "pgd", "--eps", "0.001,0.05",
             "--targets", "lm-fp32,lm-int8", "--delay-ms", "0,500", "--n", "12", "--steps", "5",
             "--root", quick_zoo, "--out", out, "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert set(res["targets"]) == {"lm-fp32", "lm-int8"}
    assert len(res["settings"]) == 4
    for name, t in res["targets"].items():
        assert {"clean_accuracy", "error_rate", "success_rate", "snr_db", "queries"} <= set(t)
        assert len(t["error_rate"]) == 4
    fp = res["targets"]["lm-fp32"]
    by = {(s["eps"], s["delay_ms"]): e for s, e in zip(res["settings"], fp["error_rate"])}
    assert by[(0.05, 0.0)] >= by[(0.001, 0.0)]
    assert by[(0.05, 0.0)] > 1.0 - fp["clean_accuracy"]    # the attack adds errors
    snr = {(s["eps"], s["delay_ms"]): v for s, v in zip(res["settings"], fp["snr_db"])}
    assert snr[(0.001, 0.0)] > snr[(0.05, 0.0)] + 20       # 34 dB apart in bound
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 8 and set(table["target"]) == {"lm-fp32", "lm-int8"}
    for png in ("error_vs_eps.png", "error_vs_delay.png", "transfer.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert res["loss"] == "ce"


def test_eval_with_the_margin_loss_says_so_and_attacks(cli, quick_zoo, tmp_path):
    r = cli(["attack", "eval", "--model", "lm-fp32", "--attack", "pgd", "--eps", "0.05", "--n", "12",
             "--steps", "5", "--loss", "margin", "--root", quick_zoo, "--out", tmp_path / "ev", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["loss"] == "margin"
    fp = res["targets"]["lm-fp32"]
    assert fp["error_rate"][0] > 1.0 - fp["clean_accuracy"]
    r = cli(["attack", "eval", "--model", "lm-fp32", "--attack", "fgsm", "--eps", "0.05", "--n", "4",
             "--loss", "margin", "--root", quick_zoo, "--out", tmp_path / "ev2"])
    assert r.exit_code == 0, r.output
    assert "objective: margin" in r.output
