"""Importing a folder of recorded captures (WAV/FLAC + a metadata CSV) as a session.

CSV columns (a header row is required):

- ``file`` (required): audio file, relative to the folder;
- ``label`` (required): the command that was spoken;
- ``trial``: rows sharing a value are the mics of one trial (default: one trial per row);
- ``mic`` (default ``"mic"``), ``mic_tier``, ``utterance_id`` (default: the file's stem),
  ``attack`` (default ``none``), ``eps``, ``target``, ``source_model``, ``delay_ms``,
  ``placement``, ``repetition``, ``command_start_s`` (where the command starts in the file).

The imported session has captures and no evaluations: ``testbed session replay`` adds them.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from testbed.errors import SessionError
from testbed.session.store import CaptureRecord, SessionStore, TrialRecord, safe_name, sessions_root
from testbed.session.trials import AttackConfig, TrialSpec

REQUIRED = ("file", "label")
KNOWN = {"file", "label", "trial", "mic", "mic_tier", "utterance_id", "attack", "eps", "target",
         "source_model", "delay_ms", "placement", "repetition", "command_start_s"}


def _float(csv_path: Path, line: int, row: dict, key: str, default: float) -> float:
    v = (row.get(key) or "").strip()
    if not v:
        return default
    try:
        return float(v)
    except ValueError:
        raise SessionError(f"{csv_path}: line {line}: {key}: {v!r} is not a number") from None


def _read_audio(path: Path, csv_path: Path, line: int, sample_rate: int) -> np.ndarray:
    try:
        sig, sr = sf.read(path, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise SessionError(f"{csv_path}: line {line}: file: {path} does not exist") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise SessionError(f"{csv_path}: line {line}: file: {path} is not readable audio ({exc})") from None
    sig = sig[:, 0]
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
        spec = TrialSpec(tid, uid, label, aid, _float(csv_path, line, first, "delay_ms", 0.0), placement,
                         int(_float(csv_path, line, first, "repetition", 0)))
        planned.append(spec)
        caps, starts, files = [], {}, {}
        for ln, r in members:
            mic = safe_name(r.get("mic", "").strip() or "mic")
            if mic in files:
                raise SessionError(f"{csv_path}: line {ln}: mic: trial {key!r} has mic {mic!r} twice")
            sig = _read_audio(folder / r["file"].strip(), csv_path, ln, sample_rate)
            files[mic] = r["file"].strip()
            if r.get("mic_tier", "").strip():
                tiers[mic] = r["mic_tier"].strip()
            starts[mic] = _float(csv_path, ln, r, "command_start_s", 0.0) * sample_rate
            caps.append(CaptureRecord(mic=mic, signal=sig, clipped=int(np.sum(np.abs(sig) >= 1.0))))
        records.append(TrialRecord(trial_id=tid, captures=caps, evaluations=[], finished_at=time.time(),
                                   facts={"imported_files": files, "command_start_samples": starts}))

    root = sessions_root(root)
    root.mkdir(parents=True, exist_ok=True)
    sid = session_id or f"import-{safe_name(folder.resolve().name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    mics = sorted({c.mic for r in records for c in r.captures})
    meta = {
        "session_id": sid, "plan_name": "import", "rig_name": None, "imported_from": str(folder.resolve()),
        "rig": {"mics": {m: {"tier": tiers.get(m)} for m in mics}}, "sample_rate": sample_rate,
        "dut_mic": mics[0] if len(mics) == 1 else None, "seed": None, "plan": None,
        "manifest": {"created_at": time.time()},
    }
    store = SessionStore.create(root / sid, meta=meta, files={"metadata.csv": csv_path.read_bytes()},
                                attacks=list(attacks.values()), utterances=list(utterances.values()),
                                planned=planned, sample_rate=sample_rate)
    with store.locked():
        for rec in records:
            store.commit_trial(rec, sample_rate)
        store.event("finished", f"imported {len(records)} trials from {folder}")
    return store
