"""run_trial on its own: a pure function of its input, context and backend; retries; noise indices."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.audio.sim import SimBackend
from testbed.errors import DeviceError
from testbed.rig import load_rig
from testbed.session import TrialSpec
from testbed.session.plan import parse_plan
from testbed.session.trial import NOISE_STRIDE, TrialContext, TrialInput, noise_index, run_trial
from tests.session.conftest import tone_utterances


def _ctx(office_rig_path, retries: int = 2) -> TrialContext:
    rig = load_rig(office_rig_path)
    plan = parse_plan({"name": "t", "utterances": {"labels": ["yes"]}, "timing": {"retries": retries}})
    return TrialContext.of(rig, plan)


def _input(delta: bool = True) -> TrialInput:
    _, _, clean, _ = tone_utterances(["yes"])[0]
    d = (0.005 * np.sin(np.arange(16000) / 7.0)).astype(np.float32) if delta else None
    return TrialInput(TrialSpec(3, "yes-0", "yes", "a", 40.0, "P1", 0), clean, d)


def test_the_same_input_gives_the_same_record(office_rig_path):
    ctx = _ctx(office_rig_path)
    a = run_trial(_input(), ctx, SimBackend(ctx.rig, seed=1), clock=lambda: 5.0)
    b = run_trial(_input(), ctx, SimBackend(ctx.rig, seed=1), clock=lambda: 5.0)
    assert a.trial_id == 3 and [c.mic for c in a.captures] == list(ctx.mics)
    for ca, cb in zip(a.captures, b.captures):
        assert np.array_equal(ca.signal, cb.signal) and ca.spr_db == cb.spr_db
    assert a.realised_delay_ms == pytest.approx(40.0, abs=0.01) and a.started_at == a.finished_at == 5.0
    assert a.evaluations == [] and a.attempts == 1 and not a.failed
    assert set(a.played) == {ctx.rig.user_speaker, ctx.rig.adversary_speaker}
    clean = run_trial(_input(delta=False), ctx, SimBackend(ctx.rig, seed=1))
    assert clean.realised_delay_ms is None and set(clean.played) == {ctx.rig.user_speaker}


class _Broken(SimBackend):
    def __init__(self, rig):
        super().__init__(rig, seed=1)
        self.indices = []

    def run_trial(self, plays, record_s, placement=None):
        self.indices.append(self.trial_index)
        raise DeviceError("card unplugged")


class _NoDut:
    """A DUT that must not be asked about a capture that never came."""

    def evaluate(self, *a, **kw):
        raise AssertionError("the DUT was fed a capture that does not exist")


def test_no_capture_is_a_device_error_before_the_dut_reads_it(office_rig_path):
    ctx = _ctx(office_rig_path, retries=2)
    backend = _Broken(ctx.rig)
    retried = []
    with pytest.raises(DeviceError, match="trial 3: card unplugged \\(after 3 attempts\\)"):
        run_trial(_input(), ctx, backend, dut=_NoDut(), on_retry=lambda a, why: retried.append((a, why)))
    assert retried == [(1, "card unplugged"), (2, "card unplugged")]
    assert backend.indices == [noise_index(3, k) for k in (1, 2, 3)]


def test_noise_indices_never_collide_and_keep_the_recorded_ones():
    seen = {noise_index(t, a) for t in range(300) for a in range(1, 22)}   # retries go up to 20
    assert len(seen) == 300 * 21
    # the first attempts keep the indices sessions were recorded with (trial_id * 16 + attempt)
    assert all(noise_index(t, a) == t * NOISE_STRIDE + a for t in range(300) for a in range(1, NOISE_STRIDE))
