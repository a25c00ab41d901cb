"""The perceptual bound: ``bound = "masking"`` (Qin et al.'s stage 2 under the masking threshold)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testbed.acoustics.psychoacoustic import masking_margin, masking_threshold
from testbed.attacks import attack_params, make_attack
from testbed.attacks.masking import MaskedAttack, psd_db_torch
from testbed.errors import AttackError


def _numpy_frames_above(atk: MaskedAttack, x: torch.Tensor, delta: torch.Tensor) -> list[np.ndarray]:
    """Per clip, the per-frame max excess (dB) of the perturbation as added, recomputed in numpy."""
    heard = ((x + delta).clamp(-1, 1) - x).numpy()
    out = []
    for xi, di in zip(x.numpy(), heard):
        m = masking_threshold(xi, atk.masking_model)
        p = m.perturbation_psd_db(di)
        out.append((p - m.threshold_db).max(axis=1))
    return out


def test_torch_psd_matches_the_numpy_model(tiny_data):
    x, _ = tiny_data
    atk = make_attack("pgd", torch.nn.Identity(), 0.01, bound="masking", masking_sample_rate=4000)
    m = masking_threshold(x[0].numpy(), atk.masking_model)
    delta = 0.003 * torch.randn(1, x.shape[1], generator=torch.Generator().manual_seed(0))
    got = psd_db_torch(delta.double(), torch.tensor([m.psd_max_db], dtype=torch.float64), atk.masking_model)
    np.testing.assert_allclose(got[0].numpy(), m.perturbation_psd_db(delta[0].numpy()), atol=1e-6)


def test_masking_mode_reports_exactly_the_frames_above_the_threshold(tiny_model, tiny_data):
    x, y = tiny_data[0][:12], tiny_data[1][:12]
    atk = make_attack("pgd", tiny_model, 0.05, steps=10, seed=0, bound="masking", masking_steps=60)
    target = torch.full_like(y, 2)
    delta = atk.perturb(x, y, target)
    assert isinstance(atk, MaskedAttack) and delta.abs().max() <= 0.05 + 1e-6
    report = atk.report
    for i, excess in enumerate(_numpy_frames_above(atk, x, delta)):
        # every frame the attack reports under the threshold is under it (float32 vs float64: 0.05 dB)
        assert np.all(excess[~report["above"][i]] < 0.05), i
        assert np.all(excess[report["above"][i]] > -0.05), i
        assert report["frames_above"][i] == pytest.approx(report["above"][i].mean())
        assert report["margin_db"][i] == pytest.approx(excess.max(), abs=0.05)


def test_stage_two_pushes_a_free_perturbation_under_the_threshold(tiny_model, tiny_data):
    # clips already of the target class need no perturbation: stage 2 must hide stage 1's noise
    x, y = tiny_data
    keep = y == 2
    x, y = x[keep][:6], y[keep][:6]
    linf = make_attack("pgd", tiny_model, 0.05, steps=10, seed=0)
    masked = make_attack("pgd", tiny_model, 0.05, steps=10, seed=0, bound="masking", masking_steps=80)
    target = torch.full_like(y, 2)
    d_linf, d_mask = linf.perturb(x, y, target), masked.perturb(x, y, target)
    before = [e.max() for e in _numpy_frames_above(masked, x, d_linf)]
    after = [e.max() for e in _numpy_frames_above(masked, x, d_mask)]
    assert min(before) > 0                      # stage 1 alone is audible ...
    assert max(after) < 0                       # ... stage 2 is masked in every frame
    assert np.all(masked.report["frames_above"] == 0)
    assert np.all(masked.report["stage1_frames_above"] > 0)
    assert (tiny_model(x + d_mask).argmax(-1) == 2).all()


def test_kept_perturbation_still_fools_the_model(tiny_model, tiny_data):
    x, y = tiny_data[0][:12], tiny_data[1][:12]
    atk = make_attack("pgd", tiny_model, 0.05, steps=20, seed=1, bound="masking", masking_steps=40)
    delta = atk.perturb(x, y)
    with torch.no_grad():
        pred = tiny_model(x + delta).argmax(-1)
    fooled = atk.report["fooled"]
    assert fooled.any()
    assert (pred[torch.from_numpy(fooled)] != y[torch.from_numpy(fooled)]).all()


def test_bound_parameters_are_checked(tiny_model):
    assert "bound" in attack_params("pgd") and "masking_steps" in attack_params("ota-pgd")
    assert "bound" not in attack_params("fgsm")
    with pytest.raises(AttackError, match="bound must be one of"):
        make_attack("pgd", tiny_model, 0.01, bound="l2")
    with pytest.raises(AttackError, match="only with bound"):
        make_attack("pgd", tiny_model, 0.01, masking_steps=5)
    with pytest.raises(AttackError, match="unknown parameter 'bound'"):
        make_attack("fgsm", tiny_model, 0.01, bound="masking")
    with pytest.raises(AttackError, match="masking_lr"):
        make_attack("pgd", tiny_model, 0.01, bound="masking", masking_lr=float("nan"))
    atk = make_attack("pgd", tiny_model, 0.01, bound="masking", masking_steps=7)
    h = atk.hyper()
    assert h["bound"] == "masking" and h["masking_steps"] == 7 and h["kind"] == "pgd" and h["steps"] == 20
    assert make_attack("pgd", tiny_model, 0.01, bound="linf").hyper().get("bound") is None


def test_over_the_air_threshold_is_computed_from_the_command_at_the_dut_mic(tiny_model, tiny_data):
    from tests.attacks.test_channels import _room_bank
    from testbed.attacks import OverTheAir

    x, y = tiny_data[0][:4], tiny_data[1][:4]
    ota = OverTheAir(_room_bank(seed=4), sample_rate=4000, delay_ms=(0.0, 50.0), noise_db=(0, 0))
    atk = make_attack("ota-pgd", tiny_model, 0.1, steps=5, channel=ota, eot_samples=2, seed=3,
                      bound="masking", masking_steps=10)
    heard = atk.command_at_mic(x)
    g = torch.Generator().manual_seed(3)
    expected = ota.mix(x, torch.zeros(4, 1), g, channel=torch.zeros(1), delay_samples=torch.zeros(1))
    torch.testing.assert_close(heard, expected)
    assert not torch.allclose(heard, x, atol=1e-3)
    delta = atk.perturb(x, y)
    assert delta.abs().max() <= 0.1 + 1e-6
    # the reported frames are those of the perturbation at the mic against the mic's threshold
    at_mic = atk.delta_at_mic(x, delta, torch.Generator().manual_seed(3 + 2)).numpy()
    for i in range(4):
        m = masking_threshold(heard[i].numpy(), atk.masking_model)
        _, above = masking_margin(m, at_mic[i])
        np.testing.assert_array_equal(above, atk.report["above"][i])


def test_evaluate_attack_reports_audibility_per_row(tiny_model, tiny_data):
    from testbed.attacks import evaluate_attack

    x, y = tiny_data[0][:8].numpy(), tiny_data[1][:8].numpy()
    table = evaluate_attack({"tiny": tiny_model}, {"tiny": tiny_model}, x, y, kind="pgd", eps=(0.001, 0.05),
                            params={"steps": 5}, sample_rate=4000).set_index("eps")
    quiet, loud = table.loc[0.001], table.loc[0.05]
    assert loud["level_dbfs"] > quiet["level_dbfs"] + 25           # 34 dB apart in eps
    assert loud["loudness_lufs"] > quiet["loudness_lufs"] + 25
    assert loud["masking_margin_db"] > quiet["masking_margin_db"] + 25
    assert loud["frames_above"] >= quiet["frames_above"] and loud["frames_above"] == 1.0
    assert table["level_db_spl"].isna().all()
    assert -loud["level_dbfs"] == pytest.approx(loud["snr_db"] - 10 * np.log10(np.mean(x ** 2)), abs=2.0)


def test_queries_count_both_stages_once_per_batch(tiny_model, tiny_data):
    x, y = tiny_data[0][:4], tiny_data[1][:4]
    atk = make_attack("pgd", tiny_model, 0.05, steps=3, seed=0, bound="masking", masking_steps=5)
    atk.perturb(x, y)
    atk.perturb(x, y)
    # per batch: 3 stage-1 gradients + 6 stage-2 passes (5 steps and the last judgement), 4 clips each
    assert atk.queries == 2 * (3 + 6) * 4


def test_shrinking_never_amplifies_the_clip_edges():
    """The first and last samples sit under one frame's window tail; resynthesis must not blow them up."""
    from testbed.acoustics.audibility import default_masking_model
    from testbed.attacks.masking import shrink_to_threshold

    model = default_masking_model(16000)
    g = torch.Generator().manual_seed(0)
    delta = 0.005 * torch.sign(torch.randn(2, 16000, generator=g))
    psd = psd_db_torch(delta, torch.zeros(2), model)
    thr = psd.clone()
    thr[..., ::2] -= 20.0          # every other bin 20 dB above its threshold: frames lose their window shape
    out = shrink_to_threshold(delta, thr, torch.zeros(2), model, margin_db=0.0)
    edges = torch.cat([out[:, :64], out[:, -64:]], dim=1)
    assert edges.abs().max() <= delta.abs().max()
    loose = shrink_to_threshold(delta, psd + 400.0, torch.zeros(2), model)   # nothing above: unchanged inside
    inner = slice(model.window, 16000 - model.window)
    torch.testing.assert_close(loose[:, inner], delta[:, inner], atol=1e-5, rtol=0)
