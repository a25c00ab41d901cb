"""The model a DUT runs: a zoo model (or any PCM-in, logits-out torch module) as a callable."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from testbed.errors import ModelError


class Classifier(Protocol):
    """What the DUT emulator needs of a model.

    Attributes
    ----------
    name : str
        Model name reported in ``hello``.
    labels : list of str
        Output labels, in score order.
    sample_rate : int
        Rate the model expects, Hz.
    clip_samples : int
        Input length the model was trained on, samples.
    """

    name: str
    labels: list[str]
    sample_rate: int
    clip_samples: int

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        """Scores (probabilities) of shape (n_labels,) for float32 PCM of shape (n_samples,)."""
        ...


def loudest_window(pcm: np.ndarray, n_samples: int) -> np.ndarray:
    """The ``n_samples`` stretch of ``pcm`` with the most energy, zero-padded if ``pcm`` is shorter.

    A keyword spotter listening for a window longer than its input hears the command
    where it is loudest, wherever the playback and the room delays put it.

    Parameters
    ----------
    pcm : ndarray, shape (n,)
        Captured audio.
    n_samples : int
        Model input length.

    Returns
    -------
    ndarray of float32, shape (n_samples,)
    """
    x = np.asarray(pcm, dtype=np.float32).reshape(-1)
    if len(x) <= n_samples:
        return np.pad(x, (0, n_samples - len(x)))
    energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    win = energy[n_samples:] - energy[:-n_samples]
    start = int(np.argmax(win))
    return x[start:start + n_samples].copy()


class TorchClassifier:
    """A torch module taking raw PCM (B, S) in [-1, 1] and returning logits (B, n_labels).

    Parameters
    ----------
    model : torch.nn.Module
        Has ``labels`` and ``sample_rate`` attributes (every zoo model does); ``clip_samples``
        is read from the model or its ``card`` and defaults to one second.
    name : str or None
        Name to report; default the card's name, else the class name.
    """

    def __init__(self, model, name: str | None = None) -> None:
        card = getattr(model, "card", None) or {}
        self.model = model.eval()
        self.labels = [str(x) for x in model.labels]
        self.sample_rate = int(getattr(model, "sample_rate", card.get("sample_rate", 16000)))
        self.clip_samples = int(getattr(model, "clip_samples", None) or card.get("clip_samples")
                                or self.sample_rate)
        self.name = name or card.get("name") or type(model).__name__

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(loudest_window(pcm, self.clip_samples))[None, :]
        with torch.no_grad():
            logits = self.model(x)
        return torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()


def load_zoo_classifier(name: str, models_dir: Path | None = None) -> TorchClassifier:
    """Load model ``name`` from the zoo (``testbed.models.load_model``) as a classifier.

    Raises
    ------
    ModelError
        Unknown model (the zoo's message lists what exists) or no zoo in this build.
    """
    try:
        from testbed.models import load_model
    except ImportError:
        raise ModelError("the model zoo (testbed.models) is not in this build; "
                         "cannot load model for the DUT emulator") from None
    return TorchClassifier(load_model(name, root=models_dir), name=name)
