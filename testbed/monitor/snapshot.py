"""One JSON-able snapshot of a session for the page: everything it draws, read from the store.

Read-only: a :class:`~testbed.session.store.SessionReader` (never the writer's lock) and the
monitor queries of :mod:`testbed.session.store.live`.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict

import numpy as np

from testbed.monitor.follow import TrialFollower
from testbed.monitor.rates import ErrorCounter, error_tables, target_table
from testbed.monitor.rigmap import rig_map
from testbed.monitor.signals import envelope, spectrogram
from testbed.session.store import SessionReader
from testbed.session.store import live

#: How the page names each store state, and whether the session is running.
STATE_TEXT = {
    "running": "running",
    "complete": "finished: every planned trial is done",
    "stopped": "not running: stopped before the end (resume it with 'testbed session resume {id}')",
    "interrupted": "not running: interrupted (resume it with 'testbed session resume {id}')",
    "killed": "not running: crashed (the run died without stopping; resume it with 'testbed session resume {id}')",
    "error": "not running: stopped on an error (see the events; then 'testbed session resume {id}')",
    "created": "not running: created, never started (start it with 'testbed session resume {id}')",
}
#: Event kinds that pause a running session, and those that end the pause (suspenders, operator).
PAUSE_KINDS = ("pause", "paused", "suspended")
RESUME_KINDS = ("resume", "resumed", "unpaused", "started")
#: Trials over which the ETA's pace is measured.
ETA_WINDOW = 20


class PictureCache:
    """Waveform and spectrogram pictures of the last few trials (reading FLACs is the costly part)."""

    def __init__(self, keep: int = 4):
        self.keep = keep
        self._items: OrderedDict[int, dict] = OrderedDict()

    def get(self, reader: SessionReader, trial_id: int, sample_rate: int) -> dict:
        """``{"trial_id", "sample_rate", "mics": {mic: {"wave", "spec"} or {"problem"}}}`` of one trial."""
        return self._entry(reader, trial_id, sample_rate)[0]

    def json(self, reader: SessionReader, trial_id: int, sample_rate: int) -> str:
        """:meth:`get` as JSON text (kept, so a snapshot does not encode the pictures again)."""
        return self._entry(reader, trial_id, sample_rate)[1]

    def _entry(self, reader: SessionReader, trial_id: int, sample_rate: int) -> tuple[dict, str]:
        if trial_id in self._items:
            self._items.move_to_end(trial_id)
            return self._items[trial_id]
        mics = {}
        for cap in live.trial_captures(reader, trial_id):
            sig, problem = reader.read_capture(cap)
            if sig is None:
                mics[cap["mic"]] = {"problem": problem}
                continue
            mics[cap["mic"]] = {"wave": envelope(sig), "spec": spectrogram(sig, sample_rate)}
        pics = {"trial_id": trial_id, "sample_rate": sample_rate, "mics": mics}
        # finite by construction (signals.py maps NaN to 0 and rounds): encoded as is, checked by allow_nan
        self._items[trial_id] = (pics, json.dumps(pics, allow_nan=False))
        while len(self._items) > self.keep:
            self._items.popitem(last=False)
        return self._items[trial_id]


def _eta(recent: list[dict], started_at: float | None, remaining: int) -> tuple[float | None, float | None]:
    """(seconds per trial, seconds left) from the pace of this run's last trials; None when unknown."""
    times = sorted(t["finished_at"] for t in recent if t["finished_at"] and
                   (started_at is None or t["finished_at"] >= started_at))[-ETA_WINDOW:]
    if len(times) >= 2:
        per = (times[-1] - times[0]) / (len(times) - 1)
    elif len(times) == 1 and started_at is not None:
        per = times[0] - started_at
    else:
        return None, None
    return per, per * remaining


def _open_pause(events: list[dict]) -> dict | None:
    """The pause event not followed by a resume (or a new start), if any (``events`` oldest first)."""
    for e in reversed(events):
        if e["kind"] in RESUME_KINDS:
            return None
        if e["kind"] in PAUSE_KINDS:
            return e
    return None


def _trial_view(t: dict | None) -> dict | None:
    if t is None:
        return None
    keys = ("trial_id", "label", "attack", "attack_kind", "eps", "delay_ms", "placement", "attempts", "failed",
            "error", "xruns", "finished_at")
    return {k: t.get(k) for k in keys}


