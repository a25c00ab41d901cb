"""Randomised smoothing (Cohen et al. 2019): certification bounds, abstention, a PGD-L2 check, the zoo variant."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from testbed.models.robust.certify import (
    ABSTAIN,
    certified_accuracy,
    certify,
    clopper_pearson_lower,
    vote_counts,
)
from testbed.models.robust.smooth import SmoothedClassifier, l2_to_linf, linf_to_l2


class LinearToy(nn.Module):
    """Class 0 when ``w . x > 0``, else class 1: the smoothed classifier's exact radius is |w.x| / |w|."""

    labels = ["pos", "neg"]
    sample_rate = 16000
    clip_samples = 64
    arch = "toy"

    def __init__(self) -> None:
        super().__init__()
        w = torch.linspace(-1.0, 2.0, self.clip_samples)
        self.register_buffer("w", w / w.norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x @ self.w
        return torch.stack([s, -s], dim=-1)


def test_clopper_pearson_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for k, n, alpha in [(990, 1000, 0.001), (60, 100, 0.01), (1, 10, 0.05), (100, 100, 0.001)]:
        want = proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]
        assert clopper_pearson_lower(k, n, alpha) == pytest.approx(want, rel=1e-10)
    assert clopper_pearson_lower(0, 50, 0.01) == 0.0


def test_certification_abstains_on_pure_noise():
    g = SmoothedClassifier(LinearToy(), sigma=0.5, seed=3).eval()
    # x = 0: the base classifier sees pure Gaussian noise and votes 50/50
    counts = vote_counts(g, torch.zeros(64), 2000)
    assert abs(counts[0] / 2000 - 0.5) < 0.05
    pred, radius, p_lower = certify(g, torch.zeros(64), n0=50, n=500, alpha=0.001)
    assert pred == ABSTAIN and radius == 0.0 and p_lower <= 0.5


def test_certified_radius_is_a_lower_bound_of_the_exact_one():
    toy = LinearToy()
    g = SmoothedClassifier(toy, sigma=0.5, seed=1).eval()
    for dist, want in ((0.8, 0), (-1.2, 1), (0.3, 0)):
        x = dist * toy.w                       # exact distance |dist| to the decision boundary
        pred, radius, _ = certify(g, x, n0=50, n=2000, alpha=0.001)
        assert pred == want
        assert 0.0 < radius < abs(dist)       # sound, and not vacuous
        assert radius > 0.5 * abs(dist) if abs(dist) > 0.5 else True


def _pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, radius: float, steps: int = 20) -> torch.Tensor:
    """L2 PGD on the smoothed model's forward (mean softmax of noisy passes: EOT by construction)."""
    delta = torch.zeros_like(x, requires_grad=True)
    step = 2.5 * radius / steps
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta += step * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
            delta *= torch.clamp(radius / delta.norm(dim=1, keepdim=True).clamp_min(1e-12), max=1.0)
    return delta.detach()


def test_pgd_l2_inside_the_certified_radius_cannot_change_the_smoothed_answer(tone_fp32, tones):
    g = SmoothedClassifier(tone_fp32, sigma=0.03, n_members=8, seed=0).eval()
    x = torch.as_tensor(tones.test.x[:6])
    y = torch.as_tensor(tones.test.y[:6])
    certs = [certify(g, x[i], n0=32, n=200, alpha=0.01) for i in range(len(y))]
    preds = [c[0] for c in certs]
    radii = torch.tensor([c[1] for c in certs])
    assert preds == y.tolist() and bool((radii > 0).all())
    inside = _pgd_l2(g, x, y, float(0.9 * radii.min()))
    assert bool((inside.norm(dim=1) <= radii + 1e-6).all())
    after = [int(np.argmax(vote_counts(g, x[i] + inside[i], 200))) for i in range(len(y))]
    assert after == preds
    # the same attack far outside the certificate does change answers: it is a real attack
    outside = _pgd_l2(g, x, y, 2.0)
    broken = [int(np.argmax(vote_counts(g, x[i] + outside[i], 200))) != preds[i] for i in range(len(y))]
    assert any(broken)


def test_radius_conversion_and_certified_accuracy_table():
    assert linf_to_l2(0.001, 16000) == pytest.approx(0.001 * 126.49, rel=1e-4)
    assert l2_to_linf(linf_to_l2(0.002, 16000), 16000) == pytest.approx(0.002)
    rows = [{"correct": True, "radius_l2": 0.2}, {"correct": True, "radius_l2": 0.05},
            {"correct": False, "radius_l2": 0.3}, {"correct": False, "radius_l2": 0.0}]
    t = certified_accuracy(rows, [0.0, 0.1, 0.25], 16000)
    assert [r["k"] for r in t] == [2, 1, 0] and all(r["n"] == 4 for r in t)
    assert t[1]["linf_eps"] == pytest.approx(0.1 / np.sqrt(16000))
    assert t[0]["ci_low"] < 0.5 < t[0]["ci_high"]


