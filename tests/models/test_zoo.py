"""The zoo on disk: cards, round trips, tamper detection, unknown names."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from testbed.errors import ModelError
from testbed.models import Zoo, build_zoo, load_model, predict


def test_build_writes_cards_with_what_the_issue_asks(tone_zoo, tones):
    root, names = tone_zoo
    assert names == ["lms-fp32", "lms-lowrank", "lms-int8", "lms-int4"]
    zoo = Zoo(root)
    assert zoo.names() == sorted(names)
    for name in names:
        card = zoo.card(name)
        for key in ("arch", "variant", "labels", "preprocessing", "data", "metrics", "size_bytes",
                    "param_count", "training", "versions", "compression", "weights_sha256"):
            assert key in card, (name, key)
        assert card["data"]["split_hash"] == tones.split_hash
        assert card["training"]["seed"] == 0
        assert card["size_bytes"] == (root / name / "weights.safetensors").stat().st_size
    low = zoo.card("lms-lowrank")["compression"]
    assert all(layer["rank"] < layer["full_rank"] for layer in low["layers"])
    assert zoo.card("lms-int8")["compression"]["bits"] == 8
    fp32 = zoo.card("lms-fp32")
    assert zoo.card("lms-lowrank")["param_count"] < fp32["param_count"]
    assert zoo.card("lms-int8")["size_bytes"] < 0.5 * fp32["size_bytes"]


@pytest.mark.parametrize("name", ["lms-fp32", "lms-lowrank", "lms-int8"])
def test_save_load_round_trip_gives_identical_logits(tone_zoo, tones, name):
    root, _ = tone_zoo
    a, b = load_model(name, root), Zoo(root).load(name)
    x = torch.from_numpy(tones.test.x[:8])
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert a.card["name"] == name and not a.training
    assert Zoo(root).model_hash(name) == a.card["weights_sha256"]
    # the stored model reproduces the accuracy in its card
    pred, _ = predict(a, tones.test.x)
    assert (pred == tones.test.y).mean() == pytest.approx(a.card["metrics"]["test_accuracy"], abs=1e-4)


def test_tampered_weights_are_refused(tone_zoo, tmp_path):
    import shutil

    root, _ = tone_zoo
    shutil.copytree(root / "lms-int8", tmp_path / "lms-int8")
    w = tmp_path / "lms-int8" / "weights.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-3] ^= 0x01
    w.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match=r"weights\.safetensors.*does not match"):
        load_model("lms-int8", tmp_path)


def test_card_hash_edit_is_refused_too(tone_zoo, tmp_path):
    import shutil

    root, _ = tone_zoo
    shutil.copytree(root / "lms-fp32", tmp_path / "lms-fp32")
    card_path = tmp_path / "lms-fp32" / "card.json"
    card = json.loads(card_path.read_text())
    card["weights_sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="tampered"):
        load_model("lms-fp32", tmp_path)


def test_a_model_built_with_another_front_end_is_refused(tone_zoo, tmp_path):
    """Front ends hold no weights, so an old model would load and silently misread its input:
    the card's preprocessing must be this version's (here: a log-mel card with other mel bands)."""
    import shutil

    root, _ = tone_zoo
    shutil.copytree(root / "lms-fp32", tmp_path / "lms-fp32")
    card_path = tmp_path / "lms-fp32" / "card.json"
    card = json.loads(card_path.read_text())
    assert load_model("lms-fp32", tmp_path) is not None          # as written: loads
    card["preprocessing"]["n_mels"] = 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"card\.json: preprocessing differs.*n_mels.*rebuild"):
        load_model("lms-fp32", tmp_path)


def test_unknown_name_lists_what_exists(tone_zoo):
    root, _ = tone_zoo
    with pytest.raises(ModelError, match=r"'lm-fp32'.*have: lms-fp32, lms-int4"):
        load_model("lm-fp32", root)
    assert not Zoo(root).exists("lm-fp32")


def test_env_var_sets_the_default_root(tone_zoo, monkeypatch):
    root, _ = tone_zoo
    monkeypatch.setenv("TESTBED_MODELS_DIR", str(root))
    assert "lms-int8" in Zoo().names()


def test_reuse_fp32_starts_the_variants_from_the_stored_model_without_retraining(tone_zoo, tones, tmp_path):
    import shutil

    root, _ = tone_zoo
    zoo_copy = tmp_path / "zoo"
    shutil.copytree(root / "lms-fp32", zoo_copy / "lms-fp32")
    before = (zoo_copy / "lms-fp32" / "weights.safetensors").read_bytes()
    names = build_zoo(["lms"], ["fp32", "int8"], root=zoo_copy, seed=5, steps=1000, dataset=tones, reuse_fp32=True)
    assert names == ["lms-fp32", "lms-int8"]
    assert (zoo_copy / "lms-fp32" / "weights.safetensors").read_bytes() == before   # not retrained
    card = Zoo(zoo_copy).card("lms-int8")
    stored = Zoo(zoo_copy).card("lms-fp32")
    assert card["metrics"]["fp32_test_accuracy"] == stored["metrics"]["test_accuracy"]
    assert card["training"]["steps"] == stored["training"]["steps"] != 1000
    # a stored fp32 from another split is refused, naming the model
    other = copy.deepcopy(tones)
    other.split_hash = "another-split"
    with pytest.raises(ModelError, match="lms-fp32 .* another data set"):
        build_zoo(["lms"], ["int8"], root=zoo_copy, dataset=other, reuse_fp32=True)
