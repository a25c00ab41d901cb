"""`testbed models ...` on a real zoo folder: list, show, eval, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf


def test_list_json_shows_sizes_beside_the_paper(cli, tone_zoo):
    root, names = tone_zoo
    res = cli(["models", "list", "--root", root, "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)["models"]}
    assert sorted(rows) == sorted(names)
    assert rows["lms-fp32"]["paper_size_mb"] == 1.8
    assert rows["lms-int8"]["size_bytes"] < rows["lms-fp32"]["size_bytes"]
    assert rows["lms-lowrank"]["param_count"] < rows["lms-fp32"]["param_count"]


def test_list_table_and_show_lowrank_ranks(cli, tone_zoo):
    root, _ = tone_zoo
    res = cli(["models", "list", "--root", root])
    assert res.exit_code == 0 and "lms-int4" in res.output and "paper MB" in res.output
    res = cli(["models", "show", "lms-lowrank", "--root", root])
    assert res.exit_code == 0, res.output
    assert "full rank" in res.output and "rank used" in res.output and "fraction" in res.output
    res = cli(["models", "show", "lms-int4", "--root", root, "--json"])
    card = json.loads(res.stdout)
    assert card["compression"]["bits"] == 4
    assert all(layer["distinct_weights"] <= 16 for layer in card["compression"]["layers"])


@pytest.mark.parametrize("args,needle", [
    (["models", "show", "nope"], "nope"),
    (["models", "eval", "nope"], "nope"),
    (["models", "build", "--arch", "resnet", "--quick"], "--arch"),
    (["models", "build", "--arch", "lm", "--variants", "int3"], "int3"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tone_zoo, args, needle):
    root, _ = tone_zoo
    res = cli(args + ["--root", root])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_tampered_model_eval_exits_2(cli, tone_zoo, tmp_path):
    import shutil

    root, _ = tone_zoo
    shutil.copytree(root / "lms-fp32", tmp_path / "lms-fp32")
    w = tmp_path / "lms-fp32" / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-1] + b"\x00")
    res = cli(["models", "eval", "lms-fp32", "--root", tmp_path, "--json"])
    assert res.exit_code == 2
    assert "does not match" in res.output and "Traceback" not in res.output


def test_eval_on_a_folder_subset_of_labels(cli, quick_zoo, tmp_path):
    """A folder: set with two of the model's classes (and one corrupt file) is evaluated on those."""
    from testbed.data import load_dataset
    from testbed.models import load_model, predict

    ds = load_dataset("synthetic", quick=True)
    folder = tmp_path / "two-words"
    picked = []
    for label in ("yes", "stop"):
        (folder / label).mkdir(parents=True)
        idx = np.flatnonzero(ds.test.y == ds.labels.index(label))[:4]
        for i in idx:
            sf.write(folder / label / f"{i}.wav", ds.test.x[i], ds.sample_rate)
            picked.append((ds.test.x[i], label))
    (folder / "yes" / "broken.wav").write_bytes(b"RIFF not audio")
    out_png = tmp_path / "cm.png"
    with pytest.warns(UserWarning, match="broken.wav"):
        res = cli(["models", "eval", "lm-fp32", "--root", quick_zoo, "--data", f"folder:{folder}",
                   "--json", "--out", out_png])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["n"] == len(picked) and set(result["per_class"]) == {"yes", "stop"}
    model = load_model("lm-fp32", quick_zoo)
    pred, _ = predict(model, np.stack([x for x, _ in picked]))
    want = np.mean([model.labels[p] == lab for p, (_, lab) in zip(pred, picked)])
    assert result["accuracy"] == pytest.approx(want, abs=1e-4)
    assert len(result["confusion"]) == 2 and len(result["confusion"][0]) == len(model.labels)
    assert out_png.stat().st_size > 1000 and out_png.read_bytes()[:4] == b"\x89PNG"


def test_eval_default_is_the_models_own_test_split(cli, quick_zoo):
    res = cli(["models", "eval", "lm-int8", "--root", quick_zoo, "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    from testbed.models import Zoo

    card = Zoo(quick_zoo).card("lm-int8")
    assert result["split"] == "test" and result["split_hash_matches_card"] is True
    assert result["accuracy"] == pytest.approx(card["metrics"]["test_accuracy"], abs=1e-4)
    assert result["accuracy"] > 2 / len(card["labels"])      # beats chance (1/12) widely


def test_quick_build_never_overwrites_a_full_build(cli, tone_zoo, tones, tmp_path):
    """`models build --quick` writes the zoo's real names: over a full build it stops (one line,
    exit 2, weights untouched); over an earlier quick build it goes on."""
    import shutil

    from testbed.models import build_zoo

    root, _ = tone_zoo
    for name in ("lms-fp32", "lms-int8"):
        shutil.copytree(root / name, tmp_path / name)
    before = (tmp_path / "lms-int8" / "weights.safetensors").read_bytes()
    res = cli(["models", "build", "--arch", "lms", "--variants", "int8", "--reuse-fp32", "--quick",
               "--root", tmp_path])
    assert res.exit_code == 2, res.output
    assert "full build of lms-int8" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert (tmp_path / "lms-int8" / "weights.safetensors").read_bytes() == before

    for name in ("lms-fp32", "lms-int8"):           # now both are quick builds: overwriting is fine
        card_path = tmp_path / name / "card.json"
        card = json.loads(card_path.read_text())
        card["data"]["quick"] = True
        card_path.write_text(json.dumps(card))
    assert build_zoo(["lms"], ["int8"], quick=True, root=tmp_path, dataset=tones, reuse_fp32=True) == ["lms-int8"]
    assert json.loads((tmp_path / "lms-int8" / "card.json").read_text())["data"]["quick"] is True
