"""Replay, export, import-folder and the read-only CLI commands on a recorded sim session."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from testbed.session import Runner, create_session, load_evaluations, load_session_meta, open_runner_parts, replay_session
from testbed.session.store import open_reader
from tests.session.conftest import quick_plan, tone_utterances, tree_hashes


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_zoo):
    """A finished 8-trial sim session (quick plan), shared by the read-only tests of this module."""
    from pathlib import Path

    tmp = tmp_path_factory.mktemp("recorded")
    rig = Path(__file__).resolve().parents[2] / "rigs" / "office-sim.toml"
    store = create_session(quick_plan(tmp), rig, root=tmp / "sessions", models_root=tiny_zoo,
                           session_id="rec", utterances=tone_utterances(["yes", "no"]))
    r, p, m, c = open_runner_parts(store)
    Runner(store, r, p, m, calibration=c).run()
    store.close()
    return tmp / "sessions", store.path


def _copy(recorded, tmp_path):
    import shutil

    sessions = tmp_path / "sessions"
    shutil.copytree(recorded[1], sessions / "rec")
    return sessions, sessions / "rec"


def test_replay_appends_tagged_rows_and_leaves_recordings_byte_identical(recorded, tmp_path, tiny_zoo):
    sessions, folder = _copy(recorded, tmp_path)
    before = tree_hashes(folder, "audio/**/*")
    live = load_evaluations(folder)
    res = replay_session("rec", ["lm-int8", "lm-lowrank"], mics=["cheap"], models_root=tiny_zoo, root=sessions)
    assert res.evaluations == 8 * 2 and res.captures == 8 and res.skipped == []
    assert res.audio_s > 8 * 1.0
    after = load_evaluations(folder)
    assert tree_hashes(folder, "audio/**/*") == before
    assert len(after) == len(live) + 16
    rep = after[after.eval_source == "replay"]
    assert set(rep["mic"]) == {"cheap"} and set(rep["model"]) == {"lm-int8", "lm-lowrank"}
    cards = {m: json.loads((tiny_zoo / m / "card.json").read_text()) for m in ("lm-int8", "lm-lowrank")}
    for m, g in rep.groupby("model"):
        assert set(g["model_hash"]) == {cards[m]["weights_sha256"]}
    # replay uses the same window the live run used: same model, same capture -> same prediction
    lv = after[(after.eval_source == "live") & (after.mic == "cheap") & (after.model == "lm-int8")]
    merged = lv.merge(rep[rep.model == "lm-int8"], on=["trial_id", "mic"], suffixes=("_live", "_rep"))
    assert len(merged) == 8
    assert (merged["prediction_live"] == merged["prediction_rep"]).all()
    assert np.allclose(merged["score_top_live"], merged["score_top_rep"], atol=1e-3)


def test_replay_skips_a_corrupted_flac_and_status_reports_it(recorded, tmp_path, tiny_zoo, cli):
    sessions, folder = _copy(recorded, tmp_path)
    victim = folder / "audio" / "000003" / "ref.flac"
    victim.write_bytes(victim.read_bytes()[:300])         # truncated
    res = replay_session(folder, ["lm-fp32"], models_root=tiny_zoo)
    assert [(s["trial_id"], s["mic"]) for s in res.skipped] == [(3, "ref")]
    assert res.evaluations == 15
    r = cli(["session", "status", "rec", "--sessions-dir", sessions, "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    assert {"done", "total", "failed", "last_error"} <= set(st)
    assert (st["done"], st["total"], st["failed"]) == (8, 8, 0)
    assert "ref.flac" in st["last_error"] and [c["trial_id"] for c in st["corrupted"]] == [3]
    r = cli(["session", "status", "rec", "--sessions-dir", sessions])
    assert r.exit_code == 0 and "corrupted" in r.output and "000003" in r.output


def test_export_parquet_and_csv_hold_every_evaluation(recorded, tmp_path, cli):
    sessions, folder = recorded
    for fmt in ("parquet", "csv"):
        out = tmp_path / f"e.{fmt}"
        r = cli(["session", "export", "rec", "--format", fmt, "-o", out, "--sessions-dir", sessions, "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["rows"] == 8 * 2 * 3
        df = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
        ref = load_evaluations(folder)
        assert len(df) == len(ref) and list(df.columns) == list(ref.columns)
        assert (df["prediction"].to_numpy() == ref["prediction"].to_numpy()).all()


def test_list_and_bad_ids_exit_2(recorded, cli):
    sessions, _ = recorded
    r = cli(["session", "list", "--sessions-dir", sessions, "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert [(x["id"], x["done"], x["total"]) for x in rows] == [("rec", 8, 8)]
    for cmd in (["status", "nope"], ["export", "nope"], ["resume", "nope"], ["replay", "nope", "--models", "lm-fp32"]):
        r = cli(["session", *cmd, "--sessions-dir", sessions])
        assert r.exit_code == 2, r.output
        assert "nope" in r.output and "Traceback" not in r.output
    r = cli(["session", "export", "rec", "--format", "xlsx", "--sessions-dir", sessions])
    assert r.exit_code == 2 and "--format" in r.output


def test_replay_rejects_unknown_models_and_mics(recorded, tiny_zoo, cli):
    sessions, _ = recorded
    r = cli(["session", "replay", "rec", "--models", "lm-fp32,lm-bogus", "--sessions-dir", sessions,
             "--models-dir", tiny_zoo])
    assert r.exit_code == 2 and "lm-bogus" in r.output and "--models[1]" in r.output
    r = cli(["session", "replay", "rec", "--models", "lm-fp32", "--mics", "phone", "--sessions-dir", sessions,
             "--models-dir", tiny_zoo])
    assert r.exit_code == 2 and "--mics[0]" in r.output and "phone" in r.output


def test_import_folder_then_replay(tmp_path, tiny_zoo, cli):
    rec = tmp_path / "field"
    rec.mkdir()
    rng = np.random.default_rng(0)
    lines = ["file,trial,mic,label,attack,eps,delay_ms,placement"]
    for t, lab in enumerate(["yes", "no", "up"]):
        for mic in ("a", "b"):
            sf.write(rec / f"t{t}-{mic}.wav", (0.05 * rng.standard_normal(22050)).astype(np.float32), 22050)
            lines.append(f"t{t}-{mic}.wav,{t},{mic},{lab},pgd,0.01,100,near")
    (rec / "metadata.csv").write_text("\n".join(lines) + "\n")
    sessions = tmp_path / "sessions"
    r = cli(["session", "import-folder", rec, "--id", "field", "--sessions-dir", sessions, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["trials"] == 3
    wav = tree_hashes(rec, "*.wav")
    r = cli(["session", "replay", "field", "--models", "lm-fp32", "--sessions-dir", sessions,
             "--models-dir", tiny_zoo, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["evaluations"] == 6
    df = load_evaluations(sessions / "field")
    assert len(df) == 6 and set(df["eval_source"]) == {"replay"}
    assert set(df["attack"]) == {"pgd"} and set(df["placement"]) == {"near"} and set(df["delay_ms"]) == {100.0}
    assert sorted(df["label"].unique()) == ["no", "up", "yes"]
    assert tree_hashes(rec, "*.wav") == wav               # the source folder is untouched
    # a CSV naming a missing file: exit 2 naming the CSV line and column
    (rec / "bad.csv").write_text("file,label\nmissing.wav,yes\n")
    r = cli(["session", "import-folder", rec, "--csv", rec / "bad.csv", "--sessions-dir", sessions])
    assert r.exit_code == 2 and "bad.csv: line 2: file" in r.output and "Traceback" not in r.output


def test_a_repeated_replay_is_a_no_op_that_says_so(recorded, tmp_path, tiny_zoo, cli):
    sessions, folder = _copy(recorded, tmp_path)
    first = replay_session("rec", ["lm-int8"], mics=["cheap"], models_root=tiny_zoo, root=sessions)
    assert (first.evaluations, first.already) == (8, 0)
    n_events = len(load_session_meta(folder)["events"])
    before = load_evaluations(folder)
    again = replay_session("rec", ["lm-int8"], mics=["cheap"], models_root=tiny_zoo, root=sessions)
    assert (again.evaluations, again.already, again.captures) == (0, 8, 0)
    assert len(load_evaluations(folder)) == len(before)
    assert len(load_session_meta(folder)["events"]) == n_events        # nothing written at all
    r = cli(["session", "replay", "rec", "--models", "lm-int8", "--mics", "cheap", "--sessions-dir", sessions,
             "--models-dir", tiny_zoo])
    assert r.exit_code == 0 and "already replayed: 0 new rows" in r.output, r.output
    # a wider replay adds only what is new: lm-int8 on ref (8) and lm-lowrank everywhere (16)
    res = replay_session("rec", ["lm-int8", "lm-lowrank"], models_root=tiny_zoo, root=sessions)
    assert (res.evaluations, res.already) == (24, 8)
    df = load_evaluations(folder)
    rep = df[df.eval_source == "replay"]
    assert not rep.duplicated(["trial_id", "mic", "model", "model_hash", "eval_source"]).any()
    assert len(rep) == 32
    r = cli(["session", "replay", "rec", "--models", "lm-int8", "--sessions-dir", sessions,
             "--models-dir", tiny_zoo, "--json"])
    assert json.loads(r.stdout)["evaluations"] == 0 and json.loads(r.stdout)["already"] == 16


def test_an_old_session_with_duplicated_replays_is_deduplicated_when_a_writer_opens_it(recorded, tmp_path):
    import sqlite3

    from testbed.session.store import SessionStore

    sessions, folder = _copy(recorded, tmp_path)
    db = sqlite3.connect(folder / "session.sqlite")
    # make it a schema-1 session with a replay run twice (what main did before the index)
    db.execute("DROP INDEX evaluations_unique")
    rows = db.execute("SELECT trial_id, mic, 'lm-x', 'h', 'replay', prediction, score_top, scores, created_at "
                      "FROM evaluations WHERE eval_source = 'live' AND model = 'lm-fp32'").fetchall()
    for _ in range(2):
        db.executemany("INSERT INTO evaluations(trial_id, mic, model, model_hash, eval_source, prediction, "
                       "score_top, scores, created_at) VALUES (?,?,?,?,?,?,?,?,?)", rows)
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    first_ids = None
    with open_reader(folder) as r:   # a reader never migrates
        assert len(r.evaluated("replay")) == 16
        first_ids = [x[0] for x in r.db.execute("SELECT MIN(eval_id) FROM evaluations WHERE eval_source='replay' "
                                                 "GROUP BY trial_id, mic ORDER BY 1")]
    assert len(load_evaluations(folder).query("eval_source == 'replay'")) == 32
    with SessionStore(folder) as s:
        ev = [e for e in s.events() if e["kind"] == "migrated"]
        assert len(ev) == 1 and "deleted 16 duplicate" in ev[0]["message"]
        assert s.meta()["schema_version"] == 2
        kept = [x[0] for x in s.db.execute("SELECT eval_id FROM evaluations WHERE eval_source='replay' ORDER BY 1")]
        assert kept == first_ids                       # the first of each is kept
        with pytest.raises(sqlite3.IntegrityError):    # and the index now refuses a duplicate
            s.db.execute("INSERT INTO evaluations(trial_id, mic, model, model_hash, eval_source, scores, "
                         "created_at) SELECT trial_id, mic, model, model_hash, eval_source, scores, created_at "
                         "FROM evaluations WHERE eval_source = 'replay' LIMIT 1")
    with SessionStore(folder) as s:   # migrating twice changes nothing
        assert len([e for e in s.events() if e["kind"] == "migrated"]) == 1
    assert len(load_evaluations(folder).query("eval_source == 'replay'")) == 16
