"""The one check for every name that becomes part of a path, and path containment.

Speaker, mic, placement, rig, plan, model and session names end up as file or folder names
(``audio/<trial>/<mic>.flac``, ``audio/<trial>/<speaker>.played.flac``, ``sessions/<id>/``,
``models/<name>/``), so they are checked here, once, against one safe pattern:

- letters, digits, ``_``, ``.`` and ``-``; the first character a letter or digit;
- at most :data:`NAME_MAX` characters (:data:`ID_MAX` for session ids, which append a date);
- no ``..`` anywhere (never a parent folder, never a hidden or temp file: those start with ``.``);
- not ending in a reserved suffix (:data:`RESERVED_SUFFIXES`, any case) the store uses for its
  own files, so a mic named ``user.played`` can never write ``user.played.flac``, the file of
  the user speaker's played signal.

This module sits below every other part of the testbed and imports nothing of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

#: Longest speaker, mic, placement, rig, plan or model name, characters.
NAME_MAX = 64
#: Longest session id, characters (a default id is a plan name plus a date and a counter).
ID_MAX = 128
#: Suffixes the store gives its own files inside a trial folder (``<speaker>.played.flac`` next
#: to ``<mic>.flac``); a name may not end in one (compared case-insensitively).
RESERVED_SUFFIXES = (".played",)
#: A model name may name a view of a stored ensemble: ``NAME@kN`` (see ``testbed.models.zoo``).
_MODEL_VIEW = re.compile(r"@k[0-9]{1,4}$")

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def name_problem(value: object, max_len: int = NAME_MAX) -> str | None:
    """Why ``value`` is not a safe name, or None when it is one."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > max_len:
        return f"{value[:20]!r}...: longer than {max_len} characters"
    if not _SAFE.fullmatch(value):
        return (f"{value!r}: use letters, digits, '_', '.' or '-' only, starting with a letter or digit "
                f"(it becomes a file name)")
    if ".." in value:
        return f"{value!r}: must not contain '..'"
    low = value.lower()
    for suffix in RESERVED_SUFFIXES:
        if low.endswith(suffix):
            return f"{value!r}: must not end in {suffix!r} (the session store names its own files so)"
    return None


def check_name(value: str, what: str = "name", max_len: int = NAME_MAX) -> str:
    """``value`` if it is a safe name, else ``ValueError('<what>: <why>')`` (pydantic turns it into a
    field error; other callers wrap it in their domain error)."""
    problem = name_problem(value, max_len)
    if problem is not None:
        raise ValueError(f"{what}: {problem}" if what else problem)
    return value


def check_session_id(value: str) -> str:
    """``value`` if it is a safe session id (the safe name pattern, up to :data:`ID_MAX` characters)."""
    return check_name(value, "", ID_MAX)


def check_model_name(value: str) -> str:
    """``value`` if it is a safe model name, optionally with a view suffix ``@kN`` (``lm-slr8@k4``)."""
    if not isinstance(value, str):
        return check_name(value, "")
    check_name(_MODEL_VIEW.sub("", value), "")
    return value


def casefold_clash(names: Iterable[str]) -> tuple[str, str] | None:
    """Two names that differ only in case (one file on macOS and Windows), or None."""
    seen: dict[str, str] = {}
    for n in names:
        k = n.casefold()
        if k in seen:
            return seen[k], n
        seen[k] = n
    return None


def inside(base: Path | str, rel: str | Path) -> Path:
    """``base / rel`` resolved, refused with ``ValueError`` unless it lies inside ``base``.

    ``rel`` may not be absolute and may not name ``..``; symbolic links are followed, so a link
    pointing out of ``base`` is refused too.
    """
    rel_s = os.fspath(rel)
    p = Path(rel_s)
    if not rel_s or p.is_absolute() or p.anchor or rel_s.startswith(("/", "\\")):
        raise ValueError(f"{rel_s!r}: must be a path relative to {base}")
    if ".." in p.parts or ".." in re.split(r"[\\/]", rel_s):
        raise ValueError(f"{rel_s!r}: must not contain '..'")
    root = Path(base).resolve()
    full = (root / p).resolve()
    if full != root and root not in full.parents:
        raise ValueError(f"{rel_s!r}: leaves {base} (resolves to {full})")
    return full
