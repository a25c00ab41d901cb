"""Dataset containers: :class:`Split`, :class:`Dataset` and session :class:`Utterance`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Split:
    """One split of a dataset.

    Attributes
    ----------
    x : (n, clip_samples) float32 PCM in [-1, 1]
    y : (n,) int64 indices into :attr:`Dataset.labels`
    meta : one dict per clip (``id``, ``label``, ``source`` and, for synthetic clips, ``engine``,
        ``voice``, ``text`` and the drawn transform values)
    """

    x: np.ndarray
    y: np.ndarray
    meta: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    @staticmethod
    def concat(parts: list[Split], clip_samples: int) -> Split:
        """All clips of ``parts`` in one split (in order)."""
        xs = [p.x for p in parts if len(p)]
        return Split(
            x=np.concatenate(xs).astype(np.float32) if xs else np.zeros((0, clip_samples), np.float32),
            y=np.concatenate([p.y for p in parts]).astype(np.int64) if parts else np.zeros(0, np.int64),
            meta=[m for p in parts for m in p.meta],
        )


@dataclass
class Dataset:
    """A labelled dataset with a stratified, seeded 80/10/10 train/val/test split.

    Attributes
    ----------
    spec : the spec it was loaded from (``synthetic``, ``folder:PATH``, ...)
    labels : class names; ``y`` values index this list (KWS data use :data:`KWS_LABELS`)
    sample_rate : Hz
    clip_samples : samples per clip (16000 for KWS, 48000 for ambient)
    split_hash : hex digest of the clip ids in each split (changes when the split changes)
    """

    spec: str
    labels: list[str]
    sample_rate: int
    clip_samples: int
    train: Split
    val: Split
    test: Split
    split_hash: str

    def all(self) -> Split:
        """Every clip (train, then val, then test): what an evaluation-only set such as real-dev uses."""
        return Split.concat([self.train, self.val, self.test], self.clip_samples)

    def counts(self) -> dict[str, dict[str, int]]:
        """Clips per label in each split: ``{"train": {"yes": 240, ...}, "val": ..., "test": ...}``."""
        out = {}
        for name in ("train", "val", "test"):
            y = getattr(self, name).y
            out[name] = {lab: int(np.sum(y == i)) for i, lab in enumerate(self.labels)}
        return out


@dataclass
class Utterance:
    """One held-out spoken command for a session: ``signal`` is (16000,) float32 at 16 kHz."""

    id: str
    label: str
    signal: np.ndarray
    meta: dict = field(default_factory=dict)
