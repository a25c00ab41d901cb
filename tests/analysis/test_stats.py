"""Wilson, McNemar and Holm against published values, scipy and statsmodels; the cluster bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from testbed import stats as tstats
from testbed.analysis import mcnemar, wilson_interval


@pytest.mark.parametrize(
    "k, n, lo, hi",
    [  # Newcombe (1998), Stat. Med. 17:857, Table II, method 3 (score, no continuity correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # textbook symmetric cases
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_matches_published_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-4)
    assert got[1] == pytest.approx(hi, abs=1e-4)


@pytest.mark.parametrize("k, n", [(3, 7), (17, 40), (199, 200), (1, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_edges_and_bad_input():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    lo, hi = wilson_interval(3, 9)
    assert lo < 3 / 9 < hi
    with pytest.raises(ValueError, match="k=5, n=4"):
        wilson_interval(5, 4)


def test_mcnemar_counts_and_exact_p():
    # 10 pairs: A wrong only on 6, B wrong only on 1, both wrong on 2, both right on 1
    a = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 0], bool)
    b = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 0], bool)
    r = mcnemar(a, b)
    assert (r.n_pairs, r.a_only, r.b_only, r.both_wrong, r.both_right) == (10, 6, 1, 2, 1)
    assert r.error_a == pytest.approx(0.8) and r.error_b == pytest.approx(0.3)
    # exact two-sided binomial on 7 discordant pairs, 1 vs 6: 2 * (1 + 7) / 128
    assert r.p_value == pytest.approx(16 / 128)


def test_mcnemar_identical_mics_is_not_significant():
    a = np.array([1, 0, 1, 0, 1], bool)
    r = mcnemar(a, a.copy())
    assert r.p_value == 1.0 and r.a_only == r.b_only == 0


# --- testbed.stats: the low-layer module shared by attacks, models and analysis -----------


@pytest.mark.parametrize("k, n", [(0, 5), (3, 7), (17, 40), (48, 48), (199, 200), (1, 1000)])
@pytest.mark.parametrize("conf", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(k, n, conf):
    lo, hi = proportion_confint(k, n, alpha=1 - conf, method="wilson")
    assert tstats.wilson_interval(k, n, conf) == pytest.approx((lo, hi), abs=1e-12)


def test_wilson_wider_at_higher_confidence_and_rejects_bad_conf():
    lo90, hi90 = tstats.wilson_interval(12, 48, 0.90)
    lo99, hi99 = tstats.wilson_interval(12, 48, 0.99)
    assert lo99 < lo90 < 0.25 < hi90 < hi99
    with pytest.raises(ValueError, match="conf=1.5"):
        tstats.wilson_interval(1, 2, 1.5)


def test_rate_interval_is_json_ready():
    r = tstats.rate_interval(12, 48)
    assert (r["k"], r["n"], r["rate"]) == (12, 48, 0.25)
    assert (r["ci_low"], r["ci_high"]) == tstats.wilson_interval(12, 48)


@pytest.mark.parametrize("b, c", [(0, 0), (1, 6), (6, 1), (0, 9), (10, 10), (3, 17), (40, 25), (100, 130)])
def test_mcnemar_exact_matches_statsmodels_and_scipy(b, c):
    table = [[5, b], [c, 7]]
    want = sm_mcnemar(table, exact=True).pvalue
    assert tstats.mcnemar_exact(b, c) == pytest.approx(want, rel=1e-12, abs=1e-15)
    if b + c:
        assert tstats.mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_exact_known_value_and_symmetry():
    # 1 vs 6 discordant: 2 * (1 + 7) / 128
    assert tstats.mcnemar_exact(1, 6) == pytest.approx(16 / 128)
    assert tstats.mcnemar_exact(6, 1) == tstats.mcnemar_exact(1, 6)
    assert tstats.mcnemar_exact(0, 10) < 0.002
    with pytest.raises(ValueError):
        tstats.mcnemar_exact(-1, 3)


@pytest.mark.parametrize(
    "p",
    [
        [0.01, 0.04, 0.03, 0.005],
        [0.5, 0.2, 0.01, 0.04, 0.04, 0.9, 0.001],
        [0.3],
        [0.02, 0.02, 0.02],
    ],
)
def test_holm_matches_statsmodels(p):
    want = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(tstats.holm(p), want, rtol=0, atol=1e-15)


def test_holm_keeps_nan_out_of_the_family():
    got = tstats.holm([0.01, math.nan, 0.04])
    want = multipletests([0.01, 0.04], method="holm")[1]
    assert math.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2]], want)


def _clustered_frame(n_trials: int = 40, rows_per_trial: int = 12, seed: int = 3):
    """Trials whose rows all agree (one error indicator per trial, copied to every mic/model)."""
    rng = np.random.default_rng(seed)
    trial_err = rng.random(n_trials) < 0.3
    return pd.DataFrame({
        "trial_id": np.repeat(np.arange(n_trials), rows_per_trial),
        "error": np.repeat(trial_err, rows_per_trial).astype(float),
    })


def test_cluster_bootstrap_is_seeded():
    df = _clustered_frame()
    stat = lambda d: d["error"].mean()  # noqa: E731
    a = tstats.cluster_bootstrap_ci(df, "trial_id", stat, n_boot=300, seed=7)
    b = tstats.cluster_bootstrap_ci(df, "trial_id", stat, n_boot=300, seed=7)
    c = tstats.cluster_bootstrap_ci(df, "trial_id", stat, n_boot=300, seed=8)
    assert a == b
    assert a != c
    assert a[0] < df["error"].mean() < a[1]


def test_cluster_bootstrap_wider_than_row_wilson_on_clustered_data():
    df = _clustered_frame()
    stat = lambda d: d["error"].mean()  # noqa: E731
    lo, hi = tstats.cluster_bootstrap_ci(df, "trial_id", stat, n_boot=1000, seed=0)
    k, n = int(df["error"].sum()), len(df)
    wlo, whi = tstats.wilson_interval(k, n)
    # 480 rows but only 40 independent trials: the honest interval is ~sqrt(12) times wider
    assert (hi - lo) > 2.0 * (whi - wlo)
    # and close to the Wilson interval of the 40 trials themselves
    tlo, thi = tstats.wilson_interval(k // 12, 40)
    assert (hi - lo) == pytest.approx(thi - tlo, rel=0.35)


def test_cluster_bootstrap_matches_row_wilson_when_rows_are_independent():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"trial_id": np.arange(400), "error": (rng.random(400) < 0.3).astype(float)})
    lo, hi = tstats.cluster_bootstrap_ci(df, "trial_id", lambda d: d["error"].mean(), n_boot=1000, seed=0)
    wlo, whi = tstats.wilson_interval(int(df["error"].sum()), 400)
    assert (hi - lo) == pytest.approx(whi - wlo, rel=0.2)


def test_cluster_bootstrap_rejects_missing_column_and_empty_frame():
    with pytest.raises(ValueError, match="trial"):
        tstats.cluster_bootstrap_ci(pd.DataFrame({"x": [1]}), "trial", lambda d: 0.0)
    empty = pd.DataFrame({"trial": [], "error": []})
    assert all(math.isnan(v) for v in tstats.cluster_bootstrap_ci(empty, "trial", lambda d: 0.0))


def test_stats_module_imports_nothing_from_testbed():
    import ast
    import pathlib

    tree = ast.parse(pathlib.Path(tstats.__file__).read_text())
    mods = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    mods += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in mods if m and m.startswith("testbed")]


# --- clustered findings: trial bootstrap and Holm in analysis/findings.py and compare.py ----


def test_cluster_bootstrap_rate_equals_the_generic_bootstrap_of_a_mean():
    df = _clustered_frame(n_trials=30, rows_per_trial=5, seed=4)
    df.loc[df.index[::7], "error"] = 1 - df.loc[df.index[::7], "error"]   # rows of a trial now differ
    generic = tstats.cluster_bootstrap_ci(df, "trial_id", lambda d: d["error"].mean(), n_boot=400, seed=11)
    g = df.groupby("trial_id")["error"]
    fast = tstats.cluster_bootstrap_rate(g.sum().to_numpy(), g.size().to_numpy(), n_boot=400, seed=11)
    assert fast == pytest.approx(generic, abs=1e-12)


def _agreeing_models(evals):
    """The synthetic store with every model giving the first model's verdict on each (trial, mic)."""
    df = evals.copy()
    first = df.groupby(["trial_id", "mic"])["correct"].transform("first")
    df["correct"] = first.astype(bool)
    return df


