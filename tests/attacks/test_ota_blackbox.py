"""Black-box over the air (issue 24, item 4): NES through the channel, query budget counted in DUT
queries, no gradients, label-only mode that never sees a score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testbed.attacks import ATTACKS, OTANES, ChannelBank, OverTheAir, make_attack
from testbed.errors import AttackError
from tests.attacks.tiny import NoBackward


def _channel(seed: int = 0) -> OverTheAir:
    """Two short rooms: a direct path plus a decaying tail per speaker, little noise."""
    rng = np.random.default_rng(seed)
    hs = []
    for _ in range(4):
        h = np.zeros(24, np.float32)
        h[rng.integers(0, 3)] = 1.0
        h[6:] += (0.2 * rng.standard_normal(18) * np.exp(-np.arange(18) / 4)).astype(np.float32)
        hs.append(h)
    bank = ChannelBank(hs[:2], hs[2:], np.array([1e-3, 1e-3]))
    return OverTheAir(bank, sample_rate=4000, delay_ms=(0.0, 50.0), gain_db=(-1.0, 1.0), noise_db=(0.0, 0.0))


class Counting(torch.nn.Module):
    """Counts the captures (rows) the model is asked about; optionally one-hot, optionally a
    backward that raises."""

    def __init__(self, inner: torch.nn.Module, *, one_hot: bool = False, no_backward: bool = False):
        super().__init__()
        self.inner = inner
        self.labels = inner.labels
        self.sample_rate = inner.sample_rate
        self.one_hot = one_hot
        self.no_backward = no_backward
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        if self.no_backward:
            x = NoBackward.apply(x.detach().requires_grad_(True))
        out = self.inner(x)
        if self.one_hot:   # a DUT that reports only its top class
            return torch.nn.functional.one_hot(out.argmax(-1), out.shape[-1]).to(out.dtype)
        return out



def test_registered_as_the_over_the_air_kind_of_nes():
    from testbed.session.plan import registry_kind

    assert ATTACKS[registry_kind("nes", True)] is OTANES


@pytest.mark.parametrize("label_only", [False, True])
def test_never_exceeds_its_query_budget(tiny_model, tiny_data, label_only):
    x, y = tiny_data[0][:5], tiny_data[1][:5]
    model = Counting(tiny_model)
    atk = OTANES(model, eps=0.05, iterations=50, population=8, eot_samples=2, max_queries=70,
                 channel=_channel(), label_only=label_only, seed=1)
    atk.perturb(x, y)
    # 70 // (8 * 2) = 4 whole iterations fit: 64 captures per example, never 70+
    assert atk.queries == model.rows == 5 * 64
    assert atk.used.tolist() == [64] * 5
    assert atk.queries_per_example == 64
    assert int(atk.used.max()) <= 70


def test_budget_below_one_iteration_is_refused(tiny_model):
    with pytest.raises(AttackError, match="max_queries 10 is below one iteration"):
        OTANES(tiny_model, eps=0.01, population=8, eot_samples=2, max_queries=10, channel=_channel())


@pytest.mark.parametrize("label_only", [False, True])
def test_works_on_a_model_whose_backward_raises(tiny_model, tiny_data, label_only):
    x, y = tiny_data[0][:3], tiny_data[1][:3]
    ref = OTANES(tiny_model, eps=0.05, iterations=3, population=8, channel=_channel(),
                 label_only=label_only, random_start=True, seed=4).perturb(x, y)
    model = Counting(tiny_model, no_backward=True)
    with torch.enable_grad():
        got = OTANES(model, eps=0.05, iterations=3, population=8, channel=_channel(),
                     label_only=label_only, random_start=True, seed=4).perturb(x, y)
    assert model.rows == 3 * 3 * 8
    assert torch.equal(got, ref)


def test_label_only_never_looks_at_scores(tiny_model, tiny_data):
    """A DUT that reports one-hot outputs gives the very same attack, targeted and untargeted."""
    x, y = tiny_data[0][:6], tiny_data[1][:6]
    for target in (None, (y + 1) % 3):
        kw = dict(eps=0.1, iterations=4, population=8, eot_samples=2, channel=_channel(),
                  label_only=True, random_start=True, sigma=0.02, seed=7)
        full = OTANES(tiny_model, **kw).perturb(x, y, target)
        hard = OTANES(Counting(tiny_model, one_hot=True), **kw).perturb(x, y, target)
        assert torch.equal(full, hard)
    # the score-based mode does read the scores: one-hot outputs change its answer
    kw = dict(eps=0.1, iterations=4, population=8, channel=_channel(), random_start=True, sigma=0.02, seed=7)
    assert not torch.equal(OTANES(tiny_model, **kw).perturb(x, y),
                           OTANES(Counting(tiny_model, one_hot=True), **kw).perturb(x, y))


def test_score_based_through_the_air_raises_error_over_the_air(tiny_model, tiny_data):
    """One reverberant room, noise, a synchronised adversary: NES sees only captures and still
    makes the DUT wrong on them (random sync delays make it much harder: see docs/threat-models.md)."""
    x, y = tiny_data[0][:12], tiny_data[1][:12]
    rng = np.random.default_rng(0)
    h = np.zeros(24, np.float32)
    h[0] = 1.0
    h[6:] += (0.2 * rng.standard_normal(18) * np.exp(-np.arange(18) / 4)).astype(np.float32)
    ota = OverTheAir(ChannelBank([h], [h], np.array([1e-3])), sample_rate=4000, delay_ms=(0.0, 0.0),
                     gain_db=(0.0, 0.0), noise_db=(0.0, 0.0))
    atk = OTANES(tiny_model, eps=0.3, iterations=20, population=32, sigma=0.01, channel=ota, seed=0)
    delta = atk.perturb(x, y)
    assert float(delta.abs().max()) <= 0.3 + 1e-7

    def error(d):
        g = torch.Generator().manual_seed(99)
        with torch.no_grad():
            wrong = [(tiny_model(ota.mix(x, d, g)).argmax(1) != y).float().mean() for _ in range(4)]
        return float(torch.stack(wrong).mean())

    assert error(torch.zeros_like(delta)) == 0.0
    assert error(delta) >= 0.3


def test_dut_oracle_needs_a_session(tiny_model, tiny_data):
    atk = make_attack("ota-nes", tiny_model, 0.05, oracle="dut", iterations=1, population=4)
    with pytest.raises(AttackError, match="only inside a session"):
        atk.perturb(tiny_data[0][:1], tiny_data[1][:1])
    with pytest.raises(AttackError, match="oracle must be one of"):
        make_attack("ota-nes", tiny_model, 0.05, oracle="gpu")


class _Silent:
    """A DUT that never answers (every query times out)."""

    def __init__(self):
        self.queries = 0

    def scores(self, x, delta, rows):
        raise AssertionError("label-only never asks for scores")

    def top(self, x, delta, rows):
        from testbed.attacks.oracles import NO_ANSWER

        self.queries += delta.shape[0]
        return torch.full((delta.shape[0],), NO_ANSWER, dtype=torch.int64)


def test_label_only_counts_no_answer_as_no_success(tiny_model, tiny_data):
    x, y = tiny_data[0][:2], tiny_data[1][:2]
    atk = OTANES(tiny_model, eps=0.05, iterations=3, population=4, oracle=_Silent(), label_only=True)
    delta = atk.perturb(x, y)
    assert atk.queries == 2 * 3 * 4
    assert torch.count_nonzero(delta) == 0      # every answer the same (none): no step is taken
