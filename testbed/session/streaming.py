"""Streaming perturbations in a session: the adversary reacts to what the DUT mic hears.

A plan attack ``kind = "streaming"`` (``over_the_air = true``: ``ota-streaming``) trains one
causal predictor (:class:`testbed.attacks.streaming.StreamingPredictor`) on all the plan's
utterances when the session crafts, and keeps it in the session folder
(``perturbations/<attack id>.predictor.safetensors`` with its settings in a JSON beside it).

Each of its trials then runs in two passes on the backend: first the command alone, recorded at
the DUT mic (what the adversary hears; its own sound would be cancelled by an echo canceller, so
hearing the command alone is what it hears); then the command again, with the predictor's
perturbation on the adversary speaker, started with the user. The perturbation of window ``k``
comes from the first pass's window ``k - 1`` counted from the moment the user speaker starts, so
it is causal in real time. On the simulator both passes hear the same noise (the same moment).
The plan's delays do not apply: the adversary needs no sync (the trial's delay is 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from testbed.errors import SessionError
from testbed.fileio import atomic_write
from testbed.session.crafting import CraftJob, _stable_int, craft_params, craft_request
from testbed.session.store import safe_name

#: Registry kinds whose trials run the streaming predictor.
STREAMING_KINDS: tuple[str, ...] = ("streaming", "ota-streaming")
#: Predictor settings kept beside its weights.
_SETTINGS = ("eps", "sample_rate", "window_ms", "n_mels", "hidden")


def is_streaming(cfg) -> bool:
    """True for an attack configuration whose trials run a streaming predictor."""
    return cfg.kind in STREAMING_KINDS


def predictor_path(attack_id: str) -> str:
    """Store-relative path of the weights of ``attack_id``'s predictor."""
    return f"perturbations/{safe_name(attack_id)}.predictor.safetensors"


def prepare_predictors(runner, attack_ids) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """A ``heard -> perturbation`` function (float32 (n,) -> float32 (n,)) per streaming attack id,
    training and saving the predictor first where the session has none yet."""
    out = {}
    for aid in sorted(set(attack_ids)):
        path = runner.store.path / predictor_path(aid)
        if not path.is_file():
            _train(runner, aid, path)
        out[aid] = _loaded(path)
    return out


def _train(runner, aid: str, path) -> None:
    import torch
    from safetensors.torch import save

    from testbed.session.deps import make_attack

    cfg = runner.attacks[aid]
    src = runner.models.load(cfg.source_model)
    if src.sample_rate != runner.sr:
        raise SessionError(f"attack {aid}: source model {cfg.source_model} runs at {src.sample_rate} Hz, the rig "
                           f"at {runner.sr} Hz; a streaming predictor listens at the rig's rate")
    p = craft_params(cfg, runner.rig, runner.plan, runner.models.model_hash(cfg.source_model))
    chunk = sorted({(t.utterance_id, t.label) for t in runner.store.planned() if t.attack_id == aid})
    job = CraftJob(aid, chunk, [u for u, _ in chunk], _stable_int(runner.plan.seed, aid, *(u for u, _ in chunk)))
    sigs = [runner.perturbations.utterance(u) for u, _ in chunk]
    req = craft_request(p, job, sigs, src.labels, src.clip_samples)
    req.params.pop("delay_ms", None)   # the streaming adversary needs no sync: no delay window
    attack = make_attack(req.kind, src.module, req.eps, **req.params)
    target = torch.from_numpy(req.target) if req.target is not None else None
    attack.perturb(torch.from_numpy(req.x), torch.from_numpy(req.y), target)
    pred = attack.predictor
    settings = {"eps": pred.eps, "sample_rate": pred.sample_rate, "window_ms": attack.window_ms,
                "n_mels": attack.n_mels, "hidden": attack.hidden}
    weights = {k: v.detach().cpu().contiguous() for k, v in pred.state_dict().items() if not k.startswith("mel.")}
    atomic_write(path.with_suffix(".json"), json.dumps(settings).encode())
    atomic_write(path, save(weights))
    runner.store.event("streaming", f"{aid}: predictor trained on {len(chunk)} utterances")


def _loaded(path) -> Callable[[np.ndarray], np.ndarray]:
    import torch
    from safetensors.torch import load

    from testbed.attacks.streaming import StreamingPredictor

    settings = json.loads(path.with_suffix(".json").read_text())
    pred = StreamingPredictor(settings["eps"], settings["sample_rate"], window_ms=settings["window_ms"],
                              n_mels=settings["n_mels"], hidden=settings["hidden"])
    missing = [k for k in pred.load_state_dict(load(path.read_bytes()), strict=False).missing_keys
               if not k.startswith("mel.")]
    if missing:
        raise SessionError(f"{path}: the streaming predictor lacks {missing[0]}; delete it and resume to retrain")
    pred.eval()

    def respond(heard: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(heard, dtype=np.float32).reshape(1, -1))
            return pred(x)[0].numpy().astype(np.float32)

    return respond
