"""Sessions: plans, the runner, the crash-safe store, resume, replay, import and export.

Typical use::

    store = create_session("sessions/plans/quick-sim.toml", "rigs/office-sim.toml")
    rig, plan, models, cal = open_runner_parts(store)
    Runner(store, rig, plan, models, calibration=cal).run()
    df = load_evaluations(store.path)
"""

from testbed.session.estimate import PlanEstimate, estimate_plan
from testbed.session.export import COLUMNS, export_session, load_evaluations, load_session_meta
from testbed.session.importer import import_folder
from testbed.session.lifecycle import create_session, open_runner_parts, prepare, stored_rig_plan
from testbed.session.plan import AttackSpec, Plan, check_plan, load_plan, parse_plan
from testbed.session.replay import ReplayResult, replay_session
from testbed.session.events import RunEvent
from testbed.session.placement import MoveRequest
from testbed.session.runner import Runner, RunResult, RunStats
from testbed.session.trial import TrialContext, TrialInput, run_trial
from testbed.session.store import (
    CaptureRecord,
    EvalRecord,
    SessionStore,
    TrialRecord,
    list_session_dirs,
    resolve_session,
    sessions_root,
)
from testbed.session.trials import AttackConfig, TrialSpec, attack_configs, expand_trials, placement_changes

__all__ = [
    "COLUMNS", "AttackConfig", "AttackSpec", "CaptureRecord", "EvalRecord", "MoveRequest", "Plan",
    "PlanEstimate", "ReplayResult", "RunEvent", "RunResult", "RunStats", "Runner", "SessionStore",
    "TrialContext", "TrialInput", "TrialRecord", "TrialSpec", "attack_configs", "check_plan", "create_session", "estimate_plan",
    "expand_trials", "export_session", "import_folder", "list_session_dirs", "load_evaluations",
    "load_plan", "load_session_meta", "open_runner_parts", "parse_plan", "placement_changes", "prepare",
    "replay_session", "resolve_session", "run_trial", "sessions_root", "stored_rig_plan",
]