def test_pooled_findings_use_trial_bootstrap_wider_than_wilson(evals):
    from testbed.analysis.findings import clean_vs_attack, strongest_per_model
    from testbed.analysis.metrics import rate_table as wilson_table

    df = _agreeing_models(evals)
    f = clean_vs_attack(df)
    att = f["values"]["attacked"]
    assert att["ci"] == "trial bootstrap"
    dut = df[df["is_dut_mic"] & (df["attack"] != "none")]
    assert att["n"] == len(dut) and att["n_trials"] == dut["trial_id"].nunique() == len(dut) // 3
    w = wilson_table(dut).iloc[0]
    # three identical verdicts per trial: the honest interval is about sqrt(3) times wider
    assert (att["hi"] - att["lo"]) > 1.4 * (w["error_hi"] - w["error_lo"])
    assert att["lo"] < att["rate"] < att["hi"]
    assert f == clean_vs_attack(df)                                   # seeded: the same twice
    # one model at one mic: one row per trial, so the Wilson interval stays
    for s in strongest_per_model(df):
        assert {v["ci"] for v in s["values"]["per_mic"].values()} == {"wilson"}


def test_mic_pairs_are_holm_adjusted_with_a_trial_interval_of_the_difference(evals):
    from testbed.analysis import all_mic_pairs
    from testbed.analysis.findings import mic_difference

    df = evals.copy()
    mid = df[df["mic"] == "ref"].copy()
    mid["mic"], mid["mic_tier"] = "mid", "mems"
    rng = np.random.default_rng(5)
    mid["correct"] = np.where(rng.random(len(mid)) < 0.2, ~mid["correct"].astype(bool), mid["correct"])
    df = pd.concat([df, mid], ignore_index=True)
    pairs = all_mic_pairs(df)
    assert len(pairs) == 3 and all(p["n_comparisons"] == 3 for p in pairs)
    want = multipletests([p["p_value"] for p in pairs], method="holm")[1]
    np.testing.assert_allclose([p["p_holm"] for p in pairs], want)
    for p in pairs:
        assert p["ci"] == "trial bootstrap" and p["n_trials"] == p["n_pairs"] // 3
        assert p["diff"] == pytest.approx(p["error_a"] - p["error_b"])
        assert p["diff_lo"] <= p["diff"] <= p["diff_hi"]
    text = mic_difference(df)["text"]
    assert "Holm-adjusted over 3 mic pairs" in text and "trial bootstrap" in text
