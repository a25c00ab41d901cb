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


def test_auto_reports_which_attack_broke_each_clip(cli, untrained_zoo, tmp_path):
    r = cli(["attack", "eval", "--model", "lm-raw", "--attack", "auto", "--eps", "0.05", "--n", "6",
             "--steps", "3", "--param", "n_queries=4", "--root", untrained_zoo, "--out", tmp_path / "auto",
             "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    (counts,) = res["broken_by"]
    assert list(counts) == ["clean", "apgd-ce", "apgd-dlr", "square", "robust"]
    assert sum(counts.values()) == res["n"] == 6
    t = res["targets"]["lm-raw"]
    # every clip wrong after the cascade was wrong clean or broken by one of the attacks
    assert round(t["error_rate"][0] * 6) == 6 - counts["robust"]
    lo, hi = t["error_interval"][0]
    assert lo <= t["error_rate"][0] <= hi
    r = cli(["attack", "eval", "--model", "lm-raw", "--attack", "auto", "--eps", "0.05", "--n", "3",
             "--steps", "2", "--param", "n_queries=2", "--root", untrained_zoo, "--out", tmp_path / "a2"])
    assert r.exit_code == 0, r.output
    assert "auto, lm-raw eps 0.05: clean" in r.output and "robust" in r.output


def test_eval_prints_intervals_and_paired_tests(cli, quick_zoo, tmp_path):
    r = cli(["attack", "eval", "--model", "lm-fp32", "--attack", "apgd-ce", "--eps", "0.01", "--n", "10",
             "--steps", "4", "--targets", "lm-fp32,lm-int8", "--root", quick_zoo, "--out", tmp_path / "p",
             "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    first, second = res["targets"]["lm-fp32"], res["targets"]["lm-int8"]
    assert first["p_vs_first"] == [None] and first["within_noise"] == [None]
    p = second["p_vs_first"][0]
    assert 0.0 <= p <= 1.0 and second["within_noise"] == [p >= 0.05]
    for t in (first, second):
        lo, hi = t["clean_interval"]
        assert 0.0 <= lo <= t["clean_accuracy"] <= hi <= 1.0
        assert hi - lo > 0.2                         # 10 clips: a wide interval
    r = cli(["attack", "eval", "--model", "lm-fp32", "--attack", "pgd", "--eps", "0.01", "--n", "6",
             "--steps", "2", "--targets", "lm-fp32,lm-int8", "--root", quick_zoo, "--out", tmp_path / "q"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "lm-fp32: clean accuracy 95% CI [" in out
    assert "lm-int8 vs lm-fp32, lm-fp32 eps 0.01 delay 0 ms: error" in out and "exact McNemar p = " in out


def test_non_adaptive_and_adaptive_differ_in_draws(cli, quick_zoo, tmp_path):
    common = ["attack", "eval", "--model", "lm-slr8", "--attack", "pgd", "--eps", "0.01", "--n", "4",
              "--steps", "2", "--root", quick_zoo, "--json"]
    plain = json.loads(cli(common + ["--no-adaptive", "--out", tmp_path / "a"]).stdout)
    eot = json.loads(cli(common + ["--param", "eot_samples=2", "--out", tmp_path / "b"]).stdout)
    assert plain["non_adaptive"] == "fixed-draw" and plain["adaptive"] is False
    assert plain["eot_draws"] == {"lm-slr8": 1}
    assert eot["non_adaptive"] is None and eot["adaptive"] is True
    assert eot["eot_draws"]["lm-slr8"] == 2 * 8           # 2 passes of the 8-member ensemble
    assert eot["targets"]["lm-slr8"]["queries"][0] == 2 * plain["targets"]["lm-slr8"]["queries"][0]


def test_bad_gradient_and_restarts(cli, untrained_zoo):
    r = cli(["attack", "eval", "--model", "lm-raw", "--gradient", "magic", "--root", untrained_zoo])
    _assert_one_line_error(r, "gradient must be one of ste, bpda")
    r = cli(["attack", "eval", "--model", "lm-raw", "--restarts", "0", "--root", untrained_zoo])
    _assert_one_line_error(r, "restarts must be a positive integer")


def test_square_reports_queries_within_its_budget(cli, untrained_zoo, tmp_path):
    r = cli(["attack", "eval", "--model", "lm-raw", "--attack", "square", "--eps", "0.0005", "--n", "3",
             "--steps", "7", "--root", untrained_zoo, "--out", tmp_path / "sq", "--json"])
    assert r.exit_code == 0, r.output
    t = json.loads(r.stdout)["targets"]["lm-raw"]
    assert 1 <= t["queries"][0] <= t["queries_max"][0] <= 7
