"""Held-out-channel protocol: craft over the air through one rig, evaluate through others.

An over-the-air perturbation crafted through a rig's channels is an in-distribution
result when it is judged through those same channels. This module crafts once (per eps)
through the *crafting* rig and plays the very same perturbations, with the very same
random draws of sync delay, path gains and noise, through:

- the crafting channels (the attack's own EOT bank): the optimistic number;
- each *evaluation* rig's channels: a simulated rig gives fresh draws at unseen positions
  (``eval_jitter_m`` of position jitter, another seed), a measured-room rig its recorded
  paths as measured.

Beside each, the clean command through the same channels (``clean_error``) and digital
PGD at the same eps, crafted without any channel and played through the same channels
(``digital_pgd_error``): an over-the-air attack that does worse than that in a room it
never saw has overfitted its channels. Rates come with Wilson 95 % intervals; the gap
"error on the crafting channels minus error here" with Newcombe's hybrid-score interval
(from the two Wilson intervals; conservative for these paired outcomes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from testbed.stats import wilson_interval
from testbed.attacks.base import fit_length
from testbed.attacks.channels import ChannelBank, OverTheAir
from testbed.attacks.evaluate import craft, predictions
from testbed.errors import AttackError

#: Seed offset of an evaluation rig's channel draws, so a sim eval rig never reuses the crafting draws.
EVAL_SEED_OFFSET = 10_007


@dataclass(frozen=True)
class Rate:
    """An error rate with its Wilson 95 % interval."""

    value: float
    ci95: tuple[float, float]
    k: int
    n: int

    @classmethod
    def of(cls, wrong: np.ndarray) -> "Rate":
        k, n = int(np.sum(wrong)), int(np.size(wrong))
        return cls(k / n if n else math.nan, wilson_interval(k, n), k, n)

    def as_dict(self) -> dict:
        return {"value": self.value, "ci95": list(self.ci95), "k": self.k, "n": self.n}


def gap(a: Rate, b: Rate) -> dict:
    """``a - b`` with Newcombe's hybrid-score 95 % interval (method 10)."""
    d = a.value - b.value
    (l1, u1), (l2, u2) = a.ci95, b.ci95
    lo = d - math.sqrt((a.value - l1) ** 2 + (u2 - b.value) ** 2)
    hi = d + math.sqrt((u1 - a.value) ** 2 + (b.value - l2) ** 2)
    return {"value": d, "ci95": [max(lo, -1.0), min(hi, 1.0)]}


@dataclass(frozen=True)
class ChannelSet:
    """Where perturbations are played: a name, what it is, and the over-the-air model to mix with."""

    name: str
    kind: str          # "craft" | "sim" | "measured"
    channel: OverTheAir

    def describe(self) -> dict:
        return {"rig": self.name, "kind": self.kind, "n_channels": len(self.channel.bank)}


def eval_channel_set(rig, craft: OverTheAir, *, n_channels: int = 8, eval_jitter_m: float = 0.5,
                     seed: int = 0, mics: Sequence[str] | None = None) -> ChannelSet:
    """The channels of an evaluation ``rig``, mixed with the crafting attack's delay/gain/noise ranges.

    A simulated rig draws ``n_channels`` fresh channels with ``eval_jitter_m`` position jitter
    (seed ``seed + EVAL_SEED_OFFSET``); a measured rig uses its recorded paths unvaried.
    """
    measured = rig.room.model == "measured"
    bank = ChannelBank.from_rig(rig, mics=mics, n_channels=n_channels,
                                position_jitter_m=0.0 if measured else float(eval_jitter_m),
                                seed=int(seed) + EVAL_SEED_OFFSET)
    ota = OverTheAir(bank, sample_rate=rig.sample_rate, delay_ms=craft.delay_ms, gain_db=craft.gain_db,
                     noise_db=craft.noise_db, input_gain_db=craft.input_gain_db)
    return ChannelSet(rig.name, "measured" if measured else "sim", ota)


