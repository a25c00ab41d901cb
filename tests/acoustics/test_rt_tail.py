"""The vectorised ray-traced tail is pyroomacoustics' own, bit for bit, with the RNG left as it leaves it."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics import rt_tail
from testbed.acoustics.pra import pyroomacoustics
from testbed.acoustics.room import OMNI, RoomSpec, SourceDirectivity, _render_pra

pra = pyroomacoustics()
from pyroomacoustics.simulation import rt as pra_rt  # noqa: E402  after the PortAudio-free import


def _rng_state():
    return pra.random.get_rng().bit_generator.state


@pytest.mark.parametrize("volume, duration, t0", [(90.0, 0.6, 0.0044), (30.0, 1.2, None), (400.0, 0.3, 0.02),
                                                  (90.0, 0.0, 0.01), (5000.0, 0.05, 0.001)])
def test_poisson_sequence_is_pyroomacoustics_draw_for_draw(volume, duration, t0):
    for seed in range(5):
        pra.random.seed(numpy=seed, libroom=seed)
        want = pra_rt.poisson_sequence(volume, duration, 343.0, t0=t0)
        after_want = _rng_state()
        pra.random.seed(numpy=seed, libroom=seed)
        got = rt_tail.poisson_sequence(volume, duration, 343.0, t0=t0)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
        assert _rng_state() == after_want       # exactly the loop's draws: later draws unchanged


@pytest.mark.parametrize("taps", [1, 5])
def test_directional_sequence_is_pyroomacoustics(taps):
    gen = np.random.default_rng(0)
    fs, t0 = 16000, 0.004
    hist = gen.uniform(0.0, 1.0, (3, 40))
    hist[:, 30:] = 0.0                              # bins without energy: the uniform fallback
    response = gen.standard_normal((3, taps))
    pra.random.seed(numpy=11, libroom=11)
    _, times = pra_rt.poisson_sequence(90.0, 0.5, 343.0, t0=t0)
    state = _rng_state()
    want = pra_rt.directional_sequence(t0, times, response, hist, 0.004, fs)
    after_want = _rng_state()
    pra.random.get_rng().bit_generator.state = state
    got = rt_tail.directional_sequence(t0, times, response, hist, 0.004, fs)
    np.testing.assert_array_equal(got, want)
    assert _rng_state() == after_want


@pytest.mark.parametrize("spec", [
    RoomSpec((6.0, 5.0, 3.0), 0.4, 16000, ray_tracing=True, seed=1),
    RoomSpec((4.0, 3.5, 2.7), 0.7, 16000, air_absorption=True, ray_tracing=True, seed=7),
    RoomSpec((8.0, 6.0, 3.2), 0.6, 48000, rt60_bands_s=(0.8, 0.7, 0.6, 0.6, 0.5, 0.4), ray_tracing=True, seed=3),
], ids=["flat", "air", "bands-48k"])
def test_seeded_hybrid_rirs_equal_stock_pyroomacoustics(spec, monkeypatch):
    """The simulator's hybrid RIRs (fast tail) equal ShoeBox.compute_rir with pyroomacoustics' own tail."""
    coeffs = (0.25,) * (6 if spec.multi_band else 1)
    srcs, mics = [(2.0, 1.5, 1.2)], [(3.0, 2.5, 1.0), (1.1, 2.9, 1.6)]
    dirs = [SourceDirectivity("subcardioid", 30.0)] if spec.rt60_bands_s else [OMNI]
    got = _render_pra(spec, coeffs, 20, srcs, mics, dirs)
    monkeypatch.setattr(rt_tail, "fast_tail", _stock_tail)
    want = _render_pra(spec, coeffs, 20, srcs, mics, dirs)
    for g, w in zip(got[0], want[0]):
        assert len(g) > spec.sample_rate // 4        # a tail was traced
        np.testing.assert_array_equal(g, w)


class _stock_tail:  # noqa: N801  a do-nothing stand-in for rt_tail.fast_tail
    def __enter__(self):
        assert pra_rt.poisson_sequence.__module__ == "pyroomacoustics.simulation.rt"

    def __exit__(self, *exc):
        return False


def test_fast_tail_restores_pyroomacoustics_functions():
    before = pra_rt.poisson_sequence, pra_rt.directional_sequence
    with pytest.raises(RuntimeError):
        with rt_tail.fast_tail():
            assert pra_rt.poisson_sequence is rt_tail.poisson_sequence
            raise RuntimeError("boom")
    assert (pra_rt.poisson_sequence, pra_rt.directional_sequence) == before


def test_nested_fast_tails_restore_only_when_the_last_leaves():
    before = pra_rt.poisson_sequence
    with rt_tail.fast_tail():
        with rt_tail.fast_tail():
            pass
        assert pra_rt.poisson_sequence is rt_tail.poisson_sequence     # the outer block still open
    assert pra_rt.poisson_sequence is before
