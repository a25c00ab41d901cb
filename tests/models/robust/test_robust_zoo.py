"""Robust variants in the zoo: safetensors round trip, cards, `models build/eval`, `attack eval`."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from testbed.models import Zoo, build_zoo
from testbed.models.robust import RSEEnsemble, SLREnsemble, make_rse, make_slr

ROBUST = ["slr4", "rse", "distill", "advtrain"]


def _card(model, variant, compression, tones) -> dict:
    return {"arch": "lms", "variant": variant, "labels": tones.labels, "sample_rate": tones.sample_rate,
            "clip_samples": tones.clip_samples, "stochastic": True, "compression": compression,
            "data": {"spec": tones.spec, "quick": True, "seed": 0}}


def test_slr_round_trips_through_safetensors_with_its_noise_in_the_card(tmp_path, tone_fp32, tones):
    slr, comp = make_slr(copy.deepcopy(tone_fp32), 4, sigma_rel=0.2, seed=3)
    zoo = Zoo(tmp_path)
    zoo.save("lms-slr4", slr, _card(slr, "slr4", comp, tones))
    card = zoo.card("lms-slr4")
    noise = card["compression"]["noise"]
    assert noise["sigma_rel"] == 0.2 and set(noise["layers"]) == {n for n, _ in slr.layers()}
    assert all(v["sigma"] > 0 for v in noise["layers"].values())
    loaded = zoo.load("lms-slr4")
    assert isinstance(loaded, SLREnsemble) and loaded.stochastic and loaded.n_members == 4 and loaded.seed == 3
    assert loaded.noise_params() == noise["layers"] == slr.noise_params()
    x = torch.from_numpy(tones.test.x[:5])
    with torch.no_grad():
        torch.testing.assert_close(loaded.reseed(9)(x), slr.eval().reseed(9)(x), rtol=0, atol=1e-6)
        # a stored model answers the same after loading twice: the generator starts from the card's seed
        torch.testing.assert_close(zoo.load("lms-slr4")(x), zoo.load("lms-slr4")(x), rtol=0, atol=0)


def test_an_at_k_view_loads_the_stored_ensemble_drawing_k_members(tmp_path, tone_fp32, tones):
    from testbed.errors import ModelError

    slr, comp = make_slr(copy.deepcopy(tone_fp32), 4, sigma_rel=0.2, seed=3)
    zoo = Zoo(tmp_path)
    zoo.save("lms-slr4", slr, _card(slr, "slr4", comp, tones))
    fp32_card = dict(_card(tone_fp32, "fp32", {"kind": "none"}, tones), stochastic=False)
    zoo.save("lms-fp32", tone_fp32, fp32_card)
    assert zoo.exists("lms-slr4@k16") and zoo.names() == ["lms-fp32", "lms-slr4"]   # views are not stored
    view = zoo.load("lms-slr4@k16")
    assert view.n_members == 16 and view.name == "lms-slr4@k16"
    assert zoo.card("lms-slr4@k16")["members_at_inference"] == 16
    assert zoo.model_hash("lms-slr4@k16") == zoo.model_hash("lms-slr4")       # the same weights
    x = torch.from_numpy(tones.test.x[:3])
    with torch.no_grad():
        assert view.member_logits(x).shape[0] == 16
    assert not zoo.exists("lms-fp32@k2")
    with pytest.raises(ModelError, match="not a stochastic ensemble"):
        zoo.load("lms-fp32@k2")
    with pytest.raises(ModelError, match="unknown model"):
        zoo.load("lms-slr9@k2")


def test_rse_round_trips_through_safetensors(tmp_path, tone_fp32, tones):
    rse, comp = make_rse(copy.deepcopy(tone_fp32), tones.train.x[:16], 8, seed=2)
    zoo = Zoo(tmp_path)
    zoo.save("lms-rse", rse, _card(rse, "rse", comp, tones))
    loaded = zoo.load("lms-rse")
    assert isinstance(loaded, RSEEnsemble) and loaded.n_members == 8
    assert loaded.noise_params() == zoo.card("lms-rse")["compression"]["noise"]["layers"]
    x = torch.from_numpy(tones.test.x[:5])
    with torch.no_grad():
        torch.testing.assert_close(loaded.reseed(4)(x), rse.eval().reseed(4)(x), rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def robust_zoo(tmp_path_factory, tones):
    """lms-fp32 and the four robust variants, each fine-tuned for 4 steps on the tones."""
    root = tmp_path_factory.mktemp("robust-zoo")
    from testbed.models.robust import RobustConfig

    names = build_zoo(["lms"], ["fp32"] + ROBUST, root=root, seed=0, steps=20, finetune_steps=4,
                      batch_size=16, dataset=tones, robust_config=RobustConfig(warmup_steps=3))
    return root, names


def test_build_zoo_writes_robust_cards(robust_zoo):
    root, names = robust_zoo
    assert names == ["lms-fp32"] + [f"lms-{v}" for v in ROBUST]
    zoo = Zoo(root)
    cards = {v: zoo.card(f"lms-{v}") for v in ROBUST}
    assert cards["slr4"]["stochastic"] and cards["rse"]["stochastic"]
    assert not cards["distill"]["stochastic"] and not cards["advtrain"]["stochastic"]
    assert cards["slr4"]["compression"]["kind"] == "slr" and cards["slr4"]["n_members"] == 4
    assert cards["rse"]["compression"]["kind"] == "rse"
    assert {c["robust"]["kind"] for c in cards.values()} == {"slr", "rse", "distill", "advtrain"}
    assert cards["distill"]["robust"]["temperature"] > 1
    # SLR warms up without the adversarial term first; the other variants have no such phase
    assert cards["slr4"]["robust"]["warmup"]["steps_run"] == 3 and cards["slr4"]["training"]["warmup"]["steps"] == 3
    assert cards["slr4"]["robust"]["training"]["steps_run"] == 4
    assert all("warmup" not in cards[v]["robust"] and "warmup" not in cards[v]["training"]
               for v in ("rse", "distill", "advtrain"))
    assert cards["slr4"]["robust"]["settings"]["alpha"] + cards["slr4"]["robust"]["settings"]["beta"] \
        + cards["slr4"]["robust"]["settings"]["gamma"] == pytest.approx(1.0)
    for v, c in cards.items():
        assert 0.0 <= c["metrics"]["test_accuracy"] <= 1.0
        assert c["metrics"]["fp32_test_accuracy"] == zoo.card("lms-fp32")["metrics"]["test_accuracy"]
        model = zoo.load(f"lms-{v}")
        assert bool(getattr(model, "stochastic", False)) == c["stochastic"]
    # the low-rank ensemble stores fewer parameters than the dense model
    assert cards["slr4"]["param_count"] < zoo.card("lms-fp32")["param_count"]


def test_models_eval_and_list_work_on_robust_models(cli, robust_zoo, tone_folder):
    root, _ = robust_zoo
    res = cli(["models", "eval", "lms-slr4", "--root", root, "--data", f"folder:{tone_folder}", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["model"] == "lms-slr4" and out["n"] > 0 and 0.0 <= out["accuracy"] <= 1.0
    again = json.loads(cli(["models", "eval", "lms-slr4", "--root", root, "--data", f"folder:{tone_folder}",
                            "--json"]).stdout)
    assert again["accuracy"] == out["accuracy"]          # seeded noise: the same answer twice
    from testbed.stats import wilson_interval

    assert out["correct"] == round(out["accuracy"] * out["n"])
    assert out["accuracy_ci"] == pytest.approx(list(wilson_interval(out["correct"], out["n"])))
    assert out["error_ci"] == pytest.approx([1 - out["accuracy_ci"][1], 1 - out["accuracy_ci"][0]])
    assert out["accuracy_ci"][0] <= out["accuracy"] <= out["accuracy_ci"][1]
    for pc in out["per_class"].values():
        assert pc["accuracy_ci"] == pytest.approx(list(wilson_interval(pc["correct"], pc["n"])))
    text = cli(["models", "eval", "lms-slr4", "--root", root, "--data", f"folder:{tone_folder}"]).output
    assert "Wilson 95 %" in text and f"n={out['n']}" in text
    res = cli(["models", "list", "--root", root, "--json"])
    assert {r["name"] for r in json.loads(res.stdout)["models"]} >= {f"lms-{v}" for v in ROBUST}


def test_attack_eval_is_adaptive_on_stochastic_models_by_default(cli, robust_zoo, tone_folder, tmp_path):
    root, _ = robust_zoo
    base = ["attack", "eval", "--model", "lms-slr4", "--targets", "lms-slr4,lms-fp32", "--attack", "pgd",
            "--eps", "0.005", "--steps", "2", "--n", "4", "--root", root, "--data", f"folder:{tone_folder}"]
    res = cli(base + ["--out", tmp_path / "a"])
    assert res.exit_code == 0, res.output
    assert "adaptive" in res.output and "EOT" in res.output and "--no-adaptive" in res.output
    res = cli(base + ["--out", tmp_path / "b", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["adaptive"] is True and out["eot_samples"] == {"lms-slr4": 8}
    res = cli(base + ["--out", tmp_path / "c", "--json", "--no-adaptive"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["adaptive"] is False and out["eot_samples"] == {"lms-slr4": 1}
    assert out["targets"]["lms-slr4"]["queries"][0] == pytest.approx(2.0)   # 2 steps x 1 draw


def test_ensemble_curve_command_writes_csv_and_png(cli, robust_zoo, tone_folder, tmp_path):
    import pandas as pd

    root, _ = robust_zoo
    res = cli(["models", "ensemble-curve", "lms-slr4", "--members", "1,2,4", "--steps", "2", "--eot-samples", "2",
               "--n", "4", "--root", root, "--data", f"folder:{tone_folder}", "--out", tmp_path, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    table = pd.read_csv(out["csv"])
    assert list(table["n_members"]) == [1, 2, 4]
    assert table["n"].nunique() == 1 and 0 < table["n"].iloc[0] <= 4     # the same clips for every size
    assert table["error_rate"].between(0, 1).all() and table["adaptive"].all()
    from testbed.stats import wilson_interval

    for r in table.itertuples():
        assert (r.error_ci_low, r.error_ci_high) == pytest.approx(
            wilson_interval(round(r.error_rate * r.n), r.n))
        assert (r.clean_error_ci_low, r.clean_error_ci_high) == pytest.approx(
            wilson_interval(round(r.clean_error * r.n), r.n))
    assert out["rows"][0]["mcnemar_p"] is None and 0.0 <= out["rows"][1]["mcnemar_p"] <= 1.0
    assert (tmp_path / "ensemble_curve.png").stat().st_size > 1000


@pytest.mark.parametrize("args,needle", [
    (["models", "ensemble-curve", "lms-fp32"], "not stochastic"),
    (["models", "ensemble-curve", "lms-slr4", "--members", "1,x"], "--members"),
    (["models", "ensemble-curve", "lms-slr4", "--members", "0,2"], "--members"),
    (["models", "build", "--arch", "lms", "--variants", "slr3"], "slr3"),
])
def test_bad_robust_input_is_one_line_and_exit_2(cli, robust_zoo, args, needle):
    root, _ = robust_zoo
    res = cli(args + ["--root", root])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_models_build_robust_settings_reach_the_card(cli, tone_folder, tmp_path):
    res = cli(["models", "build", "--arch", "lms", "--variants", "fp32,slr4", "--data", f"folder:{tone_folder}",
               "--steps", "4", "--finetune-steps", "2", "--warmup-steps", "1", "--robust", "sigma_rel=0.25",
               "--robust", "alpha=0.5", "--robust", "beta=0.3", "--robust", "gamma=0.2", "--robust", "adv-eps=0.004",
               "--root", tmp_path, "--json"])
    assert res.exit_code == 0, res.output
    card = Zoo(tmp_path).card("lms-slr4")
    settings = card["robust"]["settings"]
    assert (settings["sigma_rel"], settings["alpha"], settings["gamma"], settings["adv_eps"]) == (0.25, 0.5, 0.2, 0.004)
    assert settings["warmup_steps"] == 1 and card["robust"]["warmup"]["steps_run"] == 1
    assert card["compression"]["noise"]["sigma_rel"] == 0.25 and card["robust"]["adversary"]["eps"] == 0.004


@pytest.mark.parametrize("setting,needle", [
    ("gamma=0.3", "alpha + beta + gamma must sum to 1"),
    ("sigma=0.3", "unknown parameter 'sigma'"),
    ("sigma_rel", "--robust: 'sigma_rel' is not KEY=VALUE"),
    ("sigma_rel=abc", "sigma_rel must be a number"),
    ("adv_kind=nes", "adv_kind must be one of"),
])
def test_bad_robust_settings_fail_before_any_training(cli, tmp_path, setting, needle):
    res = cli(["models", "build", "--arch", "lms", "--variants", "fp32,slr4", "--quick", "--robust", setting,
               "--root", tmp_path])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())          # nothing trained, nothing written
