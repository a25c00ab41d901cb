"""Importing a folder of recorded captures (WAV/FLAC + a metadata CSV) as a session.

CSV columns (a header row is required):

- ``file`` (required): audio file, relative to the folder (never absolute, never ``..``, never a
  link out of the folder);
- ``label`` (required): the command that was spoken;
- ``trial``: rows sharing a value are the mics of one trial (default: one trial per row);
- ``mic`` (default ``"mic"``), ``mic_tier``, ``utterance_id`` (default: the file's stem),
  ``attack`` (default ``none``), ``eps``, ``target``, ``source_model``, ``delay_ms``,
  ``placement``, ``repetition``, ``command_start_s`` (where the command starts in the file).

Mic and placement names must be safe names (:mod:`testbed.names`), numbers finite, audio samples
finite; every problem is one line naming the CSV, its line and column, and nothing is created.
The imported session has captures and no evaluations: ``testbed session replay`` adds them.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from testbed.errors import SessionError
from testbed.names import check_name, inside
from testbed.session.store import CaptureRecord, SessionStore, TrialRecord, safe_name, sessions_root
from testbed.session.store.paths import new_session_dir
from testbed.session.trials import AttackConfig, TrialSpec

REQUIRED = ("file", "label")
KNOWN = {"file", "label", "trial", "mic", "mic_tier", "utterance_id", "attack", "eps", "target",
         "source_model", "delay_ms", "placement", "repetition", "command_start_s"}


def _float(csv_path: Path, line: int, row: dict, key: str, default: float) -> float:
    v = (row.get(key) or "").strip()
    if not v:
        return default
    try:
        x = float(v)
    except ValueError:
        raise SessionError(f"{csv_path}: line {line}: {key}: {v!r} is not a number") from None
    if not math.isfinite(x):
        raise SessionError(f"{csv_path}: line {line}: {key}: {v!r} is not a finite number")
    return x


def _name(csv_path: Path, line: int, key: str, value: str) -> str:
    try:
        return check_name(value, "")
    except ValueError as exc:
        raise SessionError(f"{csv_path}: line {line}: {key}: {exc}") from None


def _audio_path(folder: Path, csv_path: Path, line: int, rel: str) -> Path:
    """The audio file ``rel`` names, refused unless it is relative and stays inside ``folder``."""
    if not rel:
        raise SessionError(f"{csv_path}: line {line}: file: empty")
    try:
        inside(folder, rel)
    except ValueError as exc:
        raise SessionError(f"{csv_path}: line {line}: file: {exc}") from None
    return folder / rel


def _read_audio(path: Path, csv_path: Path, line: int, sample_rate: int) -> np.ndarray:
    try:
        sig, sr = sf.read(path, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise SessionError(f"{csv_path}: line {line}: file: {path} does not exist") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise SessionError(f"{csv_path}: line {line}: file: {path} is not readable audio ({exc})") from None
    sig = sig[:, 0]
    bad = int(sig.size - np.count_nonzero(np.isfinite(sig)))
    if bad:
        raise SessionError(f"{csv_path}: line {line}: file: {path} has {bad} non-finite sample(s) (NaN/inf)")
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = np.gcd(sr, sample_rate)
        sig = resample_poly(sig, sample_rate // g, sr // g).astype(np.float32)
    return sig


def import_folder(
    folder: Path | str,
    csv_path: Path | str | None = None,
    *,
    root: Path | str | None = None,
    session_id: str | None = None,
    sample_rate: int = 16000,
) -> SessionStore:
    """Create a session from ``folder``'s recordings described by ``csv_path`` (default ``metadata.csv``).

    Raises
    ------
    SessionError
        One line naming the CSV, the line and the column of the first problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionError(f"{folder}: not a folder")
    root = sessions_root(root)
    if session_id is not None:
        new_session_dir(root, session_id)   # refuse a bad --id before reading anything
    csv_path = Path(csv_path) if csv_path is not None else folder / "metadata.csv"
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "") for k, v in r.items()} for r in reader]
    except FileNotFoundError:
        raise SessionError(f"{csv_path}: no such file (give the metadata CSV with --csv)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SessionError(f"{csv_path}: cannot read: {exc}") from None
    for col in REQUIRED:
        if col not in header:
            raise SessionError(f"{csv_path}: missing column {col!r} (have: {', '.join(header) or 'none'})")
    unknown = [h for h in header if h not in KNOWN]
    if unknown:
        raise SessionError(f"{csv_path}: unknown column {unknown[0]!r} (known: {', '.join(sorted(KNOWN))})")
    if not rows:
        raise SessionError(f"{csv_path}: no rows")

    groups: dict[str, list[tuple[int, dict]]] = {}
    for i, r in enumerate(rows):
        key = r.get("trial", "").strip() or f"row{i}"
        groups.setdefault(key, []).append((i + 2, r))

    attacks: dict[str, AttackConfig] = {}
    utterances: dict[str, tuple[str, str, None, dict]] = {}
    planned: list[TrialSpec] = []
    records: list[TrialRecord] = []
    tiers: dict[str, str] = {}
    for tid, (key, members) in enumerate(groups.items()):
        line, first = members[0]
        label = first["label"].strip()
        if not label:
            raise SessionError(f"{csv_path}: line {line}: label: empty")
        kind = first.get("attack", "").strip() or "none"
        eps = _float(csv_path, line, first, "eps", 0.0)
        target = first.get("target", "").strip() or "untargeted"
        src = first.get("source_model", "").strip() or None
        aid = "none" if kind == "none" else f"{kind}-{eps:g}-{target}-{src}"
        attacks.setdefault(aid, AttackConfig(aid, kind, eps if kind != "none" else 0.0, target, src, False, {}))
        uid = first.get("utterance_id", "").strip() or Path(first["file"]).stem
        utterances.setdefault(uid, (uid, label, None, {"imported": True}))
        placement = first.get("placement", "").strip() or None
        if placement is not None:
            _name(csv_path, line, "placement", placement)
        spec = TrialSpec(tid, uid, label, aid, _float(csv_path, line, first, "delay_ms", 0.0), placement,
                         int(_float(csv_path, line, first, "repetition", 0)))
        planned.append(spec)
        caps, starts, files = [], {}, {}
        for ln, r in members:
            mic = _name(csv_path, ln, "mic", r.get("mic", "").strip() or "mic")
            if mic.casefold() in {m.casefold() for m in files}:
                raise SessionError(f"{csv_path}: line {ln}: mic: trial {key!r} has mic {mic!r} twice")
            sig = _read_audio(_audio_path(folder, csv_path, ln, r["file"].strip()), csv_path, ln, sample_rate)
            files[mic] = r["file"].strip()
            if r.get("mic_tier", "").strip():
                tiers[mic] = r["mic_tier"].strip()
            starts[mic] = _float(csv_path, ln, r, "command_start_s", 0.0) * sample_rate
            caps.append(CaptureRecord(mic=mic, signal=sig, clipped=int(np.sum(np.abs(sig) >= 1.0))))
        records.append(TrialRecord(trial_id=tid, captures=caps, evaluations=[], finished_at=time.time(),
                                   facts={"imported_files": files, "command_start_samples": starts}))

    root.mkdir(parents=True, exist_ok=True)
    sid = session_id or _default_id(folder)
    path = new_session_dir(root, sid)
    mics = sorted({c.mic for r in records for c in r.captures})
    meta = {
        "session_id": sid, "plan_name": "import", "rig_name": None, "imported_from": str(folder.resolve()),
        "rig": {"mics": {m: {"tier": tiers.get(m)} for m in mics}}, "sample_rate": sample_rate,
        "dut_mic": mics[0] if len(mics) == 1 else None, "seed": None, "plan": None,
        "manifest": {"created_at": time.time()},
    }
    store = SessionStore.create(path, meta=meta, files={"metadata.csv": csv_path.read_bytes()},
                                attacks=list(attacks.values()), utterances=list(utterances.values()),
                                planned=planned, sample_rate=sample_rate)
    try:
        with store.locked():
            for rec in records:
                store.commit_trial(rec, sample_rate)
            store.event("finished", f"imported {len(records)} trials from {folder}")
    except BaseException:
        # the session was made by this call and holds nothing else: remove it, so the
        # import can be run again with the same --id
        store.close()
        shutil.rmtree(path, ignore_errors=True)
        raise
    return store


def _default_id(folder: Path) -> str:
    """``import-<folder name>-<date>-<time>``, the folder name made safe and at most 64 characters."""
    stem = re.sub(r"\.{2,}", ".", safe_name(folder.resolve().name))[:64].strip(".-_") or "folder"
    return f"import-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
