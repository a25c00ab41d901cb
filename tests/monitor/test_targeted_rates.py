"""The monitor's targeted-success table (issue 24): target reached per pair and model at the DUT mic."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.analysis.stats import wilson_interval
from testbed.monitor import build_snapshot
from testbed.monitor.rates import ErrorCounter
from testbed.session.store import CaptureRecord, EvalRecord, SessionReader, SessionStore, TrialRecord
from testbed.session.trials import AttackConfig, TrialSpec
from tests.monitor.conftest import MICS, MODELS, SR, office_rig

PAIRS = {"yes": "go", "no": "up"}


def _session(folder) -> SessionStore:
    attacks = [AttackConfig("none", "none", 0.0, "untargeted", None, False, {})] + [
        AttackConfig(f"fgsm-0.02-{s}-to-{t}-lm-fp32", "fgsm", 0.02, t, "lm-fp32", False, {}, source_label=s)
        for s, t in PAIRS.items()]
    utts = [(f"{lab}-{i}", lab, np.zeros(SR // 8, np.float32), {}) for lab in PAIRS for i in range(4)]
    planned, i = [], 0
    for uid, lab, *_ in utts:
        for a in attacks:
            if a.source_label in (None, lab):
                planned.append(TrialSpec(i, uid, lab, a.attack_id, 0.0, "P1", 0))
                i += 1
    meta = {"session_id": folder.name, "plan_name": "tm", "rig_name": "office-sim", "sample_rate": SR,
            "dut_mic": "cheap", "rig": office_rig(), "plan": {"name": "tm", "evaluate": {"models": list(MODELS)}}}
    return SessionStore.create(folder, meta=meta, files={}, attacks=attacks, utterances=utts, planned=planned,
                               sample_rate=SR)


def _commit(store: SessionStore, specs, rng) -> None:
    targets = {a.attack_id: a.target for a in store.attacks().values()}
    for spec in specs:
        target = targets[spec.attack_id]
        evals = []
        for mic in MICS:
            for m in MODELS:   # the target, another wrong label or the command, at random
                pick = rng.integers(3)
                pred = target if pick == 0 and target != "untargeted" else ("left" if pick == 1 else spec.label)
                evals.append(EvalRecord(mic=mic, model=m, model_hash="h", eval_source="live", prediction=pred,
                                        score_top=0.9))
        caps = [CaptureRecord(mic=mic, signal=np.zeros(SR // 8, np.float32)) for mic in MICS]
        store.commit_trial(TrialRecord(trial_id=spec.trial_id, captures=caps, evaluations=evals,
                                       facts={"record_s": 0.125}), SR)


def _expected(reader) -> dict[tuple[str, str], tuple[int, int]]:
    df = reader.evaluations_frame()
    dut = df[(df["mic"] == "cheap") & (df["target"] != "untargeted")]
    return {(f"{lab} -> {t}", m): (int((g["prediction"] == t).sum()), len(g))
            for (lab, t, m), g in dut.groupby(["label", "target", "model"])}


def test_the_snapshot_counts_the_target_reached_per_pair_and_model(tmp_path):
    store = _session(tmp_path / "tm")
    rng = np.random.default_rng(4)
    store.lock()
    pending = store.pending()
    _commit(store, pending[:7], rng)
    counter = ErrorCounter()
    with SessionReader(store.path) as r:
        first = build_snapshot(r, errors=counter)            # the follower's incremental path
    _commit(store, pending[7:], rng)
    store.unlock()
    with SessionReader(store.path) as r:
        want = _expected(r)
        full = build_snapshot(r)                              # everything at once
        live = build_snapshot(r, errors=counter)              # only what was added since
    assert sum(c["n"] for row in first["targeted"]["rows"] for c in row["cells"].values()) < \
        sum(n for _, n in want.values())
    for snap in (full, live):
        t = snap["targeted"]
        assert t["models"] == list(MODELS) and t["dut_mic"] == "cheap"
        assert [(r["label"], r["target"]) for r in t["rows"]] == [("no", "up"), ("yes", "go")]
        got = {}
        for row in t["rows"]:
            for m, c in row["cells"].items():
                got[(f"{row['label']} -> {row['target']}", m)] = (c["hits"], c["n"])
                assert (c["lo"], c["hi"]) == pytest.approx(wilson_interval(c["hits"], c["n"]))
                assert c["rate"] == pytest.approx(c["hits"] / c["n"])
        assert got == want
        assert all(n == 4 for _, n in got.values())          # 4 utterances per pair, DUT mic only
        assert 0 < sum(h for h, _ in got.values()) < sum(n for _, n in got.values())   # "left" never counts


def test_a_session_without_targeted_attacks_has_an_empty_targeted_table(session_store):
    with SessionReader(session_store.path) as r:
        assert build_snapshot(r)["targeted"]["rows"] == []


def test_the_page_shows_the_targeted_table_with_the_snapshots_counts(tmp_path, offline_page):
    from testbed.monitor import MonitorServer
    from tests.monitor.test_page import wait_for

    store = _session(tmp_path / "tm")
    store.lock()
    _commit(store, store.pending(), np.random.default_rng(1))
    store.unlock()
    with SessionReader(store.path) as r:
        want = _expected(r)
    page = offline_page.page
    with MonitorServer(store.path, port=0) as mon:
        page.goto(mon.url)
        cells = wait_for(lambda: page.eval_on_selector_all(
            "#target-table td[data-hits]", "els => els.map(e => [e.dataset.hits, e.dataset.n])"), "the targeted table")
        assert page.is_visible("#targeted-card")
        pairs = page.eval_on_selector_all("#target-success tr[data-pair]", "els => els.map(e => e.dataset.pair)")
    assert pairs == ["no->up", "yes->go"]
    assert [(int(h), int(n)) for h, n in cells] == [want[(p.replace("->", " -> "), m)] for p in pairs for m in MODELS]


def test_the_page_hides_the_targeted_card_without_targeted_attacks(session_store, offline_page):
    from testbed.monitor import MonitorServer
    from tests.monitor.conftest import SyntheticWriter
    from tests.monitor.test_page import wait_for

    w = SyntheticWriter(session_store).start()
    w.release(3)
    wait_for(lambda: len(w.committed) == 3, "three commits")
    w.abandon()
    page = offline_page.page
    with MonitorServer(session_store.path, port=0) as mon:
        page.goto(mon.url)
        wait_for(lambda: page.eval_on_selector_all("#error-table td[data-n]", "els => els.length"), "the error table")
        assert not page.is_visible("#targeted-card")
