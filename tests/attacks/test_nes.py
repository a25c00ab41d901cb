"""NES: seeded reproducibility, query budget, score-only access, and that it does attack."""

from __future__ import annotations

import pytest
import torch

from testbed.attacks import NES
from testbed.errors import AttackError


def test_fixed_seed_is_reproducible_and_seeds_differ(tiny_model, tiny_data):
    x, y = tiny_data[0][:4], tiny_data[1][:4]
    a = NES(tiny_model, eps=0.05, iterations=3, population=8, seed=11).perturb(x, y)
    b = NES(tiny_model, eps=0.05, iterations=3, population=8, seed=11).perturb(x, y)
    c = NES(tiny_model, eps=0.05, iterations=3, population=8, seed=12).perturb(x, y)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_respects_query_budget(tiny_model, tiny_data):
    x, y = tiny_data[0][:5], tiny_data[1][:5]
    atk = NES(tiny_model, eps=0.05, iterations=20, population=16, max_queries=50)
    atk.perturb(x, y)
    assert atk.queries == 5 * 3 * 16          # 3 whole populations fit in 50 queries
    assert atk.queries <= 5 * 50
    full = NES(tiny_model, eps=0.05, iterations=4, population=16)
    full.perturb(x, y)
    assert full.queries == 5 * 4 * 16


def test_uses_no_gradients(tiny_model, tiny_data):
    x, y = tiny_data[0][:3], tiny_data[1][:3]
    seen = []

    def hook(module, inputs, output):
        seen.append(torch.is_grad_enabled())

    handle = tiny_model.register_forward_hook(hook)
    try:
        NES(tiny_model, eps=0.05, iterations=2, population=4).perturb(x, y)
    finally:
        handle.remove()
    assert seen and not any(seen)


def test_nes_raises_error_rate_targeted_and_untargeted(tiny_model, tiny_data):
    x, y = tiny_data[0][:16], tiny_data[1][:16]
    atk = NES(tiny_model, eps=0.3, iterations=20, population=32, sigma=0.01, seed=0)
    with torch.no_grad():
        untargeted = (tiny_model(atk(x, y)).argmax(1) != y).float().mean()
        target = (y + 1) % 3
        clean_hits = (tiny_model(x).argmax(1) == target).float().mean()
        targeted = (tiny_model(atk(x, y, target)).argmax(1) == target).float().mean()
    assert untargeted >= 0.5
    assert clean_hits == 0
    assert targeted >= 0.25


def test_bad_population(tiny_model):
    with pytest.raises(AttackError, match="population must be even"):
        NES(tiny_model, eps=0.01, population=7)
    with pytest.raises(AttackError, match="max_queries"):
        NES(tiny_model, eps=0.01, population=64, max_queries=10)


def test_early_stop_stops_querying_fooled_clips_and_keeps_them_fooled(tiny_model, tiny_data):
    x, y = tiny_data[0][:16], tiny_data[1][:16]
    with torch.no_grad():
        clean_wrong = tiny_model(x).argmax(1) != y
    kw = dict(eps=0.3, iterations=20, population=16, sigma=0.01, seed=0)
    full = NES(tiny_model, **kw)
    full.perturb(x, y)
    early = NES(tiny_model, early_stop=True, **kw)
    delta = early.perturb(x, y)
    with torch.no_grad():
        fooled = tiny_model(x + delta).argmax(1) != y
    assert fooled.sum() > clean_wrong.sum()                     # it attacks
    assert (delta[clean_wrong] == 0).all()                      # already wrong: never perturbed
    q = torch.tensor(early.clip_queries)
    budget = 1 + 20 * (16 + 1)                                  # a check, then 20 rounds of 16 + a check
    assert (q[clean_wrong] == 1).all()
    assert (q[fooled & ~clean_wrong] < budget).all()            # stopped once fooled ...
    assert (q[~fooled] == budget).all()                         # ... and only the unbroken ran out
    assert int(q.sum()) == early.queries < full.queries == 16 * 20 * 16
    assert full.clip_queries == [20 * 16] * 16


def test_early_stop_counts_its_checks_in_the_budget(tiny_model, tiny_data):
    x, y = tiny_data[0][:5], tiny_data[1][:5]
    atk = NES(tiny_model, eps=0.001, iterations=20, population=16, max_queries=50, early_stop=True)
    assert atk.rounds == 2                                      # (50 - 1 check) // (16 + 1 check)
    atk.perturb(x, y)
    assert atk.queries <= 5 * 50
    with pytest.raises(AttackError, match="two success checks"):
        NES(tiny_model, eps=0.01, population=16, max_queries=17, early_stop=True)


def test_the_over_the_air_nes_refuses_early_stop(tiny_model):
    from testbed.attacks.ota_blackbox import OTANES

    with pytest.raises(AttackError, match="early_stop"):
        OTANES(tiny_model, eps=0.01, early_stop=True)
