"""Plan files: validation against the rig and the zoo, trial expansion, the dry run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from testbed.errors import PlanError
from testbed.rig import load_rig
from testbed.session import check_plan, estimate_plan, expand_trials, load_plan, placement_changes
from testbed.session.trials import attack_configs
from tests.session.conftest import one_line_exit_2

REPO = Path(__file__).resolve().parents[2]
PLANS = REPO / "sessions" / "plans"
KWS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence"]


def write_plan(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plan.toml"
    p.write_text(text)
    return p


BASE = """
name = "t"
seed = 3
[utterances]
labels = ["yes", "no"]
per_label = 2
[[attacks]]
kind = "none"
[[attacks]]
kind = "fgsm"
eps = [0.005, 0.01]
source_model = "lm-fp32"
[sweep]
delay_ms = [0, 100, 250]
placements = ["P1", "P2", "P3"]
"""


def fake_zoo(root: Path, models: dict[str, list[str]]) -> Path:
    """A zoo folder with cards only (what the plan checks read)."""
    for name, labels in models.items():
        (root / name).mkdir(parents=True)
        (root / name / "card.json").write_text(json.dumps({"name": name, "labels": labels,
                                                           "weights_sha256": "0" * 64}))
    return root


def test_example_plans_load_and_expand(office_rig_path):
    rig = load_rig(office_rig_path)
    assert {p.name for p in PLANS.glob("*.toml")} >= {"quick-sim.toml", "delay-sweep.toml"}
    for p in PLANS.glob("*.toml"):
        assert p.is_symlink() and p.resolve().parent.name == "plans"
        plan = load_plan(p)
        check_plan(plan, rig, {m: KWS for m in ("lm-fp32", "lm-lowrank", "lm-int8")})
    sweep = load_plan(PLANS / "delay-sweep.toml")
    est = estimate_plan(sweep, rig)
    # 8 utterances x (none + 2 pgd bounds) x 5 delays x 2 placements
    assert est.trials == 8 * 3 * 5 * 2
    assert est.perturbations == 8 * 2
    assert est.placement_changes == 1
    assert est.evaluations == est.trials * 2 * 3


def test_expansion_is_seeded_complete_and_grouped_by_placement(tmp_path):
    plan = load_plan(write_plan(tmp_path, BASE))
    utts = [("yes-0", "yes"), ("yes-1", "yes"), ("no-0", "no"), ("no-1", "no")]
    a = expand_trials(plan, utts)
    assert len(a) == 4 * 3 * 3 * 3
    assert [t.trial_id for t in a] == list(range(len(a)))
    assert placement_changes(a) == 2                      # P1 -> P2 -> P3, one move each
    combos = Counter((t.utterance_id, t.attack_id, t.delay_ms, t.placement, t.repetition) for t in a)
    assert max(combos.values()) == 1
    assert a == expand_trials(plan, utts)                 # same plan, same order
    other = load_plan(write_plan(tmp_path, BASE.replace("seed = 3", "seed = 4")))
    b = expand_trials(other, utts)
    assert [t.as_dict() | {"trial_id": 0} for t in a] != [t.as_dict() | {"trial_id": 0} for t in b]
    assert Counter((t.utterance_id, t.attack_id, t.delay_ms, t.placement) for t in b) == \
        Counter((t.utterance_id, t.attack_id, t.delay_ms, t.placement) for t in a)
    ids = [c.attack_id for c in attack_configs(plan)]
    assert ids == ["none", "fgsm-0.005-untargeted-lm-fp32", "fgsm-0.01-untargeted-lm-fp32"]


@pytest.mark.parametrize("edit,field", [
    (("per_label = 2", "per_label = 2\ncolour = 'red'"), "utterances.colour: unknown field"),
    (('placements = ["P1", "P2", "P3"]', 'placements = ["P1", "P9"]'), "sweep.placements[1]"),
    (('placements = ["P1", "P2", "P3"]', 'placements = ["P1"]\nmics = ["ref", "nope"]'), "sweep.mics[1]"),
    (('source_model = "lm-fp32"', 'source_model = "lm-nope"'), "attacks[1].source_model"),
    (('labels = ["yes", "no"]', 'labels = ["yes", "maybe"]'), "utterances.labels[1]"),
    (('source_model = "lm-fp32"', 'source_model = "lm-fp32"\ntarget = "banana"'), "attacks[1].target"),
    (('kind = "fgsm"', 'kind = "zap"'), "attacks[1].kind"),
    (('kind = "fgsm"', 'kind = "fgsm"\nsteps = 20'), "attacks[1].steps"),
    (("eps = [0.005, 0.01]", "eps = [2.0]"), "attacks.1.eps"),
    (("[sweep]", "[sweep]\ndelay_reference = 'later'"), "sweep.delay_reference"),
])
def test_bad_plans_exit_2_naming_file_and_field(cli, tmp_path, office_rig_path, edit, field):
    zoo = fake_zoo(tmp_path / "zoo", {"lm-fp32": KWS, "lm-lowrank": KWS, "lm-int8": KWS})
    p = write_plan(tmp_path, BASE.replace(*edit))
    r = cli(["session", "plan", p, "--rig", office_rig_path, "--models-dir", zoo])
    out = r.output
    assert r.exit_code == 2, out
    assert str(p) in out and field in out, out
    assert "Traceback" not in out


def test_label_missing_from_one_model_is_named(tmp_path, office_rig_path):
    plan = load_plan(write_plan(tmp_path, BASE))
    rig = load_rig(office_rig_path)
    labels = {"lm-fp32": KWS, "lm-lowrank": KWS, "lm-int8": ["yes", "up"]}
    with pytest.raises(PlanError, match=r"utterances.labels\[1\]: label 'no' is not one of model 'lm-int8'"):
        check_plan(plan, rig, labels)


def test_dry_run_prints_counts_and_json(cli, tmp_path, office_rig_path):
    zoo = fake_zoo(tmp_path / "zoo", {"lm-fp32": KWS, "lm-lowrank": KWS, "lm-int8": KWS})
    p = write_plan(tmp_path, BASE)
    r = cli(["session", "plan", p, "--rig", office_rig_path, "--models-dir", zoo, "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["trials"] == 108 and d["perturbations"] == 8 and d["zoo_checked"] is True
    assert d["captures"] == 108 * 3            # every mic by default
    assert d["disk_bytes"] > 108 * 3 * 16000   # at least a second of 8-bit audio per capture
    r = cli(["session", "plan", p, "--rig", office_rig_path, "--models-dir", zoo])
    assert r.exit_code == 0 and "108" in r.output and "perturbations" in r.output


# -- hostile plans (issue #22) -------------------------------------------------------
PGD = BASE.replace('kind = "fgsm"', 'kind = "pgd"')


@pytest.mark.parametrize("text,field,what", [
    (BASE.replace("delay_ms = [0, 100, 250]", "delay_ms = [0, nan]"), "sweep.delay_ms", "finite"),
    (BASE.replace("delay_ms = [0, 100, 250]", "delay_ms = inf"), "sweep.delay_ms", "finite"),
    (BASE.replace("eps = [0.005, 0.01]", "eps = [inf]"), "attacks.1.eps", "finite"),
    (BASE.replace("eps = [0.005, 0.01]", "eps = nan"), "attacks.1.eps", "finite"),
    (BASE.replace("[sweep]", "[timing]\npreroll_s = nan\n[sweep]"), "timing.preroll_s", "finite"),
    (BASE.replace('source_model = "lm-fp32"', 'source_model = "lm-fp32"\nparams = {alpha = nan}'),
     "attacks.1.params", "alpha: must be a finite number"),
    (PGD.replace('source_model = "lm-fp32"', 'source_model = "lm-fp32"\nparams = {steps = 1e9}'),
     "attacks[1].params.steps", "must be a positive integer up to 100000, got 1000000000.0"),
    (PGD.replace('source_model = "lm-fp32"', 'source_model = "lm-fp32"\nparams = {steps = 2.5}'),
     "attacks[1].params.steps", "integer"),
    (BASE.replace('kind = "fgsm"', 'kind = "eot-pgd"').replace(
        'source_model = "lm-fp32"', 'source_model = "lm-fp32"\nparams = {eot_samples = -3}'),
     "attacks[1].params.eot_samples", "must be a positive integer up to 10000, got -3"),
    (PGD.replace('source_model = "lm-fp32"', 'source_model = "lm-fp32"\nover_the_air = true\n'
                  'params = {delay_ms = [0, 1e12]}'), "attacks[1].params.delay_ms", "[1] must be in [-10000, 10000], got 1000000000000.0"),
    (BASE.replace('placements = ["P1", "P2", "P3"]', 'placements = ["../P1"]'), "sweep.placements", "../P1"),
    (BASE.replace('source_model = "lm-fp32"', 'source_model = "../../lm-fp32"'), "attacks.1.source_model",
     "../../lm-fp32"),
    (BASE.replace('name = "t"', 'name = "../t"'), "name", "../t"),
    (BASE.replace('labels = ["yes", "no"]', 'labels = ["yes", "no"]\nsource = "folder:/no/such/folder"'),
     "utterances.source", "/no/such/folder is not a folder"),
    (BASE.replace('labels = ["yes", "no"]', 'labels = ["yes", "no"]\nsource = "tape:x"'),
     "utterances.source", "unknown source"),
])
def test_hostile_plans_exit_2_naming_file_and_field(cli, tmp_path, office_rig_path, text, field, what):
    zoo = fake_zoo(tmp_path / "zoo", {"lm-fp32": KWS, "lm-lowrank": KWS, "lm-int8": KWS})
    p = write_plan(tmp_path, text)
    r = cli(["session", "plan", p, "--rig", office_rig_path, "--models-dir", zoo])
    one_line_exit_2(r, str(p), field, what)


def test_dry_run_refuses_a_missing_utterance_folder(cli, tmp_path, office_rig_path):
    """The issue's reproduction: the dry run said 'ok' although only 'session run' refused it."""
    zoo = fake_zoo(tmp_path / "zoo", {"lm-fp32": KWS, "lm-lowrank": KWS, "lm-int8": KWS})
    missing = tmp_path / "recordings"
    p = write_plan(tmp_path, BASE.replace('labels = ["yes", "no"]',
                                          f'labels = ["yes", "no"]\nsource = "folder:{missing}"'))
    one_line_exit_2(cli(["session", "plan", p, "--rig", office_rig_path, "--models-dir", zoo]),
                     str(p), "utterances.source", str(missing))
    missing.mkdir()      # once it exists, the dry run accepts it (its contents are read by 'run')
    assert cli(["session", "plan", p, "--rig", office_rig_path, "--models-dir", zoo]).exit_code == 0


