"""auto: the AutoAttack-style cascade counts a clip robust only if every attack fails."""

from __future__ import annotations

import pytest
import torch

from testbed.attacks import AutoAttack, make_attack
from testbed.errors import AttackError


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


def _robust(auto: AutoAttack) -> list[int]:
    return [i for i, lab in enumerate(auto.broken_by) if lab == "robust"]


def test_against_a_stochastic_model_unbroken_clips_keep_their_best_candidate(tiny_data):
    """One draw per decision dropped a perturbation the draw checked happened not to be fooled by;
    the EOT check keeps, on every clip no attack broke, the candidate with the highest mean loss."""
    from tests.attacks.tiny import train_tiny

    model = train_tiny(stochastic=True)
    x, y = tiny_data
    x, y = x[:12], y[:12]
    eps = 0.002                                     # too small to break most clips
    torch.manual_seed(0)
    kept = AutoAttack(model, eps, steps=4, n_queries=4, seed=0, eot_samples=4)
    d = kept.perturb(x, y)
    robust = _robust(kept)
    assert robust and (d[robust].abs().amax(dim=1) > 0).all()
    assert (d.abs() <= eps + 1e-7).all()
    # the kept candidates raise the loss, read over many fresh draws
    judge = AutoAttack(model, eps, eot_samples=256, seed=1)
    with torch.no_grad():
        before, _ = judge.score(x[robust], torch.zeros_like(d[robust]), y[robust])
        after, _ = judge.score(x[robust], d[robust], y[robust])
    assert after.mean() > before.mean()
    torch.manual_seed(0)
    single = AutoAttack(model, eps, steps=4, n_queries=4, seed=0, eot_samples=4, check="single")
    d1 = single.perturb(x, y)
    assert (d1[_robust(single)] == 0).all()


def test_the_check_is_the_same_on_a_deterministic_model_and_a_bad_one_is_refused(tiny_model, tiny_data):
    x, y = tiny_data
    runs = [AutoAttack(tiny_model, 0.06, steps=4, n_queries=6, seed=0, check=c) for c in ("eot", "single")]
    deltas = [a.perturb(x, y) for a in runs]
    assert runs[0].broken_by == runs[1].broken_by
    assert torch.equal(deltas[0], deltas[1])
    with pytest.raises(AttackError, match="check must be one of eot, single"):
        AutoAttack(tiny_model, 0.06, check="majority")


def test_the_rand_version_runs_the_two_apgds_and_spends_no_square_query(tiny_model, tiny_data):
    """AutoAttack's version for randomised defences: APGD-CE and APGD-DLR (EOT), no Square; on the
    same seed its first two attacks break the same clips as the standard version's."""
    x, y = tiny_data
    std = AutoAttack(tiny_model, 0.06, steps=8, n_queries=30, seed=0)
    rand = AutoAttack(tiny_model, 0.06, steps=8, n_queries=30, seed=0, version="rand")
    assert [a.name for a in rand.attacks] == ["apgd-ce", "apgd-dlr"]
    std.perturb(x, y)
    rand.perturb(x, y)
    s, r = std.counts(), rand.counts()
    assert len(std.clip_queries) == s["square"] + s["robust"] > 0    # Square queried the clips left ...
    assert r["square"] == 0 and rand.clip_queries == []             # ... the rand version never does
    assert [r[k] for k in ("clean", "apgd-ce", "apgd-dlr")] == [s[k] for k in ("clean", "apgd-ce", "apgd-dlr")]
    assert r["robust"] == s["robust"] + s["square"]     # what Square broke stays robust without it
    with pytest.raises(AttackError, match="version must be one of standard, rand"):
        AutoAttack(tiny_model, 0.06, version="plus")
