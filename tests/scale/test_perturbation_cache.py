"""The perturbation cache writes each entry whole (encoded in memory, then ``atomic_write``)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from testbed.scale.cache import PerturbationCache


def test_put_get_is_exact_and_leaves_no_temp_file(tmp_path):
    cache = PerturbationCache(tmp_path)
    sig = (np.random.default_rng(3).standard_normal(4000) * 0.01).astype(np.float32)
    key = cache.key(sig, {"kind": "pgd", "eps": 0.01}, "abc", seed=1)
    cache.put(key, sig, sample_rate=16000)
    assert key in cache
    np.testing.assert_array_equal(cache.get(key), sig)
    info = sf.info(cache.path(key))
    assert (info.format, info.subtype, info.samplerate) == ("WAV", "FLOAT", 16000)
    assert [p.name for p in cache.path(key).parent.iterdir()] == [f"{key}.wav"]


def test_an_unwritable_cache_is_skipped(tmp_path):
    (tmp_path / "perturbations").write_text("not a folder")
    cache = PerturbationCache(tmp_path)
    cache.put("ab" * 32, np.zeros(10, np.float32))
    assert cache.get("ab" * 32) is None
