"""`testbed study paper --quick`: the paper's grid on a tiny zoo, its report, and resuming after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testbed.study import StudySettings, paper_cells
from testbed.study.run import CellStore

REPO = Path(__file__).resolve().parents[2]


def test_quick_study_writes_a_report_with_every_figure_and_claim(quick_study):
    out, summary_line = quick_study
    assert summary_line["computed"] + summary_line["cached"] == summary_line["total"] > 10
    assert summary_line["undone"] == 0 and not summary_line["failed"]
    html = (out / "report.html").read_text()
    assert "Paper says / we measure" in html
    summary = json.loads((out / "summary.json").read_text())
    figures = set(summary["figures"])
    assert {"fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "defence"} <= figures, figures
    for name in figures:
        assert f'alt="{name}"' in html and (out / "figures" / f"{name}.png").stat().st_size > 1000
    claims = {c["paper"]: c for c in summary["claims"]}
    assert len(claims) == 9
    # every cell records the code that computed it (a cell key names what is measured, not how)
    (rev, k), = summary["computed_by"].items()
    assert k == summary_line["computed"] and rev != "not recorded"
    cell = json.loads(next((out / "cells").glob("*.json")).read_text())
    assert cell["versions"]["torch"] and cell["versions"]["git"] == rev
    vulnerable = claims["Undefended models are extremely vulnerable to white-box PGD (error near 100 %)"]
    assert vulnerable["verdict"] != "not measured" and vulnerable["interval"].startswith("[")
    defence = claims["The stochastic low-rank ensemble (SLR) lowers the white-box error against fp32"]
    assert "McNemar p" in defence["interval"] and "p_holm" in defence
    rows = (out / "rows.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"error_rate", "ci_low", "ci_high", "n"} <= set(header)
    for line in rows[1:]:
        r = dict(zip(header, line.split(",")))
        assert float(r["ci_low"]) <= float(r["error_rate"]) <= float(r["ci_high"])
        assert int(r["n"]) == 16


def test_report_only_writes_the_report_from_stored_cells_and_computes_none(quick_study, quick_zoo, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from testbed.cli.app import app

    out, first = quick_study
    copy, empty = tmp_path / "copy", tmp_path / "empty"
    shutil.copytree(out / "cells", copy / "cells")
    stored = sorted(p.name for p in (copy / "cells").iterdir())
    for folder, cached in ((copy, first["total"]), (empty, 0)):
        res = CliRunner().invoke(app, ["study", "paper", "--quick", "--root", str(quick_zoo), "--out", str(folder),
                                       "--report-only", "--json"])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout)
        assert summary["computed"] == 0 and summary["cached"] == cached
        assert summary["undone"] == first["total"] - cached
        assert (folder / "report.html").stat().st_size > 1000
    assert sorted(p.name for p in (copy / "cells").iterdir()) == stored
    assert not (empty / "cells").exists() or not any((empty / "cells").iterdir())
    assert "not measured" in json.dumps(json.loads((empty / "summary.json").read_text())["claims"])


def test_models_missing_from_the_zoo_are_named_not_attacked(quick_study, quick_zoo):
    out, _ = quick_study
    html = (out / "report.html").read_text()
    assert "lm-int4" in html.split("Not in the zoo")[1].split("</p>")[0]       # the quick zoo has no INT4
    cells = paper_cells(lambda n: n in {"lm-fp32"}, {"pgd": ["steps"]}, StudySettings.quick())
    assert {c.source for c in cells} == {"lm-fp32"}


def test_lm_cells_come_first():
    have = {"lm-fp32", "ete-fp32", "lms-fp32", "lm-int8", "ete-int8"}
    cells = paper_cells(lambda n: n in have, {"fgsm": [], "pgd": ["steps"]}, StudySettings.quick())
    archs = [c.arch for c in cells]
    assert archs[: archs.count("lm")] == ["lm"] * archs.count("lm")
    assert archs.index("ete") < archs.index("lms")


def test_auto_against_a_stochastic_defence_decides_from_the_draws_mean():
    """...and runs AutoAttack's version for randomised defences; deterministic models get neither."""
    have = {"lm-fp32", "lm-slr8", "lm-advtrain"}
    attacks = {"auto": ["steps", "n_queries", "check", "eot_samples", "version"], "pgd": ["steps", "eot_samples"]}
    cells = [c for c in paper_cells(lambda n: n in have, attacks, StudySettings.quick()) if c.figure == "defence"]
    params = {c.source: dict(c.params) for c in cells}
    assert params["lm-slr8"]["check"] == "eot" and params["lm-slr8"]["eot_samples"] == 2
    assert "check" not in params["lm-fp32"] and "check" not in params["lm-advtrain"]
    assert params["lm-slr8"]["version"] == "rand"
    assert "version" not in params["lm-fp32"] and "version" not in params["lm-advtrain"]


