"""Plans may craft an over-the-air attack through another rig (``craft_rig``) and play it in the session's."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import soundfile as sf

from testbed.errors import PlanError
from testbed.rig import load_rig
from testbed.scale.cache import perturbation_key
from testbed.session import Runner, create_session, load_evaluations, open_runner_parts
from testbed.session.crafting import CraftJob, cache_keys, craft_params
from testbed.session.plan import parse_plan
from testbed.session.plan_check import check_plan
from testbed.session.trials import attack_configs
from tests.acoustics.irs import measured_rig
from tests.session.conftest import tiny_zoo, tone_utterances  # noqa: F401  (fixture)

PLAN = """
name = "craft-rig"
seed = 3
[utterances]
labels = ["yes", "no"]
[[attacks]]
kind = "none"
[[attacks]]
kind = "pgd"
over_the_air = true
eps = [0.01]
steps = 2
source_model = "lm-fp32"
craft_rig = "{craft}"
params = {{ eot_samples = 1, n_channels = 2 }}
[sweep]
delay_ms = [0]
mics = ["ref", "cheap"]
[evaluate]
models = ["lm-fp32"]
[timing]
preroll_s = 0.05
tail_s = 0.05
"""


def _plan_dict(craft: str | None, kind: str = "pgd", ota: bool = True) -> dict:
    a = {"kind": kind, "eps": 0.01, "steps": 2, "source_model": "m", "over_the_air": ota}
    if craft is not None:
        a["craft_rig"] = craft
    return {"name": "p", "utterances": {"labels": ["yes"]}, "attacks": [a]}


def test_craft_rig_changes_the_id_the_channel_and_the_key(tmp_path, office_rig_path):
    rig = load_rig(office_rig_path)
    twin = measured_rig(tmp_path, office_rig_path)
    plain = parse_plan(_plan_dict(None))
    crafted = parse_plan(_plan_dict(str(twin)))
    (c0,), (c1,) = attack_configs(plain), attack_configs(crafted)
    assert c0.attack_id != c1.attack_id and "craft_rig" not in c0.params
    assert c1.params["craft_rig_name"] == "office-measured"
    p0, p1 = craft_params(c0, rig, plain, "h"), craft_params(c1, rig, crafted, "h")
    assert p0.rig is rig and p0.channel_digest is None
    assert p1.rig.name == "office-measured" and p1.rig.room.model == "measured"
    assert p1.params == {"steps": 2}          # the reserved entries never reach the attack
    job = CraftJob("a", [("yes-0", "yes")], ["yes-0"], seed=1)
    sig = [np.zeros(1600, np.float32)]
    k1 = cache_keys(p1, job, sig, perturbation_key)
    assert cache_keys(p0, job, sig, perturbation_key) != k1
    # the same rig file naming other IR contents is another channel: another key
    f = tmp_path / "irs" / "adversary__cheap.wav"
    h, fs = sf.read(f)
    sf.write(f, 0.5 * h, fs, subtype="FLOAT")
    assert cache_keys(craft_params(c1, rig, crafted, "h"), job, sig, perturbation_key) != k1


@pytest.mark.parametrize("craft, kind, ota, msg", [
    ("{twin}", "pgd", False, "only over-the-air attacks"),
    ("nowhere.toml", "pgd", True, "nowhere.toml"),
])
def test_a_bad_craft_rig_is_one_plan_error_naming_the_field(tmp_path, office_rig_path, craft, kind, ota, msg):
    twin = measured_rig(tmp_path, office_rig_path)
    plan = parse_plan(_plan_dict(craft.format(twin=twin), kind, ota), tmp_path / "plan.toml")
    with pytest.raises(PlanError, match=r"attacks\[0\]\.craft_rig: .*" + msg.replace(".", r"\.")):
        check_plan(plan, load_rig(office_rig_path), None)


def test_a_craft_rig_at_another_rate_is_refused(tmp_path, office_rig_path):
    twin = measured_rig(tmp_path, office_rig_path, edit=lambda d: d.update(sample_rate=8000))
    plan = parse_plan(_plan_dict(str(twin)), tmp_path / "plan.toml")
    with pytest.raises(PlanError, match="8000 Hz"):
        check_plan(plan, load_rig(office_rig_path), None)


def test_a_session_plays_what_a_measured_twin_crafted_and_says_so(tmp_path, office_rig_path, tiny_zoo):  # noqa: F811
    (tmp_path / "twin").mkdir()
    twin = measured_rig(tmp_path / "twin", office_rig_path)
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(PLAN.format(craft="twin/measured.toml"))   # relative to the plan file
    assert twin == tmp_path / "twin" / "measured.toml"
    store = create_session(plan_path, office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           utterances=tone_utterances(["yes", "no"]))
    rig, plan, models, cal = open_runner_parts(store)
    assert Runner(store, rig, plan, models, calibration=cal).run().reason == "finished"
    path = store.path
    store.close()
    with sqlite3.connect(path / "session.sqlite") as db:
        rows = db.execute("SELECT t.facts, p.attack_id FROM trials t JOIN planned p USING (trial_id)").fetchall()
    notes = {aid: json.loads(f).get("notes", []) for f, aid in rows}
    ota = [aid for aid in notes if aid.startswith("ota-pgd")]
    assert len(ota) == 1
    assert any(n.startswith("perturbation crafted on office-measured through measured IRs (irs)")
               and n.endswith("played in office-sim") for n in notes[ota[0]])
    assert not any("crafted on" in n for n in notes["none"])
    df = load_evaluations(path)
    att = df[df.attack_id == ota[0]]
    assert set(att["crafted_on"]) == {"office-measured"} and set(att["played_in"]) == {"office-sim"}
    assert df[df.attack_id == "none"]["crafted_on"].isna().all()

    from testbed.analysis.findings import findings

    found = {f["id"]: f for f in findings(df)}
    assert "crafted on office-measured, played in office-sim" in found["crafted_played"]["text"]


def test_a_calibrated_physical_rig_crafts_through_its_twin_and_says_so(office_rig_path, tmp_path):
    from testbed.audio.sim import SimBackend
    from testbed.calibration import calibrate
    from testbed.session.craft_rig import crafting_channels

    rig_file = tmp_path / "rigs" / "lab.toml"
    rig_file.parent.mkdir()
    rig_file.write_text(office_rig_path.read_text().replace('backend = "sim"', 'backend = "sounddevice"')
                        .replace('name = "office-sim"', 'name = "lab"'))
    rig = load_rig(rig_file)
    plan = parse_plan(_plan_dict(None))
    (cfg,) = attack_configs(plan)
    assert crafting_channels(rig) == (rig, "shoebox")
    before = craft_params(cfg, rig, plan, "h")
    assert before.rig is rig and before.channel_digest is None
    calibrate(rig, backend=SimBackend(rig, seed=2), what=["response"], out_dir=tmp_path / "calibration" / "lab")
    twin, source = crafting_channels(rig)
    assert twin.room.model == "measured" and twin.name == "lab"
    assert source.startswith("measured IRs of calibration (") and source.endswith("/calibration/lab/irs)")
    after = craft_params(cfg, rig, plan, "h")
    assert after.rig.room.model == "measured" and after.channel_digest is not None
    job = CraftJob("a", [("yes-0", "yes")], ["yes-0"], seed=1)
    sig = [np.zeros(1600, np.float32)]
    assert cache_keys(after, job, sig, perturbation_key) != cache_keys(before, job, sig, perturbation_key)
    assert crafting_channels(rig, use_calibration=False) == (rig, "shoebox")
