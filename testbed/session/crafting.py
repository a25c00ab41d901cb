"""Crafting perturbations: the one definition of a crafting's parameters, its batches, its request
and its cache key.

:class:`CraftParams` holds everything that decides a perturbation besides the batch (the
utterances, their labels and the batch seed). The request handed to the attack and the
content-cache key are both derived from it field by field, so a parameter added here reaches
the key without anyone remembering to add it there: the key cannot go stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from testbed.session.plan import Plan, through_channel

#: Utterances crafted together in one attack batch.
CRAFT_BATCH = 16

#: Fields of :class:`CraftParams` that only over-the-air kinds use (None otherwise).
CHANNEL_FIELDS = ("rig", "mics", "delay_ms", "channel_digest")


@dataclass(frozen=True)
class CraftParams:
    """What decides a perturbation, besides its batch.

    ``kind`` is the attack registry's kind, ``eps`` the L-inf bound (PCM full scale), ``params``
    the attack's hyper-parameters (``steps``, ``eot_samples``, ...), ``source_hash`` the sha256 of
    the source model's weights. Over-the-air kinds also carry the channel they craft through:
    the ``rig`` (a :class:`~testbed.rig.Rig`), the ``mics`` heard and the ``delay_ms``
    window ``(min, max)`` of the plan's sync delays; other kinds have None there.
    """

    kind: str
    eps: float
    target: str
    source_model: str
    over_the_air: bool
    params: dict = field(default_factory=dict)
    source_hash: str | None = None
    rig: object | None = None
    mics: tuple[str, ...] | None = None
    delay_ms: tuple[float, float] | None = None
    #: sha256 of the IR files of a measured rig crafted through (None for a shoebox): the rig
    #: names its IR folder, this is what the folder holds (:func:`~testbed.session.craft_rig.channel_digest`)
    channel_digest: str | None = None

    def key_description(self) -> dict:
        """Every field except ``source_hash`` (the key takes it apart), as JSON-able values;
        the channel fields only where the kind uses them."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "source_hash" or (f.name in CHANNEL_FIELDS and value is None):
                continue
            if hasattr(value, "model_dump"):
                value = value.model_dump(mode="json")
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def craft_params(cfg, rig, plan: Plan, source_hash: str | None) -> CraftParams:
    """The :class:`CraftParams` of attack configuration ``cfg`` (a
    :class:`~testbed.session.trials.AttackConfig`) in a session of ``plan`` on ``rig``."""
    from testbed.session.craft_rig import channel_digest, crafting_channels, load_craft_rig, split_params

    channel = through_channel(cfg.kind)
    delays = plan.sweep.delay_ms
    params, craft_path, _ = split_params(dict(cfg.params))
    through = None
    if channel:
        through, _ = crafting_channels(load_craft_rig(craft_path) if craft_path else rig)
    return CraftParams(
        kind=cfg.kind, eps=float(cfg.eps), target=cfg.target, source_model=cfg.source_model,
        over_the_air=cfg.over_the_air, params=params, source_hash=source_hash,
        rig=through,
        mics=(through.dut.mic,) if channel else None,
        delay_ms=(min(delays), max(delays)) if channel else None,
        channel_digest=channel_digest(through) if channel else None)


@dataclass(frozen=True)
class CraftJob:
    """One crafting batch: ``chunk`` (utterance_id, label) pairs crafted together with ``seed``;
    ``missing`` lists the utterance ids whose perturbation is wanted."""

    attack_id: str
    chunk: list[tuple[str, str]]
    missing: list[str]
    seed: int


@dataclass
class CraftRequest:
    """Everything crafting one batch needs besides the source model: arrays and plain config.

    ``x`` float32 (B, n_samples) clips, ``y`` int64 (B,) label indices, ``target`` int64 (B,)
    or None; ``params`` the attack's hyper-parameters including ``seed``.
    """

    kind: str
    eps: float
    source_model: str
    source_hash: str | None
    x: np.ndarray
    y: np.ndarray
    target: np.ndarray | None
    params: dict


def _stable_int(*parts: object) -> int:
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "little")


def craft_jobs(plan_seed: int, labels: dict[str, dict[str, str]],
               whole: Collection[str] = ()) -> list[CraftJob]:
    """The fixed crafting batches of a plan: per attack id (sorted), its utterances sorted by id,
    ``CRAFT_BATCH`` at a time, each seeded from the plan seed, the attack id and the batch's ids.

    ``labels`` maps attack_id -> {utterance_id: label}; every utterance is marked missing.
    Attack ids in ``whole`` (universal perturbations: one signal for every utterance) are
    crafted in one batch of all their utterances.
    """
    out = []
    for aid in sorted(labels):
        items = sorted(labels[aid].items())
        step = max(1, len(items)) if aid in whole else CRAFT_BATCH
        for i in range(0, len(items), step):
            chunk = items[i:i + step]
            uids = [u for u, _ in chunk]
            out.append(CraftJob(aid, chunk, uids, _stable_int(plan_seed, aid, *uids)))
    return out


def craft_request(p: CraftParams, job: CraftJob, signals: Sequence[np.ndarray], labels: Sequence[str],
                  clip_samples: int) -> CraftRequest:
    """The pure inputs of crafting ``job``: ``signals`` float32 (n_samples,) are its utterances in
    chunk order, ``labels`` the source model's labels, ``clip_samples`` its input length."""
    # the model takes exactly one clip, and the DUT is scored on the clip that starts with the
    # command: a longer utterance is attacked on its first clip_samples (the perturbation
    # then covers what the DUT hears), a shorter one is zero-padded
    n = clip_samples
    x = np.zeros((len(signals), n), dtype=np.float32)
    for i, s in enumerate(signals):
        x[i, : min(len(s), n)] = s[:n]
    y = np.array([labels.index(lab) for _, lab in job.chunk], dtype=np.int64)
    target = None if p.target == "untargeted" else np.full_like(y, labels.index(p.target))
    params = dict(p.params)
    params.setdefault("seed", job.seed)
    if p.rig is not None:
        params.setdefault("rig", p.rig)
    if p.mics is not None:
        params.setdefault("mics", list(p.mics))
    if p.delay_ms is not None:
        params.setdefault("delay_ms", tuple(p.delay_ms))
    return CraftRequest(p.kind, p.eps, p.source_model, p.source_hash, x, y, target, params)


def cache_keys(p: CraftParams, job: CraftJob, signals: Sequence[np.ndarray],
               key: Callable[..., str]) -> list[str]:
    """One content key per row of ``job`` (``key`` is e.g. :meth:`PerturbationCache.key`): the
    utterance's samples, its label, every field of ``p``, the batch seed and the row."""
    desc = p.key_description()
    return [key(sig, {**desc, "label": lab}, p.source_hash, job.seed, i)
            for i, (sig, (_, lab)) in enumerate(zip(signals, job.chunk))]


def craft_batch(module, req: CraftRequest) -> np.ndarray:
    """Craft one batch on ``module`` (the source model); returns float32 (B, n_delta_samples)."""
    import torch   # lazy: the session package loads without torch

    from testbed.session.deps import make_attack

    target = torch.from_numpy(req.target) if req.target is not None else None
    attack = make_attack(req.kind, module, req.eps, **req.params)
    delta = attack.perturb(torch.from_numpy(req.x), torch.from_numpy(req.y), target)
    return delta.detach().cpu().numpy().astype(np.float32)