def test_study_resumes_after_a_kill_without_recomputing_finished_cells(quick_zoo, tmp_path):
    out = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "testbed.cli.app", "study", "paper", "--quick", "--root", str(quick_zoo),
           "--out", str(out), "--only", "fig4"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells_dir = out / "cells"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if cells_dir.is_dir() and len(list(cells_dir.glob("*.json"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the study finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    before = {p.name: p.read_bytes() for p in cells_dir.glob("*.json")}
    assert len(before) >= 2
    from testbed.models import Zoo
    from testbed.study import study_paper

    res = study_paper(models_root=quick_zoo, out_dir=out, quick=True, only=["fig4"])
    assert res.run.cached == len(before)
    assert res.run.computed == res.run.total - len(before) and res.run.undone == 0
    after = {p.name: p.read_bytes() for p in cells_dir.glob("*.json")}
    assert all(after[name] == data for name, data in before.items())      # finished cells untouched
    assert len(after) == res.run.total
    assert len(list(CellStore(out).results())) == res.run.total
    # a third run computes nothing
    again = study_paper(models_root=quick_zoo, out_dir=out, quick=True, only=["fig4"])
    assert again.run.cached == again.run.total and again.run.computed == 0
    assert Zoo(quick_zoo).exists("lm-fp32")


def test_an_unknown_figure_is_one_line(cli, tmp_path):
    res = cli(["study", "paper", "--quick", "--root", tmp_path / "zoo", "--out", tmp_path / "s", "--only", "fig42"])
    assert res.exit_code == 2
    assert "fig42" in res.output and "Traceback" not in res.output


def test_the_scene_task_builds_its_zoo_and_runs_the_grid(cli, tmp_path):
    """``--data ambient:PATH``: long recordings cut into 3-s chunks, split by time, a scene zoo built
    under the zoo folder, and the same grid reported (here only Fig 6's cells, to stay quick)."""
    import numpy as np
    import soundfile as sf

    sr = 16000
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    rng = np.random.default_rng(0)
    for name, f in (("hum", 120.0), ("whistle", 2000.0)):
        t = np.arange(60 * sr) / sr
        x = 0.2 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(scenes / f"{name}.wav", x.astype(np.float32), sr)
    out = tmp_path / "study"
    res = cli(["study", "paper", "--quick", "--data", f"ambient:{scenes}", "--root", tmp_path / "zoo",
               "--out", out, "--only", "fig6", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["zoo"].startswith(str(tmp_path / "zoo" / "scenes-"))
    assert got["total"] == got["computed"] > 0
    rows = (out / "rows.csv").read_text().splitlines()
    assert all(",fig6," in f",{line}," for line in rows[1:])
    assert "fig6" in json.loads((out / "summary.json").read_text())["figures"]
    # an interrupted zoo build resumes: only the missing variant is built, from the stored fp32
    import shutil

    from testbed.study.paper import scene_zoo

    root = Path(got["zoo"])
    fp32 = (root / "lm-fp32" / "weights.safetensors").stat()
    shutil.rmtree(root / "lm-int8")
    res = cli(["study", "paper", "--quick", "--data", f"ambient:{scenes}", "--root", tmp_path / "zoo",
               "--out", out, "--only", "fig6", "--report-only", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["computed"] == 0 and not (root / "lm-int8").exists()   # builds nothing
    assert scene_zoo(f"ambient:{scenes}", tmp_path / "zoo", quick=True) == root
    assert (root / "lm-int8" / "weights.safetensors").is_file()
    again = (root / "lm-fp32" / "weights.safetensors").stat()
    assert (again.st_ino, again.st_mtime_ns) == (fp32.st_ino, fp32.st_mtime_ns)      # not trained again
