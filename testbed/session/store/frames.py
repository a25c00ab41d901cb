"""A session as tables for analysis and export: one row per evaluation, plus the session's metadata.

The column contract of :func:`load_evaluations` is what ``testbed.analysis`` relies on. Both
functions read through :class:`~testbed.session.store.reader.SessionReader` (read-only, no lock).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from testbed.errors import SessionError
from testbed.session.store.reader import SessionReader, open_reader

#: The columns :func:`load_evaluations` always returns, in this order.
COLUMNS = [
    "session_id", "trial_id", "utterance_id", "label", "attack", "attack_id", "eps", "target",
    "source_model", "over_the_air", "delay_ms", "realised_delay_ms", "arrival_delay_ms", "placement",
    "repetition", "mic", "mic_tier", "is_dut_mic", "model", "model_arch", "model_variant", "model_hash",
    "eval_source", "prediction", "correct", "target_hit", "score_top", "spr_db", "snr_db",
    "dist_user_m", "dist_adv_m", "angle_user_deg", "angle_adv_deg", "adv_x_m", "adv_y_m", "adv_z_m",
    "xruns", "clipped", "peak_dbfs", "rms_dbfs", "failed", "error", "capture_path",
]


@contextlib.contextmanager
def _reading(session_dir: Path | str) -> Iterator[SessionReader]:
    """A reader whose database errors (a damaged file) become one-line :class:`SessionError`."""
    with open_reader(session_dir) as store:
        try:
            yield store
        except sqlite3.Error as exc:
            raise SessionError(f"{store.path}: cannot read the session database: {exc}") from None


def _arch_variant(name: str, card: dict | None) -> tuple[str | None, str | None]:
    card = card or {}
    arch, variant = card.get("arch"), card.get("variant")
    if arch is None and "-" in name:
        arch, _, rest = name.partition("-")
        variant = variant or rest
    return arch, variant


def load_evaluations(session_dir: Path | str) -> pd.DataFrame:
    """Every evaluation of a session with all its trial metadata, one row per evaluation.

    Parameters
    ----------
    session_dir : the session folder (or its id under the sessions root).

    Returns
    -------
    DataFrame with at least :data:`COLUMNS`; ``correct``/``is_dut_mic``/``failed`` are bool,
    ``target_hit`` is a nullable boolean (NA for untargeted attacks), ``eps`` is 0.0 for no
    attack, ``placement`` is ``"default"`` for the rig's own positions.
    """
    with _reading(session_dir) as store:
        meta = store.meta()
        df = store.evaluations_frame()
        attacks = store.attacks()
    rig = meta.get("rig") or {}
    tiers = {m: v.get("tier") for m, v in (rig.get("mics") or {}).items()}
    dut_mic = meta.get("dut_mic") or (rig.get("dut") or {}).get("mic")
    cards = dict((meta.get("manifest") or {}).get("model_cards") or {})
    cards.update(meta.get("replay_model_cards") or {})
    df.insert(0, "session_id", meta.get("session_id") or store.session_id)
    df["trial_id"] = df["trial_id"].astype("int64")
    df["mic_tier"] = df["mic"].map(tiers)
    df["is_dut_mic"] = (df["mic"] == dut_mic).astype(bool)
    av = {m: _arch_variant(m, cards.get(m)) for m in df["model"].unique()}
    df["model_arch"] = df["model"].map(lambda m: av[m][0])
    df["model_variant"] = df["model"].map(lambda m: av[m][1])
    df["correct"] = (df["prediction"] == df["label"]).astype(bool)
    hit = pd.array([pd.NA] * len(df), dtype="boolean")
    targeted = (df["target"] != "untargeted").to_numpy()
    if targeted.any():
        hit[targeted] = (df.loc[targeted, "prediction"] == df.loc[targeted, "target"]).to_numpy()
    df["target_hit"] = hit
    df["placement"] = df["placement"].fillna("default")
    df["failed"] = df["failed"].astype(bool)
    df["over_the_air"] = df["over_the_air"].astype(bool)
    df["eps"] = df["eps"].astype(float)
    df["xruns"] = df["xruns"].fillna(0).astype("int64")
    df["clipped"] = df["clipped"].fillna(0).astype("int64")
    _crafted_on(df, attacks, meta.get("rig_name"))
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


def _crafted_on(df: pd.DataFrame, attacks: dict, rig_name: str | None) -> None:
    """r1-follow: ``crafted_on`` (the rig an over-the-air perturbation was crafted through: the
    plan's ``craft_rig`` or the session's rig; None for digital attacks and clean playback) and
    ``played_in`` (the session's rig) columns, in place."""
    from testbed.session.trials import CRAFT_RIG_NAME_KEY
    from testbed.session.plan import through_channel

    on = {aid: (a.params.get(CRAFT_RIG_NAME_KEY) or rig_name) if through_channel(a.kind) else None
          for aid, a in attacks.items()}
    df["crafted_on"] = df["attack_id"].map(on)
    df["played_in"] = rig_name


def load_session_meta(session_dir: Path | str) -> dict:
    """Plan, rig, calibration, versions, seed, git revision, host, and start/stop times of a session."""
    with _reading(session_dir) as store:
        meta = store.meta()
        events = store.events()
        status = store.status(verify=False)
    manifest = meta.get("manifest") or {}
    starts = [e["time"] for e in events if e["kind"] == "started"]
    stops = [e for e in events if e["kind"] in ("finished", "stopped", "interrupted", "error", "quit")]
    return {
        "session_id": meta.get("session_id") or Path(session_dir).name,
        "path": str(store.path),
        "plan_name": meta.get("plan_name"),
        "rig_name": meta.get("rig_name"),
        "plan": meta.get("plan"),
        "rig": meta.get("rig"),
        "calibration": meta.get("calibration"),
        "versions": manifest.get("versions"),
        "model_hashes": manifest.get("model_hashes"),
        "seed": meta.get("seed"),
        "git_revision": manifest.get("git_revision"),
        "host": manifest.get("host"),
        "created_at": manifest.get("created_at"),
        "started_at": min(starts) if starts else None,
        "stopped_at": stops[-1]["time"] if stops else None,
        "stop_reason": stops[-1]["kind"] if stops else None,
        "dut_mic": meta.get("dut_mic"),
        "sample_rate": meta.get("sample_rate"),
        "imported_from": meta.get("imported_from"),
        "events": events,
        "status": {k: status[k] for k in ("done", "total", "failed", "last_error", "state")},
    }
