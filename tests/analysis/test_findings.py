"""Findings are computed from the data: their numbers match the tables, and they change with it."""

from __future__ import annotations

import pytest

from testbed.analysis import findings, rate_table
from testbed.analysis.findings import mic_difference, pgd_vs_fgsm_delay


def by_id(fs):
    return {f["id"]: f for f in fs}


def test_findings_state_the_synthetic_effects(evals):
    fs = by_id(findings(evals))
    dut = evals[evals["is_dut_mic"]]
    c = fs["clean_vs_attack"]
    clean = rate_table(dut[dut["attack"] == "none"]).iloc[0]
    assert c["values"]["clean"]["rate"] == pytest.approx(clean["error_rate"])
    assert c["values"]["attacked"]["rate"] > c["values"]["clean"]["rate"]
    assert "clearly above the clean error" in c["text"]
    assert f"{100 * clean['error_rate']:.0f}%" in c["text"]

    p = fs["pgd_vs_fgsm_delay"]
    assert p["values"]["pgd"]["rate"] > p["values"]["fgsm"]["rate"]
    assert "100-250 ms" in p["text"] and "PGD is clearly above FGSM" in p["text"]

    m = fs["mic_difference"]
    assert m["text"].startswith("On the same attacked trials, the electret-cheap mic 'cheap' is fooled")
    assert "a significant difference" in m["text"]

    pos = fs["position_effect"]
    assert pos["text"].startswith("With the adversary at P2")
    strongest = [f for f in fs.values() if f["id"].startswith("strongest:")]
    assert strongest and all("at the electret-cheap mic 'cheap'" in f["text"] for f in strongest)
    assert "replay" in fs and "lm-lowrank" in fs["replay"]["text"]


def test_findings_follow_the_data(evals):
    # make the reference mic the bad one: the sentence must swap
    df = evals.copy()
    df["mic"] = df["mic"].map({"cheap": "ref", "ref": "cheap"})
    df["mic_tier"] = df["mic_tier"].map({"electret-cheap": "reference", "reference": "electret-cheap"})
    assert mic_difference(df)["text"].startswith("On the same attacked trials, the reference mic 'ref'")
    # without FGSM there is nothing to compare PGD with
    assert pgd_vs_fgsm_delay(evals[evals["attack"] != "fgsm"]) is None
    # with FGSM always wrong the verdict turns
    df = evals.copy()
    df.loc[df["attack"] == "fgsm", "correct"] = False
    assert "PGD is clearly below FGSM" in pgd_vs_fgsm_delay(df)["text"]


def test_a_difference_inside_the_noise_is_reported_as_such(evals):
    """Attacked error a little above clean error, with overlapping intervals: not called "above"."""
    from testbed.analysis.findings import clean_vs_attack

    dut = evals[evals["is_dut_mic"]]
    utts = sorted(set(dut["utterance_id"]))[:10]
    df = dut[dut["utterance_id"].isin(utts) & dut["attack"].isin(["none", "pgd"])].copy()
    df["correct"] = True
    clean, att = df[df["attack"] == "none"].index, df[df["attack"] == "pgd"].index
    df.loc[clean[: max(1, len(clean) // 10)], "correct"] = False          # ~10 % clean error
    df.loc[att[: max(2, len(att) // 8)], "correct"] = False              # ~12 % attacked
    c = clean_vs_attack(df)
    assert c["values"]["attacked"]["rate"] > c["values"]["clean"]["rate"]
    assert "within the noise of the clean error" in c["text"] and "clearly" not in c["text"]
