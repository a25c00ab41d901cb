"""Looped playback of a universal perturbation: the adversary needs no sync with the user.

A universal perturbation (plan ``kind = "universal"``) is played in a loop that has been running
since before the command: a trial's ``delay_ms`` is where the loop stands against the command.
The command's sample ``n`` meets loop sample ``(n - delay) mod L`` (as
:func:`testbed.attacks.timing.shift_perturbation` with ``loop=True`` models it in training), so
delays spread over one period (0-1000 ms for a 1 s loop) cover every phase.
"""

from __future__ import annotations

import numpy as np

#: Registry kinds played in a loop (unless their params say ``loop = false``).
LOOPED_KINDS: tuple[str, ...] = ("universal", "ota-universal")
#: How long the loop plays before the command starts, s (the room's reverberation of the loop
#: is then already there when the command arrives, as it is for a loop that never stops).
LOOP_LEAD_S = 0.1


def is_looped(cfg) -> bool:
    """True when attack configuration ``cfg`` (an :class:`~testbed.session.trials.AttackConfig`)
    is played in a loop."""
    return cfg.kind in LOOPED_KINDS and bool(cfg.params.get("loop", True))


def looped_playback(delta: np.ndarray, delay_ms: float, n_user: int, sample_rate: int,
                    lead_s: float = LOOP_LEAD_S) -> tuple[np.ndarray, float, dict]:
    """The adversary's signal for a loop of ``delta`` at phase ``delay_ms`` against the command.

    Parameters
    ----------
    delta : float32 (L,), one period of the loop.
    delay_ms : the loop's phase: the command's sample ``n`` meets ``delta[(n - delay) mod L]``.
    n_user : the command's length, samples (the loop covers it).
    lead_s : the loop starts this long before the command.

    Returns
    -------
    (signal float32 (lead + n_user,), the adversary's start minus the user's in ms (negative),
    facts for the trial record: ``length_samples``, ``phase_samples``, ``lead_samples``)
    """
    delta = np.asarray(delta, dtype=np.float32).reshape(-1)
    length = delta.shape[0]
    lead = int(round(lead_s * sample_rate))
    d = int(round(float(delay_ms) * sample_rate / 1000.0))
    m = np.arange(lead + int(n_user))
    signal = delta[np.mod(m - lead - d, length)]
    facts = {"length_samples": length, "phase_samples": int(np.mod(-d, length)), "lead_samples": lead}
    return signal, -1000.0 * lead / sample_rate, facts
