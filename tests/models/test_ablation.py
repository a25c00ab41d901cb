"""The sim-to-real ablation: variants, the runner's table, and `testbed models ablate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from testbed.data import TRANSFORM_ORDER, CorpusConfig, build_corpus, read_index, synthesize
from testbed.models.ablation import ablation_variants, run_ablation
from testbed.errors import DataError

VARIANTS = ["multi-engine", "espeak-only", "no-noise"]


def make_real_folder(root: Path) -> Path:
    """A small folder-per-class 'real' set: yes / no / unknown, spoken by espeak-ng voices not in any order."""
    for label, words in (("yes", ["yes"]), ("no", ["no"]), ("unknown", ["house", "bird"])):
        for k, voice in enumerate(("en-us+f2", "en-gb-x-rp+m3")):
            for w in words:
                x = synthesize(w, engine="espeak", voice=voice, seed=k)
                (root / label).mkdir(parents=True, exist_ok=True)
                sf.write(root / label / f"{w}-{k}.wav", x, 16000)
    return root


@pytest.fixture(scope="module")
def tiny_ablation(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("cache")
    real = make_real_folder(tmp_path_factory.mktemp("real"))
    calls: list[tuple[str, int, int]] = []
    out = run_ablation(f"folder:{real}", arch="lm", steps=3, per_class=6, seed=1, variants=VARIANTS,
                       cache_dir=cache, progress=lambda w, d, t: calls.append((w, d, t)))
    return out, cache, calls


def test_variants_change_exactly_one_thing():
    base = CorpusConfig(per_class=5)
    v = ablation_variants(base)
    assert list(v)[:2] == ["multi-engine", "espeak-only"]
    assert v["multi-engine"] == base and len(base.engines) >= 2
    assert v["espeak-only"].engines == {"espeak": 1.0}
    assert v["espeak-only"].transforms == base.transforms
    for t in TRANSFORM_ORDER:
        cfg = v[f"no-{t}"]
        assert set(base.transforms) - set(cfg.transforms) == {t}
        assert cfg.engines == base.engines and cfg.per_class == base.per_class
        assert cfg.transform_params == base.transform_params


def test_ablation_table_has_one_row_per_variant_at_one_budget(tiny_ablation, tmp_path):
    out, _, calls = tiny_ablation
    assert out["arch"] == "lm" and out["steps"] == 3 and out["per_class"] == 6 and out["n_real"] == 8
    assert [r["variant"] for r in out["rows"]] == VARIANTS
    for r in out["rows"]:
        assert 0.0 <= r["real_acc"] <= 1.0 and 0.0 <= r["synthetic_test_acc"] <= 1.0
        assert set(r["real_per_class"]) == {"yes", "no", "unknown"}
        # overall accuracy is the clip-weighted mean of the per-class ones (2 yes, 2 no, 4 unknown)
        pc = r["real_per_class"]
        assert r["real_acc"] == pytest.approx((2 * pc["yes"] + 2 * pc["no"] + 4 * pc["unknown"]) / 8, abs=2e-3)
        assert r["real_keyword_acc"] == pytest.approx((pc["yes"] + pc["no"]) / 2, abs=2e-3)
    rows = {r["variant"]: r for r in out["rows"]}
    assert rows["espeak-only"]["engines"] == ["espeak"]
    assert len(rows["multi-engine"]["engines"]) >= 2
    assert "noise" in rows["multi-engine"]["transforms"] and "noise" not in rows["no-noise"]["transforms"]
    # progress was reported for every variant's data and training, training up to the shared budget
    for v in VARIANTS:
        assert (f"{v} train", 3, 3) in calls
        assert any(w == f"{v} data" for w, _, _ in calls)


def test_ablation_corpora_differ_as_configured(tiny_ablation):
    _, cache, _ = tiny_ablation
    v = ablation_variants(CorpusConfig(per_class=6, seed=1))
    idx = {name: read_index(build_corpus(v[name], cache)) for name in VARIANTS}  # cached: no rebuild
    speech = {name: [r for r in rows if r["label"] != "silence"] for name, rows in idx.items()}
    assert {r["engine"] for r in speech["espeak-only"]} == {"espeak"}
    assert len({r["engine"] for r in speech["multi-engine"]}) >= 2
    assert any("snr_db" in r["transforms"] for r in speech["multi-engine"])
    assert not any("snr_db" in r["transforms"] for r in speech["no-noise"])
    # the same plan otherwise: same words in the same clip ids
    assert [r["text"] for r in speech["no-noise"]] == [r["text"] for r in speech["multi-engine"]]
    files = {name: sorted(Path(build_corpus(v[name], cache)).glob("clips/yes/*.flac")) for name in VARIANTS}
    a, b = (sf.read(files[n][0])[0] for n in ("multi-engine", "no-noise"))
    assert not np.allclose(a, b)


def test_unknown_variant_and_foreign_real_class_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no-such"):
        run_ablation("folder:/nowhere", variants=["no-such"], cache_dir=tmp_path)
    real = tmp_path / "real"
    for label in ("yes", "banana"):
        (real / label).mkdir(parents=True)
        sf.write(real / label / "a.wav", 0.1 * np.ones(8000), 16000)
    with pytest.raises(DataError, match="banana"):
        run_ablation(f"folder:{real}", steps=1, per_class=1, variants=["multi-engine"], cache_dir=tmp_path)


def test_cli_ablate_json_and_bad_variant(cli, tiny_ablation, tmp_path, monkeypatch):
    _, cache, _ = tiny_ablation
    monkeypatch.setenv("TESTBED_CACHE_DIR", str(cache))
    real = make_real_folder(tmp_path / "real")
    res = cli(["models", "ablate", "--per-class", "6", "--steps", "2", "--seed", "1", "--variants",
               "multi-engine,no-noise", "--real", f"folder:{real}", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [r["variant"] for r in out["rows"]] == ["multi-engine", "no-noise"] and out["steps"] == 2
    bad = cli(["models", "ablate", "--variants", "no-such-thing", "--real", f"folder:{real}"])
    assert bad.exit_code == 2
    assert "no-such-thing" in bad.output and "Traceback" not in bad.output
