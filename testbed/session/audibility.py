"""How audible each attacked trial's perturbation was (issue 24): the ``facts["audibility"]`` of a trial.

Two references, each entry naming its own in ``reference``:

* ``"at the speaker"``: the perturbation as sent to the adversary speaker against the command as
  sent to the user speaker, over the command's samples (the perturbation shifted by the played
  offset difference, zeros where it does not overlap);
* ``"at mic <name>"``: the same two signals as each mic hears them. On the simulated rig (a
  backend with ``channels(placement)``) each speaker's contribution is its signal convolved with
  the simulator's impulse response to that mic (noise, clock drift and the ADC left out), over the
  command's arrival window. Elsewhere only the SNR is known, from the trial's levels
  (:mod:`testbed.session.levels`: command minus perturbation dBFS); such entries say
  ``"basis": "levels"`` and carry no masking figures.

Per entry: ``snr_db`` (command energy over perturbation energy,
:func:`testbed.acoustics.audibility.snr_db`), ``frames_above`` (fraction of STFT frames where some
bin of the perturbation's PSD is above the command's masking threshold,
:func:`testbed.acoustics.psychoacoustic.masking_margin`), ``masking_margin_db`` (max over frames
and bins of PSD minus threshold; < 0: masked everywhere) and ``median_margin_db`` (median over
frames of each frame's max). Non-finite values are stored as None.

Cheap by caching: a command's masking threshold is computed once per (command, channel), a
convolution once per (signal, channel), and an entry once per (command, perturbation, offset,
channel), so repetitions, placements sharing a channel and every model share one computation.
The caches are memoisation only: a trial records the same facts with or without them.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np
from scipy import signal as sps

from testbed.acoustics.audibility import default_masking_model, snr_db
from testbed.acoustics.psychoacoustic import MaskingThreshold, masking_threshold

#: ``reference`` of the speaker entry.
AT_SPEAKER = "at the speaker"
#: Keys of every entry's figures.
FIELDS = ("snr_db", "frames_above", "masking_margin_db", "median_margin_db")


def at_mic(mic: str) -> str:
    """``reference`` of mic ``mic``'s entry."""
    return f"at mic {mic}"


class _Lru:
    """A least-recently-used memo holding at most ``budget`` units of ``weigh(value)`` (default: 1 each)."""

    def __init__(self, budget: int, weigh: Callable[[object], int] | None = None) -> None:
        self.budget = budget
        self.weigh = weigh or (lambda v: 1)
        self._d: OrderedDict = OrderedDict()
        self._used = 0

    def get(self, key, make):
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        value = make()
        self._d[key] = value
        self._used += self.weigh(value)
        while self._used > self.budget and len(self._d) > 1:
            self._used -= self.weigh(self._d.popitem(last=False)[1])
        return value


#: Commands' thresholds, float32 (a 1 s clip at 16 kHz: 29 frames x 1025 bins, 119 kB): 64 MB holds
#: ~550, every (utterance, mic) of a 130-utterance placement at 3 mics and the speaker.
_THRESHOLDS = _Lru(64 << 20, lambda t: 0 if t is None else t.threshold_db.nbytes)
_CONVOLVED = _Lru(32 << 20, lambda a: a.nbytes)       # signals heard at a mic, float32
_ENTRIES = _Lru(1 << 14)


def _digest(x: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).hexdigest()


def _window(x: np.ndarray, start: int, n: int) -> np.ndarray:
    """``x[start:start + n]`` as float64 (n,), zeros where it runs outside ``x``."""
    out = np.zeros(n, dtype=np.float64)
    lo, hi = max(start, 0), min(start + n, len(x))
    if hi > lo:
        out[lo - start:hi - start] = x[lo:hi]
    return out


def _threshold(key: tuple, command: np.ndarray, sample_rate: int) -> MaskingThreshold | None:
    if not np.any(command):
        return None
    def make() -> MaskingThreshold:
        t = masking_threshold(command, default_masking_model(sample_rate))   # kept slim: the PSD is not needed
        return replace(t, threshold_db=t.threshold_db.astype(np.float32), psd_db=np.empty((0, 0), np.float32))

    return _THRESHOLDS.get(key, make)


def _finite(v: float, nd: int = 2) -> float | None:
    return round(float(v), nd) if v is not None and math.isfinite(v) else None