def _events(reader: SessionReader, upto_time: float | None, upto: live.Upto,
            trouble: list[dict] | None = None) -> list[dict]:
    """The stored event log plus retries and failures read off the trials (``trouble``: those trials,
    newest first, when a follower has them), oldest first."""
    out = [dict(e, source="log") for e in live.recent_events(reader, 100, upto_time)]
    for t in trouble if trouble is not None else live.trouble_trials(reader, 50, upto):
        what = []
        if t["attempts"] and t["attempts"] > 1:
            what.append(("retry", f"trial {t['trial_id']}: needed {t['attempts']} attempts"))
        if t["failed"] or t["error"]:
            what.append(("failure", f"trial {t['trial_id']}: {t['error'] or 'failed'}"))
        out += [{"time": t["finished_at"], "kind": k, "message": m, "source": "trial"} for k, m in what]
    out.sort(key=lambda e: e["time"] or 0.0)
    return out[-100:]


def snapshot_json(reader: SessionReader, *, upto_index: int | None = None,
                  pictures: PictureCache | None = None, errors: ErrorCounter | None = None,
                  follower: TrialFollower | None = None) -> str:
    """:func:`build_snapshot` as strict JSON text (NaN and infinities as null); the pictures' JSON
    comes from the cache, so a snapshot after a commit encodes them once."""
    pictures = pictures if pictures is not None else PictureCache()
    snap = build_snapshot(reader, upto_index=upto_index, with_pictures=False, errors=errors, follower=follower)
    last = snap["last"]
    text = json.dumps(finite(snap), allow_nan=False)
    if last is None:
        return text
    with live.read_transaction(reader):
        pics = pictures.json(reader, last["trial_id"], snap["sample_rate"])
    return text[:-1] + ', "pictures": ' + pics + "}"


