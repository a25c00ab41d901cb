"""The shipped adversary plan (issue 24), end to end on the simulated office with tiny models: a
targeted masking attack, a universal and a streaming perturbation, and a report that shows their
success beside their audibility."""

from __future__ import annotations

import tomllib

import tomli_w

from testbed.workspace import assets_dir
from tests.session.conftest import tone_utterances

PLAN = assets_dir() / "plans" / "adversary.toml"


def _small(plan: dict) -> dict:
    """The shipped plan at test size: 1 utterance per label, 2 delays, 2 optimisation steps, 1 model."""
    small = {"pgd": {"steps": 2, "params": {"bound": "masking", "masking_steps": 2, "n_channels": 2,
                                            "eot_samples": 1}},
             "universal": {"steps": 2, "params": {"batch_size": 2, "n_channels": 2, "length_samples": 16000}},
             "streaming": {"steps": 2, "params": {"batch_size": 2, "n_channels": 2, "n_mels": 16, "hidden": 8}}}
    attacks = [{**a, **small.get(a["kind"], {})} for a in plan["attacks"]]
    return {**plan, "attacks": attacks, "utterances": {**plan["utterances"], "per_label": 1},
            "sweep": {**plan["sweep"], "delay_ms": [0, 250]}, "evaluate": {"models": ["lm-fp32"]},
            "timing": {"preroll_s": 0.05, "tail_s": 0.05}}


def test_the_shipped_plan_has_the_three_adversaries():
    plan = tomllib.loads(PLAN.read_text())
    kinds = {a["kind"]: a for a in plan["attacks"]}
    assert set(kinds) == {"none", "pgd", "universal", "streaming"}
    assert kinds["pgd"]["params"]["bound"] == "masking" and kinds["pgd"]["targets"] and kinds["pgd"]["over_the_air"]
    assert kinds["universal"]["over_the_air"] and kinds["streaming"]["over_the_air"]


def test_the_adversary_plan_runs_on_the_simulated_rig_and_reports_success_beside_audibility(tmp_path, tiny_zoo):
    from testbed.analysis import load_sessions
    from testbed.analysis.report import build_report
    from testbed.session import Runner, create_session, open_runner_parts

    path = tmp_path / "adversary.toml"
    path.write_text(tomli_w.dumps(_small(tomllib.loads(PLAN.read_text()))))
    store = create_session(path, assets_dir() / "rigs" / "office-sim.toml", root=tmp_path / "s",
                           models_root=tiny_zoo, utterances=tone_utterances(["yes", "no"]))
    rig, p, models, cal = open_runner_parts(store)
    assert Runner(store, rig, p, models, calibration=cal).run().reason == "finished"
    store.close()
    rep = build_report(load_sessions([store.path]), tmp_path / "out")
    sec = rep.summary["audibility"]
    assert sec["note"] is None
    by = {(r["attack"], r["label"], r["target"]): r for r in sec["rows"]}
    assert set(by) == {("ota-pgd", "yes", "go"), ("ota-pgd", "no", "up"), ("ota-universal", "*", "untargeted"),
                       ("ota-streaming", "*", "untargeted")}
    for (kind, _, _), r in by.items():
        assert r["measure"] == ("target" if kind == "ota-pgd" else "error")
        assert r["bound"] == ("masking" if kind == "ota-pgd" else "linf")
        assert r["n"] == r["n_trials"] * 1 and r["n_trials"] == (2 if kind == "ota-pgd" else 4)
        assert 0 <= r["k"] <= r["n"] and r["lo"] <= r["rate"] <= r["hi"]
        for ref in ("speaker", "dut"):   # every attacked trial has its audibility, at both references
            assert r[f"{ref}_n_aud"] == r["n_trials"]
            assert r[f"{ref}_snr_db"] is not None and 0.0 <= r[f"{ref}_frames_above"] <= 1.0
            assert r[f"{ref}_margin_db"] is not None
    html = rep.html_path.read_text()
    section = html[html.index('id="audibility"'):html.index("<h2>Tables</h2>")]
    for name in ("ota-pgd", "ota-universal", "ota-streaming", "yes -&gt; go", "no -&gt; up", "masking"):
        assert name in section