@torch.no_grad()
def played_wrong(model, channel: OverTheAir, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
                 seed: int, batch_size: int = 64) -> np.ndarray:
    """Per clip, whether ``model`` errs on ``x`` with ``delta`` played through ``channel`` (bool (n,)).

    The draws (channel, delay, gains, noise) come from ``seed`` alone, so the clean command,
    over-the-air and digital perturbations meet identical conditions clip by clip.
    """
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for i in range(0, x.shape[0], batch_size):
        mic = channel.mix(x[i:i + batch_size], delta[i:i + batch_size], gen)
        out.append(predictions(model, mic, batch_size) != y[i:i + batch_size].numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


@dataclass
class HeldoutRow:
    """One (eps, channel set) result."""

    eps: float
    rig: str
    kind: str
    n: int
    clean_error: Rate
    error_rate: Rate
    digital_pgd_error: Rate
    gap_vs_craft: dict

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("clean_error", "error_rate", "digital_pgd_error"):
            d[k] = getattr(self, k).as_dict()
        return d


def heldout_eval(model, x: np.ndarray, y: np.ndarray, *, craft_rig, eval_rigs: Sequence, eps: Sequence[float],
                 params: Mapping | None = None, digital_steps: int | None = None, eval_jitter_m: float = 0.5,
                 n_eval_channels: int = 8, seed: int = 0, batch_size: int = 64,
                 progress: Callable[[str], None] | None = None) -> list[HeldoutRow]:
    """Craft ``ota-pgd`` through ``craft_rig`` and digital PGD, evaluate both through every rig's channels.

    Parameters
    ----------
    model : raw PCM (B, S) -> logits; the source and the victim.
    x : float32 (n, S) clips; y : int64 (n,) labels.
    craft_rig : rig the over-the-air attack is crafted through (its EOT bank).
    eval_rigs : rigs to evaluate through (sim: fresh jittered draws; measured: recorded paths).
    eps : L-infinity bounds, PCM scale.
    params : ``ota-pgd`` hyper-parameters (steps, n_channels, position_jitter_m, delay_ms, ...).
    digital_steps : PGD steps of the digital baseline (default: ``params['steps']`` or 20).
    eval_jitter_m : position jitter of a simulated evaluation rig's draws, metres.
    n_eval_channels : channels drawn per evaluation rig.
    seed : seed of the attacks and of every evaluation draw.

    Returns
    -------
    One :class:`HeldoutRow` per (eps, channel set): first the crafting channels (kind
    ``craft``), then each evaluation rig in order.
    """
    if not eval_rigs:
        raise AttackError("--eval-rig: give at least one rig to evaluate the perturbations in")
    params = dict(params or {})
    params.setdefault("seed", seed)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    s = xt.shape[-1]
    digital = {k: v for k, v in params.items() if k in ("steps", "alpha", "loss", "random_start", "seed")}
    if digital_steps is not None:
        digital["steps"] = int(digital_steps)
    rows: list[HeldoutRow] = []
    for e in eps:
        if progress:
            progress(f"eps {e:g}: crafting over the air through {craft_rig.name}")
        from testbed.attacks.registry import make_attack

        attack = make_attack("ota-pgd", model, float(e), rig=craft_rig, **params)
        ota_delta, _ = craft(model, "ota-pgd", float(e), xt, yt, batch_size=batch_size,
                             params={**params, "channel": attack.channel, "rig": None})
        ota_delta = fit_length(ota_delta, s)
        if progress:
            progress(f"eps {e:g}: crafting digital PGD")
        pgd_delta = fit_length(craft(model, "pgd", float(e), xt, yt, batch_size=batch_size, params=digital)[0], s)
        zero = torch.zeros_like(xt)
        sets = [ChannelSet(craft_rig.name, "craft", attack.channel)]
        sets += [eval_channel_set(r, attack.channel, n_channels=n_eval_channels, eval_jitter_m=eval_jitter_m,
                                  seed=seed) for r in eval_rigs]
        craft_rate = None
        for cs in sets:
            if progress:
                progress(f"eps {e:g}: playing through {cs.name} ({cs.kind})")
            draw_seed = seed + 1
            clean = Rate.of(played_wrong(model, cs.channel, xt, yt, zero, draw_seed, batch_size))
            ota = Rate.of(played_wrong(model, cs.channel, xt, yt, ota_delta, draw_seed, batch_size))
            dig = Rate.of(played_wrong(model, cs.channel, xt, yt, pgd_delta, draw_seed, batch_size))
            if craft_rate is None:
                craft_rate = ota
            rows.append(HeldoutRow(float(e), cs.name, cs.kind, int(xt.shape[0]), clean, ota, dig,
                                   gap(craft_rate, ota)))
    return rows
