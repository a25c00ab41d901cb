"""A plan's targeted-injection matrix (issue 24): ``targets = {yes = "go", no = "up"}``."""

from __future__ import annotations

import pytest

from testbed.errors import PlanError
from testbed.rig import load_rig
from testbed.session.plan import parse_plan
from testbed.session.plan_check import check_plan
from testbed.session.trials import attack_configs, expand_trials

BASE = {
    "name": "tm", "seed": 3,
    "utterances": {"labels": ["yes", "no", "up"], "per_label": 2},
    "sweep": {"delay_ms": [0, 100], "placements": ["P1"], "mics": ["ref", "cheap"]},
    "evaluate": {"models": ["lm-fp32"]},
    "timing": {"preroll_s": 0.1, "tail_s": 0.1},
}
MATRIX = {"kind": "fgsm", "eps": [0.01, 0.02], "source_model": "lm-fp32", "targets": {"yes": "go", "no": "up"}}


def _plan(**attack):
    return parse_plan({**BASE, "attacks": [{"kind": "none"}, {**MATRIX, **attack}]})


def test_each_pair_is_a_config_played_only_on_its_source_label():
    plan = _plan()
    cfgs = [c for c in attack_configs(plan) if not c.is_none]
    assert {(c.source_label, c.target, c.eps) for c in cfgs} == {
        ("yes", "go", 0.01), ("no", "up", 0.01), ("yes", "go", 0.02), ("no", "up", 0.02)}
    assert len({c.attack_id for c in cfgs}) == 4
    utts = [(f"{lab}-{i}", lab) for lab in ("yes", "no", "up") for i in range(2)]
    trials = expand_trials(plan, utts)
    by_id = {c.attack_id: c for c in attack_configs(plan)}
    attacked = [t for t in trials if not by_id[t.attack_id].is_none]
    assert all(t.label == by_id[t.attack_id].source_label for t in attacked)
    # clean: 6 utterances x 2 delays; attacked: 2 pairs x 2 utterances x 2 eps x 2 delays ("up" is not a source)
    assert len(trials) == 6 * 2 + 2 * 2 * 2 * 2
    assert attack_configs(parse_plan({**BASE, "attacks": [{**MATRIX, "targets": {}, "target": "go"}]}))[0].target == "go"


@pytest.mark.parametrize("attack, needle", [
    ({"targets": {"yes": "yes"}}, "attacks.1.targets"),
    ({"target": "go"}, "not both"),
    ({"targets": {"left": "go"}}, "targets.left: no utterances of 'left'"),
    ({"targets": {"yes": "banana"}}, "targets.yes: label 'banana' is not one of lm-fp32's labels"),
])
def test_bad_matrices_are_one_line_plan_errors(office_rig_path, attack, needle):
    rig = load_rig(office_rig_path)
    labels = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence"]
    with pytest.raises(PlanError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        check_plan(_plan(**attack), rig, {"lm-fp32": labels})


def test_a_session_with_a_masked_targeted_matrix_stores_the_target_and_analysis_reports_it(tmp_path, office_rig_path, tiny_zoo):
    import tomli_w

    from testbed.analysis.targeted import targeted_table
    from testbed.session import Runner, create_session, load_evaluations, open_runner_parts
    from tests.session.conftest import tone_utterances

    plan = {**BASE, "utterances": {"labels": ["yes", "no", "up"], "per_label": 1},
            "sweep": {"delay_ms": [0], "placements": ["P1"], "mics": ["cheap"]},
            "attacks": [{"kind": "none"}, {**MATRIX, "kind": "pgd", "eps": [0.05], "steps": 2,
                                           "params": {"bound": "masking", "masking_steps": 2}}]}
    path = tmp_path / "tm.toml"
    path.write_text(tomli_w.dumps(plan))
    store = create_session(path, office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no", "up"]))
    rig, p, models, cal = open_runner_parts(store)
    assert Runner(store, rig, p, models, calibration=cal).run().reason == "finished"
    df = load_evaluations(store.path)
    attacked = df[df["attack"] != "none"]
    assert sorted(zip(attacked["label"], attacked["target"])) == [("no", "up"), ("yes", "go")]
    assert (attacked["target_hit"] == (attacked["prediction"] == attacked["target"])).all()
    t = targeted_table(df, ("model",))
    assert sorted(zip(t["label"], t["target"], t["n"])) == [("no", "up", 1), ("yes", "go", 1)]
