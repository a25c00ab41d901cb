"""A worker loads every model through the zoo, ``NAME@kN`` views included (issue #19).

``worker_model(model_ref(...))`` is the path every Dask task takes; called in-process here,
so no cluster is needed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testbed.errors import ModelError
from testbed.models import Zoo, build_model
from testbed.models.robust import make_slr
from testbed.models.threads import torch_threads
from testbed.scale import worker
from testbed.scale.worker import model_ref, worker_model
from testbed.session.deps import Models

KWS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence"]
SR = 16000


@pytest.fixture(autouse=True)
def _keep_threads():
    """The worker's setup pins one thread: keep that out of the tests after these."""
    with torch_threads():
        yield


@pytest.fixture(scope="module")
def slr_zoo(tmp_path_factory):
    """A zoo holding an untrained (seeded) lm-slr8 ensemble and an lm-fp32."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("slr-zoo")
    zoo = Zoo(root)
    base = build_model("lm", KWS)
    zoo.save("lm-fp32", base, {"arch": "lm", "variant": "fp32", "labels": KWS, "sample_rate": SR,
                               "clip_samples": SR})
    slr, compression = make_slr(build_model("lm", KWS), 8, seed=3)
    zoo.save("lm-slr8", slr, {"arch": "lm", "variant": "slr8", "labels": KWS, "sample_rate": SR,
                              "clip_samples": SR, "stochastic": True, "compression": compression})
    return root


def test_a_view_loads_on_the_worker_path_with_its_member_count(slr_zoo):
    ref = model_ref(Models(slr_zoo), "lm-slr8@k4")
    card = Zoo(slr_zoo).card("lm-slr8")
    assert ref.name == "lm-slr8@k4" and ref.model_hash == card["weights_sha256"]
    assert "view_of" not in ref.card                      # the stored card travels, not the view's
    before = worker.LOADS.get(ref.model_hash, 0)
    view = worker_model(ref)
    assert view.name == "lm-slr8@k4" and view.module.n_members == 4
    assert worker_model(ref) is view                       # cached per worker thread and name
    full = worker_model(model_ref(Zoo(slr_zoo), "lm-slr8"))
    assert full.module is not view.module and full.module.n_members == 8
    assert worker.LOADS[ref.model_hash] == before + 2
    # the worker's view predicts exactly what the in-process zoo's view predicts
    here = Models(slr_zoo).load("lm-slr8@k4")
    x = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal((3, SR))).astype(np.float32))
    with torch.no_grad():
        a = view.module.reseed(11)(x)
        b = here.module.reseed(11)(x)
    assert torch.equal(a, b)


def test_a_tampered_ref_is_refused_by_the_zoo_on_the_worker(slr_zoo):
    ref = model_ref(Models(slr_zoo), "lm-fp32")
    bad = worker.ModelRef(ref.name, "0" * 64, ref.card, ref.weights[:-1] + bytes([ref.weights[-1] ^ 1]))
    with pytest.raises(ModelError, match="does not match the card"):
        worker_model(bad)


def test_refs_of_unknown_models_and_of_views_of_deterministic_models_raise(slr_zoo):
    with pytest.raises(ModelError, match="unknown model 'lm-nope'"):
        model_ref(Models(slr_zoo), "lm-nope")
    with pytest.raises(ModelError, match="not a stochastic ensemble"):
        model_ref(Models(slr_zoo), "lm-fp32@k2")
