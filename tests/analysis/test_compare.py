"""Paired mic comparisons on the synthetic store (cheap mic is worse by construction)."""

from __future__ import annotations

import pandas as pd
import pytest

from testbed.analysis import all_mic_pairs, compare_mics, paired_errors
from testbed.errors import AnalysisError


def test_pairs_are_the_same_trial_and_model(evals):
    pairs = paired_errors(evals[evals["attack"] != "none"], "cheap", "ref")
    att = evals[(evals["attack"] != "none")]
    # one pair per (session, trial, model, source) -> half the attacked rows (two mics)
    assert len(pairs) == len(att) // 2
    row = pairs.index[0]
    sel = att[(att["trial_id"] == row[1]) & (att["model"] == row[2])].set_index("mic")
    assert pairs.iloc[0]["cheap"] == (not sel.loc["cheap", "correct"])
    assert pairs.iloc[0]["ref"] == (not sel.loc["ref", "correct"])


def test_cheap_mic_is_significantly_worse_under_attack(evals):
    r = compare_mics(evals, "cheap", "ref")
    att = evals[evals["attack"] != "none"]
    assert r.error_a == pytest.approx((~att[att["mic"] == "cheap"]["correct"]).mean())
    assert r.error_b == pytest.approx((~att[att["mic"] == "ref"]["correct"]).mean())
    assert r.error_a > r.error_b and r.a_only > r.b_only
    assert r.p_value < 1e-6


def test_same_mic_twice_gives_no_difference(evals):
    df = evals.copy()
    twin = df[df["mic"] == "ref"].copy()
    twin["mic"] = "ref2"
    r = compare_mics(pd.concat([df, twin]), "ref", "ref2")
    assert r.a_only == r.b_only == 0 and r.p_value == 1.0


def test_unknown_mic_is_named(evals):
    with pytest.raises(AnalysisError, match="'phone'.*have: cheap, ref"):
        compare_mics(evals, "cheap", "phone")


def test_all_pairs_carries_tiers(evals):
    (p,) = all_mic_pairs(evals)
    assert {p["mic_a"], p["mic_b"]} == {"cheap", "ref"}
    assert p["tier_a"] == "electret-cheap" and p["tier_b"] == "reference"
