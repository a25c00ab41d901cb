"""Load and validate rig files; every failure is one :class:`RigError` line naming file and field."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from testbed.errors import RigError
from testbed.rig.schema import MIC_TIERS, SPEAKER_MODELS, Rig


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def format_validation_error(path: Path | str, err: ValidationError) -> str:
    """One line: ``FILE: field.path: message`` for the first error pydantic found."""
    e = err.errors()[0]
    msg = e["msg"].removeprefix("Value error, ")
    loc = _loc(e["loc"])
    extra = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    if e["type"] == "extra_forbidden":
        msg = "unknown field"
    elif e["type"] == "missing":
        msg = "required field is missing"
    elif "input" in e and e["type"] not in ("value_error", "assertion_error"):
        msg = f"{msg} (got {e['input']!r})"
    return f"{path}: {loc}: {msg}{extra}" if loc else f"{path}: {msg}{extra}"


def read_toml(path: Path | str, error: type[Exception] = RigError) -> dict:
    """Read a TOML file, turning I/O and syntax errors into one-line ``error``s."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: malformed TOML: {exc}") from None


def load_response_csv(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read a response CSV of ``hz, db`` rows (a header line is allowed).

    Returns
    -------
    hz, db : float64 arrays of the same length, sorted by frequency.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
    except OSError as exc:
        raise RigError(f"{path}: cannot read response CSV: {exc.strerror or exc}") from None
    pts = []
    for i, row in enumerate(rows):
        try:
            pts.append((float(row[0]), float(row[1])))
        except (ValueError, IndexError):
            if i == 0:
                continue  # header
            raise RigError(f"{path}: line {i + 1}: expected 'hz, db', got {','.join(row)!r}") from None
    if len(pts) < 2:
        raise RigError(f"{path}: a response CSV needs at least two (hz, db) rows")
    arr = np.array(sorted(pts), dtype=float)
    return arr[:, 0], arr[:, 1]


def resolve_response(rig: Rig, value: str) -> Path | None:
    """The CSV path a tier/response string names (relative to the rig file), or None if built in."""
    if value in MIC_TIERS or value in SPEAKER_MODELS:
        return None
    p = Path(value)
    if not p.is_absolute() and rig.source is not None:
        p = rig.source.parent / p
    return p


def parse_rig(data: dict, source: Path | str = "<rig>") -> Rig:
    """Validate an already-parsed rig mapping (from TOML)."""
    source = Path(source)
    try:
        rig = Rig.model_validate({**data, "source": source})
    except ValidationError as err:
        raise RigError(format_validation_error(source, err)) from None
    for name, mic in rig.mics.items():
        if mic.tier in MIC_TIERS:
            continue
        if not mic.tier.lower().endswith(".csv"):
            raise RigError(
                f"{source}: mics.{name}.tier: unknown mic tier {mic.tier!r} "
                f"(use one of {', '.join(MIC_TIERS)} or a CSV path)"
            )
        _check_csv(source, f"mics.{name}.tier", resolve_response(rig, mic.tier))
    for name, spk in rig.speakers.items():
        if spk.response in SPEAKER_MODELS:
            continue
        if not spk.response.lower().endswith(".csv"):
            raise RigError(
                f"{source}: speakers.{name}.response: unknown speaker model {spk.response!r} "
                f"(use one of {', '.join(SPEAKER_MODELS)} or a CSV path)"
            )
        _check_csv(source, f"speakers.{name}.response", resolve_response(rig, spk.response))
    return rig


def _check_csv(source: Path, field: str, path: Path | None) -> None:
    assert path is not None
    try:
        load_response_csv(path)
    except RigError as exc:
        raise RigError(f"{source}: {field}: {exc}") from None


def load_rig(path: Path | str) -> Rig:
    """Load and validate a rig TOML file.

    Raises
    ------
    RigError
        One line naming the file and the field path of the first problem.
    """
    path = Path(path)
    return parse_rig(read_toml(path), path)
