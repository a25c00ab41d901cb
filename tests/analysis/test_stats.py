"""Wilson intervals against published values and McNemar against hand-counted tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

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
