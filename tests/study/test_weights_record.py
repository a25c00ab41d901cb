"""The study's committed evidence: its cells, ``zoo.json`` (the weights they were computed on) and
a copy of those weights report from a clean clone without the zoo and restore the exact models
to compute more; a zoo holding other weights is caught before a study measures anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from testbed.errors import TestbedError
from testbed.models.zoo import sha256_file
from testbed.study.record import RECORD_FILE, WEIGHTS_DIR, WeightsRecord

REPO = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "cells").glob("*.json"))}


def _clone(study: Path, dest: Path) -> Path:
    """What a clean clone has of a study: its cells, its weights record and archive, nothing else."""
    for folder in ("cells", WEIGHTS_DIR):
        shutil.copytree(study / folder, dest / folder)
    shutil.copy2(study / RECORD_FILE, dest / RECORD_FILE)
    return dest


def test_the_study_records_the_weights_of_every_model_its_cells_touch(quick_study, quick_zoo):
    out, _ = quick_study
    recorded = json.loads((out / RECORD_FILE).read_text())["models"]
    touched = {m for p in (out / "cells").glob("*.json")
               for m in (json.loads(p.read_text())["cell"]["source"], *json.loads(p.read_text())["cell"]["targets"])}
    assert set(recorded) == touched
    for name, sha in recorded.items():
        stored = name.split("@", 1)[0]
        assert sha == sha256_file(quick_zoo / stored / "weights.safetensors")
        # the archive holds those very bytes and the card that goes with them
        assert sha256_file(out / WEIGHTS_DIR / f"{sha}.safetensors") == sha
        assert json.loads((out / WEIGHTS_DIR / f"{sha}.json").read_text())["weights_sha256"] == sha


def test_a_clean_clone_reports_the_committed_cells_without_the_zoo(quick_study, cli, tmp_path):
    out, first = quick_study
    clone = _clone(out, tmp_path / "clone")
    res = cli(["study", "paper", "--quick", "--root", tmp_path / "no-zoo", "--out", clone, "--report-only", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["cached"] == got["total"] == first["total"] and got["computed"] == 0 and got["undone"] == 0
    assert set(got["not_in_zoo"]) == set(json.loads((out / RECORD_FILE).read_text())["models"])
    original, rebuilt = (json.loads((d / "summary.json").read_text()) for d in (out, clone))
    assert rebuilt["claims"] == original["claims"] and rebuilt["unfinished"] == {}
    assert (clone / "rows.csv").read_text() == (out / "rows.csv").read_text()
    assert not (tmp_path / "no-zoo").exists()                      # --report-only restores nothing


def test_a_clean_clone_restores_the_exact_models_and_recomputes_a_lost_cell_alike(quick_study, cli, tmp_path):
    out, first = quick_study
    clone = _clone(out, tmp_path / "clone")
    def source(path: Path) -> str:
        return json.loads(path.read_text())["cell"]["source"]

    cells = sorted((clone / "cells").glob("*.json"))
    # one deterministic model's cell and one of the stochastic ensemble (its draws are seeded too)
    lost = [next(p for p in cells if source(p) == "lm-fp32"), next(p for p in cells if source(p).startswith("lm-slr8"))]
    originals = {p.name: json.loads(p.read_text()) for p in lost}
    for p in lost:
        p.unlink()
    zoo = tmp_path / "fresh-zoo"
    res = cli(["study", "paper", "--quick", "--root", zoo, "--out", clone, "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    recorded = json.loads((out / RECORD_FILE).read_text())["models"]
    assert set(got["restored"]) == {n.split("@", 1)[0] for n in recorded} and got["not_in_zoo"] == []
    for name, sha in recorded.items():
        assert sha256_file(zoo / name.split("@", 1)[0] / "weights.safetensors") == sha
    assert got["computed"] == len(lost) and got["cached"] == first["total"] - len(lost)
    for name, was in originals.items():
        now = json.loads((clone / "cells" / name).read_text())
        assert now["cell"] == was["cell"] and now["clean_wrong"] == was["clean_wrong"]
        assert now["wrong"] == was["wrong"] and now["hit"] == was["hit"]


def test_a_tampered_archived_model_is_one_line_and_never_loaded(quick_study, cli, tmp_path):
    out, _ = quick_study
    clone = _clone(out, tmp_path / "clone")
    blob = sorted((clone / WEIGHTS_DIR).glob("*.safetensors"))[0]
    blob.write_bytes(blob.read_bytes()[:-8] + b"\x00" * 8)
    res = cli(["study", "paper", "--quick", "--root", tmp_path / "zoo", "--out", clone, "--only", "fig4", "--json"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and str(blob) in line and "weights_sha256" in line and "Traceback" not in line
    assert _files(clone) == _files(out)


def _retrain(zoo: Path, name: str) -> str:
    """Give ``name`` other weights (one tensor nudged), as a rebuilt model would have; its new sha."""
    folder = zoo / name
    tensors = load_file(folder / "weights.safetensors")
    first = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[first] = tensors[first] + 1e-3
    save_file(tensors, folder / "weights.safetensors")
    card = json.loads((folder / "card.json").read_text())
    card["weights_sha256"] = sha256_file(folder / "weights.safetensors")
    (folder / "card.json").write_text(json.dumps(card))
    return card["weights_sha256"]


def test_other_weights_in_the_zoo_are_an_error_until_new_weights(quick_study, quick_zoo, cli, tmp_path):
    out, _ = quick_study
    study = _clone(out, tmp_path / "study")
    zoo = tmp_path / "zoo"
    shutil.copytree(quick_zoo, zoo)
    new_sha = _retrain(zoo, "lm-int8")
    before = _files(study)
    args = ["study", "paper", "--quick", "--root", zoo, "--out", study, "--only", "fig4", "--json"]
    res = cli(args)
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "lm-int8" in line and RECORD_FILE in line and "Traceback" not in line
    assert _files(study) == before and WeightsRecord(study).get("lm-int8") != new_sha
    # --report-only still reports what is stored, for the recorded weights, and says so
    res = cli(["study", "paper", "--quick", "--root", zoo, "--out", study, "--only", "fig4", "--report-only", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["weights_changed"] == ["lm-int8"] and got["cached"] == got["total"] and got["computed"] == 0
    # --new-weights measures the new model; the old cells stay on disk
    res = cli([*args, "--new-weights"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["computed"] > 0 and got["cached"] + got["computed"] == got["total"]
    after = _files(study)
    assert all(after[name] == data for name, data in before.items()) and len(after) == len(before) + got["computed"]
    assert WeightsRecord(study).get("lm-int8") == new_sha


@pytest.mark.parametrize("text, field", [
    ("{not json", "unreadable"),
    ('{"models": []}', "field models"),
    ('{"models": {"lm-fp32": "abc"}}', "models.lm-fp32"),
    ('{"models": {"../lm-fp32": "' + "0" * 64 + '"}}', "models.'../lm-fp32'"),
])
def test_a_broken_weights_record_is_one_line_naming_the_file_and_field(quick_study, quick_zoo, cli, tmp_path,
                                                                        text, field):
    out, _ = quick_study
    study = _clone(out, tmp_path / "study")
    (study / RECORD_FILE).write_text(text)
    before = _files(study)
    res = cli(["study", "paper", "--quick", "--root", quick_zoo, "--out", study, "--only", "fig4", "--json"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and str(study / RECORD_FILE) in line and field in line and "Traceback" not in line
    assert _files(study) == before and (study / RECORD_FILE).read_text() == text
    with pytest.raises(TestbedError):
        WeightsRecord(study)


def test_git_keeps_the_study_cells_and_record_and_ignores_what_is_generated_from_them():
    import subprocess

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO).returncode == 0

    for kept in ("analysis/study-paper/cells/0123.json", "analysis/study-paper/zoo.json",
                 "analysis/study-paper/weights/0123.safetensors", "analysis/study-paper/weights/0123.json",
                 "analysis/study-paper-ambient/cells/0123.json", "analysis/study-paper-ambient/zoo.json",
                 "analysis/study-paper-ambient/weights/0123.safetensors"):
        assert not ignored(kept), kept
    for generated in ("analysis/study-paper/report.html", "analysis/study-paper/summary.json",
                      "analysis/study-paper/figures/fig4.png", "analysis/study-paper-quick/cells/0123.json",
                      "analysis/some-session/report.html"):
        assert ignored(generated), generated


def test_a_run_of_one_figure_records_every_model_of_the_grid(quick_study, quick_zoo, cli, tmp_path):
    """A model built after the last run (here: dropped from the record) is pinned by the next run,
    whichever figures it computes: otherwise a zoo built but measured only in part is lost with the machine."""
    out, first = quick_study
    study = _clone(out, tmp_path / "study")
    record = json.loads((study / RECORD_FILE).read_text())
    sha = record["models"].pop("lm-lowrank")
    (study / RECORD_FILE).write_text(json.dumps(record))
    (study / WEIGHTS_DIR / f"{sha}.safetensors").unlink()
    res = cli(["study", "paper", "--quick", "--root", quick_zoo, "--out", study, "--only", "fig8", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["computed"] == 0 and got["cached"] == got["total"] > 0      # fig8 touches lm-slr8 only
    assert WeightsRecord(study).get("lm-lowrank") == sha
    assert sha256_file(study / WEIGHTS_DIR / f"{sha}.safetensors") == sha
