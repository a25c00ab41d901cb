"""Property-based hostile-input suite (issue #22): rigs, plans, DUT lines, import CSVs and audio files,
generated odd and hostile (path-like names, NaN/inf, huge numbers, unknown fields, bad types,
garbage bytes). For each input the testbed either succeeds or exits 2 with ONE line naming the
file (and the field); never a traceback, never a file outside the session folder, never a change
to what was recorded before.

Examples are derandomized and bounded (``max_examples``) so the suite is repeatable and quick.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
RIG = tomllib.loads((REPO / "rigs" / "office-sim.toml").read_text())
PLAN = tomllib.loads((REPO / "sessions" / "plans" / "quick-sim.toml").read_text())

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

#: Names that must never become paths as they are.
PATHLIKE = ["../../../../escaped", "/etc/passwd", "..", ".", "a/b", "a\\b", "user.played", "ref.flac", "",
            " ", ".hidden", "x" * 300, "nul\x00byte", "CON", "é-ü", "a:b", "*"]
NONFINITE = [math.nan, math.inf, -math.inf]
HUGE = [1e308, -1e308, 2**63, -(2**63), 10**30, 1e9]
SMALL_BAD = [-3, -1, 0, -0.0, 1e-300]
BAD_TYPES = ["x", "", [1, 2], {"a": 1}, True, [], "1e9", "nan"]


_ids = itertools.count()


# -- helpers ----------------------------------------------------------------------------------------
def one_line_naming(out: str, *names: str) -> bool:
    """The output is one ``error:`` line that names every one of ``names``."""
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("error:") and all(n in lines[0] for n in names)


def no_traceback(r) -> None:
    assert r.exception is None or isinstance(r.exception, SystemExit), \
        f"uncaught {type(r.exception).__name__}: {r.exception}"
    assert "Traceback" not in r.output, r.output
    assert r.exit_code in (0, 2), (r.exit_code, r.output)


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (SQLite's -wal/-shm side files left out)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def leaf_paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += leaf_paths(v, prefix + (k,))
        else:
            out.append(prefix + (k,))
    return out


def set_path(d: dict, path: tuple, value) -> dict:
    d = copy.deepcopy(d)
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return d


def rename_key(d: dict, table: str, old: str, new: str) -> dict:
    d = copy.deepcopy(d)
    d[table] = {(new if k == old else k): v for k, v in d[table].items()}
    return d


def is_finite_tree(v) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(is_finite_tree(x) for x in v.values())
    if isinstance(v, list):
        return all(is_finite_tree(x) for x in v)
    return True


SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# -- strategies ------------------------------------------------------------------------------------
RIG_LEAVES = leaf_paths(RIG)
PLAN_LEAVES = [p for p in leaf_paths(PLAN) if p[0] != "attacks"]
odd_value = st.one_of(st.sampled_from(NONFINITE + HUGE + SMALL_BAD + BAD_TYPES),
                      st.text(max_size=20), st.integers(), st.floats(allow_nan=True, allow_infinity=True))
finite_odd_value = st.one_of(st.sampled_from(HUGE + SMALL_BAD + BAD_TYPES), st.text(max_size=12),
                             st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def odd_rigs(draw, values=finite_odd_value, names: bool = False):
    """office-sim with one leaf set to an odd value, maybe an unknown field, maybe a renamed table key."""
    rig = RIG
    what = []
    if draw(st.booleans()):
        path = draw(st.sampled_from(RIG_LEAVES))
        rig = set_path(rig, path, draw(values))
        what.append(path[-1])
    if draw(st.booleans()):
        key = draw(st.sampled_from(["colour", "speed_of_light", "mics_extra"]))
        rig = {**rig, key: draw(finite_odd_value)}
        what.append(key)
    if names:
        table = draw(st.sampled_from(["mics", "speakers", "placements"]))
        old = draw(st.sampled_from(sorted(rig[table])))
        new = draw(st.sampled_from(PATHLIKE))
        rig = rename_key(rig, table, old, new)
        what.append(table)
    return rig, what


@st.composite
def odd_plans(draw, values=finite_odd_value):
    plan = PLAN
    what = []
    path = draw(st.sampled_from(PLAN_LEAVES))
    plan = set_path(plan, path, draw(values))
    what.append(path[-1])
    if draw(st.booleans()):
        attack = {**plan["attacks"][1]}
        k = draw(st.sampled_from(["eps", "source_model", "target", "kind"]))
        attack[k] = draw(finite_odd_value)
        plan = {**plan, "attacks": [plan["attacks"][0], attack]}
        what.append(k)
    if draw(st.booleans()):
        plan = {**plan, "unknown_field": 1}
        what.append("unknown_field")
    return plan, what


def write_toml(path: Path, data: dict) -> bool:
    """Write ``data`` as TOML; False when TOML cannot hold it (e.g. a NUL in a key)."""
    try:
        path.write_text(tomli_w.dumps(data))
    except (TypeError, ValueError, UnicodeEncodeError):
        return False
    return True


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("props")


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory) -> Path:
    """Untrained (seeded) lm-fp32, lm-lowrank, lm-int8: real zoo files, for the plan checks."""
    import torch

    from testbed.models import Zoo, build_model
    from tests.session.conftest import KWS

    root = tmp_path_factory.mktemp("props-zoo")
    zoo = Zoo(root)
    for i, name in enumerate(("lm-fp32", "lm-lowrank", "lm-int8")):
        torch.manual_seed(i)
        zoo.save(name, build_model("lm", KWS), {"arch": "lm", "variant": name.split("-")[1], "labels": KWS,
                                                 "sample_rate": 16000, "clip_samples": 16000})
    return root


def fresh(work: Path) -> Path:
    d = work / f"ex{next(_ids)}"
    d.mkdir()
    return d


# -- rigs --------------------------------------------------------------------------------------------
def _check_rig(cli, work, rig, what, *, strict_values: bool) -> None:
    d = fresh(work)
    p = d / "rig.toml"
    if not write_toml(p, rig):
        return
    before = tree(work)
    r = cli(["rig", "check", p])
    no_traceback(r)
    assert {k for k in tree(work) if k not in before} == set()      # a check writes nothing
    if r.exit_code == 2:
        assert one_line_naming(r.output, "rig.toml"), r.output
    elif strict_values:
        # what passed is safe to use: every number finite, every name a safe file name
        assert is_finite_tree(rig), f"rig check accepted non-finite numbers in {what}"
        for table in ("mics", "speakers", "placements"):
            bad = [n for n in rig.get(table) or {} if not SAFE.match(n)]
            assert not bad, f"rig check accepted {table} name(s) {bad!r} that cannot be file names"


@SETTINGS
@given(case=odd_rigs())
def test_rigs_with_odd_finite_values_and_unknown_fields(cli, work, case):
    _check_rig(cli, work, *case, strict_values=False)


@SETTINGS
@given(case=odd_rigs(values=st.sampled_from(NONFINITE)))
@example(case=(set_path(RIG, ("room", "size_m"), [math.inf, 5.0, 3.0]), ["size_m"]))
def test_rigs_with_non_finite_numbers_are_refused(cli, work, case):
    _check_rig(cli, work, *case, strict_values=True)


@SETTINGS
@given(case=odd_rigs(values=st.just(1), names=True))
@example(case=(rename_key(RIG, "mics", "ref", "../../../../escaped"), ["mics"]))
def test_rigs_with_path_like_names_are_refused(cli, work, case):
    rig, what = case
    _check_rig(cli, work, set_path(rig, ("sample_rate",), 16000), what, strict_values=True)


# -- plans ------------------------------------------------------------------------------------------
def _check_plan(cli, work, zoo, plan, what, *, strict_values: bool) -> None:
    d = fresh(work)
    p = d / "plan.toml"
    if not write_toml(p, plan):
        return
    r = cli(["session", "plan", p, "--rig", REPO / "rigs" / "office-sim.toml", "--models-dir", zoo])
    no_traceback(r)
    if r.exit_code == 2:
        assert one_line_naming(r.output, "plan.toml"), r.output
    elif strict_values:
        assert is_finite_tree(plan), f"session plan said ok to non-finite numbers in {what}"


@SETTINGS
@given(case=odd_plans())
def test_plans_with_odd_finite_values_and_unknown_fields(cli, work, tiny_zoo, case):
    plan, what = case
    # counts stay small here: plan size is its own test below (a huge plan must not be expanded)
    for k in ("per_label", "repetitions"):
        for table in (plan, plan.get("utterances") or {}):
            if isinstance(table.get(k), (int, float)) and not isinstance(table.get(k), bool) \
                    and abs(table[k]) > 50:
                return
    _check_plan(cli, work, tiny_zoo, plan, what, strict_values=False)


@SETTINGS
@given(case=odd_plans(values=st.sampled_from(NONFINITE)))
@example(case=(set_path(PLAN, ("sweep", "delay_ms"), [math.nan]), ["delay_ms"]))
def test_plans_with_non_finite_numbers_are_refused(cli, work, tiny_zoo, case):
    _check_plan(cli, work, tiny_zoo, *case, strict_values=True)


def test_a_huge_plan_is_refused_before_it_is_expanded(work, tiny_zoo):
    import subprocess
    import sys

    d = fresh(work)
    # 200 utterances x 2 attacks x 10,000 delays x 2 placements x 1,000 repetitions = 8e9 trials
    plan = set_path(set_path(set_path(PLAN, ("utterances", "per_label"), 100), ("repetitions",), 1000),
                    ("sweep", "delay_ms"), list(range(-5000, 5000)))
    p = d / "plan.toml"
    write_toml(p, plan)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
            "from testbed.cli.app import app; app(sys.argv[1:])")
    proc = subprocess.run([sys.executable, "-c", code, "session", "plan", str(p), "--rig",
                           str(REPO / "rigs" / "office-sim.toml"), "--models-dir", str(tiny_zoo)],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and one_line_naming(out, "plan.toml") and "Traceback" not in out, out[-1500:]


# -- DUT lines ---------------------------------------------------------------------------------------
GOOD_HELLO = {"model": "lm-int8", "labels": ["yes", "no", "silence"], "sample_rate": 16000, "protocol": 1}


def _fake_dut(hello_line: bytes, result_line: bytes | None = None):
    from testbed.serial import DutClient

    class FakeDut(DutClient):
        """A DutClient whose port is a script: hello -> ``hello_line``; arm -> armed; audio -> ``result_line``."""

        def __init__(self) -> None:
            super().__init__("fake-port", timeout_s=0.05, reconnect_s=0.0)
            self._ser = object()
            self.queue: list[bytes] = []

        def _write_bytes(self, data: bytes) -> None:
            msg = json.loads(data)
            if msg.get("cmd") == "hello":
                self.queue.append(hello_line)
            elif msg.get("cmd") == "arm":
                self.queue.append(json.dumps({"armed": msg["trial"]}).encode() + b"\n")
            elif msg.get("cmd") == "audio" and result_line is not None:
                self.queue.append(result_line)

        def _lines_until(self, deadline: float):
            while self.queue:
                yield self.queue.pop(0)

        def close(self) -> None:
            self._ser = None

    return FakeDut()


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=8),
                        st.floats(allow_nan=True, allow_infinity=True))
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                            max_size=3), max_leaves=6)


def _line(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode() + b"\n"


def _check_result_line(line: bytes) -> None:
    from testbed.errors import TestbedError

    dut = _fake_dut(_line({"hello": GOOD_HELLO}), line)
    dut.hello()
    try:
        res = dut.evaluate(1, np.zeros(1600, np.float32))
    except TestbedError as exc:
        assert "\n" not in str(exc)
        return
    if res.ok:
        assert res.label in GOOD_HELLO["labels"]
        assert all(isinstance(s, float) and math.isfinite(s) for s in res.scores), res.scores
        assert res.latency_ms is None or math.isfinite(res.latency_ms)
    else:
        assert isinstance(res.reason, str) and res.reason


@SETTINGS
@given(label=json_value, extra=st.dictionaries(st.sampled_from(["latency_ms", "foo", "log"]), json_scalar,
                                                 max_size=2))
def test_dut_result_lines_with_odd_labels_and_fields(label, extra):
    _check_result_line(_line({"trial": 1, "label": label, **extra}))


@SETTINGS
@given(junk=st.binary(max_size=60))
def test_dut_garbage_bytes_are_ignored_not_fatal(junk):
    _check_result_line(junk.replace(b"\n", b"") + b"\n")


@SETTINGS
@given(trial=json_value, scores=st.lists(st.sampled_from([math.nan, math.inf, -math.inf, 0.5]), min_size=3,
                                           max_size=3))
@example(trial=[1], scores=[0.5, 0.5, 0.5])
@example(trial=1, scores=[math.nan, 0.5, 0.5])
def test_dut_result_lines_with_odd_trial_ids_and_non_finite_scores(trial, scores):
    _check_result_line(_line({"trial": trial, "label": "yes", "scores": scores}))
    _check_result_line(_line({"trial": 1, "label": "yes", "scores": [0.1, 0.2, 0.3], "latency_ms": scores[0]}))


@SETTINGS
@given(field=st.sampled_from(["model", "labels", "sample_rate", "protocol", "firmware", "input"]),
       value=json_value)
@example(field="protocol", value=None)
def test_dut_hello_with_odd_fields_is_a_protocol_error_or_accepted(field, value):
    from testbed.errors import TestbedError

    dut = _fake_dut(_line({"hello": {**GOOD_HELLO, field: value}}))
    try:
        info = dut.hello()
    except TestbedError as exc:
        assert "\n" not in str(exc) and "dut" in str(exc).lower()
        return
    assert isinstance(info.model, str) and isinstance(info.protocol, int)
    assert info.sample_rate is None or (isinstance(info.sample_rate, int) and info.sample_rate > 0)


# -- import CSVs and audio files ---------------------------------------------------------------------
GOOD = np.linspace(-0.2, 0.2, 800, dtype=np.float32)


def _audio_bytes(kind: str) -> bytes:
    import io

    buf = io.BytesIO()
    if kind == "good":
        sf.write(buf, GOOD, 16000, format="WAV", subtype="PCM_16")
    elif kind in ("nan", "inf", "huge"):
        x = GOOD.copy()
        x[10] = {"nan": np.nan, "inf": np.inf, "huge": 1e30}[kind]
        sf.write(buf, x, 16000, format="WAV", subtype="FLOAT")
    elif kind == "stereo":
        sf.write(buf, np.stack([GOOD, GOOD], 1), 16000, format="WAV", subtype="PCM_16")
    elif kind == "odd-rate":
        sf.write(buf, GOOD[:70], 7, format="WAV", subtype="PCM_16")
    elif kind == "empty-audio":
        sf.write(buf, GOOD[:0], 16000, format="WAV", subtype="PCM_16")
    elif kind == "flac":
        sf.write(buf, GOOD, 22050, format="FLAC", subtype="PCM_24")
    elif kind == "truncated":
        sf.write(buf, GOOD, 16000, format="WAV", subtype="PCM_16")
        return buf.getvalue()[:30]
    elif kind == "empty-file":
        return b""
    else:   # garbage
        return b"RIFF\x00\x00garbage" * 7
    return buf.getvalue()


AUDIO_KINDS = ["good", "stereo", "flac", "huge", "garbage", "truncated", "empty-file", "empty-audio", "odd-rate"]
csv_text = st.one_of(st.sampled_from(["", "yes", "no", "a,b", '"', "1e9", "nan", "-1", "é"]), st.text(max_size=10))
finite_csv_number = st.sampled_from(["", "0", "1.5", "-3", "1e9", "abc", "0x10", "1_000", " 7 "])


@st.composite
def import_cases(draw, numbers=finite_csv_number, files=st.sampled_from(["a.wav", "b.wav", "missing.wav"]),
                 ids=st.sampled_from(["imp", "keep", "imp.2"]), audio=st.sampled_from(AUDIO_KINDS)):
    n = draw(st.integers(1, 3))
    cols = ["file", "label"] + draw(st.lists(st.sampled_from(["trial", "mic", "eps", "delay_ms", "repetition",
                                                              "command_start_s", "attack", "utterance_id",
                                                              "placement", "colour"]), unique=True, max_size=4))
    rows = []
    for _ in range(n):
        row = []
        for c in cols:
            if c == "file":
                row.append(draw(files))
            elif c in ("eps", "delay_ms", "repetition", "command_start_s"):
                row.append(draw(numbers))
            else:
                row.append(draw(csv_text))
        rows.append(row)
    return cols, rows, {"a.wav": draw(audio), "b.wav": draw(audio)}, draw(ids)


@pytest.fixture(scope="module")
def recorded_before(work) -> tuple[Path, dict[str, str]]:
    """A sessions folder holding session 'keep' with one committed trial, and its file hashes."""
    from testbed.session.store import CaptureRecord, SessionStore, TrialRecord
    from testbed.session.trials import AttackConfig, TrialSpec

    sessions = work / "sessions"
    store = SessionStore.create(sessions / "keep", meta={"session_id": "keep"}, files={},
                                attacks=[AttackConfig("none", "none", 0.0, "untargeted", None, False, {})],
                                utterances=[("u", "yes", GOOD, {})],
                                planned=[TrialSpec(0, "u", "yes", "none", 0.0, None, 0)], sample_rate=16000)
    with store:
        store.commit_trial(TrialRecord(0, [CaptureRecord("mic", GOOD)], []), 16000)
    return sessions, tree(sessions / "keep")


def _check_import(cli, work, recorded_before, case) -> None:
    import csv
    import io

    cols, rows, audio, sid = case
    sessions, keep = recorded_before
    d = fresh(work)
    folder = d / "rec"
    folder.mkdir()
    for name, kind in audio.items():
        (folder / name).write_bytes(_audio_bytes(kind))
    (d / "outside.wav").write_bytes(_audio_bytes("good"))   # what a hostile file column reaches for
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    w.writerows(rows)
    csv_path = folder / "meta.csv"
    try:
        csv_path.write_text(buf.getvalue(), encoding="utf-8")
    except UnicodeEncodeError:
        return
    work_before = tree(work)
    r = cli(["session", "import-folder", folder, "--csv", csv_path, "--id", sid, "--sessions-dir", sessions])
    no_traceback(r)
    assert tree(sessions / "keep") == keep                         # what was recorded before is untouched
    new = {k for k, v in tree(work).items() if work_before.get(k) != v}
    target = sessions / sid
    try:
        session_dir = str(target.relative_to(work)) + "/"
    except ValueError:                         # an absolute --id: nothing may be written there at all
        session_dir = None
        assert not target.exists(), f"import-folder created {target}"
    outside = {k for k in new if session_dir is None or not k.startswith(session_dir)}
    assert outside == set(), f"files written outside the session folder: {sorted(outside)[:5]}"
    if r.exit_code == 2:
        assert one_line_naming(r.output) and ("meta.csv" in r.output or str(folder) in r.output
                                              or "--id" in r.output or sid in r.output), r.output
        return
    for row in rows:                                                   # it read only inside its folder
        f = (folder / row[0].strip()).resolve()
        assert folder.resolve() in f.parents, f"import-folder read {row[0]!r}, outside {folder}"
    from testbed.session.store import open_reader

    with open_reader(sessions / sid) as rd:
        caps = rd.captures()
        assert caps and all(rd.read_capture(c)[1] is None for c in caps)
        for c in caps:                                                 # what was stored reads back finite
            sig, _ = rd.read_capture(c)
            assert np.isfinite(sig).all()
        for t in rd.planned():
            assert math.isfinite(t.delay_ms), "a non-finite delay_ms was stored"
    import shutil

    shutil.rmtree(sessions / sid)   # the next example may use the same id


@SETTINGS
@given(case=import_cases())
def test_import_csvs_with_odd_text_numbers_and_audio(cli, work, recorded_before, case):
    _check_import(cli, work, recorded_before, case)


@SETTINGS
@given(case=import_cases(numbers=st.sampled_from(["nan", "inf", "-inf", "1e400", "1e300"]),
                         audio=st.just("good")))
def test_import_csvs_with_non_finite_numbers(cli, work, recorded_before, case):
    _check_import(cli, work, recorded_before, case)


@settings(SETTINGS, max_examples=2)
@given(kind=st.sampled_from(["nan", "inf"]))
def test_importing_a_non_finite_float_wav_leaves_no_half_made_session(cli, work, recorded_before, kind):
    sessions, _ = recorded_before
    sid = f"nf-{kind}-{next(_ids)}"
    case = (["file", "label"], [["a.wav", "yes"]], {"a.wav": kind, "b.wav": "good"}, sid)
    _check_import(cli, work, recorded_before, case)
    assert not (sessions / sid).exists()


@SETTINGS
@given(case=import_cases(files=st.sampled_from(["../outside.wav", "../../outside.wav", "/etc/hostname"]),
                         ids=st.sampled_from(["imp", "../escaped", "../../x", "/tmp/abs-session"]),
                         audio=st.just("good"), numbers=st.just("")))
@example(case=(["file", "label"], [["../outside.wav", "yes"]], {"a.wav": "good", "b.wav": "good"}, "imp"))
def test_import_never_reads_or_writes_outside_its_folders(cli, work, recorded_before, case):
    _check_import(cli, work, recorded_before, case)
