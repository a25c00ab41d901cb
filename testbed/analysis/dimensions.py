"""Grouping dimensions: store columns plus derived ones (distance bins, ratio, angle, SPR, bits).

``testbed analyze --by`` accepts any name in :data:`DIMENSIONS` or :data:`ALIASES`. Derived
dimensions are computed from the store's columns by :func:`with_dimensions`; binned ones are
ordered categoricals so tables and plots keep a natural order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from testbed.errors import AnalysisError

NA = "n/a"

#: Store columns that can be grouped on directly (G's evaluation contract).
COLUMNS = (
    "session_id", "model", "model_arch", "model_variant", "attack", "eps", "target",
    "source_model", "delay_ms", "mic", "mic_tier", "is_dut_mic", "placement", "repetition",
    "label", "eval_source", "utterance_id", "attack_id",
)

#: Short names operators type; each maps to a column or a derived dimension.
ALIASES = {
    "session": "session_id",
    "arch": "model_arch",
    "variant": "model_variant",
    "delay": "delay_ms",
    "sync_delay": "delay_ms",
    "tier": "mic_tier",
    "source": "source_model",
    "dut": "is_dut_mic",
    "distance": "dist_adv_bin",
    "dist_adv": "dist_adv_bin",
    "dist_user": "dist_user_bin",
    "ratio": "dist_ratio_bin",
    "dist_ratio": "dist_ratio_bin",
    "angle": "angle_adv_bin",
    "angle_adv": "angle_adv_bin",
    "angle_user": "angle_user_bin",
    "spr": "spr_bin",
    "spr_dut": "spr_bin",
    "spr_mic": "spr_mic_bin",
    "bit_depth": "bits",
    "ensemble": "ensemble_size",
}

#: Bin edges of the derived dimensions (right-closed intervals).
DIST_EDGES_M = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, np.inf)
RATIO_EDGES = (0.0, 0.5, 0.8, 1.25, 2.0, np.inf)
ANGLE_EDGES_DEG = (0.0, 30.0, 60.0, 90.0, 135.0, 180.0)
SPR_EDGES_DB = (-np.inf, 0.0, 10.0, 20.0, 30.0, 40.0, np.inf)


def _fmt(v: float) -> str:
    return f"{v:g}"


def _labels(edges: Sequence[float], unit: str) -> list[str]:
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if np.isinf(lo):
            out.append(f"<= {_fmt(hi)} {unit}".strip())
        elif np.isinf(hi):
            out.append(f"> {_fmt(lo)} {unit}".strip())
        else:
            out.append(f"{_fmt(lo)}-{_fmt(hi)} {unit}".strip())
    return out


def _bin(values: pd.Series, edges: Sequence[float], unit: str) -> pd.Series:
    labels = _labels(edges, unit)
    cut = pd.cut(pd.to_numeric(values, errors="coerce"), bins=list(edges), labels=labels, right=True,
                 include_lowest=True)
    cat = cut.cat.add_categories([NA]).fillna(NA)
    return cat


def _need(df: pd.DataFrame, cols: Sequence[str], dim: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise AnalysisError(
            f"--by {dim}: the session store has no column {', '.join(missing)} to derive it from"
        )


def _spr_at_dut(df: pd.DataFrame) -> pd.Series:
    """Each row's trial SPR at the DUT mic (dB), broadcast to every mic of that trial."""
    _need(df, ("spr_db", "is_dut_mic", "trial_id"), "spr")
    keys = ["session_id", "trial_id"] if "session_id" in df.columns else ["trial_id"]
    dut = df[df["is_dut_mic"].astype(bool)].drop_duplicates(keys)[[*keys, "spr_db"]]
    merged = df[keys].merge(dut, on=keys, how="left")
    return pd.Series(merged["spr_db"].to_numpy(), index=df.index)


_BITS_RE = re.compile(r"int(\d+)", re.IGNORECASE)
_FLOAT_RE = re.compile(r"(?:fp|float|bf)(\d+)", re.IGNORECASE)
_ENS_RE = re.compile(r"(?:[@:/-]k=?|ens|slr)(\d+)", re.IGNORECASE)


def bits_of(name: str | None) -> float:
    """Weight bit depth named by a model variant or name: 'int8' -> 8, 'fp32' -> 32, else nan."""
    if not isinstance(name, str):
        return np.nan
    m = _BITS_RE.search(name)
    if m:
        return float(m.group(1))
    m = _FLOAT_RE.search(name)
    if m:
        return float(m.group(1))
    return np.nan


