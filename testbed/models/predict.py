"""Inference helpers: batched prediction and evaluation with per-class figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from testbed.errors import ModelError


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Top class and class probabilities for clips ``x``.

    Parameters
    ----------
    model : nn.Module
        Raw PCM ``(batch, samples)`` -> logits; run in eval mode (restored afterwards).
    x : array or Tensor (n, samples)
        PCM in [-1, 1].
    batch_size : int
        Clips per forward pass.

    Returns
    -------
    pred_idx : ndarray int64 (n,)
    probs : ndarray float32 (n, n_labels)
    """
    was_training = model.training
    model.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x.float()
    if xt.dim() == 1:
        xt = xt.unsqueeze(0)
    probs = []
    try:
        for i in range(0, len(xt), batch_size):
            probs.append(torch.softmax(model(xt[i:i + batch_size]), dim=-1).cpu())
    finally:
        model.train(was_training)
    p = torch.cat(probs).numpy().astype(np.float32) if probs else np.zeros((0, len(model.labels)), np.float32)
    return p.argmax(axis=1).astype(np.int64), p


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, labels: Sequence[str] | None = None,
             batch_size: int = 256) -> dict:
    """Accuracy, per-class accuracy and confusion matrix of ``model`` on clips ``x`` with labels ``y``.

    Parameters
    ----------
    model : nn.Module
        Has ``labels``; predictions range over all of them.
    x : ndarray (n, samples)
    y : ndarray int (n,)
        Indices into ``labels`` (default: the model's labels).
    labels : sequence of str, optional
        Names of the values in ``y`` when they differ from the model's (a subset of them).

    Returns
    -------
    dict
        ``n, accuracy`` (fraction), ``per_class {label: {n, accuracy}}``, ``classes`` (true
        labels present, rows of the matrix), ``predicted_labels`` (columns), ``confusion``
        (list of rows, counts).
    """
    model_labels = list(model.labels)
    labels = model_labels if labels is None else list(labels)
    missing = [lab for lab in labels if lab not in model_labels]
    if missing:
        raise ModelError(f"data labels {missing} are not among the model's labels ({', '.join(model_labels)})")
    y_model = np.array([model_labels.index(labels[i]) for i in np.asarray(y)], dtype=np.int64)
    pred, _ = predict(model, x, batch_size=batch_size)
    present = sorted(set(y_model.tolist()))
    confusion = np.zeros((len(present), len(model_labels)), dtype=np.int64)
    for t, p in zip(y_model, pred):
        confusion[present.index(int(t)), int(p)] += 1
    per_class = {}
    for row, cls in enumerate(present):
        n = int(confusion[row].sum())
        per_class[model_labels[cls]] = {"n": n, "accuracy": round(float(confusion[row, cls] / n), 5)}
    return {
        "n": int(len(y_model)),
        "accuracy": round(float((pred == y_model).mean()), 5) if len(y_model) else None,
        "per_class": per_class,
        "classes": [model_labels[c] for c in present],
        "predicted_labels": model_labels,
        "confusion": confusion.tolist(),
    }


def save_confusion_png(result: dict, path, title: str = "") -> None:
    """Draw ``evaluate``'s confusion matrix (rows: true class, columns: prediction) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.55 * cm.shape[1], 1 + 0.5 * cm.shape[0]))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(cm.shape[1]), result["predicted_labels"], rotation=60, ha="right")
    ax.set_yticks(range(cm.shape[0]), result["classes"])
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {result['accuracy']:.3f} (n={result['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
