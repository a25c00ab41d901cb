"""Targeted command injection: a matrix of source -> target commands, success = the target.

``yes:go,no:up`` attacks the clips whose label is ``yes`` toward ``go`` and those of ``no``
toward ``up``. A pair's *success* counts only clips the model now puts in the target class;
its *error* (the untargeted figure, reported beside it) counts every clip no longer of its
source label. Both come with Wilson 95 % intervals (:func:`testbed.stats.rate_interval`), and
so does *masked success*: the clips that say the target with the perturbation above the
command's masking threshold in at most :data:`MASKED_FRAMES` of the frames (issue 24's goal:
under the threshold in >= 95 % of frames).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from testbed.acoustics.audibility import AUDIBILITY_KEYS, AudibilityMeter
from testbed.attacks.base import fit_length, label_index
from testbed.attacks.evaluate import craft, predictions
from testbed.attacks.timing import ms_to_samples, shift_perturbation
from testbed.errors import AttackError
from testbed.stats import rate_interval

#: Largest fraction of frames above the masking threshold for a hit to count as masked.
MASKED_FRAMES = 0.05

#: Columns of :func:`evaluate_target_matrix`'s table (``targeted.csv``).
PAIR_COLUMNS = ("source", "target", "attack", "eps", "delay_ms", "source_label", "target_label", "n",
                "hits", "success_rate", "success_lo", "success_hi",
                "masked_hits", "masked_success_rate", "masked_success_lo", "masked_success_hi",
                "errors", "error_rate", "error_lo", "error_hi", "queries",
                *AUDIBILITY_KEYS)


def parse_target_matrix(text: str, labels: Sequence[str] | None = None, *,
                        where: str = "--target-matrix") -> list[tuple[str, str]]:
    """Pairs ``[(source label, target label), ...]`` from ``"yes:go,no:up"``.

    Raises AttackError (naming ``where``) for a malformed pair, a pair whose source is its
    target, a source given twice, or a label not in ``labels`` (when given).
    """
    pairs: list[tuple[str, str]] = []
    for item in (p.strip() for p in (text or "").split(",")):
        if not item:
            continue
        src, sep, tgt = (s.strip() for s in item.partition(":"))
        if not sep or not src or not tgt:
            raise AttackError(f"{where}: {item!r} is not SOURCE:TARGET (e.g. yes:go,no:up)")
        if src == tgt:
            raise AttackError(f"{where}: {item!r} aims a command at itself")
        if any(s == src for s, _ in pairs):
            raise AttackError(f"{where}: source {src!r} is given twice")
        for lab in (src, tgt):
            if labels is not None and lab not in labels:
                raise AttackError(f"{where}: label {lab!r} is not one of the model's labels: {', '.join(labels)}")
        pairs.append((src, tgt))
    if not pairs:
        raise AttackError(f"{where}: give at least one SOURCE:TARGET pair, e.g. yes:go")
    return pairs


def evaluate_target_matrix(
    sources: Mapping[str, torch.nn.Module],
    targets: Mapping[str, torch.nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    pairs: Sequence[tuple[str, str]],
    *,
    kind: str = "pgd",
    eps: Sequence[float] = (0.005,),
    delays_ms: Sequence[float] = (0.0,),
    params: Mapping | None = None,
    sample_rate: int = 16000,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    clips_out: list[dict] | None = None,
) -> pd.DataFrame:
    """Craft targeted ``kind`` per (source model, pair, eps) and judge it on every target model.

    Parameters
    ----------
    sources, targets : name -> model (raw PCM (B, S) -> logits), one label set
    x : float32 (n, S) clips; y : int64 (n,) label indices in the models' labels
    pairs : (source label, target label): clips of the source label are attacked toward the target
    kind, eps, delays_ms, params, sample_rate, batch_size : as :func:`evaluate_attack`
    progress : called with (done, total) clips crafted
    clips_out : when a list, one dict per (row, clip) is appended to it: the row's keys, ``clip``
        (index into ``x``), ``hit`` (the target model said the target), ``frames_above`` and
        ``snr_db`` of that clip's perturbation (:func:`tradeoff` reads them)

    Returns
    -------
    DataFrame with :data:`PAIR_COLUMNS`, one row per (source, target model, eps, delay, pair):
    ``hits`` / ``n`` clips the target model puts in the target class (``success_*``, Wilson 95 %),
    ``masked_hits`` / ``n`` of those with at most :data:`MASKED_FRAMES` of frames above the masking
    threshold (``masked_success_*``),
    ``errors`` / ``n`` clips it no longer puts in the source class (``error_*``), queries per clip
    and the audibility of the perturbations against their commands. A pair with no clip in ``x``
    has ``n = 0`` and NaN rates.
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    n_all, s = xt.shape
    meter = AudibilityMeter(xt.numpy(), sample_rate)
    first = next(iter(sources.values()))
    index = [(src, tgt, label_index(first, src), label_index(first, tgt)) for src, tgt in pairs]
    total = sum(int((yt == i).sum()) for _, _, i, _ in index) * len(sources) * len(eps)
    done, rows = 0, []
    for src_name, model in sources.items():
        for src_lab, tgt_lab, si, ti in index:
            rows_idx = np.nonzero(yt.numpy() == si)[0]
            for e in eps:
                base = {"source": src_name, "attack": kind, "eps": float(e), "source_label": src_lab,
                        "target_label": tgt_lab, "n": int(rows_idx.size)}
                if rows_idx.size == 0:
                    rows += [{**base, "target": t, "delay_ms": float(d), "hits": 0, "masked_hits": 0, "errors": 0}
                             for t in targets for d in delays_ms]
                    continue
                xs, ys = xt[rows_idx], yt[rows_idx]

                def tick(k: int) -> None:
                    nonlocal done
                    done += k
                    if progress:
                        progress(done, total)
                delta, queries = craft(model, kind, e, xs, ys, target=torch.full_like(ys, ti),
                                       batch_size=batch_size, params=params, progress=tick)
                delta = fit_length(delta, s)
                for d_ms in delays_ms:
                    shifted = shift_perturbation(delta, ms_to_samples(d_ms, sample_rate), n_out=s)
                    x_adv = (xs + shifted).clamp(-1.0, 1.0)
                    clips = meter.per_clip((x_adv - xs).numpy(), rows=rows_idx)
                    audible = meter.reduce(clips)
                    # NaN (a silent command) is not masked: the comparison is False
                    masked = np.asarray(clips["frames_above"], dtype=np.float64) <= MASKED_FRAMES
                    for t_name, t_model in targets.items():
                        pred = predictions(t_model, x_adv)
                        hit = np.asarray(pred == ti)
                        rows.append({**base, "target": t_name, "delay_ms": float(d_ms), "hits": int(hit.sum()),
                                     "masked_hits": int((hit & masked).sum()), "errors": int((pred != si).sum()),
                                     "queries": float(queries), **audible})
                        if clips_out is not None:
                            clips_out += [{**base, "target": t_name, "delay_ms": float(d_ms), "clip": int(c),
                                           "hit": bool(h), "frames_above": float(f), "snr_db": float(q)}
                                          for c, h, f, q in zip(rows_idx, hit, clips["frames_above"], clips["snr_db"])]
    return _with_intervals(pd.DataFrame(rows))


