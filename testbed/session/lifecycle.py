"""Creating a session from a plan and a rig, and reopening it for resume.

A session keeps its own copies of the plan and the rig, so ``resume`` runs exactly
what was planned even if the files were edited since.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from testbed.errors import DataError, PlanError, SessionError
from testbed.rig import Rig, load_rig, parse_rig, read_toml
from testbed.session.deps import (
    Models,
    attack_kinds,
    attack_param_names,
    attack_param_problem,
    calibration_dict,
    command_utterances,
    load_calibration,
)
from testbed.session.catalogue import parse_tags
from testbed.session.manifest import build_manifest
from testbed.session.plan import Plan, load_plan, parse_plan
from testbed.session.plan_check import check_plan
from testbed.session.store import SessionStore, sessions_root
from testbed.session.store.paths import new_session_dir
from testbed.session.trials import attack_configs, expand_trials


def new_session_id(plan: Plan, root: Path) -> str:
    """``<plan name>-<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3`` ... if taken)."""
    base = f"{plan.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    sid, k = base, 1
    while (root / sid).exists():
        k += 1
        sid = f"{base}-{k}"
    return sid


def prepare(plan_path: Path | str, rig_path: Path | str, models_root: Path | None = None
            ) -> tuple[Plan, Rig, Models]:
    """Load plan and rig and check the plan against the rig, the zoo and the attacks."""
    plan = load_plan(plan_path)
    rig = load_rig(rig_path)
    models = Models(models_root)
    check_plan(plan, rig, models.labels(), attack_kinds(), attack_param_names(), attack_param_problem)
    return plan, rig, models


def create_session(
    plan_path: Path | str,
    rig_path: Path | str,
    *,
    root: Path | str | None = None,
    session_id: str | None = None,
    models_root: Path | None = None,
    utterances: list[tuple[str, str, np.ndarray, dict]] | None = None,
    tags: dict[str, str] | None = None,
) -> SessionStore:
    """Create ``sessions/<id>/`` with the expanded trials, the clean utterances and the manifest.

    Nothing is played yet; run it with :class:`~testbed.session.runner.Runner`.

    Parameters
    ----------
    utterances : ``(utterance_id, label, signal float32 (n_samples,), meta)`` to use instead of
        the plan's ``[utterances] source`` (programmatic sessions with your own recordings).
    tags : ``{key: value}`` stored in the manifest and the database, for ``session list --tag``.
    """
    plan, rig, models = prepare(plan_path, rig_path, models_root)
    root = sessions_root(root)
    root.mkdir(parents=True, exist_ok=True)
    sid = session_id or new_session_id(plan, root)
    path = new_session_dir(root, sid)   # a safe name that stays inside the sessions root
    u = plan.utterances
    try:
        utts = utterances if utterances is not None else command_utterances(
            u.source, list(u.labels), u.per_label, plan.seed)
    except DataError as exc:   # name the plan file: the data source was given there
        raise PlanError(f"{plan.source}: {exc}") from None
    if not utts:
        raise SessionError(f"{plan.source}: utterances: source {u.source!r} gave no utterances")
    for uid, _, sig, _ in utts:
        if len(sig) == 0:
            raise SessionError(f"{plan.source}: utterances: {uid} is empty")
        if not np.all(np.isfinite(sig)):
            raise SessionError(f"{plan.source}: utterances: {uid} has non-finite samples (NaN/inf)")
    trials = expand_trials(plan, [(uid, lab) for uid, lab, _, _ in utts])
    calibration, cal_path = load_calibration(rig)
    plan_bytes = Path(plan_path).read_bytes()
    rig_bytes = Path(rig_path).read_bytes()
    files = {"plan.toml": plan_bytes, "rig.toml": rig_bytes}
    cal_sha = None
    if cal_path is not None and cal_path.is_file():
        files["calibration.toml"] = cal_path.read_bytes()
        cal_sha = hashlib.sha256(files["calibration.toml"]).hexdigest()
    used = sorted(set(plan.eval_models(rig)) | {a.source_model for a in plan.attacks if a.source_model})
    manifest = build_manifest(
        seed=plan.seed, model_hashes={m: models.model_hash(m) for m in used},
        plan_sha256=hashlib.sha256(plan_bytes).hexdigest(), rig_sha256=hashlib.sha256(rig_bytes).hexdigest(),
        calibration_sha256=cal_sha)
    manifest["model_cards"] = {m: models.card(m) for m in used}
    manifest["tags"] = parse_tags([f"{k}={v}" for k, v in (tags or {}).items()])
    files["manifest.json"] = json.dumps(manifest, indent=2, default=str).encode()
    meta = {
        "session_id": sid,
        "plan_name": plan.name,
        "rig_name": rig.name,
        "plan": plan.model_dump(mode="json"),
        "rig": rig.model_dump(mode="json"),
        "plan_path": str(Path(plan_path).resolve()),
        "rig_path": str(Path(rig_path).resolve()),
        "calibration": calibration_dict(calibration),
        "manifest": manifest,
        "seed": plan.seed,
        "sample_rate": rig.sample_rate,
        "dut_mic": rig.dut.mic,
        "models_root": str(Path(models_root).resolve()) if models_root else None,
        "tags": manifest["tags"],
    }
    return SessionStore.create(path, meta=meta, files=files, attacks=attack_configs(plan),
                               utterances=utts, planned=trials, sample_rate=rig.sample_rate)


def stored_rig_plan(store: SessionStore) -> tuple[Rig, Plan]:
    """The rig and plan a session was created with (from its own copies)."""
    meta = store.meta()
    rig_src = Path(meta.get("rig_path") or store.path / "rig.toml")
    # response CSVs are relative to the original rig file; fall back to the copy's folder
    rig = parse_rig(read_toml(store.path / "rig.toml", SessionError),
                    rig_src if rig_src.parent.is_dir() else store.path / "rig.toml")
    plan = parse_plan(read_toml(store.path / "plan.toml", SessionError), store.path / "plan.toml")
    return rig, plan


def open_runner_parts(store: SessionStore, models_root: Path | None = None, *,
                      allow_new_models: bool = False) -> tuple[Rig, Plan, Models, object]:
    """Rig, plan, models adapter and calibration profile for running ``store``.

    The zoo's weight hashes are compared with the session's manifest first (see
    :func:`check_model_hashes`).
    """
    rig, plan = stored_rig_plan(store)
    root = models_root or (Path(store.meta()["models_root"]) if store.meta().get("models_root") else None)
    models = Models(root)
    check_model_hashes(store, models, allow_new_models=allow_new_models)
    calibration, _ = load_calibration(rig)
    return rig, plan, models, calibration


def check_model_hashes(store: SessionStore, models: Models, *, allow_new_models: bool = False
                       ) -> list[tuple[str, str, str | None]]:
    """Refuse to go on with a zoo whose weights differ from those the session was created with.

    Every model in the manifest's ``model_hashes`` must be in the zoo with the recorded sha256
    (or one accepted earlier with ``--allow-new-models``), so one model name never mixes two sets
    of weights silently. With ``allow_new_models`` the differences are accepted: the writer lock
    is taken, a ``models-changed`` event names each model and both hashes, and the new hashes are
    remembered in ``meta.allowed_model_hashes``.

    Returns ``(model, recorded sha256, zoo sha256 or None)`` for each difference.

    Raises
    ------
    SessionError
        A difference without ``allow_new_models``: one line naming the model and both hash prefixes.
    """
    meta = store.meta()
    recorded = (meta.get("manifest") or {}).get("model_hashes") or {}
    allowed = {m: set(v) for m, v in (meta.get("allowed_model_hashes") or {}).items()}
    changed = []
    for name, want in sorted(recorded.items()):
        if not want:
            continue
        now = models.model_hash(name) if models.exists(name) else None
        if now != want and now not in allowed.get(name, set()):
            changed.append((name, str(want), now))
    if not changed:
        return []
    if not allow_new_models:
        name, want, now = changed[0]
        have = f"weights {now[:12]}" if now else "no such model"
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise SessionError(f"{store.path}: model {name!r}: the zoo has {have} but session {store.session_id!r} "
                           f"was created with {want[:12]}{more}; point --models-dir at that zoo, or pass "
                           f"--allow-new-models to mix them (recorded in the session)")
    store.lock()
    for name, want, now in changed:
        if now:
            allowed.setdefault(name, set()).add(now)
    store.set_meta("allowed_model_hashes", {m: sorted(v) for m, v in allowed.items()})
    store.event("models-changed", "; ".join(f"{n}: created with {w[:12]}, now "
                                            f"{(h[:12] if h else 'missing from the zoo')} (--allow-new-models)"
                                            for n, w, h in changed))
    return changed
