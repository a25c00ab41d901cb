"""Targeted success per target and per source -> target pair, from stored rows only."""

from __future__ import annotations

import pandas as pd
import pytest

from testbed.analysis.targeted import TARGETED_COLUMNS, targeted_lines, targeted_table
from testbed.stats import wilson_interval


def _rows() -> pd.DataFrame:
    """yes -> go: 10 trials x 2 models, 6 say go, 2 say up (errors, not hits), 2 say yes;
    no -> up: 5 trials, all say up; plus untargeted and clean rows that must be ignored."""
    rows = []
    preds = {"yes": ["go"] * 6 + ["up"] * 2 + ["yes"] * 2, "no": ["up"] * 5}
    tgt = {"yes": "go", "no": "up"}
    tid = 0
    for label, ps in preds.items():
        for p in ps:
            tid += 1
            for model in ("lm-fp32", "lm-int8"):
                rows.append(dict(trial_id=tid, label=label, attack="pgd", eps=0.01, target=tgt[label],
                                 model=model, prediction=p, correct=p == label, target_hit=p == tgt[label],
                                 failed=False))
    for i in range(4):
        rows.append(dict(trial_id=100 + i, label="yes", attack="pgd", eps=0.01, target="untargeted",
                         model="lm-fp32", prediction="no", correct=False, target_hit=pd.NA, failed=False))
        rows.append(dict(trial_id=200 + i, label="yes", attack="none", eps=0.0, target="untargeted",
                         model="lm-fp32", prediction="yes", correct=True, target_hit=pd.NA, failed=False))
    rows.append(dict(trial_id=300, label="yes", attack="pgd", eps=0.01, target="go", model="lm-fp32",
                     prediction=None, correct=False, target_hit=pd.NA, failed=True))
    return pd.DataFrame(rows)


def test_success_counts_only_the_target_and_error_is_reported_beside_it():
    t = targeted_table(_rows(), ("model",))
    assert list(t.columns) == ["model", *TARGETED_COLUMNS]
    r = t[(t["model"] == "lm-fp32") & (t["label"] == "yes")].iloc[0]
    assert r["target"] == "go" and r["n"] == 10 and r["hits"] == 6 and r["errors"] == 8
    assert r["success_rate"] == pytest.approx(0.6) and r["error_rate"] == pytest.approx(0.8)
    assert (r["success_lo"], r["success_hi"]) == pytest.approx(wilson_interval(6, 10))
    assert (r["error_lo"], r["error_hi"]) == pytest.approx(wilson_interval(8, 10))
    r = t[(t["model"] == "lm-int8") & (t["label"] == "no")].iloc[0]
    assert (r["target"], r["n"], r["hits"], r["success_rate"]) == ("up", 5, 5, 1.0)
    assert len(t) == 4       # 2 models x 2 pairs: untargeted, clean and failed rows left out


def test_pooled_per_target_and_sentences():
    t = targeted_table(_rows(), per_pair=False)
    assert set(t["label"]) == {"*"}
    go = t[t["target"] == "go"].iloc[0]
    assert (go["n"], go["hits"]) == (20, 12)
    lines = targeted_lines(_rows())
    assert any(line.startswith("yes -> go (model lm-fp32): the DUT said 'go' in 6 of 10 (60% [") for line in lines)


def test_no_targeted_rows_gives_an_empty_table():
    df = _rows()
    df = df[df["target"] == "untargeted"]
    assert targeted_table(df).empty
    assert targeted_lines(df) == []


def test_the_report_findings_carry_the_per_pair_finding():
    from testbed.analysis.findings import findings

    df = _rows()
    df["is_dut_mic"] = True
    df["mic"] = "cheap"
    f = [x for x in findings(df) if x["id"] == "targeted-pairs"]
    assert len(f) == 1
    assert f[0]["values"]["yes->go"]["hits"] == 12 and f[0]["values"]["yes->go"]["n"] == 20
    assert "yes -> go: 60% [" in f[0]["text"]