def _big(per_label: int, delays: int, extra: str = "") -> str:
    return BASE.replace("per_label = 2", f"per_label = {per_label}").replace(
        "delay_ms = [0, 100, 250]", f"delay_ms = {list(range(delays))}").replace('name = "t"', f'name = "t"{extra}')


def test_oversized_plan_is_refused_with_its_count_before_expansion(cli, tmp_path, office_rig_path, monkeypatch):
    """2 labels x 10000 x 3 configs x 1000 delays x 3 placements = 1.8e8 trials: refused at once,
    with the number, and no trial list is ever built (the issue's plan killed 'session plan')."""
    import testbed.session.trials as trials

    built = []
    real = trials.TrialSpec
    monkeypatch.setattr(trials, "TrialSpec", lambda *a: built.append(a) or real(*a))
    p = write_plan(tmp_path, _big(10000, 1000))
    out = one_line_exit_2(cli(["session", "plan", p, "--rig", office_rig_path]), str(p), "max_trials",
                           "180,000,000 trials", "100,000")
    assert "20000 utterances x 3 attack configs x 1000 delays x 3 placements x 1 repetitions" in out
    assert built == []


def test_max_trials_is_configurable_and_counts_exactly(tmp_path, office_rig_path):
    # 2 x 100 utterances x 3 configs x 200 delays x 3 placements = 360,000 > the default 100,000
    with pytest.raises(PlanError, match=r"max_trials: the plan expands to 360,000 trials"):
        load_plan(write_plan(tmp_path, _big(100, 200)))
    plan = load_plan(write_plan(tmp_path, _big(100, 200, "\nmax_trials = 360000")))
    assert plan.trial_count() == 360_000
    small = load_plan(write_plan(tmp_path, BASE.replace('name = "t"', 'name = "t"\nmax_trials = 108')))
    utts = [(f"{lab}-{i}", lab) for lab in ("yes", "no") for i in range(2)]
    assert len(expand_trials(small, utts)) == small.trial_count() == 108
    with pytest.raises(PlanError, match=r"max_trials: the plan expands to 135 trials"):
        expand_trials(small, utts + [("yes-9", "yes")])   # utterances given by the caller count too
