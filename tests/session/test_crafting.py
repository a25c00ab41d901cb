"""The one definition of a crafting's parameters: every field reaches the cache key and the request."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from testbed.rig import load_rig
from testbed.scale.cache import perturbation_key
from testbed.session.crafting import CraftJob, CraftParams, cache_keys, craft_params, craft_request
from testbed.session.plan import parse_plan
from testbed.session.trials import attack_configs

SR = 16000


def _rig(office_rig_path):
    return load_rig(office_rig_path)


def _base(rig) -> CraftParams:
    return CraftParams(kind="ota-pgd", eps=0.01, target="untargeted", source_model="lm-fp32", over_the_air=True,
                       params={"steps": 5, "eot_samples": 4}, source_hash="abc123", rig=rig, mics=("cheap",),
                       delay_ms=(0.0, 100.0), channel_digest="d" * 64)


def _other_rig(rig):
    room = rig.room.model_copy(update={"rt60_s": rig.room.rt60_s + 0.1})
    return rig.model_copy(update={"room": room})


def _changed(value, rig):
    """A different value of the same kind (one mutation per field type)."""
    if value is rig:
        return _other_rig(rig)
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, float):
        return value + 0.001
    if isinstance(value, dict):
        return {**value, "extra": 1}
    if isinstance(value, tuple):
        return tuple(value[:-1]) + (value[-1] + ("x" if isinstance(value[-1], str) else 1),)
    raise AssertionError(f"add a mutation for {type(value).__name__} to this test")


def _keys(p: CraftParams, job: CraftJob, sigs) -> list[str]:
    return cache_keys(p, job, sigs, perturbation_key)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    sigs = [(0.1 * rng.standard_normal(SR)).astype(np.float32) for _ in range(2)]
    return CraftJob("a", [("yes-0", "yes"), ("no-0", "no")], ["yes-0", "no-0"], seed=7), sigs


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(CraftParams)])
def test_the_cache_key_changes_when_any_crafting_parameter_changes(name, office_rig_path, batch):
    rig = _rig(office_rig_path)
    base = _base(rig)
    job, sigs = batch
    changed = dataclasses.replace(base, **{name: _changed(getattr(base, name), rig)})
    before, after = _keys(base, job, sigs), _keys(changed, job, sigs)
    assert before == _keys(_base(rig), job, sigs)          # the key is a function of the values
    assert all(a != b for a, b in zip(before, after)), name


@pytest.mark.parametrize("change", [
    {"params": {"steps": 6, "eot_samples": 4}},
    {"params": {"steps": 5, "eot_samples": 8}},
    {"rig": "speaker"},
    {"rig": "mic"},
])
def test_hyper_parameters_and_rig_channel_parameters_reach_the_key(change, office_rig_path, batch):
    rig = _rig(office_rig_path)
    base = _base(rig)
    job, sigs = batch
    if change.get("rig") == "speaker":
        spk = rig.speakers["adversary"].model_copy(update={"max_dbfs": rig.speakers["adversary"].max_dbfs - 1})
        change = {"rig": rig.model_copy(update={"speakers": {**rig.speakers, "adversary": spk}})}
    elif change.get("rig") == "mic":
        mic = rig.mics["cheap"].model_copy(update={"position_m": (1.0, 1.0, 1.0)})
        change = {"rig": rig.model_copy(update={"mics": {**rig.mics, "cheap": mic}})}
    assert _keys(base, job, sigs) != _keys(dataclasses.replace(base, **change), job, sigs)


def test_the_key_follows_the_batch_seed_the_row_the_samples_and_the_label(office_rig_path, batch):
    base = _base(_rig(office_rig_path))
    job, sigs = batch
    k = _keys(base, job, sigs)
    assert k[0] != k[1]
    assert _keys(base, dataclasses.replace(job, seed=8), sigs) != k
    assert _keys(base, job, [sigs[0] + 1e-3, sigs[1]])[0] != k[0]
    relabelled = dataclasses.replace(job, chunk=[("yes-0", "no"), ("no-0", "no")])
    assert _keys(base, relabelled, sigs)[0] != k[0]


def test_the_request_is_built_from_the_same_parameters(office_rig_path, batch):
    rig = _rig(office_rig_path)
    base = _base(rig)
    job, sigs = batch
    labels = ["yes", "no", "up"]
    req = craft_request(base, job, sigs, labels, clip_samples=12000)
    assert (req.kind, req.eps, req.source_model, req.source_hash) == ("ota-pgd", 0.01, "lm-fp32", "abc123")
    assert req.x.shape == (2, 12000) and np.array_equal(req.x[0], sigs[0][:12000])
    assert req.y.tolist() == [0, 1] and req.target is None
    assert req.params == {"steps": 5, "eot_samples": 4, "seed": 7, "rig": rig, "mics": ["cheap"],
                          "delay_ms": (0.0, 100.0)}
    targeted = craft_request(dataclasses.replace(base, target="up"), job, sigs, labels, 12000)
    assert targeted.target.tolist() == [2, 2]


def test_craft_params_carry_the_channel_only_for_over_the_air_kinds(office_rig_path):
    rig = _rig(office_rig_path)
    plan = parse_plan({"name": "p", "utterances": {"labels": ["yes"]}, "sweep": {"delay_ms": [50, -20, 300]},
                       "attacks": [{"kind": "fgsm", "eps": 0.01, "source_model": "m"},
                                   {"kind": "pgd", "eps": 0.01, "steps": 3, "source_model": "m",
                                    "over_the_air": True}]})
    fgsm, ota = (craft_params(c, rig, plan, "h") for c in attack_configs(plan))
    assert (fgsm.kind, fgsm.rig, fgsm.mics, fgsm.delay_ms) == ("fgsm", None, None, None)
    assert "rig" not in fgsm.key_description()
    assert (ota.kind, ota.mics, ota.delay_ms, ota.params) == ("ota-pgd", (rig.dut.mic,), (-20.0, 300.0), {"steps": 3})
    assert ota.rig is rig and ota.key_description()["rig"] == rig.model_dump(mode="json")
