"""Non-finite samples (NaN, inf) never reach the FLAC encoder: a trial that has them is kept as a
FAILED trial with the reason, its bad samples stored as zeros.

A NaN in a capture (a broken driver, a diverged simulation, a NaN perturbation) used to crash
the commit with a bare AssertionError from libsndfile; now the trial is recorded, marked failed,
and the session stays resumable.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from testbed.session.store.records import TrialRecord


def _count(sig: np.ndarray) -> int:
    a = np.asarray(sig)
    return int(a.size - np.count_nonzero(np.isfinite(a))) if a.dtype.kind in "fc" else 0


def _zeroed(sig: np.ndarray) -> np.ndarray:
    a = np.asarray(sig, dtype=np.float32)
    return np.where(np.isfinite(a), a, np.float32(0.0)).astype(np.float32)


def quarantine_nonfinite(rec: TrialRecord) -> TrialRecord:
    """``rec`` unchanged when every capture and played signal is finite; otherwise ``rec`` itself,
    updated in place (so the caller reports what was committed), marked ``failed`` whose ``error`` names each mic / speaker and its count of NaN or inf samples, with
    those samples set to 0, the evaluations of the affected mics dropped (they scored garbage) and
    ``facts["nonfinite_samples"]`` = ``{"mic:<name>" | "speaker:<name>": count}``."""
    bad: dict[str, int] = {}
    for c in rec.captures:
        if (n := _count(c.signal)):
            bad[f"mic:{c.mic}"] = n
    for spk, (sig, _) in rec.played.items():
        if (n := _count(sig)):
            bad[f"speaker:{spk}"] = n
    if not bad:
        return rec
    bad_mics = {c.mic for c in rec.captures if f"mic:{c.mic}" in bad}
    captures = [dataclasses.replace(c, signal=_zeroed(c.signal)) if c.mic in bad_mics else c
                for c in rec.captures]
    played = {spk: ((_zeroed(sig), off) if f"speaker:{spk}" in bad else (sig, off))
              for spk, (sig, off) in rec.played.items()}
    what = ", ".join(f"{k.split(':', 1)[0]} {k.split(':', 1)[1]}: {n} sample(s)" for k, n in bad.items())
    reason = f"non-finite (NaN/inf) audio, stored as zeros: {what}"
    error = f"{rec.error}; {reason}" if rec.error else reason
    rec.captures, rec.played, rec.failed, rec.error = captures, played, True, error
    rec.evaluations = [e for e in rec.evaluations if e.mic not in bad_mics]
    rec.facts = {**rec.facts, "nonfinite_samples": bad}
    return rec
