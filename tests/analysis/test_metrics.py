"""Grouping by every dimension on a synthetic store gives exactly the brute-force counts."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from testbed.analysis import clean_accuracy, rate_table, resolve_dimensions, wilson_interval
from testbed.analysis.dimensions import bits_of, ensemble_size_of, with_dimensions
from testbed.errors import AnalysisError


def brute_force(df: pd.DataFrame, key) -> dict:
    """{group: (errors, n)} by plain iteration, independent of pandas groupby."""
    counts: dict = defaultdict(lambda: [0, 0])
    for row in df.to_dict(orient="records"):
        if row["failed"]:
            continue
        g = key(row)
        counts[g][0] += 0 if row["correct"] else 1
        counts[g][1] += 1
    return {k: tuple(v) for k, v in counts.items()}


def assert_table(table: pd.DataFrame, dims: list[str], expected: dict) -> None:
    got = {}
    for r in table.to_dict(orient="records"):
        k = tuple(r[d] for d in dims)
        got[k if len(k) > 1 else k[0]] = (r["errors"], r["n"])
        lo, hi = wilson_interval(r["errors"], r["n"])
        assert r["error_lo"] == pytest.approx(lo) and r["error_hi"] == pytest.approx(hi)
        assert r["error_rate"] == pytest.approx(r["errors"] / r["n"])
    assert got == expected


@pytest.mark.parametrize("dim", ["model", "model_variant", "attack", "eps", "delay_ms", "mic", "mic_tier",
                                 "placement", "source_model", "eval_source", "session_id"])
def test_group_by_store_column(evals, dim):
    t = rate_table(evals, [dim])
    expected = brute_force(evals, lambda r: "n/a" if pd.isna(r[dim]) else r[dim])
    assert_table(t, [dim], expected)


def test_group_by_two_dimensions_with_aliases(evals):
    t = rate_table(evals, ["tier", "delay"])
    assert list(t.columns[:2]) == ["mic_tier", "delay_ms"]
    assert_table(t, ["mic_tier", "delay_ms"], brute_force(evals, lambda r: (r["mic_tier"], r["delay_ms"])))


def _bin(edges, labels, v):
    for lo, hi, lab in zip(edges[:-1], edges[1:], labels):
        if lo <= v <= hi if lo == edges[0] else lo < v <= hi:
            return lab
    return "n/a"


def test_distance_and_ratio_bins(evals):
    from testbed.analysis.dimensions import DIST_EDGES_M, RATIO_EDGES, _labels

    t = rate_table(evals, ["distance"])
    labs = _labels(DIST_EDGES_M, "m")
    assert_table(t, ["dist_adv_bin"], brute_force(evals, lambda r: _bin(DIST_EDGES_M, labs, r["dist_adv_m"])))
    t = rate_table(evals, ["ratio"])
    labs = _labels(RATIO_EDGES, "")
    assert_table(t, ["dist_ratio_bin"], brute_force(
        evals, lambda r: _bin(RATIO_EDGES, labs, r["dist_adv_m"] / r["dist_user_m"])))
    # the real office rig: P2 brings the adversary closer to the DUT mic than the user is
    assert set(t["dist_ratio_bin"]) >= {"0-0.5", "0.8-1.25"}


def test_angle_bins(evals):
    from testbed.analysis.dimensions import ANGLE_EDGES_DEG, _labels

    labs = _labels(ANGLE_EDGES_DEG, "deg")
    for alias, col in (("angle", "angle_adv_deg"), ("angle_user", "angle_user_deg")):
        t = rate_table(evals, [alias])
        dim = t.columns[0]
        assert_table(t, [dim], brute_force(evals, lambda r: _bin(ANGLE_EDGES_DEG, labs, r[col])))


def test_spr_is_the_dut_mics_spr_for_every_mic_of_a_trial(evals):
    from testbed.analysis.dimensions import SPR_EDGES_DB, _labels

    labs = _labels(SPR_EDGES_DB, "dB")
    dut_spr = {(r["session_id"], r["trial_id"]): r["spr_db"]
               for r in evals.to_dict(orient="records") if r["is_dut_mic"]}
    expected = brute_force(evals, lambda r: "n/a" if np.isnan(dut_spr[(r["session_id"], r["trial_id"])])
                           else _bin(SPR_EDGES_DB, labs, dut_spr[(r["session_id"], r["trial_id"])]))
    t = rate_table(evals, ["spr"])
    assert_table(t, ["spr_bin"], expected)
    # a reference-mic row gets its trial's DUT (cheap) SPR, not its own
    d = with_dimensions(evals, ["spr_dut_db"])
    ref = d[(d["mic"] == "ref") & (d["attack"] != "none")].iloc[0]
    cheap = d[(d["mic"] == "cheap") & (d["trial_id"] == ref["trial_id"])].iloc[0]
    assert ref["spr_dut_db"] == cheap["spr_db"] != ref["spr_db"]


def test_failed_rows_are_counted_but_left_out_of_rates(evals):
    df = evals.copy()
    df.loc[df.index[:10], "failed"] = True
    df.loc[df.index[:10], "correct"] = False
    t = rate_table(df)
    assert int(t["failed"].iloc[0]) == 10
    assert int(t["n"].iloc[0]) == len(df) - 10
    assert int(t["errors"].iloc[0]) == int((~df["correct"][10:]).sum())


def test_targeted_success_rate():
    rows = []
    for i in range(8):
        rows.append(dict(attack="pgd", target="go", correct=False, target_hit=i < 6, failed=False, mic="m"))
    for i in range(4):
        rows.append(dict(attack="pgd", target="untargeted", correct=i < 1, target_hit=None, failed=False, mic="m"))
    t = rate_table(pd.DataFrame(rows), ["target"]).set_index("target")
    assert t.loc["go", "n_targeted"] == 8 and t.loc["go", "hits"] == 6
    assert t.loc["go", "success_rate"] == pytest.approx(0.75)
    assert t.loc["untargeted", "n_targeted"] == 0 and np.isnan(t.loc["untargeted", "success_rate"])
    assert t.loc["untargeted", "error_rate"] == pytest.approx(0.75)


def test_clean_accuracy_known_values():
    df = pd.DataFrame(dict(attack=["none"] * 5 + ["fgsm"] * 3, model=["a"] * 3 + ["b"] * 2 + ["a"] * 3,
                           correct=[True, True, False, True, True, False, False, False], failed=False))
    t = clean_accuracy(df, ["model"]).set_index("model")
    assert t.loc["a", "accuracy"] == pytest.approx(2 / 3) and t.loc["b", "accuracy"] == 1.0
    lo, hi = wilson_interval(1, 3)
    assert t.loc["a", "accuracy_lo"] == pytest.approx(1 - hi)


def test_bits_and_ensemble_from_names():
    assert bits_of("int8") == 8 and bits_of("lm-int4") == 4 and bits_of("fp32") == 32
    assert np.isnan(bits_of("lowrank"))
    assert ensemble_size_of("lm-slr8") == 8 and ensemble_size_of("lm-slr8@k2") == 2
    assert np.isnan(ensemble_size_of("lm-fp32"))


def test_group_by_bits(evals):
    t = rate_table(evals, ["bits"])
    expected = brute_force(evals, lambda r: {"fp32": 32.0, "int8": 8.0}.get(r["model_variant"], "n/a"))
    assert_table(t, ["bits"], expected)


def test_unknown_dimension_and_empty_frame():
    with pytest.raises(AnalysisError, match="unknown dimension 'colour'"):
        resolve_dimensions(["mic", "colour"])
    with pytest.raises(AnalysisError, match="no evaluations"):
        rate_table(pd.DataFrame(columns=["attack", "correct"]), ["attack"])


def test_derived_dimension_without_its_column_names_the_column():
    df = pd.DataFrame(dict(attack=["pgd"], correct=[False], failed=[False]))
    with pytest.raises(AnalysisError, match="dist_adv_m"):
        rate_table(df, ["distance"])
