"""Fixtures for the serial tests: real pseudo-terminals, a tiny PCM classifier, rig files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from testbed.serial import PtyPort

LABELS = ["yes", "no", "silence"]


class LoudnessClassifier:
    """A tiny classifier standing in for a zoo model: 'yes' for a loud window, 'no' for a
    quiet one, 'silence' for (near) digital silence. Records the lengths it was given."""

    name = "loudness-3"
    labels = LABELS
    sample_rate = 16000
    clip_samples = 16000

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        self.calls.append(len(pcm))
        rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if len(pcm) else 0.0
        logits = np.array([rms * 40 - 2.0, 1.0 - abs(rms * 40 - 1.0), 1.0 - rms * 200])
        e = np.exp(logits - logits.max())
        return e / e.sum()


def tone(amplitude: float, n_samples: int = 16000, sample_rate: int = 16000) -> np.ndarray:
    """A 440 Hz sine of the given peak amplitude, float32 (n_samples,)."""
    t = np.arange(n_samples) / sample_rate
    return (amplitude * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


@pytest.fixture(name="tone")
def tone_fixture():
    """:func:`tone`, for tests (conftest modules are not importable)."""
    return tone


@pytest.fixture
def classifier() -> LoudnessClassifier:
    return LoudnessClassifier()


@pytest.fixture
def dut_port(tmp_path: Path):
    """A pty reachable through the stable link tmp_path/ttyDUT (the DUT's end)."""
    port = PtyPort(tmp_path / "ttyDUT")
    yield port
    port.close()


@pytest.fixture
def grbl_port(tmp_path: Path):
    """A pty reachable through tmp_path/ttyGRBL (the positioner's end)."""
    port = PtyPort(tmp_path / "ttyGRBL")
    yield port
    port.close()


@pytest.fixture(name="write_rig")
def write_rig_fixture():
    """:func:`write_rig`, for tests."""
    return write_rig


def write_rig(path: Path, office_rig_path: Path, *, dut_port: str | None = None,
              positioner_port: str | None = None, timeout_s: float = 1.0) -> Path:
    """The office rig, with its DUT on a serial port and/or a positioner, written to ``path``."""
    text = office_rig_path.read_text()
    if dut_port is not None:
        text = re.sub(r'transport = "host"', 'transport = "serial"', text)
        text += f'\n[dut.serial]\nport = "{dut_port}"\nbaud = 115200\ntimeout_s = {timeout_s}\n'
    if positioner_port is not None:
        text += (f'\n[positioner]\nport = "{positioner_port}"\nspeaker = "adversary"\n'
                 f'origin_m = [0.5, 0.25]\ntimeout_s = 5.0\n')
    path.write_text(text)
    return path
