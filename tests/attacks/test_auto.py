"""auto: the AutoAttack-style cascade counts a clip robust only if every attack fails."""

from __future__ import annotations

import torch

from testbed.attacks import AutoAttack, make_attack


def test_cascade_labels_each_clip_by_the_first_attack_that_broke_it(tiny_model, tiny_data):
    x, y = tiny_data
    eps = 0.06
    auto = AutoAttack(tiny_model, eps, steps=8, n_queries=30, seed=0)
    x_adv = auto(x, y)
    assert ((x_adv - x).abs() <= eps + 1e-6).all()
    with torch.no_grad():
        fooled = (tiny_model(x_adv).argmax(1) != y).tolist()
        clean_wrong = (tiny_model(x).argmax(1) != y).tolist()
    labels = auto.broken_by
    assert len(labels) == len(x)
    for lab, f, c in zip(labels, fooled, clean_wrong):
        assert (lab == "robust") == (not f)                 # robust exactly when nothing fooled it
        assert (lab == "clean") == c
    counts = auto.counts()
    assert sum(counts.values()) == len(x)
    assert counts["apgd-ce"] > 0 and counts["robust"] > 0   # a bound where the cascade matters
    # never weaker than its first attack alone
    alone = make_attack("apgd-ce", tiny_model, eps, steps=8, seed=0)
    with torch.no_grad():
        alone_fooled = (tiny_model(alone(x, y)).argmax(1) != y).sum()
    assert sum(fooled) >= int(alone_fooled)
    # Square ran only on the clips the APGDs left: its queries were spent on those alone
    left = counts["square"] + counts["robust"]
    assert len(auto.clip_queries) == left
    assert all(1 <= q <= 30 for q in auto.clip_queries)


def test_auto_uses_eot_against_a_stochastic_model(tiny_data):
    from tests.attacks.tiny import train_tiny

    model = train_tiny(stochastic=True)
    auto = AutoAttack(model, 0.06, steps=3, n_queries=3, seed=0)
    assert all(a.eot_samples == 8 for a in auto.attacks)
    x, y = tiny_data
    auto.perturb(x[:4], y[:4])
    assert len(auto.broken_by) == 4
