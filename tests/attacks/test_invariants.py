"""Every registered attack keeps its output in the eps ball and in [-1, 1] (property test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.attacks import ATTACKS, ChannelBank, OverTheAir, make_attack

from tests.attacks.tiny import TinyNet

FAST = {
    "fgsm": {},
    "pgd": {"steps": 3},
    "nes": {"iterations": 2, "population": 4},
    "eot-pgd": {"steps": 2, "eot_samples": 2},
    "ota-pgd": {"steps": 2, "eot_samples": 1},
    "universal": {"steps": 3, "batch_size": 2},
    "apgd": {"steps": 3},
    "apgd-ce": {"steps": 3},
    "apgd-dlr": {"steps": 3},
    "square": {"n_queries": 5},
    "auto": {"steps": 2, "n_queries": 3},
    "ota-nes": {"iterations": 2, "population": 4},   # r6-blackbox
    "ota-universal": {"steps": 2, "batch_size": 2},   # r6-blackbox
    "streaming": {"steps": 2, "batch_size": 2, "n_mels": 8, "hidden": 4, "window_ms": 10.0},
    "ota-streaming": {"steps": 2, "batch_size": 2, "n_mels": 8, "hidden": 4, "window_ms": 10.0},
}


def _toy_channel() -> OverTheAir:
    """Hand-made channels: a delayed, attenuated direct path plus one echo."""
    def h(delay: int, gain: float) -> np.ndarray:
        out = np.zeros(64, dtype=np.float32)
        out[delay], out[delay + 20] = gain, 0.3 * gain
        return out
    bank = ChannelBank([h(3, 0.9), h(5, 0.8)], [h(7, 1.2), h(9, 0.7)], np.array([1e-3, 2e-3]))
    return OverTheAir(bank, sample_rate=4000, delay_ms=(0.0, 50.0))


def _params(kind: str) -> dict:
    p = dict(FAST[kind])
    if kind in ("ota-pgd", "ota-nes", "ota-universal", "ota-streaming"):
        p["channel"] = _toy_channel()
    return p


def test_every_registered_attack_has_fast_settings():
    assert set(FAST) == set(ATTACKS)


@pytest.mark.parametrize("kind", sorted(ATTACKS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 3), n_samples=st.integers(160, 400),
       eps=st.floats(1e-4, 0.5), loud=st.booleans(), seed=st.integers(0, 2**16), targeted=st.booleans())
def test_result_in_eps_ball_and_pcm_range(kind, batch, n_samples, eps, loud, seed, targeted):
    torch.manual_seed(seed)
    model = TinyNet().eval()
    rng = np.random.default_rng(seed)
    # loud clips sit on the rails, so the [-1, 1] clip has work to do
    x = torch.from_numpy(rng.uniform(-1, 1, (batch, n_samples)).astype(np.float32))
    if loud:
        x = torch.sign(x) * 0.999
    y = torch.from_numpy(rng.integers(0, 3, batch))
    # the targeted DLR loss needs 4 classes (TinyNet has 3; tests/attacks/test_apgd.py)
    target = torch.from_numpy(rng.integers(0, 3, batch)) if targeted and kind != "apgd-dlr" else None
    attack = make_attack(kind, model, eps, seed=seed, **_params(kind))
    delta = attack.perturb(x, y, target)
    assert delta.shape[0] == batch
    assert torch.all(delta.abs() <= eps + 1e-6)
    x_adv = attack(x, y, target)
    assert x_adv.shape == x.shape
    assert torch.all(x_adv.abs() <= 1.0)
    assert torch.all((x_adv - x).abs() <= eps + 1e-6)
    if kind in ("fgsm", "pgd", "nes", "eot-pgd", "apgd", "apgd-ce", "apgd-dlr", "square", "auto"):   # digital: x + delta itself is in range
        assert torch.all((x + delta).abs() <= 1.0 + 1e-6)
