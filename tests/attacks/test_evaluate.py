"""Digital evaluation over eps and delay, the transfer matrix, plots, and the universal mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testbed.attacks import COLUMNS, Universal, evaluate_attack, shift_perturbation, snr_db, transfer_matrix
from testbed.attacks.plots import plot_error_vs_delay, plot_error_vs_eps, plot_transfer_heatmap
from testbed.errors import AttackError
from tests.attacks.tiny import TINY_RATE, train_tiny


@pytest.fixture(scope="module")
def other_model():
    return train_tiny(seed=1)


def test_table_over_eps_delay_and_targets(tiny_model, other_model, tiny_data, tmp_path):
    x, y = (t.numpy() for t in tiny_data)
    table = evaluate_attack({"a": tiny_model}, {"a": tiny_model, "b": other_model}, x, y, kind="pgd",
                            eps=[0.02, 0.1], delays_ms=[0, 200], params={"steps": 10},
                            sample_rate=TINY_RATE)
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 2 * 2 * 2
    a = table[table.target == "a"].set_index(["eps", "delay_ms"])
    assert a.loc[(0.1, 0.0), "error_rate"] > 0.8
    assert a.loc[(0.1, 0.0), "error_rate"] > a.loc[(0.02, 0.0), "error_rate"]
    # 200 ms at 4 kHz pushes 800 of 1600 samples past the clip: less energy, less error
    assert a.loc[(0.1, 200.0), "snr_db"] > a.loc[(0.1, 0.0), "snr_db"] + 2.0
    assert a.loc[(0.1, 200.0), "error_rate"] < a.loc[(0.1, 0.0), "error_rate"] - 0.3
    assert (table.clean_accuracy > 0.9).all()
    assert (table.queries == 10 * 1.0).all()     # PGD: one gradient per step per clip

    m = transfer_matrix(table)
    assert list(m.index) == ["a"] and list(m.columns) == ["a", "b"]
    assert m.loc["a", "a"] == a.loc[(0.1, 0.0), "error_rate"]
    for path in (plot_error_vs_eps(table, tmp_path / "e.png"), plot_error_vs_delay(table, tmp_path / "d.png"),
                 plot_transfer_heatmap(m, tmp_path / "t.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targeted_success_rate_and_unknown_label(tiny_model, tiny_data):
    x, y = (t.numpy() for t in tiny_data)
    table = evaluate_attack({"a": tiny_model}, {"a": tiny_model}, x, y, kind="pgd", eps=[0.3],
                            target_label="noise", params={"steps": 20})
    row = table.iloc[0]
    assert row.target_label == "noise"
    assert row.success_rate > 0.8
    with pytest.raises(AttackError, match="'yes' is not one of the model's labels: low, high, noise"):
        evaluate_attack({"a": tiny_model}, {"a": tiny_model}, x, y, eps=[0.1], target_label="yes")


def test_snr_db():
    x = np.ones((2, 100))
    p = np.stack([0.1 * np.ones(100), np.zeros(100)])
    out = snr_db(x, p)
    assert out[0] == pytest.approx(20.0)
    assert np.isinf(out[1])


def test_universal_delta_is_shared_and_works_at_any_alignment(tiny_model, tiny_data):
    x, y = tiny_data
    atk = Universal(tiny_model, eps=0.3, length_samples=400, steps=60, batch_size=16, seed=0)
    delta = atk.perturb(x, y)
    assert delta.shape == (x.shape[0], 400)
    assert torch.equal(delta[0], delta[-1])
    noise = 0.3 * torch.sign(torch.randn(1, 400, generator=torch.Generator().manual_seed(0)))

    def mean_error(d):  # over phases of the looped perturbation against the command
        errs = []
        for phase in range(0, 400, 25):
            with torch.no_grad():
                x_adv = (x + shift_perturbation(d[:1], phase, n_out=x.shape[1], loop=True)).clamp(-1, 1)
                errs.append(float((tiny_model(x_adv).argmax(1) != y).float().mean()))
        return float(np.mean(errs))

    assert mean_error(delta) > mean_error(noise) + 0.15
