"""Keyword-spotting label set and the vocabulary of the synthetic corpus."""

from __future__ import annotations

#: The ten keywords of the paper (Speech Commands v0.01 task).
KEYWORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "unknown"
SILENCE = "silence"
#: Model label order: ten keywords, then ``unknown`` (other words) and ``silence`` (noise only).
KWS_LABELS: tuple[str, ...] = KEYWORDS + (UNKNOWN, SILENCE)

#: Folder names that mean the unknown / silence classes in other datasets.
UNKNOWN_ALIASES = frozenset({"unknown", "_unknown_", "unknown_word", "other"})
SILENCE_ALIASES = frozenset({"silence", "_silence_", "background", "_background_noise_"})

#: Words spoken for the ``unknown`` class: the Speech Commands auxiliary words plus everyday words
#: (none of them a keyword). Real-dev clips are never consulted.
UNKNOWN_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
    "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "forward", "follow",
    "learn", "visual", "hello", "water", "music", "light", "open", "close", "play", "start", "yellow",
    "number", "window", "table", "red", "blue", "green", "morning", "maybe", "okay", "thanks", "dinner",
    "paper", "river", "kitchen", "apple", "money", "garden", "phone", "sister", "baby", "good", "night",
    "ten", "hand", "book", "car", "door", "fish", "game", "horse", "jump", "king", "lamp",
    "milk", "nose", "pen", "queen", "rain", "sun", "tea", "van", "wall", "box", "zoo", "yard",
)

#: The twenty auxiliary words of Speech Commands (the ``unknown`` class of the paper's task).
SPEECH_COMMANDS_AUX_WORDS: tuple[str, ...] = UNKNOWN_WORDS[:20]


def canonical_label(name: str, labels: tuple[str, ...] | list[str] = KWS_LABELS) -> str | None:
    """Map a folder/class name onto ``labels``: exact (case-insensitive) or an unknown/silence alias.

    Returns None when the name has no place in ``labels``.
    """
    low = name.strip().lower()
    by_lower = {lab.lower(): lab for lab in labels}
    if low in by_lower:
        return by_lower[low]
    if low in UNKNOWN_ALIASES and UNKNOWN in labels:
        return UNKNOWN
    if low in SILENCE_ALIASES and SILENCE in labels:
        return SILENCE
    return None