def entry(command: np.ndarray, perturbation: np.ndarray, threshold: MaskingThreshold | None,
          reference: str) -> dict:
    """One reference's figures of ``perturbation`` (n,) against ``command`` (n,) and its threshold."""
    out = {"reference": reference, "snr_db": _finite(snr_db(command, perturbation))}
    if threshold is None:
        return {**out, "frames_above": None, "masking_margin_db": None, "median_margin_db": None}
    p = threshold.perturbation_psd_db(perturbation)
    t = threshold.threshold_db
    k = min(p.shape[0], t.shape[0])
    per_frame = (p[:k] - t[:k]).max(axis=1)
    return {**out, "frames_above": _finite(np.mean(per_frame > 0.0), 4),
            "masking_margin_db": _finite(per_frame.max()), "median_margin_db": _finite(np.median(per_frame))}


def speaker_audibility(clean: np.ndarray, delta: np.ndarray, rel_samples: int, sample_rate: int) -> dict:
    """The ``"at the speaker"`` entry: ``delta`` starts ``rel_samples`` after ``clean`` (may be < 0)."""
    c = np.asarray(clean, dtype=np.float64)
    hc, hd = _digest(clean), _digest(delta)

    def make() -> dict:
        pert = _window(np.asarray(delta, dtype=np.float64), -rel_samples, len(c))
        return entry(c, pert, _threshold((hc, sample_rate), c, sample_rate), AT_SPEAKER)

    return dict(_ENTRIES.get(("speaker", hc, hd, rel_samples, sample_rate), make))


def mic_audibility(clean: np.ndarray, delta: np.ndarray, rel_samples: int, sample_rate: int, mic: str,
                   h_user: np.ndarray, h_adv: np.ndarray, user_delay_samples: float) -> dict:
    """The ``"at mic <mic>"`` entry from impulse responses (float (L,), delay included) of the user
    and adversary speakers to ``mic``; the command's window starts ``user_delay_samples`` after it
    is played."""
    hc, hd, hu, ha = _digest(clean), _digest(delta), _digest(h_user), _digest(h_adv)
    start, n = int(round(user_delay_samples)), len(clean)

    def make() -> dict:
        u = _CONVOLVED.get((hc, hu), lambda: sps.fftconvolve(np.asarray(clean, np.float64), h_user).astype(np.float32))
        a = _CONVOLVED.get((hd, ha), lambda: sps.fftconvolve(np.asarray(delta, np.float64), h_adv).astype(np.float32))
        cmd = _window(u, start, n)
        pert = _window(a, start - rel_samples, n)
        return entry(cmd, pert, _threshold((hc, hu, start, sample_rate), cmd, sample_rate), at_mic(mic))

    return dict(_ENTRIES.get(("mic", hc, hd, hu, ha, rel_samples, start, sample_rate), make))


def trial_audibility(rig, plays: Mapping, mics: tuple[str, ...], placement: str | None, backend,
                     levels: Mapping[str, Mapping[str, float]]) -> dict | None:
    """The ``facts["audibility"]`` of one trial, or None when nothing was played as a perturbation.

    Parameters
    ----------
    rig : the :class:`~testbed.rig.Rig`.
    plays : speaker name -> :class:`~testbed.audio.Playback` as played (signal, offset in samples).
    mics : the recorded mics.
    placement : the trial's placement (for the simulator's channels).
    backend : the open backend; one with ``channels(placement)`` gives mic entries with masking.
    levels : ``facts["levels"]`` (mic -> fields), the fallback for the mics' SNR.

    Returns
    -------
    ``{"speaker": entry, "mics": {mic: entry}}``.
    """
    user, adv = rig.user_speaker, rig.adversary_speaker
    if adv is None or adv not in plays or user not in plays:
        return None
    sr = rig.sample_rate
    clean, delta = plays[user].signal, plays[adv].signal
    rel = int(round(float(plays[adv].offset_samples) - float(plays[user].offset_samples)))
    out = {"speaker": speaker_audibility(clean, delta, rel, sr), "mics": {}}
    chans = backend.channels(placement) if callable(getattr(backend, "channels", None)) else None
    for mic in mics:
        ch = chans.get(mic) if chans is not None else None
        if ch is not None and user in ch.h and adv in ch.h:
            out["mics"][mic] = mic_audibility(clean, delta, rel, sr, mic, ch.h[user], ch.h[adv],
                                              ch.direct_delay_samples.get(user, 0.0))
            continue
        lv = levels.get(mic) or {}
        if "command_dbfs" in lv and "perturbation_dbfs" in lv:
            out["mics"][mic] = {"reference": at_mic(mic), "basis": "levels",
                                "snr_db": _finite(lv["command_dbfs"] - lv["perturbation_dbfs"]),
                                "frames_above": None, "masking_margin_db": None, "median_margin_db": None}
    return out
