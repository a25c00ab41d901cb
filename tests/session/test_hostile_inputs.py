"""Hostile input to the store and the importer (issue #22): names that would write outside a session or
over another file, non-finite audio, a session id or import path that leaves its folder.

Each bad input is one line naming the file and field (exit 2 through the CLI), and nothing recorded
is altered; a NaN capture is kept as a failed trial, never a crash.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import soundfile as sf

from testbed.errors import SessionError
from testbed.session.store import CaptureRecord, SessionStore, flac_bytes, load_evaluations
from tests.session.conftest import SR, make_record, one_line_exit_2, tree_hashes


def _leftovers(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".tmp-*"))


# -- names inside a trial ----------------------------------------------------------------
def test_a_mic_named_user_played_cannot_overwrite_the_played_file(hand_store):
    """The issue's reproduction: mic 'user.played' wrote audio/<trial>/user.played.flac over what the
    user speaker was sent, and verify_captures saw nothing wrong."""
    rng = np.random.default_rng(0)
    hand_store.commit_trial(make_record(0, rng), SR)
    before = tree_hashes(hand_store.path)
    rec = make_record(1, rng, mics=("ref", "user.played"))
    with pytest.raises(SessionError, match=r"trial 1: mic name 'user\.played': must not end in '\.played'"):
        hand_store.commit_trial(rec, SR)
    assert tree_hashes(hand_store.path) == before
    assert hand_store.done_ids() == {0}
    assert not (hand_store.path / "audio" / "000001").exists() and _leftovers(hand_store.path) == []


@pytest.mark.parametrize("mic", ["../../../../escaped", "a/b", "..", "/abs"])
def test_a_mic_name_that_leaves_the_trial_folder_writes_nothing(hand_store, tmp_path, mic):
    rng = np.random.default_rng(1)
    with pytest.raises(SessionError, match="trial 2: mic name"):
        hand_store.commit_trial(make_record(2, rng, mics=("ref", mic)), SR)
    assert hand_store.done_ids() == set()
    assert sorted(p.name for p in (hand_store.path / "audio").iterdir()) == []
    assert [p for p in tmp_path.rglob("*escaped*")] == []


def test_mics_differing_only_in_case_are_refused(hand_store):
    with pytest.raises(SessionError, match="two files of the trial would be one"):
        hand_store.commit_trial(make_record(3, np.random.default_rng(2), mics=("ref", "REF")), SR)
    assert hand_store.done_ids() == set()


# -- non-finite audio -------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nan_capture_is_a_failed_trial_not_a_crash(hand_store, bad):
    """The issue's reproduction: a NaN sample crashed the commit with a bare AssertionError and left a
    .tmp- folder. Now the trial is committed as failed with the reason, the session goes on."""
    rng = np.random.default_rng(3)
    rec = make_record(1, rng)
    rec.captures[1].signal[100:110] = bad
    rec.played["user"][0][5] = bad
    hand_store.commit_trial(rec, SR)
    assert rec.failed and "non-finite" in rec.error and "mic cheap: 10 sample(s)" in rec.error
    assert "speaker user: 1 sample(s)" in rec.error
    assert _leftovers(hand_store.path) == []
    assert hand_store.done_ids() == {1}
    with sqlite3.connect(hand_store.path / "session.sqlite") as db:
        failed, error, facts = db.execute("SELECT failed, error, facts FROM trials WHERE trial_id = 1").fetchone()
        models = db.execute("SELECT mic FROM evaluations WHERE trial_id = 1").fetchall()
    assert failed == 1 and "mic cheap: 10 sample(s)" in error and '"mic:cheap": 10' in facts
    assert models == [("ref",)]                      # the NaN capture's scores are not kept
    cheap, _ = sf.read(hand_store.path / "audio/000001/cheap.flac", dtype="float32")
    assert np.all(np.isfinite(cheap)) and np.all(cheap[100:110] == 0.0)
    assert hand_store.verify_captures() == []
    hand_store.commit_trial(make_record(2, rng), SR)  # the session goes on
    assert hand_store.done_ids() == {1, 2}
    df = load_evaluations(hand_store.path)
    assert set(df.loc[df.trial_id == 1, "failed"]) == {True}


def test_flac_encoder_never_sees_nan():
    with pytest.raises(ValueError, match="non-finite"):
        flac_bytes(np.array([0.0, np.nan], np.float32), SR)


# -- creating a session -------------------------------------------------------------------------
def test_create_cleans_up_on_any_exception(tmp_path, monkeypatch):
    from testbed.session.store import commit

    def boom(*a, **k):
        raise ValueError("not an OSError")

    monkeypatch.setattr(commit, "populate_new", boom)
    root = tmp_path / "sessions"
    root.mkdir()
    with pytest.raises(ValueError):
        SessionStore.create(root / "s1", meta={}, files={"plan.toml": b""}, attacks=[], utterances=[],
                            planned=[], sample_rate=SR)
    assert list(root.iterdir()) == []               # no .tmp- folder, no half-made session
    monkeypatch.undo()
    SessionStore.create(root / "s1", meta={}, files={}, attacks=[], utterances=[], planned=[],
                        sample_rate=SR).close()    # the id is free


# -- import-folder -------------------------------------------------------------------------------
def _field(tmp_path, rows: list[str], files: dict[str, np.ndarray] | None = None):
    rec = tmp_path / "field"
    rec.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for name, sig in (files or {"a.wav": (0.05 * rng.standard_normal(SR)).astype(np.float32)}).items():
        sf.write(rec / name, sig, SR, subtype="FLOAT")
    (rec / "metadata.csv").write_text("\n".join(["file,label,mic", *rows]) + "\n")
    return rec


def test_import_id_that_leaves_the_sessions_folder_is_refused(cli, tmp_path):
    """The issue's reproduction: --id ../../x created the session outside the sessions folder."""
    rec = _field(tmp_path, ["a.wav,yes,m"])
    sessions = tmp_path / "deep" / "sessions"
    r = cli(["session", "import-folder", rec, "--id", "../../x", "--sessions-dir", sessions])
    one_line_exit_2(r, "--id", "../../x")
    assert not (tmp_path / "x").exists() and not (tmp_path / "deep" / "x").exists()
    for bad in ("..", ".hidden", "a/b", "x.played"):
        one_line_exit_2(cli(["session", "import-folder", rec, "--id", bad, "--sessions-dir", sessions]), "--id")
    assert not sessions.exists() or list(sessions.iterdir()) == []