def _with_intervals(table: pd.DataFrame) -> pd.DataFrame:
    """Add the Wilson intervals of success (hits / n) and error (errors / n)."""
    for what, count in (("success", "hits"), ("masked_success", "masked_hits"), ("error", "errors")):
        ivs = [rate_interval(int(k), int(n)) for k, n in zip(table.get(count, []), table.get("n", []))]
        table[f"{what}_rate"] = [iv["rate"] for iv in ivs]
        table[f"{what}_lo"] = [iv["ci_low"] for iv in ivs]
        table[f"{what}_hi"] = [iv["ci_high"] for iv in ivs]
    return table.reindex(columns=list(PAIR_COLUMNS))


#: Fractions of frames above the masking threshold at which :func:`tradeoff` counts success.
TRADEOFF_FRACTIONS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def tradeoff(clips: Sequence[dict], fractions: Sequence[float] = TRADEOFF_FRACTIONS) -> pd.DataFrame:
    """Targeted success against audibility: per (source, target model, eps, delay, pair) and per
    allowed fraction ``f`` of frames above the masking threshold, the clips that said the target
    with their perturbation above the threshold in at most ``f`` of the frames (``k`` / ``n``,
    Wilson 95 %). ``f = 1`` is plain success; ``f = 0.05`` is :data:`MASKED_FRAMES`'s masked
    success. A clip whose command is silent (NaN) counts only at ``f = 1``.
    """
    keys = ["source", "target", "eps", "delay_ms", "source_label", "target_label"]
    df = pd.DataFrame(list(clips))
    out = []
    if df.empty:
        return pd.DataFrame(columns=[*keys, "fraction", "k", "n", "rate", "lo", "hi"])
    for key, g in df.groupby(keys, sort=False):
        frac = g["frames_above"].to_numpy(dtype=np.float64)
        hit = g["hit"].to_numpy(dtype=bool)
        for f in fractions:
            under = np.ones_like(hit) if f >= 1.0 else (frac <= f)     # NaN <= f is False
            iv = rate_interval(int((hit & under).sum()), int(hit.size))
            out.append({**dict(zip(keys, key)), "fraction": float(f), "k": iv["k"], "n": iv["n"],
                        "rate": iv["rate"], "lo": iv["ci_low"], "hi": iv["ci_high"]})
    return pd.DataFrame(out)
