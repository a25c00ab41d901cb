"""One ``open_backend`` for every caller: a raw mode for calibration, and no import of calibration."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from testbed.audio import Playback, open_backend
from testbed.calibration import CalibrationProfile
from testbed.rig import load_rig
from tests.conftest import REPO, RIGS


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` statement in ``path`` names, lazy (in-function) imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_audio_never_imports_calibration():
    files = sorted((REPO / "testbed" / "audio").rglob("*.py"))
    assert files
    bad = {str(f.relative_to(REPO)): sorted(m for m in _imported_modules(f) if m.startswith("testbed.calibration"))
           for f in files}
    assert {f: m for f, m in bad.items() if m} == {}
    code = ("import sys, testbed.audio, testbed.audio.listen, testbed.audio.sim, testbed.audio.hardware;"
            "print(sorted(m for m in sys.modules if m.startswith('testbed.calibration')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_a_raw_backend_takes_no_calibration(office_rig_path):
    rig = load_rig(office_rig_path)
    with pytest.raises(ValueError, match="raw"):
        open_backend(rig, CalibrationProfile(rig=rig.name, backend="sim", sample_rate=16000), raw=True)
    sim = open_backend(rig, seed=5, raw=True)
    try:
        assert sim.seed == 5
    finally:
        sim.close()


def test_listen_opens_the_backend_with_the_calibration_it_is_given(office_rig_path, tmp_path, monkeypatch):
    import testbed.audio
    from testbed.audio.listen import listen

    rig = load_rig(office_rig_path)
    prof = CalibrationProfile(rig=rig.name, backend=rig.backend, sample_rate=rig.sample_rate)
    seen: list = []
    real = testbed.audio.open_backend

    def spy(rig_, calibration=None, seed=None, **kw):
        seen.append((calibration, seed, kw))
        return real(rig_, calibration, seed, **kw)

    monkeypatch.setattr(testbed.audio, "open_backend", spy)
    utterance = np.sin(np.arange(4000) * 0.1).astype(np.float32)
    res = listen(rig, tmp_path, utterance, calibration=prof, seed=3)
    assert seen == [(prof, 3, {})]
    assert {m.mic for m in res.mics} == set(rig.mics)


@pytest.mark.jack
@pytest.mark.parametrize("library", ["sounddevice", "pyaudio"])
def test_raw_keeps_the_device_latency_and_a_profile_removes_it(library, jack_loopback, tmp_path):
    rig_file = tmp_path / "rig.toml"
    rig_file.write_text((RIGS / "jack-loopback.toml").read_text()
                        .replace('backend = "sounddevice"', f'backend = "{library}"'))
    rig = load_rig(rig_file)
    period = jack_loopback.period
    prof = CalibrationProfile(rig=rig.name, backend=library, sample_rate=rig.sample_rate,
                              device_latency_samples={m: float(period) for m in rig.mics})
    click = np.zeros(1500, np.float32)
    click[300] = 0.2
    peaks = {}
    for name, kw in (("raw", {"raw": True}), ("calibrated", {"calibration": prof})):
        backend = open_backend(rig, **kw)
        try:
            cap = backend.run_trial({"user": Playback(click, 50.0)}, record_s=0.25)
        finally:
            backend.close()
        peaks[name] = int(np.argmax(np.abs(cap.mics["ref"])))
    assert peaks == {"raw": 350 + period, "calibrated": 350}
