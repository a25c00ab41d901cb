"""The study report with a certification cell beside attack cells (the full grid has one for lm-smooth)."""

from __future__ import annotations

import json

import numpy as np

from testbed.study.report import write_report
from testbed.study.run import StudyRun
from testbed.study.table import results_table


def _attack_cell(rng: np.random.Generator) -> dict:
    cell = {"attack": "pgd", "clip_seed": 0, "delays_ms": [0.0], "eps": 0.001, "figure": "defence", "n_clips": 20,
            "params": {"steps": 20}, "source": "lm-fp32", "target_label": None, "targets": ["lm-fp32"]}
    wrong = rng.random(20) < 0.8
    return {"cell": cell, "clean_wrong": {"lm-fp32": (wrong & (rng.random(20) < 0.3)).astype(int).tolist()},
            "wrong": {"lm-fp32@0": wrong.astype(int).tolist()}, "hit": {}, "n": 20, "queries": 400.0,
            "seconds": 1.0, "snr_db": 33.0, "key": "a"}


def _certify_cell() -> dict:
    cell = {"attack": "certify", "clip_seed": 0, "delays_ms": [0.0], "eps": 0.0, "figure": "certified",
            "n_clips": 4, "params": {"alpha": 0.001, "n": 1000, "n0": 100}, "source": "lm-smooth",
            "target_label": None, "targets": ["lm-smooth"]}
    certified = [{"correct": True, "radius_l2": 0.2}, {"correct": True, "radius_l2": 0.05},
                 {"correct": False, "radius_l2": 0.0}, {"correct": True, "radius_l2": 0.0}]
    return {"cell": cell, "certified": certified, "clean_wrong": {}, "hit": {}, "n": 4, "n_samples": 16000,
            "queries": 0.0, "seconds": 2.0, "snr_db": None, "wrong": {}, "key": "b"}


def test_a_certification_cell_has_no_error_rows():
    table = results_table([_attack_cell(np.random.default_rng(0)), _certify_cell()])
    assert list(table["attack"]) == ["pgd"] and list(table["target"]) == ["lm-fp32"]


def test_the_report_lists_certified_accuracy_beside_the_attack_rows(tmp_path):
    results = [_attack_cell(np.random.default_rng(1)), _certify_cell()]
    run = StudyRun(total=2, cached=2, results=results)
    report = write_report(run, tmp_path, title="t", zoo="z", data="d", n_clips=20, missing=[],
                          planned=[r["cell"] for r in results])
    assert report.exists() and "lm-smooth" in report.read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["unfinished"] == {}
    cert = summary["certified"]
    assert [c["model"] for c in cert] == ["lm-smooth"] * 5
    # radius 0: the three correct, non-abstained clips; eps 0.0005 (L2 0.063 on 16000 samples): one
    assert cert[0]["radius_l2"] == 0.0 and cert[0]["k"] == 3 and cert[0]["n"] == 4
    assert abs(cert[1]["linf_eps"] - 0.0005) < 1e-12 and cert[1]["k"] == 1
    assert (tmp_path / "rows.csv").read_text().count("lm-smooth") == 0