def test_run_id_that_leaves_the_sessions_folder_is_refused(tmp_path, office_rig_path, tiny_zoo):
    from testbed.session import create_session
    from tests.session.conftest import quick_plan, tone_utterances

    with pytest.raises(SessionError, match=r"--id: '\.\./x'"):
        create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "sessions", session_id="../x",
                       models_root=tiny_zoo, utterances=tone_utterances(["yes", "no"]))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("file", ["ABS", "../outside.wav", "sub/../../outside.wav", "link.wav"])
def test_import_csv_file_may_not_leave_the_folder(cli, tmp_path, file):
    """The issue's reproduction: the CSV's file column could be absolute or hold '..' and read any
    audio file on the machine."""
    outside = tmp_path / "outside.wav"
    sf.write(outside, np.zeros(SR, np.float32), SR)
    rec = _field(tmp_path, [])
    (rec / "link.wav").symlink_to(outside)
    name = str(outside) if file == "ABS" else file
    (rec / "metadata.csv").write_text(f"file,label,mic\n{name},yes,m\n")
    sessions = tmp_path / "sessions"
    r = cli(["session", "import-folder", rec, "--id", "f", "--sessions-dir", sessions])
    one_line_exit_2(r, "metadata.csv: line 2: file:")
    assert not (sessions / "f").exists()


