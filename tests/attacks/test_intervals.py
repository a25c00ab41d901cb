"""The attack tables' Wilson intervals and exact McNemar p-values match statsmodels / scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from testbed.stats import mcnemar_exact, wilson_interval


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (24, 48), (1, 200), (187, 200)])
@pytest.mark.parametrize("conf", [0.95, 0.9])
def test_wilson_matches_statsmodels(k, n, conf):
    lo, hi = wilson_interval(k, n, conf)
    ref = proportion_confint(k, n, alpha=1 - conf, method="wilson")
    assert lo == pytest.approx(ref[0], abs=1e-12) and hi == pytest.approx(ref[1], abs=1e-12)
    assert lo <= k / n <= hi


def test_wilson_known_case_and_edges():
    lo, hi = wilson_interval(24, 48)            # 50 % of 48: +- 13.6 points
    assert lo == pytest.approx(0.3639, abs=1e-4) and hi == pytest.approx(0.6361, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


@pytest.mark.parametrize("b, c", [(0, 0), (3, 0), (10, 2), (7, 7), (1, 12), (30, 18)])
def test_mcnemar_matches_statsmodels(b, c):
    ref = mcnemar(np.array([[20, b], [c, 15]]), exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(ref, abs=1e-12)


def test_mcnemar_known_case():
    # 10 vs 2 discordant pairs: 2 * P(X <= 2 | 12, 1/2) = 2 * 79 / 4096
    assert mcnemar_exact(10, 2) == pytest.approx(158 / 4096)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
