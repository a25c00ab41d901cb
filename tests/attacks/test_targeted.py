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
