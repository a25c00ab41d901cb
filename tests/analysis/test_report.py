"""The HTML report: self-contained, numbers equal to summary.json, and it renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from testbed.analysis import Sessions, build_report, rate_table
from testbed.analysis.plots import FIGURES, plot_bit_depth, plot_delay_curves, plot_ensemble_size
from testbed.rig import load_rig

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is required for the report test: apt-get install chromium (scripts/system-deps.sh)"
    return exe


def screenshot(html, out_png, tmp_path):
    subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}",
         f"--screenshot={out_png}", "--window-size=1200,2000", html.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    import matplotlib.image

    return matplotlib.image.imread(str(out_png))


@pytest.fixture(scope="module")
def report(evals, office_rig_path_module, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rig = load_rig(office_rig_path_module)
    meta = {"rig": rig.model_dump(mode="json"), "plan": {"name": "synthetic"}, "seed": 3,
            "git_revision": "abc1234", "versions": {"testbed": "0.1.0"}}
    return build_report(Sessions(evals, {"s1": meta}, {"s1": out / "s1"}), out / "analysis" / "s1",
                        by=["mic", "delay"])


@pytest.fixture(scope="module")
def office_rig_path_module():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "rigs" / "office-sim.toml"


def test_report_is_self_contained_and_complete(report):
    html = report.html_path.read_text()
    assert report.html_path.name == "report.html" and report.html_path.parent.name == "s1"
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(imgs) == len(report.figures) >= 5
    assert all(src.startswith("data:image/png;base64,") for src in imgs)
    assert not re.search(r'(src|href)="(https?:|file:|/)', html)
    assert {"positions", "delay", "eps", "mics", "transfer", "bits"} <= set(report.figures)
    for f in report.findings:
        assert f["text"].replace("'", "&#39;") in html
    assert "abc1234" in html and "Provenance" in html


def test_summary_json_has_the_same_numbers(report, evals):
    summary = json.loads(report.summary_path.read_text())
    assert summary["by"] == ["mic", "delay_ms"]
    t = rate_table(evals, ["mic", "delay_ms"])
    assert [(r["mic"], r["delay_ms"], r["errors"], r["n"]) for r in summary["main_table"]] == \
        [(r.mic, r.delay_ms, r.errors, r.n) for r in t.itertuples()]
    assert [f["text"] for f in summary["findings"]] == [f["text"] for f in report.findings]
    assert summary["mic_pairs"][0]["n_pairs"] > 0
    assert summary["provenance"]["s1"]["seed"] == 3
    html = report.html_path.read_text()
    first = summary["main_table"][0]
    assert f"{100 * first['error_rate']:.0f}% [{100 * first['error_lo']:.0f}, {100 * first['error_hi']:.0f}]" in html


def test_report_renders_in_headless_chromium(report, tmp_path):
    img = screenshot(report.html_path, tmp_path / "shot.png", tmp_path)
    assert img.shape[0] >= 1900 and img.shape[1] >= 1150
    grey = img[..., :3].mean(axis=2)
    assert grey.std() > 0.05                      # not one flat colour
    assert (grey < 0.5).mean() > 0.01             # text and plots drawn, not a blank page
    # an empty page renders flat: the same check must fail on it
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>")
    assert screenshot(blank, tmp_path / "blank.png", tmp_path)[..., :3].std() < 0.01


def test_plots_skip_what_the_data_do_not_hold(evals):
    one_delay = evals[evals["delay_ms"] == 0]
    assert plot_delay_curves(one_delay) is None
    assert plot_ensemble_size(evals) is None      # no ensemble models in the synthetic store
    fp32 = evals[evals["model"] == "lm-fp32"]
    assert plot_bit_depth(fp32) is None
    fig = plot_bit_depth(evals)
    ax = fig.axes[0]
    xs = sorted({float(x) for line in ax.get_lines() for x in np.atleast_1d(line.get_xdata())})
    assert xs == [8.0, 32.0]
    assert set(FIGURES) == {"positions", "delay", "eps", "mics", "bits", "ensemble", "transfer"}


def test_position_map_labels_each_placement_with_its_rate(evals, office_rig_path_module):
    from testbed.analysis.plots import plot_positions

    fig = plot_positions(evals, load_rig(office_rig_path_module))
    texts = [t.get_text() for t in fig.axes[0].texts]
    att = evals[(evals["attack"] != "none") & evals["is_dut_mic"]]
    for p in ("P1", "P2"):
        rate = 100 * (~att[att["placement"] == p]["correct"]).mean()
        assert any(t.startswith(f"{p}: {rate:.0f}% [") for t in texts), texts
    assert any("user (user)" in t for t in texts)      # the rig itself is drawn underneath


def test_ensemble_curve_reads_member_counts_from_model_names(evals):
    df = evals[evals["model"] == "lm-fp32"].copy()
    parts = []
    for k in (1, 2, 4):
        d = df.copy()
        d["model"] = f"lm-slr8@k{k}"
        d["model_variant"] = f"slr8@k{k}"
        parts.append(d)
    fig = plot_ensemble_size(pd.concat(parts))
    xs = sorted({float(x) for line in fig.axes[0].get_lines() for x in np.atleast_1d(line.get_xdata())})
    assert xs == [1.0, 2.0, 4.0]
