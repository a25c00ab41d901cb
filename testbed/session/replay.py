"""Offline replay: re-evaluate recorded captures with other models; recordings are never touched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from testbed.errors import SessionError
from testbed.rig.geometry import SPEED_OF_SOUND_M_S
from testbed.session.deps import Models
from testbed.session.runner import evaluate_captures
from testbed.session.store import SessionStore

#: Captures read and evaluated together.
REPLAY_BATCH = 64


@dataclass
class ReplayResult:
    """What a replay added."""

    evaluations: int = 0                   # rows added
    already: int = 0                       # evaluations found already recorded (not added again)
    captures: int = 0
    audio_s: float = 0.0                   # seconds of recorded audio evaluated (per model)
    skipped: list[dict] = field(default_factory=list)   # captures that could not be read

    def as_dict(self) -> dict:
        return {"evaluations": self.evaluations, "already": self.already, "captures": self.captures,
                "audio_s": self.audio_s, "skipped": self.skipped}


def replay_session(
    session: str | Path,
    model_names: list[str],
    *,
    mics: list[str] | None = None,
    models_root: Path | None = None,
    root: Path | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    executor=None,
) -> ReplayResult:
    """Evaluate every recorded capture (of ``mics``, default all) with ``model_names``.

    Appends evaluations tagged ``eval_source = "replay"`` with each model's hash. A capture
    whose FLAC is missing, altered or unreadable is skipped and reported, not fatal. Rows are
    unique per (trial, mic, model, weights hash, source): a capture every model has already
    evaluated is not read again (counted in ``already``), and a replay with nothing new is a
    no-op that writes nothing.

    ``executor`` (e.g. :class:`testbed.scale.DaskExecutor`) evaluates the chunks elsewhere: its
    ``evaluate(models, model_names, chunks, source, sample_rate)`` yields ``(chunk_index, model,
    evaluations)`` in any order; this process reads the captures and commits the rows in the
    same order and in the same single transaction as an in-process replay.
    """
    store = SessionStore.open(session, root)
    try:
        models = Models(models_root)
        have = set(models.names())
        for i, m in enumerate(model_names):
            if not models.exists(m):
                raise SessionError(f"--models[{i}]: unknown model {m!r} "
                                   f"(zoo has: {', '.join(sorted(have)) or 'nothing'})")
        if not model_names:
            raise SessionError("--models: give at least one model")
        store.lock()
        meta = store.meta()
        sr = int(meta.get("sample_rate") or 16000)
        caps = store.captures()
        known = sorted({c["mic"] for c in caps})
        for i, m in enumerate(mics or []):
            if m not in known:
                raise SessionError(f"--mics[{i}]: session {store.session_id} has no captures from mic {m!r} "
                                   f"(have: {', '.join(known) or 'none'})")
        if mics:
            caps = [c for c in caps if c["mic"] in mics]
        # the command starts where the live run put it: preroll + flight time, stored per trial
        starts = _command_starts(store)
        model_names = list(dict.fromkeys(model_names))
        loaded = {m: models.load(m) for m in model_names}
        result = ReplayResult()
        have = store.evaluated("replay")
        todo = []
        for c in caps:
            n_have = sum((c["trial_id"], c["mic"], m, loaded[m].model_hash) in have for m in model_names)
            if n_have < len(model_names):
                todo.append(c)
            else:
                result.already += n_have
        caps = todo
        chunks: list[tuple[dict[str, tuple[np.ndarray, float]], dict[str, tuple[int, str]]]] = []
        by_part: dict[tuple[int, str], list] = {}
        done = 0
        for i in range(0, len(caps), REPLAY_BATCH):
            chunk = caps[i:i + REPLAY_BATCH]
            windows: dict[str, tuple[np.ndarray, float]] = {}
            keys: dict[str, tuple[int, str]] = {}
            for c in chunk:
                sig, problem = store.read_capture(c)
                if sig is None:
                    result.skipped.append({"trial_id": c["trial_id"], "mic": c["mic"],
                                           "path": str(store.path / c["path"]), "problem": problem})
                    continue
                k = f"{c['trial_id']}/{c['mic']}"
                windows[k] = (sig, starts.get((c["trial_id"], c["mic"]), 0.0))
                keys[k] = (c["trial_id"], c["mic"])
                result.audio_s += len(sig) / sr
                result.captures += 1
            if windows:
                if executor is None:   # evaluate as we read: only one chunk in memory
                    for e in evaluate_captures(models, windows, loaded, "replay", sr):
                        by_part.setdefault((len(chunks), e.model), []).append(e)
                    windows = {}
                chunks.append((windows, keys))
            if executor is None:
                done += len(chunk)
                if progress:
                    progress(done, len(caps))
        if executor is not None:
            parts = executor.evaluate(models, model_names, [w for w, _ in chunks], "replay", sr)
            for n, (ci, model, evals) in enumerate(parts, 1):
                by_part[(ci, model)] = list(evals)
                if progress:
                    progress(n, len(chunks) * len(model_names))
        rows = []
        for ci, (_, keys) in enumerate(chunks):
            for m in model_names:
                for e in by_part.get((ci, m), []):
                    tid, mic = keys[e.mic]
                    e.mic = mic
                    if (tid, mic, e.model, e.model_hash) in have:
                        result.already += 1
                    else:
                        rows.append((tid, e))
        if not rows:   # already replayed (or nothing readable): a no-op
            return result
        n_rows = len(rows)
        result.evaluations = store.add_evaluations(rows, skip_existing=True)
        result.already += n_rows - result.evaluations
        cards = dict(meta.get("replay_model_cards") or {})
        cards.update({m: {**models.card(m), "model_hash": models.model_hash(m)} for m in model_names})
        store.set_meta("replay_model_cards", cards)
        store.event("replay", f"{result.evaluations} evaluations by {', '.join(model_names)}"
                    + (f"; skipped {len(result.skipped)} unreadable capture(s)" if result.skipped else ""))
        return result
    finally:
        store.close()


def _command_starts(store: SessionStore) -> dict[tuple[int, str], float]:
    """Where the command starts in each capture, samples (from the stored timing facts)."""
    out: dict[tuple[int, str], float] = {}
    meta = store.meta()
    rig = meta.get("rig") or {}
    user = next((k for k, v in (rig.get("speakers") or {}).items() if v.get("role") == "user"), None)
    sr = int(meta.get("sample_rate") or 16000)
    for tid, mic, dist, facts in store.capture_timing():
        start = facts.get("command_start_samples", {}).get(mic) if isinstance(
            facts.get("command_start_samples"), dict) else None
        if start is None:
            offs = facts.get("realised_offsets_samples") or facts.get("planned_offsets_samples") or {}
            start = float(offs.get(user, 0.0)) + (dist or 0.0) / SPEED_OF_SOUND_M_S * sr
        out[(tid, mic)] = float(start)
    return out