@pytest.fixture(scope="module")
def smooth_zoo(tmp_path_factory, tones):
    from testbed.models import build_zoo
    from testbed.models.robust import RobustConfig

    root = tmp_path_factory.mktemp("smooth-zoo")
    names = build_zoo(["lms"], ["fp32", "smooth"], root=root, seed=0, steps=20, finetune_steps=4, batch_size=16,
                      dataset=tones, robust_config=RobustConfig(smooth_sigma=0.03))
    return root, names


def test_smooth_variant_round_trips_through_the_zoo(smooth_zoo, tones):
    from testbed.models import Zoo

    root, names = smooth_zoo
    assert names == ["lms-fp32", "lms-smooth"]
    zoo = Zoo(root)
    card = zoo.card("lms-smooth")
    assert card["compression"]["kind"] == "smooth" and card["compression"]["sigma"] == pytest.approx(0.03)
    assert card["robust"]["training"]["steps"] == 4 and card["stochastic"]
    model = zoo.load("lms-smooth")
    assert isinstance(model, SmoothedClassifier) and float(model.sigma) == pytest.approx(0.03)
    x = torch.as_tensor(tones.test.x[:3])
    torch.testing.assert_close(model.reseed(5)(x), model.reseed(5)(x))
    # fine-tuned on noise: its base differs from the fp32 model it started from
    fp32 = zoo.load("lms-fp32")
    assert not torch.equal(model.base(x), fp32(x))


def test_models_eval_certify_reports_radii_with_intervals(cli, smooth_zoo, tone_folder):
    root, _ = smooth_zoo
    base = ["models", "eval", "lms-smooth", "--root", root, "--data", f"folder:{tone_folder}", "--certify",
            "--clips", "4", "--n0", "10", "--n", "60", "--alpha", "0.01", "--eps", "0.0001,0.01"]
    res = cli(base + ["--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # the clips come from the data's test split (as attack eval's do): at most --clips of them
    assert 2 <= out["n"] <= 4 and out["n"] == len(out["clips"])
    assert out["sigma"] == pytest.approx(0.03) and out["n_samples"] == 16000
    t = out["certified"]
    assert [r["radius_l2"] for r in t] == pytest.approx([0.0, 0.0001 * np.sqrt(16000), 0.01 * np.sqrt(16000)])
    assert [r["linf_eps"] for r in t] == pytest.approx([0.0, 0.0001, 0.01])
    ks = [r["k"] for r in t]
    assert ks == sorted(ks, reverse=True)                       # certified accuracy falls with the radius
    # 60 votes at alpha 0.01 bound pA by 0.926 at most: R <= 1.45 sigma < 0.01 * sqrt(16000)
    assert ks[2] == 0
    for r in t:
        assert r["n"] == out["n"] and r["ci_low"] <= r["certified_accuracy"] <= r["ci_high"]
    assert all(c["radius_l2"] <= 1.5 * 0.03 for c in out["clips"])
    text = cli(base).output
    assert "L-inf eps" in text and "Wilson 95 %" in text
    # a deterministic model needs --sigma; with it, it is smoothed on the fly
    res = cli(["models", "eval", "lms-fp32", "--root", root, "--data", f"folder:{tone_folder}", "--certify"])
    assert res.exit_code == 2 and "--sigma" in res.output and "Traceback" not in res.output
    res = cli(["models", "eval", "lms-fp32", "--root", root, "--data", f"folder:{tone_folder}", "--certify",
               "--sigma", "0.03", "--clips", "2", "--n0", "10", "--n", "30", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sigma"] == pytest.approx(0.03)


def test_models_list_gives_the_test_accuracy_an_interval(cli, smooth_zoo):
    from testbed.stats import wilson_interval

    root, _ = smooth_zoo
    res = cli(["models", "list", "--root", root, "--json"])
    assert res.exit_code == 0, res.output
    for r in json.loads(res.stdout)["models"]:
        k = round(r["test_accuracy"] * r["n_test"])
        assert r["test_accuracy_ci"] == pytest.approx(list(wilson_interval(k, r["n_test"])))
    rows = json.loads(res.stdout)["models"]
    text = cli(["models", "list", "--root", root]).output      # rich wraps the cells at 80 columns
    assert f"({rows[0]['n_test']})" in text and "Wilson" in text