@pytest.mark.parametrize("row,field", [
    ("a.wav,yes,../m", "line 2: mic"),
    ("a.wav,yes,m.played", "line 2: mic"),
])
def test_import_mic_names_are_checked(cli, tmp_path, row, field):
    rec = _field(tmp_path, [row])
    r = cli(["session", "import-folder", rec, "--id", "f", "--sessions-dir", tmp_path / "sessions"])
    one_line_exit_2(r, field)


@pytest.mark.parametrize("column,value", [("eps", "nan"), ("delay_ms", "inf"), ("command_start_s", "-inf")])
def test_import_non_finite_numbers_are_refused(cli, tmp_path, column, value):
    rec = _field(tmp_path, [])
    (rec / "metadata.csv").write_text(f"file,label,mic,attack,{column}\na.wav,yes,m,pgd,{value}\n")
    r = cli(["session", "import-folder", rec, "--id", "f", "--sessions-dir", tmp_path / "sessions"])
    one_line_exit_2(r, f"line 2: {column}", "not a finite number")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_import_nan_wav_is_refused_and_the_id_stays_free(cli, tmp_path, bad):
    """The issue's reproduction: a NaN in an imported float WAV crashed the commit, left a half-made
    session and its --id could not be reused."""
    rng = np.random.default_rng(4)
    good = (0.05 * rng.standard_normal(SR)).astype(np.float32)
    nan = good.copy()
    nan[1234] = bad
    rec = _field(tmp_path, ["a.wav,yes,m", "b.wav,no,m"], {"a.wav": good, "b.wav": nan})
    sessions = tmp_path / "sessions"
    r = cli(["session", "import-folder", rec, "--id", "field", "--sessions-dir", sessions])
    one_line_exit_2(r, "metadata.csv: line 3: file:", "b.wav", "1 non-finite sample(s)")
    assert not (sessions / "field").exists() and _leftovers(sessions) == [] if sessions.exists() else True
    sf.write(rec / "b.wav", good, SR, subtype="FLOAT")
    r = cli(["session", "import-folder", rec, "--id", "field", "--sessions-dir", sessions, "--json"])
    assert r.exit_code == 0, r.output


def test_import_that_fails_mid_commit_leaves_no_session(tmp_path, monkeypatch):
    from testbed.session import import_folder

    rec = _field(tmp_path, ["a.wav,yes,m"])
    calls = []

    def boom(self, rec_, sr):
        calls.append(rec_.trial_id)
        raise RuntimeError("disk went away")

    monkeypatch.setattr(SessionStore, "commit_trial", boom)
    with pytest.raises(RuntimeError):
        import_folder(rec, root=tmp_path / "sessions", session_id="again")
    assert calls == [0] and list((tmp_path / "sessions").iterdir()) == []
    monkeypatch.undo()
    assert import_folder(rec, root=tmp_path / "sessions", session_id="again").status()["done"] == 1


# -- CLI float options -----------------------------------------------------------------------------
def test_cli_float_lists_and_params_refuse_nan(cli, tmp_path):
    for args, needle in (
        (["attack", "eval", "--model", "x", "--attack", "pgd", "--eps", "0.01,nan"], "--eps: 'nan'"),
        (["attack", "eval", "--model", "x", "--attack", "pgd", "--eps", "0.01", "--delay-ms", "0,inf"],
         "--delay-ms: 'inf'"),
        (["attack", "eval", "--model", "x", "--attack", "pgd", "--eps", "0.01", "--param", "alpha=NaN"],
         "alpha must be a finite number"),
        (["attack", "eval", "--model", "x", "--attack", "pgd", "--eps", "0.01", "--param", "delay_ms=[0,Infinity]"],
         "delay_ms must be a finite number"),
        (["models", "ensemble-curve", "--eps", "nan"], "--eps: nan is not a finite number"),
    ):
        one_line_exit_2(cli(args), needle)


