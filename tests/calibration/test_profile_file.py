"""Calibration profiles are written through ``testbed.fileio.atomic_write``: fsynced, no temp left behind."""

from __future__ import annotations

import os

import pytest

from testbed.calibration import CalibrationProfile, read_profile, save_profile


def _profile(**kw) -> CalibrationProfile:
    return CalibrationProfile(rig="lab", backend="sim", sample_rate=16000, **kw)


def test_save_profile_round_trips_and_leaves_only_the_profile(tmp_path):
    path = save_profile(_profile(latency_samples={"user->ref": 12.5}), tmp_path / "lab")
    assert path == tmp_path / "lab" / "profile.toml"
    assert read_profile(path).latency_samples == {"user->ref": 12.5}
    save_profile(_profile(latency_samples={"user->ref": 13.0}), tmp_path / "lab")
    assert read_profile(path).latency_samples == {"user->ref": 13.0}
    assert sorted(p.name for p in (tmp_path / "lab").iterdir()) == ["profile.toml"]


def test_save_profile_is_durable(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    save_profile(_profile(), tmp_path)
    assert len(synced) == 2  # the file, then its folder


def test_a_failed_save_keeps_the_old_profile(tmp_path, monkeypatch):
    path = save_profile(_profile(drift_ppm={"ref": 1.0}), tmp_path)

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_profile(_profile(drift_ppm={"ref": 2.0}), tmp_path)
    assert read_profile(path).drift_ppm == {"ref": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.toml"]
