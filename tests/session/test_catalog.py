"""The catalogue (``session list`` filters, ``catalog()``) and damaged session databases (issues #22, #23)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from testbed.errors import SessionError
from testbed.session import catalog
from testbed.session.store import DB_NAME, DamagedSession, SessionStore, open_reader
from testbed.session.trials import AttackConfig, TrialSpec
from tests.session.conftest import SR, make_record

DAY = 86400.0
T0 = datetime(2026, 3, 1, 12, 0).timestamp()


def make_session(root: Path, sid: str, *, plan: str, rig: str, models: list[str], created: float,
                 tags: dict | None = None, commit: int = 0) -> Path:
    """A 2-trial session with a manifest, ``commit`` trials committed."""
    attacks = [AttackConfig("none", "none", 0.0, "untargeted", None, False, {})]
    utts = [("yes-0", "yes", np.zeros(SR // 4, np.float32), {})]
    planned = [TrialSpec(i, "yes-0", "yes", "none", 0.0, None, i) for i in range(2)]
    manifest = {"created_at": created, "model_hashes": {m: f"{m}-hash" for m in models}, "tags": tags or {}}
    meta = {"session_id": sid, "plan_name": plan, "rig_name": rig, "sample_rate": SR, "manifest": manifest,
            "tags": tags or {}}
    files = {"manifest.json": json.dumps(manifest).encode(), "plan.toml": f'name = "{plan}"\n'.encode(),
             "rig.toml": f'name = "{rig}"\n'.encode()}
    store = SessionStore.create(root / sid, meta=meta, files=files, attacks=attacks, utterances=utts,
                                planned=planned, sample_rate=SR)
    with store:
        rng = np.random.default_rng(0)
        for i in range(commit):
            store.commit_trial(make_record(i, rng, n=800), SR)
    return root / sid


def damage(folder: Path, how: str) -> None:
    """Overwrite the session database: all of it (``header``) or pages inside it (``pages``)."""
    db = folder / DB_NAME
    assert not (folder / f"{DB_NAME}-wal").exists() or (folder / f"{DB_NAME}-wal").stat().st_size == 0
    data = bytearray(db.read_bytes())
    if how == "header":
        data[:100] = b"\xde\xad\xbe\xef" * 25
    else:   # every page but the first (the schema): b-tree pages the schema points at
        page = int.from_bytes(data[16:18], "big") or 65536
        rng = np.random.default_rng(7)
        for off in range(page, len(data), page):
            data[off:off + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    db.write_bytes(bytes(data))


@pytest.fixture
def workspace(tmp_path) -> Path:
    """Five sessions: three plans, two rigs, tags, one complete, one damaged."""
    root = tmp_path / "sessions"
    make_session(root, "a-sweep", plan="sweep", rig="office-sim", models=["lm-fp32", "lm-int8"], created=T0,
                 tags={"site": "lab1", "operator": "ana"}, commit=2)
    make_session(root, "b-sweep", plan="sweep", rig="car-sim", models=["lm-fp32"], created=T0 + DAY,
                 tags={"site": "lab2"}, commit=1)
    make_session(root, "c-quick", plan="quick", rig="office-sim", models=["lm-lowrank"], created=T0 + 2 * DAY,
                 tags={"site": "lab2", "operator": "bo"})
    make_session(root, "d-quick", plan="quick", rig="car-sim", models=["lm-fp32"], created=T0 + 3 * DAY)
    bad = make_session(root, "e-broken", plan="sweep", rig="office-sim", models=["lm-int8"], created=T0 + 4 * DAY,
                       tags={"site": "lab2"}, commit=1)
    damage(bad, "pages")
    return root


def ids(rows) -> list[str]:
    return [r["id"] for r in rows]


@pytest.mark.parametrize("how", ["header", "pages"])
def test_a_damaged_database_is_refused_with_one_line_naming_the_session(tmp_path, how, cli):
    folder = make_session(tmp_path / "sessions", "s1", plan="p", rig="r", models=["m"], created=T0, commit=2)
    damage(folder, how)
    with pytest.raises(DamagedSession) as err:
        open_reader(folder)
    assert "'s1'" in str(err.value) and "damaged" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SessionError, match="damaged"):
        SessionStore(folder)              # the writer checks too
    sessions = tmp_path / "sessions"
    for cmd in (["status", "s1"], ["resume", "s1"], ["export", "s1"], ["replay", "s1", "--models", "lm-fp32"]):
        r = cli(["session", *cmd, "--sessions-dir", sessions])
        assert r.exit_code == 2, (cmd, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "s1" in lines[0] and "damaged" in lines[0], (cmd, r.output)
        assert "Traceback" not in r.output and "DatabaseError" not in r.output


def test_list_shows_a_damaged_session_as_damaged_and_every_other_one(workspace, cli):
    r = cli(["session", "list", "--sessions-dir", workspace, "--json"])
    assert r.exit_code == 0, r.output
    rows = {x["id"]: x for x in json.loads(r.stdout)}
    assert sorted(rows) == ["a-sweep", "b-sweep", "c-quick", "d-quick", "e-broken"]
    assert rows["e-broken"]["state"] == "damaged" and "quick_check" in rows["e-broken"]["last_error"]
    assert (rows["a-sweep"]["state"], rows["a-sweep"]["done"]) == ("complete", 2)
    assert (rows["b-sweep"]["state"], rows["b-sweep"]["done"], rows["b-sweep"]["total"]) == ("created", 1, 2)
    # what the damaged session's own copies still say
    assert (rows["e-broken"]["plan"], rows["e-broken"]["rig"], rows["e-broken"]["tags"]) == \
        ("sweep", "office-sim", {"site": "lab2"})
    r = cli(["session", "list", "--sessions-dir", workspace])
    assert r.exit_code == 0 and "Traceback" not in r.output
    for sid in rows:
        assert sid in r.output
    damaged = [ln for ln in r.output.splitlines() if ln.startswith("damaged e-broken: ")]
    assert len(damaged) == 1 and "quick_check" in damaged[0]


@pytest.mark.parametrize("args, want", [
    (["--rig", "office-sim"], ["a-sweep", "c-quick", "e-broken"]),
    (["--rig", "car-*"], ["b-sweep", "d-quick"]),
    (["--plan", "quick"], ["c-quick", "d-quick"]),
    (["--model", "lm-int8"], ["a-sweep", "e-broken"]),
    (["--model", "lm-fp32", "--rig", "car-sim"], ["b-sweep", "d-quick"]),
    (["--since", "2026-03-02"], ["b-sweep", "c-quick", "d-quick", "e-broken"]),
    (["--since", "2026-03-02", "--until", "2026-03-04"], ["b-sweep", "c-quick"]),
    (["--until", "2026-03-02T00:00"], ["a-sweep"]),
    (["--state", "complete"], ["a-sweep"]),
    (["--state", "damaged"], ["e-broken"]),
    (["--state", "created"], ["b-sweep", "c-quick", "d-quick"]),
    (["--tag", "site=lab2"], ["b-sweep", "c-quick", "e-broken"]),
    (["--tag", "site=lab2", "--tag", "operator"], ["c-quick"]),
    (["--tag", "operator"], ["a-sweep", "c-quick"]),
    (["--sort", "id", "--reverse"], ["e-broken", "d-quick", "c-quick", "b-sweep", "a-sweep"]),
    (["--sort", "created", "--reverse", "--plan", "sweep"], ["e-broken", "b-sweep", "a-sweep"]),
    (["--sort", "done", "--plan", "sweep"], ["b-sweep", "a-sweep", "e-broken"]),   # unknown (damaged) last
    (["--rig", "nowhere"], []),
])
def test_list_filters_and_sorts_on_what_the_manifest_knows(workspace, cli, args, want):
    r = cli(["session", "list", "--sessions-dir", workspace, "--json", *args])
    assert r.exit_code == 0, r.output
    assert ids(json.loads(r.stdout)) == want


@pytest.mark.parametrize("args, where", [
    (["--since", "yesterday"], "--since"), (["--until", "2026-13-01"], "--until"),
    (["--tag", "bad key=1"], "--tag[0]"), (["--sort", "colour"], "--sort"),
])
def test_list_refuses_bad_filters_with_one_line(workspace, cli, args, where):
    r = cli(["session", "list", "--sessions-dir", workspace, *args])
    assert r.exit_code == 2 and where in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_catalog_returns_the_same_as_a_dataframe(workspace, cli):
    df = catalog(workspace)
    r = cli(["session", "list", "--sessions-dir", workspace, "--json"])
    rows = json.loads(r.stdout)
    assert list(df["id"]) == ids(rows)
    assert list(df["state"]) == [x["state"] for x in rows]
    assert df.set_index("id").loc["e-broken", "state"] == "damaged"
    assert str(df["created_at"].dt.tz) == "UTC"
    assert df.set_index("id").loc["a-sweep", "created_at"].timestamp() == pytest.approx(T0)
    sub = catalog(workspace, plan="sweep", tags=["site=lab2"], since="2026-03-01T13:00")
    assert list(sub["id"]) == ["b-sweep", "e-broken"]
    sub = catalog(workspace, tags={"operator": "ana"}, model="lm-*")
    assert list(sub["id"]) == ["a-sweep"] and sub.iloc[0]["models"] == ["lm-fp32", "lm-int8"]
    assert int(sub.iloc[0]["done"]) == 2


def test_listing_never_writes_or_locks_anything(workspace):
    before = {p: p.stat().st_mtime_ns for p in workspace.rglob("*") if p.is_file()}
    catalog(workspace)
    after = {p: p.stat().st_mtime_ns for p in workspace.rglob("*") if p.is_file()}
    assert {p for p in after if p not in before and not p.name.endswith(("-shm", "-wal"))} == set()
    assert {p for p in before if before[p] != after.get(p) and not p.name.endswith(("-shm", "-wal"))} == set()
    assert not any(p.name == ".lock" for p in after)


def test_run_stores_tags_and_list_finds_the_session_by_them(cli, tmp_path, office_rig_path, tiny_zoo):
    sessions = tmp_path / "sessions"
    plan = Path(__file__).resolve().parents[2] / "sessions" / "plans" / "quick-sim.toml"
    r = cli(["session", "run", plan, "--rig", office_rig_path, "--id", "tagged", "--sessions-dir", sessions,
             "--models-dir", tiny_zoo, "--json", "--quiet", "--tag", "site=lab2", "--tag", "op=ana"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((sessions / "tagged" / "manifest.json").read_text())
    assert manifest["tags"] == {"site": "lab2", "op": "ana"}
    with open_reader(sessions / "tagged") as rd:
        assert rd.meta()["tags"] == {"site": "lab2", "op": "ana"}
    r = cli(["session", "list", "--sessions-dir", sessions, "--json", "--tag", "site=lab2", "--state", "complete"])
    rows = json.loads(r.stdout)
    assert ids(rows) == ["tagged"] and rows[0]["models"] and rows[0]["created"].endswith("+00:00")
    r = cli(["session", "list", "--sessions-dir", sessions, "--json", "--tag", "site=lab1"])
    assert json.loads(r.stdout) == []
    r = cli(["session", "run", plan, "--rig", office_rig_path, "--id", "t2", "--sessions-dir", sessions,
             "--models-dir", tiny_zoo, "--quiet", "--tag", "../x=1"])
    assert r.exit_code == 2 and "--tag[0]" in r.output and not (sessions / "t2").exists()


def test_damage_found_after_opening_is_one_damaged_line_too(tmp_path):
    import sqlite3

    folder = make_session(tmp_path / "sessions", "s1", plan="p", rig="r", models=["m"], created=T0, commit=1)

    class Broken:
        def execute(self, *a, **k):
            raise sqlite3.DatabaseError("database disk image is malformed")

        def close(self):
            pass

    with open_reader(folder) as r:
        r.db = Broken()
        for call in (r.status, r.meta, r.captures, r.done_ids):
            with pytest.raises(DamagedSession, match="'s1' is damaged .database disk image is malformed"):
                call()
