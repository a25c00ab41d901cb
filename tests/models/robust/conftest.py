"""Fixtures for the robust-model tests: a briefly trained tone model and SLR ensembles of it."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch


@pytest.fixture(scope="session")
def tone_fp32(tones):
    """An LMS model trained for a few steps on the tone bursts (well above chance)."""
    from testbed.models import build_model, train

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("lms", tones.labels, tones.sample_rate, tones.clip_samples)
    train(model, tones, steps=30, batch_size=16, seed=0, eval_every=30)
    return model.eval()


@pytest.fixture
def tone_slr(tone_fp32):
    """A fresh 4-member SLR ensemble of the tone model (singular-value noise 10 %), seed 0."""
    from testbed.models.robust import make_slr

    slr, _ = make_slr(copy.deepcopy(tone_fp32), 4, sigma_rel=0.1, seed=0)
    return slr.eval()


@pytest.fixture(scope="session")
def tone_folder(tmp_path_factory, tones) -> Path:
    """The tones' test clips as WAV files, one sub-folder per class (a ``folder:`` data set)."""
    root = tmp_path_factory.mktemp("tone-folder")
    for i, (x, y) in enumerate(zip(tones.test.x, tones.test.y)):
        d = root / tones.labels[int(y)]
        d.mkdir(exist_ok=True)
        sf.write(d / f"clip{i:03d}.wav", np.asarray(x), tones.sample_rate, subtype="FLOAT")
    return root
