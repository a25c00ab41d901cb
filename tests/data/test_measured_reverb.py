"""Room augmentation from a folder of measured impulse responses (Reverb ``irs``)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from testbed.acoustics.irstats import onset_index
from testbed.data import CorpusConfig
from testbed.data.corpus import corpus_hash, resolve_engines
from testbed.data.rooms import folder_rir_pool, rir_pool
from testbed.data.transforms import Reverb
from testbed.errors import DataError
from tests.acoustics.irs import synthetic_ir


@pytest.fixture
def ir_folder(tmp_path):
    """A 44.1 kHz stereo 24-bit clap and a 96 kHz mono float file, in a room sub-folder, plus a README."""
    d = tmp_path / "rooms"
    (d / "seminar").mkdir(parents=True)
    st = np.stack([synthetic_ir(44100, rt60_s=0.5, seed=1), synthetic_ir(44100, rt60_s=0.5, seed=2)], axis=1)
    sf.write(d / "seminar" / "clap.wav", 0.9 * st, 44100, subtype="PCM_24")
    sf.write(d / "basement.flac", synthetic_ir(96000, rt60_s=0.3, seed=3, n_s=0.4), 96000, subtype="PCM_24")
    (d / "README.md").write_text("not an IR")
    return d


def test_every_channel_of_every_file_joins_the_pool_resampled_peak_1_onset_at_tap_8(ir_folder):
    pool = folder_rir_pool(ir_folder, 6, seed=0)
    assert len(pool) == 6
    lengths = {len(h) for h in pool}
    assert min(lengths) == pytest.approx(0.4 * 16000, abs=100)   # the 0.4 s 96 kHz file at 16 kHz
    assert max(lengths) == pytest.approx(0.6 * 16000, abs=100)   # the 0.6 s 44.1 kHz channels
    for h in pool:
        assert h.dtype == np.float32 and np.max(np.abs(h)) == pytest.approx(1.0)
        assert onset_index(h) == 8 and 8 <= int(np.argmax(np.abs(h))) <= 12
    again = folder_rir_pool(ir_folder, 6, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(pool, again))
    other = folder_rir_pool(ir_folder, 6, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(pool, other))


def test_reverb_mixes_measured_and_shoebox_rirs_and_convolves_with_them(ir_folder):
    rv = Reverb(p=1.0, pool_size=4, irs=str(ir_folder), irs_share=0.5, rt60_s=(0.2, 0.3))
    pool = rv.pool(5, 16000)
    measured, box = folder_rir_pool(ir_folder, 2, 5, 16000), rir_pool(2, 5, 16000, (0.2, 0.3))
    assert all(np.array_equal(a, b) for a, b in zip(pool, measured + box))
    x = np.zeros(4000, np.float32)
    x[100] = 1.0
    y, facts = rv.apply(x, np.random.default_rng(0), 16000)
    assert facts["rir"] in range(4) and len(y) > len(x)


def test_the_corpus_key_follows_the_folder_and_what_it_holds(ir_folder):
    base = CorpusConfig(per_class=2, seed=1)
    with_irs = CorpusConfig(per_class=2, seed=1, transform_params={"reverb": {"irs": str(ir_folder)}})
    assert with_irs.build_transforms()["reverb"].irs == str(ir_folder)
    engines = resolve_engines(base)
    k0, k1 = corpus_hash(base, engines), corpus_hash(with_irs, engines)
    assert k0 != k1
    sf.write(ir_folder / "basement.flac", synthetic_ir(96000, rt60_s=0.6, seed=3, n_s=0.4), 96000, subtype="PCM_24")
    assert corpus_hash(with_irs, engines) not in (k0, k1)


@pytest.mark.parametrize("what, msg", [("nan", "NaN or infinite"), ("zero", "all-zero"), ("text", "not an audio file"),
                                       ("none", "no .wav or .flac"), ("missing", "no such folder")])
def test_a_bad_ir_folder_is_one_data_error_naming_the_file(tmp_path, what, msg):
    d = tmp_path / "irs"
    if what != "missing":
        d.mkdir()
    if what == "nan":
        sf.write(d / "bad.wav", np.array([1.0, np.nan, 0.1] * 100), 16000, subtype="FLOAT")
    elif what == "zero":
        sf.write(d / "bad.wav", np.zeros(300), 16000, subtype="FLOAT")
    elif what == "text":
        (d / "bad.wav").write_text("hello")
    with pytest.raises(DataError, match=msg) as info:
        folder_rir_pool(d, 2, 0)
    assert "\n" not in str(info.value)
    if what in ("nan", "zero", "text"):
        assert "bad.wav" in str(info.value)
    if what == "nan":
        with pytest.raises(DataError, match="reverb"):
            CorpusConfig(transform_params={"reverb": {"irs_share": 1.5}}).build_transforms()
