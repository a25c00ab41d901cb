"""`testbed demo --fast` end to end: zoo, simulated session, replay, analysis, report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from testbed.session import load_evaluations


def test_demo_fast_runs_end_to_end(cli, tmp_path, quick_zoo):
    out = tmp_path / "demo"
    threads = torch.get_num_threads()
    r = cli(["demo", "--fast", "--out", out, "--models-dir", quick_zoo, "--json"])
    assert r.exit_code == 0, r.output
    assert torch.get_num_threads() == threads                # the demo puts torch's thread count back
    res = json.loads(r.stdout)
    assert res["run"] == "finished"
    df = load_evaluations(res["session_dir"])
    # every planned trial ran: 2 commands x 4 attack configs x 2 delays x 2 placements, 2 mics
    assert df["trial_id"].nunique() == 32 and not df["failed"].any()
    assert set(df["attack"]) == {"none", "fgsm", "pgd", "ota-pgd"}
    assert set(df["mic"]) == {"ref", "cheap"} and set(df["placement"]) == {"P1", "P2"}
    live = df[df["eval_source"] == "live"]
    replay = df[df["eval_source"] == "replay"]
    assert set(live["model"]) == {"lm-fp32", "lm-int8", "lm-slr8"}
    assert set(replay["model"]) == {"lm-lowrank", "lm-slr8@k1", "lm-slr8@k2"}
    assert (replay["model"] == "lm-lowrank").sum() == 32 * 2
    # the ensemble-size views replay the DUT-mic captures only, one evaluation per trial each
    views = replay[replay["model"].str.contains("@k")]
    assert views["is_dut_mic"].all() and len(views) == 32 * 2
    # the report and the summary exist and hold the session's own numbers
    summary = json.loads(open(res["summary"]).read())
    assert summary["sessions"] == [res["session"]] and summary["n_evaluations"] == len(df)
    rows = pd.DataFrame(summary["main_table"])
    assert int(rows["n"].sum()) == len(df)
    assert open(res["report"]).read().count("data:image/png;base64,") >= 4
    # attacks (eps 0.05) hurt: the attacked error at the DUT mic is above the clean error
    dut = df[df["is_dut_mic"]]
    clean_err = 1 - dut[dut["attack"] == "none"]["correct"].mean()
    att_err = 1 - dut[dut["attack"] != "none"]["correct"].mean()
    assert att_err > clean_err
    assert any(f["id"] == "clean_vs_attack" for f in res["findings"])
    # the ensemble-size finding reads the members from the view names (1, 2) and the live model (8)
    sizes = next(f for f in res["findings"] if f["id"] == "ensemble_size")["values"]
    assert set(sizes) == {"1", "2", "8"}


@pytest.mark.parametrize("fails", [False, True])
def test_the_demo_runs_on_at_most_two_threads_and_restores_the_callers_count(tmp_path, monkeypatch, fails):
    import testbed.demo as demo

    seen = []

    def fake_run(out, **kw):
        seen.append(torch.get_num_threads())
        if fails:
            raise RuntimeError("stage failed")
        return "result"

    monkeypatch.setattr(demo, "_run_demo", fake_run)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        if fails:
            with pytest.raises(RuntimeError, match="stage failed"):
                demo.run_demo(tmp_path)
        else:
            assert demo.run_demo(tmp_path) == "result"
        assert seen == [2] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
