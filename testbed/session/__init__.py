"""Sessions: plans, the runner, the crash-safe store, resume, replay, import and export.

Typical use::

    store = create_session("sessions/plans/quick-sim.toml", "rigs/office-sim.toml")
    rig, plan, models, cal = open_runner_parts(store)
    Runner(store, rig, plan, models, calibration=cal).run()
    df = load_evaluations(store.path)

Names are loaded on first use, so ``import testbed.session.store`` (what analysis reads through)
does not pull in the runner, the audio backends or torch.
"""

from importlib import import_module

_WHERE = {
    "catalog": "catalogue",   # the module is not named catalog: a loaded submodule would shadow the function
    "PlanEstimate": "estimate", "estimate_plan": "estimate",
    "COLUMNS": "export", "export_session": "export", "load_evaluations": "export", "load_session_meta": "export",
    "import_folder": "importer",
    "create_session": "lifecycle", "open_runner_parts": "lifecycle", "prepare": "lifecycle",
    "stored_rig_plan": "lifecycle",
    "AttackSpec": "plan", "Plan": "plan", "check_plan": "plan_check", "load_plan": "plan", "parse_plan": "plan",
    "ReplayResult": "replay", "replay_session": "replay",
    "Runner": "runner", "RunResult": "runner", "RunStats": "runner",
    "RunEvent": "events", "MoveRequest": "placement",
    "TrialContext": "trial", "TrialInput": "trial", "run_trial": "trial",
    "CaptureRecord": "store", "EvalRecord": "store", "SessionStore": "store", "TrialRecord": "store",
    "list_session_dirs": "store", "resolve_session": "store", "sessions_root": "store",
    "AttackConfig": "trials", "TrialSpec": "trials", "attack_configs": "trials", "expand_trials": "trials",
    "placement_changes": "trials",
    "Suspenders": "suspenders", "request_resume": "suspenders", "resume_running": "suspenders",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f"testbed.session.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'testbed.session' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
