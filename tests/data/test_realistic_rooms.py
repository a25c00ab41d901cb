"""Realistic random rooms for reverb augmentation (issue 20): band-dependent decay, air absorption,
and a corpus key that changes only when the option is on."""

import numpy as np

from testbed.acoustics.irstats import band_rt60_s
from testbed.data.corpus import corpus_hash, resolve_engines
from testbed.data.corpus_config import CorpusConfig
from testbed.data.rooms import rir_pool


def _low_high(h: np.ndarray) -> tuple[float, float]:
    bands = band_rt60_s(h, 16000, (250, 4000))
    return bands[250], bands[4000]


def test_realistic_rooms_ring_longer_at_low_frequencies_than_flat_ones():
    flat = rir_pool(6, seed=3, rt60_s=(0.4, 0.8))
    real = rir_pool(6, seed=3, rt60_s=(0.4, 0.8), realistic=True)
    ratio = lambda pool: np.median([lo / hi for lo, hi in map(_low_high, pool)])  # noqa: E731
    assert ratio(real) > 1.3 * ratio(flat)
    assert ratio(real) > 1.2


def test_the_realistic_option_is_in_the_corpus_key_only_when_on():
    base = CorpusConfig(per_class=2, seed=1)
    on = CorpusConfig(per_class=2, seed=1, transform_params={"reverb": {"realistic": True}})
    engines = resolve_engines(base)
    assert "realistic" not in base.build_transforms()["reverb"].params()   # old corpora keep their keys
    assert corpus_hash(on, engines) != corpus_hash(base, engines)
    assert on.build_transforms()["reverb"].realistic is True
