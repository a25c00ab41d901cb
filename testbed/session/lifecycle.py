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
from testbed.session.manifest import build_manifest
from testbed.session.plan import Plan, check_plan, load_plan, parse_plan
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
) -> SessionStore:
    """Create ``sessions/<id>/`` with the expanded trials, the clean utterances and the manifest.

    Nothing is played yet; run it with :class:`~testbed.session.runner.Runner`.

    Parameters
    ----------
    utterances : ``(utterance_id, label, signal float32 (n_samples,), meta)`` to use instead of
        the plan's ``[utterances] source`` (programmatic sessions with your own recordings).
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


def open_runner_parts(store: SessionStore, models_root: Path | None = None) -> tuple[Rig, Plan, Models, object]:
    """Rig, plan, models adapter and calibration profile for running ``store``."""
    rig, plan = stored_rig_plan(store)
    root = models_root or (Path(store.meta()["models_root"]) if store.meta().get("models_root") else None)
    models = Models(root)
    calibration, _ = load_calibration(rig)
    return rig, plan, models, calibration
