"""Digital attack evaluation: craft on source models, evaluate on targets, over eps and delay.

One row per (source, target, eps, delay): clean accuracy, error rate under attack, attack
success rate (each with its Wilson 95 % interval), mean SNR of the perturbation, queries per
example, the model draws behind each gradient, and the exact McNemar p-value of the paired
difference in error against the first target on the same clips. The transfer matrix is the
error rate with sources as rows and targets as columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from testbed.stats import mcnemar_exact, wilson_interval
from testbed.attacks.adaptive import NON_ADAPTIVE, FixedDraw, eot_draws
from testbed.attacks.auto import broken_by_counts
from testbed.attacks.base import fit_length, label_index
from testbed.attacks.registry import make_attack
from testbed.attacks.timing import ms_to_samples, shift_perturbation

#: Columns of the table :func:`evaluate_attack` returns (and the CSV `attack eval` writes).
COLUMNS = ("source", "target", "attack", "eps", "delay_ms", "target_label", "n",
           "clean_accuracy", "error_rate", "success_rate", "snr_db", "queries",
           "errors", "error_low", "error_high", "success_n", "success_low", "success_high",
           "clean_low", "clean_high", "eot_draws", "p_vs_first", "broken_by", "queries_max",
           # audibility at the DUT mic (issue 24; testbed.acoustics.audibility)
           "level_dbfs", "level_db_spl", "level_dba", "loudness_lufs", "masking_margin_db", "frames_above")

Progress = Callable[[int, int], None]


def snr_db(x: np.ndarray | torch.Tensor, perturbation: np.ndarray | torch.Tensor) -> np.ndarray:
    """Signal-to-perturbation ratio per example, dB: ``10 log10(sum x^2 / sum p^2)``.

    Parameters
    ----------
    x, perturbation : float arrays (n, S)

    Returns
    -------
    float64 array (n,); ``inf`` where the perturbation is all zero.
    """
    x = np.asarray(torch.as_tensor(x).detach().cpu(), dtype=np.float64)
    p = np.asarray(torch.as_tensor(perturbation).detach().cpu(), dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.sum(x * x, axis=-1) / np.sum(p * p, axis=-1))


@torch.no_grad()
def predictions(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """Top class per clip (n,) for PCM clips (n, S), in eval mode (restored afterwards)."""
    was = model.training
    model.eval()
    dev = next(iter(model.parameters())).device if any(True for _ in model.parameters()) else "cpu"
    try:
        out = [model(x[i:i + batch_size].to(dev)).argmax(dim=-1).cpu() for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def craft(model: torch.nn.Module, kind: str, eps: float, x: torch.Tensor, y: torch.Tensor, *,
          target: torch.Tensor | None = None, batch_size: int = 64, params: Mapping | None = None,
          progress: Callable[[int], None] | None = None, info: dict | None = None) -> tuple[torch.Tensor, float]:
    """Perturbations for every clip, crafted in batches.

    Parameters
    ----------
    info : dict, optional
        Filled with ``eot_draws`` (model draws per gradient) and, for the attacks that keep
        them, ``broken_by`` (auto: which attack broke each clip) and ``clip_queries``.

    Returns
    -------
    delta : float tensor (n, S_delta) on the CPU
    queries : float, model evaluations per example
    """
    attack = make_attack(kind, model, eps, **dict(params or {}))
    if kind == "universal":  # one delta from the whole set
        deltas = [attack.perturb(x, y, target).cpu()]
        if progress:
            progress(x.shape[0])
    else:
        deltas = []
        for i in range(0, x.shape[0], batch_size):
            t = None if target is None else target[i:i + batch_size]
            deltas.append(attack.perturb(x[i:i + batch_size], y[i:i + batch_size], t).cpu())
            if progress:
                progress(deltas[-1].shape[0])
    if info is not None:
        info["eot_draws"] = eot_draws(model, attack.eot_samples)
        for key in ("broken_by", "clip_queries"):
            if hasattr(attack, key):
                info[key] = list(getattr(attack, key))
    return torch.cat(deltas), attack.queries / max(1, x.shape[0])


def evaluate_attack(
    sources: Mapping[str, torch.nn.Module],
    targets: Mapping[str, torch.nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    *,
    kind: str = "pgd",
    eps: Sequence[float] = (0.001, 0.005, 0.01, 0.05),
    delays_ms: Sequence[float] = (0.0,),
    target_label: str | None = None,
    params: Mapping | None = None,
    sample_rate: int = 16000,
    batch_size: int = 64,
    progress: Progress | None = None,
    adaptive: bool = True,
    draw_seed: int = 0,
) -> pd.DataFrame:
    """Craft ``kind`` on each source at each eps, evaluate on every target at each delay.

    The perturbation is crafted once per (source, eps) against the aligned command, then
    shifted ``delay_ms`` later against it (zero-filled; its tail past the clip is lost) --
    the paper's Figure 6 experiment, digitally.

    Parameters
    ----------
    sources, targets : name -> model (raw PCM (B, S) -> logits)
    x : float32 (n, S) PCM clips; y : int64 (n,) label indices (in the sources' labels)
    kind : attack kind (see ``ATTACKS``)
    eps : L-infinity bounds, PCM scale
    delays_ms : sync delays of the perturbation against the command, ms
    target_label : a label to aim for (targeted attack), or None (untargeted)
    params : hyper-parameters passed to ``make_attack``
    sample_rate : Hz, to turn ``delays_ms`` into samples
    batch_size : clips per attack batch
    progress : called with (done, total) clips crafted
    adaptive : against a stochastic source, attack the model itself (every gradient an
        average over ``eot_samples`` passes: EOT); False: the non-adaptive baseline, crafted on
        one fixed draw of the source (:class:`~testbed.attacks.adaptive.FixedDraw`, seeded with
        ``draw_seed``) and evaluated on the stochastic targets

    Returns
    -------
    DataFrame with :data:`COLUMNS`, one row per (source, target, eps, delay). Rates are
    fractions; ``success_rate`` is, untargeted, the fraction of clean-correct clips the
    attack flips and, targeted, the fraction of clips not already of the target label
    that the model now puts in it; ``snr_db`` is the mean over clips of the command's
    energy over the perturbation's (as added, after delay and clipping); ``queries`` is
    model evaluations per clip spent crafting. ``errors`` counts the wrong clips; ``*_low``
    and ``*_high`` bound each rate's Wilson 95 % interval (``success_n`` clips behind the
    success rate); ``eot_draws`` is the number of model draws behind each gradient;
    ``p_vs_first`` is the exact McNemar p-value of this target's errors against the first
    target's on the same clips (NaN for the first); ``broken_by`` (auto only) is a JSON object
    counting which attack broke each clip on the source; ``queries_max`` is the most queries
    one clip used (Square and auto count per clip; otherwise the mean); ``level_dbfs`` ...
    ``frames_above`` are the perturbation's audibility against the clean command
    (:class:`AudibilityMeter`: means over clips, the median masking margin; ``level_db_spl`` is
    None, no sensitivity digitally).
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    n, s = xt.shape
    clean = {name: predictions(m, xt) for name, m in targets.items()}
    total = n * len(sources) * len(eps)
    # -- audibility (issue 24): thresholds of the clean commands, computed once ------------------
    from testbed.acoustics.audibility import AudibilityMeter

    meter = AudibilityMeter(xt.numpy(), sample_rate)
    # -- end of the audibility block -------------------------------------------------------------
    done = 0
    rows = []
    for src_name, src in sources.items():
        tgt_idx = None if target_label is None else label_index(src, target_label)
        target = None if tgt_idx is None else torch.full_like(yt, tgt_idx)
        craft_on = src
        run_params = dict(params or {})
        if not adaptive and getattr(src, "stochastic", False):
            craft_on = FixedDraw(src, seed=draw_seed)
            run_params["eot_samples"] = 1
        for e in eps:
            def tick(k: int) -> None:
                nonlocal done
                done += k
                if progress:
                    progress(done, total)
            info: dict = {}
            delta, queries = craft(craft_on, kind, e, xt, yt, target=target, batch_size=batch_size,
                                   params=run_params, progress=tick, info=info)
            broken = json.dumps(broken_by_counts(info["broken_by"])) if "broken_by" in info else ""
            delta = fit_length(delta, s)
            for d_ms in delays_ms:
                shifted = shift_perturbation(delta, ms_to_samples(d_ms, sample_rate), n_out=s)
                x_adv = (xt + shifted).clamp(-1.0, 1.0)
                snr = snr_db(xt, x_adv - xt)
                first_wrong = None
                audible = {k: v for k, v in meter((x_adv - xt).numpy()).items() if k != "snr_db"}  # issue 24
                for tgt_name, tgt in targets.items():
                    pred = predictions(tgt, x_adv)
                    yn = yt.numpy()
                    wrong = pred != yn
                    if tgt_idx is None:
                        eligible = clean[tgt_name] == yn
                        hits = wrong[eligible]
                    else:
                        eligible = yn != tgt_idx
                        hits = pred[eligible] == tgt_idx
                    success = float(hits.mean()) if eligible.any() else float("nan")
                    if first_wrong is None:
                        first_wrong, p_first = wrong, float("nan")
                    else:
                        p_first = mcnemar_exact(int(np.sum(first_wrong & ~wrong)), int(np.sum(~first_wrong & wrong)))
                    n_clean = int((clean[tgt_name] == yn).sum())
                    finite = snr[np.isfinite(snr)]
                    rows.append({
                        "source": src_name, "target": tgt_name, "attack": kind, "eps": float(e),
                        "delay_ms": float(d_ms), "target_label": target_label or "untargeted", "n": n,
                        "clean_accuracy": n_clean / n if n else float("nan"),
                        "error_rate": float(wrong.mean()), "success_rate": success,
                        "snr_db": float(finite.mean()) if finite.size else float("inf"),
                        "queries": float(queries), **audible,
                        "errors": int(wrong.sum()),
                        **_interval("error", int(wrong.sum()), n),
                        "success_n": int(eligible.sum()),
                        **_interval("success", int(hits.sum()), int(eligible.sum())),
                        **_interval("clean", n_clean, n),
                        "eot_draws": int(info["eot_draws"]), "p_vs_first": p_first, "broken_by": broken,
                        "queries_max": float(max(info["clip_queries"])) if info.get("clip_queries")
                        else float(queries),
                    })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _interval(name: str, k: int, n: int) -> dict[str, float]:
    lo, hi = wilson_interval(k, n)
    return {f"{name}_low": lo, f"{name}_high": hi}


def non_adaptive_mode(sources: Mapping[str, torch.nn.Module], adaptive: bool) -> str | None:
    """How the non-adaptive baseline saw the stochastic sources (``"fixed-draw"``), or None
    when the attack is adaptive or no source is stochastic."""
    if adaptive or not any(getattr(m, "stochastic", False) for m in sources.values()):
        return None
    return NON_ADAPTIVE


def transfer_matrix(table: pd.DataFrame, eps: float | None = None, delay_ms: float = 0.0) -> pd.DataFrame:
    """Error rate with sources as rows and targets as columns at one eps (default: largest) and delay."""
    eps = float(table["eps"].max()) if eps is None else float(eps)
    sel = table[np.isclose(table["eps"], eps) & np.isclose(table["delay_ms"], delay_ms)]
    m = sel.pivot_table(index="source", columns="target", values="error_rate", aggfunc="mean")
    order_s = list(dict.fromkeys(sel["source"]))
    order_t = list(dict.fromkeys(sel["target"]))
    return m.reindex(index=order_s, columns=order_t)