def finite(o):
    """``o`` with every NaN or infinite float replaced by None (JSON has neither), numpy scalars as Python's."""
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def build_snapshot(reader: SessionReader, *, upto_index: int | None = None,
                   pictures: PictureCache | None = None, with_pictures: bool = True,
                   errors: ErrorCounter | None = None, follower: TrialFollower | None = None) -> dict:
    """Everything the page shows about ``reader``'s session, as JSON-able values.

    Parameters
    ----------
    upto_index : replay: show the session as it was after its first ``upto_index`` committed trials
        (commit order); None: as it is now.
    pictures : a cache for the last capture's pictures (a new one per call if None).
    with_pictures : False leaves the ``pictures`` key out (:func:`snapshot_json` adds it from its cache).
    errors : the running error counts of a follower (read incrementally); None counts everything.
    follower : the running trial figures of a follower (read incrementally; used when ``upto_index``
        is None); None reads them over every trial.
    """
    pictures = pictures if pictures is not None else PictureCache()
    sid = reader.session_id
    follow = follower if upto_index is None else None
    with live.read_transaction(reader):
        meta = reader.meta()
        upto = None
        if follow is not None:
            follow.update(reader)
            n_committed, tot, recent = follow.n, dict(follow.totals), follow.recent
            clipping, limiter = follow.clipping, follow.limiter
            events = _events(reader, None, None, follow.trouble)
            pending = follow.next_pending(reader)
        else:
            order = live.commit_order(reader)
            n_committed = len(order)
            if upto_index is not None and order:
                upto = order[max(0, min(upto_index, len(order)) - 1)]
            tot = live.totals(reader, upto)
            recent = live.recent_trials(reader, 30, upto)
            events = _events(reader, upto[0] if upto else None, upto)
            clipping = live.mic_clipping(reader, upto)
            limiter = live.limiter_counts(reader, upto)
            pending = live.next_pending(reader)
        status = reader.status(verify=False)
        total = live.planned_count(reader)
        last = recent[0] if recent else None
        counts = live.error_counts(reader, upto)[0] if errors is None or upto else errors.update(reader)
        targets = live.target_counts(reader, upto)[0] if errors is None or upto else errors.update_targets(reader)
        facts = live.trial_facts(reader, last["trial_id"]) if last else {}
        preds = live.trial_predictions(reader, last["trial_id"]) if last else []
        caps = live.trial_captures(reader, last["trial_id"]) if last else []
    state = "replay" if upto is not None else status["state"]
    running = state == "running"
    pause = _open_pause(events) if running else None
    if pause is not None:
        state = "paused"
    started = [e["time"] for e in events if e["kind"] == "started"]
    per_trial_s, eta_s = _eta(recent, started[-1] if started else None, total - tot["done"])
    if not running:
        eta_s = None
    text = (f"replay of a recorded session: after trial {upto_index} of {n_committed} committed" if upto is not None else STATE_TEXT.get(state, state).format(id=sid))
    if pause is not None:
        text = f"running, paused since {time.strftime('%H:%M:%S', time.localtime(pause['time']))}: " \
               f"{pause['message']}"
    rig = meta.get("rig") or {}
    dut_mic = meta.get("dut_mic") or (rig.get("dut") or {}).get("mic")
    plan = meta.get("plan") or {}
    models = list((plan.get("evaluate") or {}).get("models") or (rig.get("dut") or {}).get("models") or [])
    mics = []
    for name, m in (rig.get("mics") or {}).items() or [(c["mic"], {}) for c in caps]:
        c = next((c for c in caps if c["mic"] == name), None)
        mics.append({"name": name, "tier": m.get("tier"), "dut": name == dut_mic,
                     "peak_dbfs": c["peak_dbfs"] if c else None, "rms_dbfs": c["rms_dbfs"] if c else None,
                     "clipped": c["clipped"] if c else None, "spl": _spl(facts, name),
                     **clipping.get(name, {"clipped_trials": 0, "clipped_samples": 0})})
    speakers = [{"name": name, "role": s.get("role"), "max_dbfs": s.get("max_dbfs"),
                 "peak_dbfs": (facts.get("speaker_peak_dbfs") or {}).get(name),
                 "rms_dbfs": (facts.get("speaker_rms_dbfs") or {}).get(name),
                 "limited": (facts.get("limited") or {}).get(name),
                 "limited_trials": limiter.get(name, 0)} for name, s in (rig.get("speakers") or {}).items()]
    now = pending if running else (last if upto is not None else None)
    current_placement = (now or last or {}).get("placement")
    adv = ([last["adv_x_m"], last["adv_y_m"], last["adv_z_m"]]
           if last and last["placement"] == current_placement and last["adv_x_m"] is not None else None)
    sample_rate = int(meta.get("sample_rate") or facts.get("sample_rate") or 16000)
    return {
        "id": sid, "plan": meta.get("plan_name"), "rig": meta.get("rig_name"), "generated_at": time.time(),
        "state": state, "running": running, "state_text": text, "last_error": status.get("last_error"),
        "done": tot["done"], "total": total, "committed": n_committed, "upto_index": upto_index,
        "failed": tot["failed"], "xruns": tot["xruns"], "clipped_trials": tot["clipped_trials"],
        "retried": tot["retried"], "per_trial_s": per_trial_s, "eta_s": eta_s,
        "now": _trial_view(now), "last": dict(_trial_view(last), predictions=preds, xruns=facts.get("xruns"))
        if last else None,
        "mics": mics, "speakers": speakers,
        "spl_source": facts.get("spl_source"), "spl_absent": facts.get("spl_absent"),
        "errors": error_tables(counts, dut_mic, models),
        "targeted": target_table(targets, dut_mic, models),   # issue 24: target reached, per pair
        "sample_rate": sample_rate,
        "rig_map": rig_map(rig, current_placement, adv),
        "events": events,
        **({} if not with_pictures else {"pictures": pictures.get(reader, last["trial_id"], sample_rate)
                                        if last else None}),
    }


def _spl(facts: dict, mic: str) -> dict | None:
    """The last trial's levels at ``mic`` in dB SPL and dB(A) SPL (command, perturbation, ambient),
    or None where the trial has none (no SPL calibration: ``facts["spl_absent"]`` says why)."""
    levels = (facts.get("levels") or {}).get(mic) or {}
    keys = [f"{what}_{unit}" for what in ("command", "perturbation", "ambient") for unit in ("db_spl", "dba_spl")]
    got = {k: levels.get(k) for k in keys if levels.get(k) is not None}
    return got or None
