"""The sim bench's naive baseline simulates the simulator's room: same features, parameters and RIRs."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.acoustics.pra import pyroomacoustics
from testbed.acoustics.room import RoomSpec, compute_rirs, source_directivities
from testbed.bench import sim

pra = pyroomacoustics()


@pytest.mark.parametrize("feature", [None, *sim.FEATURES])
def test_naive_shoebox_renders_the_simulators_rirs(feature):
    """One source of the naive per-trial ShoeBox, rendered as the bench renders it, gives the RIRs
    the simulator caches (seeded alike where rays are traced): the baseline does the same acoustic
    work, no more and no less."""
    rig = sim.bench_rig(feature)
    room = RoomSpec.from_rig(rig)
    box = sim.naive_shoebox(rig)({"user": (np.zeros(160, np.float32), 0.0)})
    if room.ray_tracing:
        assert (box.rt_args["receiver_radius"], box.rt_args["energy_thres"]) == (0.5, 1e-7)
        pra.random.seed(numpy=room.seed, libroom=room.seed % 2**64)
    with sim.naive_constants():
        assert pra.constants.get("rir_hpf_enable") is False
        box.compute_rir()
    mics = [m.position_m for m in rig.mics.values()]
    want = compute_rirs(room, [rig.speakers["user"].position_m], mics, source_directivities(rig, ["user"]))[0]
    lead = pra.constants.get("frac_delay_length") // 2
    for m, h in enumerate(want):
        got = np.asarray(box.rir[m][0][lead:], dtype=np.float32)
        assert len(got) == len(h)
        if room.ray_tracing:
            np.testing.assert_array_equal(got, h)
        else:   # the simulator renders image sources itself: compute_rir's to float32 rounding
            assert np.max(np.abs(got - h)) <= 1e-6 * np.max(np.abs(h))


def test_naive_constants_restore_the_high_pass_setting():
    before = pra.constants.get("rir_hpf_enable")
    with pytest.raises(RuntimeError), sim.naive_constants():
        raise RuntimeError("boom")
    assert pra.constants.get("rir_hpf_enable") == before