def test_capture_record_with_finite_signal_is_unchanged(hand_store):
    rec = make_record(0, np.random.default_rng(5))
    sig = rec.captures[0].signal.copy()
    hand_store.commit_trial(rec, SR)
    assert not rec.failed and rec.error is None and np.array_equal(rec.captures[0].signal, sig)
    assert isinstance(rec.captures[0], CaptureRecord) and "nonfinite_samples" not in rec.facts


def test_zoo_model_names_cannot_leave_the_zoo(tmp_path):
    from testbed.errors import ModelError
    from testbed.models import Zoo

    zoo = Zoo(tmp_path / "zoo")
    for bad in ("../evil", "a/b", "..", ".hidden"):
        with pytest.raises(ModelError, match="model name"):
            zoo.card(bad)
        with pytest.raises(ModelError):
            zoo.add_files(bad, {"name": bad}, b"x")
    assert not (tmp_path / "evil").exists()


def test_a_run_whose_backend_returns_nan_records_a_failed_trial_and_finishes(tmp_path, office_rig_path, tiny_zoo):
    """End to end: a NaN from the audio backend (a broken driver) fails that one trial with the reason;
    the run finishes every other trial, leaves no .tmp- folder and the session resumes cleanly."""
    import sqlite3

    from testbed.audio.sim import SimBackend
    from testbed.session import Runner, create_session, open_runner_parts
    from tests.session.conftest import quick_plan, tone_utterances

    class NanSim(SimBackend):
        calls = 0

        def run_trial(self, plays, record_s, placement=None):
            cap = super().run_trial(plays, record_s, placement)
            NanSim.calls += 1
            if NanSim.calls == 2:
                cap.mics["cheap"][50:60] = np.nan
            return cap

    store = create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "s", models_root=tiny_zoo,
                           session_id="nan-run", utterances=tone_utterances(["yes"]))
    rig, plan, models, cal = open_runner_parts(store)
    Runner(store, rig, plan, models, backend=NanSim(rig, seed=1)).run()
    st = store.status()
    assert st["done"] == 4 and st["failed"] == 1 and "non-finite" in st["last_error"]
    assert _leftovers(store.path) == [] and store.verify_captures() == []
    with sqlite3.connect(store.path / "session.sqlite") as db:
        (err,) = db.execute("SELECT error FROM trials WHERE failed = 1").fetchone()
    assert "mic cheap: 10 sample(s)" in err
    store.close()
    again = SessionStore.open("nan-run", root=tmp_path / "s")
    r, p, m, c = open_runner_parts(again)
    Runner(again, r, p, m, calibration=c).run()          # nothing left: resume is a clean no-op
    assert again.status()["done"] == 4
    again.close()


def test_cached_signals_stay_inside_the_session(hand_store, tmp_path):
    sig = np.zeros(16, np.float32)
    hand_store.write_cached("perturbations/ok.wav", sig, SR)
    assert (hand_store.path / "perturbations/ok.wav").is_file()
    for rel in ("../../escaped.wav", "/tmp/escaped.wav"):
        with pytest.raises(SessionError, match="refusing to write"):
            hand_store.write_cached(rel, sig, SR)
    assert not (tmp_path / "escaped.wav").exists()


def test_a_nan_utterance_is_refused_before_the_session_exists(tmp_path, office_rig_path, tiny_zoo):
    from testbed.session import create_session
    from tests.session.conftest import quick_plan, tone_utterances

    utts = tone_utterances(["yes", "no"])
    utts[1][2][7] = np.nan
    with pytest.raises(SessionError, match=r"utterances: no-0 has non-finite samples"):
        create_session(quick_plan(tmp_path), office_rig_path, root=tmp_path / "sessions", session_id="u",
                       models_root=tiny_zoo, utterances=utts)
    assert not (tmp_path / "sessions" / "u").exists()
