"""Scoring captures: every model on every capture window, and the serial DUT's own answer."""

from __future__ import annotations

import numpy as np

from testbed.session.deps import LoadedModel
from testbed.session.store import EvalRecord
from testbed.session.timing import eval_window


def evaluate_captures(models, windows: dict[str, tuple[np.ndarray, float]],
                      loaded: dict[str, LoadedModel], source: str, sample_rate: int) -> list[EvalRecord]:
    """Evaluations of every ``(capture, start)`` in ``windows`` by every model in ``loaded``.

    ``models`` has ``predict(loaded_model, x)`` (a :class:`~testbed.session.deps.Models`);
    ``windows`` maps mic -> (capture float32 (n_samples,), start of the command in samples).
    """
    out: list[EvalRecord] = []
    mics = list(windows)
    for name, m in loaded.items():
        n = m.clip_samples
        if m.sample_rate != sample_rate:
            from scipy.signal import resample_poly

            g = np.gcd(m.sample_rate, sample_rate)
            xs = [resample_poly(eval_window(s, st, int(np.ceil(n * sample_rate / m.sample_rate))),
                                m.sample_rate // g, sample_rate // g)[:n] for s, st in windows.values()]
            x = np.stack([np.pad(v, (0, n - len(v))) for v in xs]).astype(np.float32)
        else:
            x = np.stack([eval_window(s, st, n) for s, st in windows.values()])
        pred, probs = models.predict(m, x)
        for i, mic in enumerate(mics):
            p = probs[i]
            out.append(EvalRecord(mic=mic, model=name, model_hash=m.model_hash, eval_source=source,
                                  prediction=m.labels[int(pred[i])], score_top=float(p[int(pred[i])]),
                                  scores={lab: round(float(v), 6) for lab, v in zip(m.labels, p)}))
    return out


def serial_evaluation(info, result, mic: str) -> EvalRecord:
    """The serial DUT's answer ``result`` as an evaluation of ``mic`` (``info``: the DUT's
    self-description with ``model`` and ``labels``, or None)."""
    labels = list(info.labels) if info is not None else []
    scores = {lab: float(v) for lab, v in zip(labels, result.scores or [])}
    return EvalRecord(mic=mic, model=info.model if info is not None else "dut",
                      model_hash=None, eval_source="serial", prediction=result.label if result.ok else None,
                      score_top=max(scores.values()) if scores and result.ok else None, scores=scores)