def ensemble_size_of(name: str | None) -> float:
    """Ensemble members named by a model name: 'lm-slr8' -> 8, 'lm-slr8@k4' -> 4, else nan.

    An explicit ``@kN``/``:k=N`` suffix (a replay with N members drawn) wins over the
    ``slrN``/``ensN`` size in the model's own name.
    """
    if not isinstance(name, str):
        return np.nan
    found = _ENS_RE.findall(name)
    return float(found[-1]) if found else np.nan


def _from_names(df: pd.DataFrame, fn: Callable[[str], float], column: str,
                cols: tuple[str, ...] = ("model_variant", "model")) -> pd.Series:
    """``fn`` of the first of ``cols`` that names a value, per row."""
    if column in df.columns:
        return pd.to_numeric(df[column], errors="coerce")
    vals = pd.Series(np.nan, index=df.index, dtype=float)
    for col in cols:
        if col in df.columns:
            vals = vals.fillna(df[col].map(fn).astype(float))
    return vals


def _ratio(df: pd.DataFrame) -> pd.Series:
    _need(df, ("dist_adv_m", "dist_user_m"), "dist_ratio")
    user = pd.to_numeric(df["dist_user_m"], errors="coerce").replace(0.0, np.nan)
    return pd.to_numeric(df["dist_adv_m"], errors="coerce") / user


def _binned(column: str, edges: Sequence[float], unit: str, dim: str) -> Callable[[pd.DataFrame], pd.Series]:
    def derive(df: pd.DataFrame) -> pd.Series:
        _need(df, (column,), dim)
        return _bin(df[column], edges, unit)

    return derive


#: Derived dimension name -> function of the evaluations frame giving one value per row.
DERIVED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "dist_user_bin": _binned("dist_user_m", DIST_EDGES_M, "m", "dist_user"),
    "dist_adv_bin": _binned("dist_adv_m", DIST_EDGES_M, "m", "distance"),
    "dist_ratio": _ratio,
    "dist_ratio_bin": lambda df: _bin(_ratio(df), RATIO_EDGES, ""),
    "angle_adv_bin": _binned("angle_adv_deg", ANGLE_EDGES_DEG, "deg", "angle"),
    "angle_user_bin": _binned("angle_user_deg", ANGLE_EDGES_DEG, "deg", "angle_user"),
    "spr_dut_db": _spr_at_dut,
    "spr_bin": lambda df: _bin(_spr_at_dut(df), SPR_EDGES_DB, "dB"),
    "spr_mic_bin": _binned("spr_db", SPR_EDGES_DB, "dB", "spr_mic"),
    "bits": lambda df: _from_names(df, bits_of, "bits"),
    # the model name first: a replay view lm-slr8@k2 keeps the variant "slr8" but draws 2 members
    "ensemble_size": lambda df: _from_names(df, ensemble_size_of, "ensemble_size", ("model", "model_variant")),
}

#: Every name ``--by`` accepts after alias resolution.
DIMENSIONS = tuple(COLUMNS) + tuple(DERIVED)


def resolve_dimensions(names: Sequence[str], columns: Sequence[str] | None = None) -> list[str]:
    """Map operator names (aliases allowed) to canonical dimension names.

    Parameters
    ----------
    names : e.g. ``["mic", "delay", "distance"]``.
    columns : the frame's columns; any of them is accepted as a dimension too.

    Raises
    ------
    AnalysisError
        Naming the unknown dimension and listing the known ones.
    """
    out: list[str] = []
    extra = set(columns) if columns is not None else set()
    for raw in names:
        name = ALIASES.get(raw.strip(), raw.strip())
        if name not in DIMENSIONS and name not in extra:
            known = ", ".join(sorted(set(DIMENSIONS) | set(ALIASES)))
            raise AnalysisError(f"--by: unknown dimension {raw!r} (known: {known})")
        if name not in out:
            out.append(name)
    return out


def with_dimensions(df: pd.DataFrame, dims: Sequence[str]) -> pd.DataFrame:
    """A copy of ``df`` with every derived dimension in ``dims`` added as a column."""
    out = df.copy()
    for d in dims:
        if d in DERIVED and (d not in df.columns or d in ("bits", "ensemble_size")):
            out[d] = DERIVED[d](out)
        elif d not in out.columns:
            raise AnalysisError(f"--by {d}: the session store has no column {d!r}")
    return out
