"""Each trial's levels at each mic: the command's, the perturbation's and the ambient's, in dBFS
and, with an SPL calibration, in dB SPL, unweighted and A-weighted (issue 23).

Where the levels come from
--------------------------
* A speaker's level at a mic is its own contribution over its playback. The simulator knows it
  exactly (``TrialFacts.source_rms_dbfs``); on hardware it is estimated from what was played
  (its RMS, and A-weighted RMS) plus the path's gain at 1 kHz from ``calibrate --what level``
  (``level_dbfs[path] - reference_level_dbfs``); without that measurement it is absent.
* The ambient level is the capture's silence before the first playback (the pre-roll).
* dB SPL uses each mic's dBFS at 94 dB SPL: the profile's ``spl_dbfs_at_94`` (``calibrate --what
  spl``), else, on the simulated rig, the simulator's own (:func:`testbed.audio.sim_spl.sim_dbfs_at_94`).
  Without either the SPL fields are absent and ``spl_absent`` says why.

Every level is an RMS in dBFS as :func:`testbed.acoustics.weighting.rms_dbfs` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from testbed.acoustics.weighting import a_weight, rms_dbfs, spl_db

#: Shortest pre-roll (seconds) an ambient level is measured on.
MIN_AMBIENT_S = 0.02
NO_SPL = ("no SPL calibration for rig {rig!r}: run 'testbed calibrate RIG --what spl' with a 94 dB "
          "calibrator on each mic")


def spl_reference(rig, calibration: object | None) -> tuple[dict[str, float], str | None, str | None]:
    """``(dbfs_at_94 per mic, source, why absent)``: source ``"calibration"`` or ``"sim"``."""
    prof = dict(getattr(calibration, "spl_dbfs_at_94", None) or {})
    if prof:
        return prof, "calibration", None
    if not rig.is_physical:
        from testbed.audio.sim_spl import sim_dbfs_at_94

        return sim_dbfs_at_94(rig), "sim", None
    return {}, None, NO_SPL.format(rig=rig.name)


def _path_gain_db(calibration: object | None, speaker: str, mic: str) -> float | None:
    level = getattr(calibration, "level_dbfs", None) or {}
    ref = getattr(calibration, "reference_level_dbfs", None)
    key = f"{speaker}->{mic}"
    return None if key not in level or ref is None else float(level[key]) - float(ref)


def trial_levels(rig, calibration: object | None, played: Mapping[str, np.ndarray], facts: Mapping,
                 captures: Mapping[str, np.ndarray], ambient_samples: int) -> dict:
    """The ``facts`` entries of one trial's levels.

    Parameters
    ----------
    played : speaker name -> the signal sent to it, float32 (n_samples,).
    facts : the backend's facts as a dict (``source_rms_dbfs`` / ``_a`` when it knows them).
    captures : mic -> capture, float32 (n_samples,), sample 0 = the trial's time zero.
    ambient_samples : how many samples before the first playback (the pre-roll).

    Returns
    -------
    ``{"levels": {mic: {field: value}}, "spl_source": ...}`` or with ``"spl_absent": reason``.
    Fields per mic: ``command_dbfs``, ``command_dbfs_a``, ``perturbation_dbfs``,
    ``perturbation_dbfs_a``, ``ambient_dbfs``, ``ambient_dbfs_a``, and with an SPL calibration
    the same as ``*_db_spl`` / ``*_dba_spl``; a field whose level is unknown is left out.
    """
    sr = rig.sample_rate
    roles = {"command": rig.user_speaker, "perturbation": rig.adversary_speaker}
    src, src_a = facts.get("source_rms_dbfs") or {}, facts.get("source_rms_dbfs_a") or {}
    sent: dict[str, tuple[float, float]] = {}
    for spk, sig in played.items():
        if spk not in src:
            x = np.asarray(sig, dtype=np.float64)
            sent[spk] = (rms_dbfs(x), rms_dbfs(a_weight(x, sr)))
    ref94, source, absent = spl_reference(rig, calibration)
    out: dict[str, dict[str, float]] = {}
    for mic, cap in captures.items():
        lv: dict[str, float] = {}
        for role, spk in roles.items():
            if spk is None or spk not in played:
                continue
            if spk in src and mic in src[spk]:
                lv[f"{role}_dbfs"], lv[f"{role}_dbfs_a"] = float(src[spk][mic]), float(src_a[spk][mic])
            elif spk in sent and (g := _path_gain_db(calibration, spk, mic)) is not None:
                lv[f"{role}_dbfs"], lv[f"{role}_dbfs_a"] = sent[spk][0] + g, sent[spk][1] + g
        if ambient_samples >= MIN_AMBIENT_S * sr:
            pre = np.asarray(cap[:ambient_samples], dtype=np.float64)
            settle = min(len(pre) // 4, int(0.02 * sr))    # the A filter's start-up transient
            lv["ambient_dbfs"] = rms_dbfs(pre)
            lv["ambient_dbfs_a"] = rms_dbfs(a_weight(pre, sr)[settle:])
        if mic in ref94:
            for k in [k for k in lv if k.endswith("_dbfs") or k.endswith("_dbfs_a")]:
                name = k.replace("_dbfs_a", "_dba_spl") if k.endswith("_a") else k.replace("_dbfs", "_db_spl")
                lv[name] = spl_db(lv[k], ref94[mic])
        out[mic] = {k: round(v, 2) for k, v in lv.items()}
    res: dict = {"levels": out}
    if source is not None:
        res["spl_source"] = source
    else:
        res["spl_absent"] = absent
    return res
