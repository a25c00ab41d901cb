"""The one record a session run emits: :class:`RunEvent`.

Like bluesky's documents, a run is reported as a stream of small immutable records:
``start`` first, then ``craft`` progress, ``pause`` (the run waits for or skips a placement, or a
suspender paused it: ``message`` says why), ``resume`` (a suspender's conditions cleared),
``retry`` (an attempt of a trial is played again), one ``trial`` per committed trial,
``failure`` (the run dies with an error) and ``stop`` last, with the reason it ended.
The CLI's live view, the scale executor's tests and a web monitor all read the same record;
:meth:`RunEvent.as_dict` gives its JSON form.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

EventKind = Literal["start", "craft", "pause", "resume", "retry", "trial", "failure", "stop"]
EVENT_KINDS: tuple[str, ...] = ("start", "craft", "pause", "resume", "retry", "trial", "failure", "stop")


@dataclass(frozen=True)
class RunEvent:
    """One thing that happened in a run.

    Attributes
    ----------
    kind : start | craft | pause | resume | retry | trial | failure | stop.
    at : wall-clock time of the event, seconds since the epoch.
    done, total : trials committed / planned in the session; for ``craft`` events the
        perturbations made (or found cached) / needed.
    trial_id, label, attack, attack_kind, eps, delay_ms, placement : the trial concerned
        (``trial`` and ``retry`` events; ``placement`` also on ``pause``).
    predictions : ``{model: prediction}`` on the DUT mic (``trial``).
    correct : ``{model: prediction == label}`` on the DUT mic (``trial``).
    failed : the committed trial is marked failed (xruns on every attempt).
    attempt : the attempt that is about to be retried (``retry``), or the attempts used (``trial``).
    message : a line for a person (an error, a prompt, what was skipped).
    reason : how the run ended (``stop``: finished | stopped | quit | skipped | interrupted | error).
    failed_trials, xruns, clipped_trials : running totals over this run's committed trials.
    errors : ``{model: (wrong, n)}`` on the DUT mic over this run's committed trials.
    """

    kind: EventKind
    at: float = field(default_factory=time.time)
    done: int = 0
    total: int = 0
    trial_id: int | None = None
    label: str | None = None
    attack: str | None = None
    attack_kind: str | None = None
    eps: float | None = None
    delay_ms: float | None = None
    placement: str | None = None
    predictions: Mapping[str, str | None] = field(default_factory=dict)
    correct: Mapping[str, bool] = field(default_factory=dict)
    failed: bool = False
    attempt: int | None = None
    message: str | None = None
    reason: str | None = None
    failed_trials: int = 0
    xruns: int = 0
    clipped_trials: int = 0
    errors: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"RunEvent.kind: {self.kind!r} is not one of {', '.join(EVENT_KINDS)}")

    def error_rate(self, model: str) -> float | None:
        """Share of this run's committed trials ``model`` got wrong on the DUT mic; None before any."""
        wrong, n = self.errors.get(model, (0, 0))
        return wrong / n if n else None

    def as_dict(self) -> dict:
        """A JSON-able copy (mappings as dicts, tuples as lists)."""
        d = asdict(self)
        d["predictions"] = dict(self.predictions)
        d["correct"] = dict(self.correct)
        d["errors"] = {m: list(v) for m, v in self.errors.items()}
        return d
