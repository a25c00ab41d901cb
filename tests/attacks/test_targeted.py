"""Targeted command injection: a source -> target matrix; success counts only the target."""

from __future__ import annotations

import pytest
import torch

from testbed.attacks.targeted import PAIR_COLUMNS, evaluate_target_matrix, parse_target_matrix
from testbed.errors import AttackError
from testbed.stats import wilson_interval


class Always(torch.nn.Module):
    """Says class ``k`` whatever it hears (the tiny labels)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.labels = ["low", "high", "noise"]
        self.k = k
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(x.shape[0], 3) + 0.0 * self.w
        out[:, self.k] = 1.0
        return out


def test_parse_target_matrix():
    labels = ["yes", "no", "up", "go"]
    assert parse_target_matrix("yes:go, no:up", labels) == [("yes", "go"), ("no", "up")]
    for text, needle in [("yes", "is not SOURCE:TARGET"), ("yes:yes", "at itself"),
                         ("yes:go,yes:up", "given twice"), ("yes:banana", "'banana' is not one of"),
                         ("", "at least one")]:
        with pytest.raises(AttackError, match=needle):
            parse_target_matrix(text, labels)


def test_targeted_attack_reaches_the_target_and_success_counts_only_it(tiny_model, tiny_data):
    x, y = tiny_data
    table = evaluate_target_matrix(
        {"tiny": tiny_model}, {"tiny": tiny_model, "always-noise": Always(2)}, x.numpy(), y.numpy(),
        [("low", "high"), ("high", "low")], kind="pgd", eps=(0.3,), params={"steps": 40}, sample_rate=4000)
    assert list(table.columns) == list(PAIR_COLUMNS)
    assert len(table) == 2 * 2
    own = table[table["target"] == "tiny"].set_index("source_label")
    for src, si in (("low", 0), ("high", 1)):
        r = own.loc[src]
        assert r["n"] == int((y == si).sum()) > 0
        assert r["success_rate"] >= 0.8                  # the tiny model says the target
        assert r["errors"] >= r["hits"]                  # every hit is an error, not the reverse
        assert (r["success_lo"], r["success_hi"]) == pytest.approx(wilson_interval(int(r["hits"]), int(r["n"])))
    # a model that always says "noise" is always wrong, yet never says the target: 0 % success
    other = table[table["target"] == "always-noise"]
    assert (other["error_rate"] == 1.0).all() and (other["success_rate"] == 0.0).all()
    assert (other["success_hi"] < 0.5).all()


def test_a_pair_without_clips_reports_nan(tiny_model, tiny_data):
    x, y = tiny_data
    keep = y != 0
    table = evaluate_target_matrix({"tiny": tiny_model}, {"tiny": tiny_model}, x[keep].numpy(), y[keep].numpy(),
                                   [("low", "high")], eps=(0.01,), params={"steps": 2}, sample_rate=4000)
    assert table["n"].tolist() == [0] and table["success_rate"].isna().all()


def test_cli_target_matrix_prints_per_pair_intervals(cli, untrained_zoo, tmp_path):
    import json

    import pandas as pd

    out = tmp_path / "tm"
    args = ["attack", "eval", "--model", "lm-raw", "--eps", "0.01", "--n", "40", "--steps", "2",
            "--target-matrix", "yes:go,no:up", "--root", untrained_zoo, "--out", out]
    r = cli(args)
    assert r.exit_code == 0, r.output
    assert "yes->go" in r.output and "no->up" in r.output and "hit % [CI]" in r.output, r.output
    assert "masked %" in r.output, r.output
    table = pd.read_csv(out / "targeted.csv")
    assert set(zip(table["source_label"], table["target_label"])) == {("yes", "go"), ("no", "up")}
    clips = pd.read_csv(out / "targeted_clips.csv")     # one row per attacked clip, hits add up
    for row in table.itertuples():
        mine = clips[(clips["source_label"] == row.source_label) & (clips["target"] == row.target)]
        assert len(mine) == row.n and int(mine["hit"].sum()) == row.hits
    assert (out / "targeted_tradeoff.png").stat().st_size > 0
    for row in table.itertuples():   # the printed interval is the stored Wilson interval
        if row.n:
            lo, hi = wilson_interval(int(row.hits), int(row.n))
            assert f"[{100 * lo:.1f}-{100 * hi:.1f}]" in r.output
    r = cli(args + ["--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["pairs"] == [["yes", "go"], ["no", "up"]]
    for row in res["rows"]:
        k, n = row["success"]["k"], row["n"]
        assert row["success"]["ci95"] == pytest.approx(list(wilson_interval(k, n)))
        assert row["error"]["k"] >= k and "frames_above" in row and "loudness_lufs" in row
        assert row["masked_success"]["k"] <= k
    at_one = {(t["source_label"], t["target"]): t["k"] for t in res["tradeoff"] if t["fraction"] == 1.0}
    assert at_one == {(r["source_label"], r["target"]): r["success"]["k"] for r in res["rows"]}


def test_cli_target_matrix_rejects_a_bad_pair(cli, untrained_zoo):
    r = cli(["attack", "eval", "--model", "lm-raw", "--target-matrix", "yes:banana", "--root", untrained_zoo])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "--target-matrix: label 'banana' is not one of the model's labels" in r.output
    r = cli(["attack", "eval", "--model", "lm-raw", "--target-matrix", "yes:go", "--target-label", "up",
             "--root", untrained_zoo])
    assert r.exit_code == 2 and "not both" in r.output


def test_masked_success_counts_only_hits_under_the_threshold(tiny_model, tiny_data):
    """A hit counts as masked only when at most 5 % of its frames are above the masking threshold."""
    x, y = tiny_data
    loud = evaluate_target_matrix({"tiny": tiny_model}, {"tiny": tiny_model, "always-high": Always(1)},
                                  x.numpy(), y.numpy(), [("low", "high")], kind="pgd", eps=(0.3,),
                                  params={"steps": 10}, sample_rate=4000)
    for r in loud.itertuples():
        assert r.masked_hits <= r.hits
    always = loud[loud["target"] == "always-high"].iloc[0]
    # every clip says the target, but a 0.3 L-inf perturbation is far above the threshold
    assert always["hits"] == always["n"] > 0 and always["frames_above"] > 0.5
    assert always["masked_hits"] == 0 and always["masked_success_hi"] < 0.5
    # with no perturbation at all (eps so small PGD leaves nothing audible) every hit is masked
    quiet = evaluate_target_matrix({"tiny": tiny_model}, {"always-high": Always(1)}, x.numpy(), y.numpy(),
                                   [("low", "high")], kind="pgd", eps=(1e-7,), params={"steps": 1},
                                   sample_rate=4000).iloc[0]
    assert quiet["frames_above"] <= 0.05
    assert quiet["masked_hits"] == quiet["hits"] == quiet["n"] > 0
    assert (quiet["masked_success_lo"], quiet["masked_success_hi"]) == pytest.approx(
        wilson_interval(int(quiet["masked_hits"]), int(quiet["n"])))


def test_tradeoff_counts_hits_under_each_allowed_fraction():
    from testbed.attacks.targeted import tradeoff

    base = {"source": "m", "target": "m", "eps": 0.005, "delay_ms": 0.0, "source_label": "yes", "target_label": "go"}
    clips = [{**base, "clip": i, "hit": h, "frames_above": f, "snr_db": 30.0}
             for i, (h, f) in enumerate([(True, 0.0), (True, 0.04), (True, 0.3), (False, 0.0), (True, float("nan"))])]
    curve = tradeoff(clips, fractions=(0.0, 0.05, 0.5, 1.0)).set_index("fraction")
    assert curve["k"].tolist() == [1, 2, 3, 4] and (curve["n"] == 5).all()   # non-decreasing in f
    assert (curve.loc[1.0, "lo"], curve.loc[1.0, "hi"]) == pytest.approx(wilson_interval(4, 5))
