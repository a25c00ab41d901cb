"""Attack vs attack on the same utterances: McNemar on shared cells, utterance bootstrap, Holm."""

from __future__ import annotations

import pandas as pd
import pytest

from testbed.analysis.attack_pairs import all_attack_pairs, paired_attack_errors
from testbed.stats import mcnemar_exact


def _rows(attack_id: str, wrong_at, delays=(0.0, 500.0), n_utt: int = 20, **extra) -> list[dict]:
    return [{"session_id": "s", "utterance_id": f"u{u}", "delay_ms": d, "placement": "P1", "repetition": 0,
             "mic": "cheap", "model": "m", "eval_source": "live", "attack": attack_id.split("-")[0],
             "attack_id": attack_id, "correct": not wrong_at(u, d), "failed": False, **extra}
            for u in range(n_utt) for d in delays]


def _frame() -> pd.DataFrame:
    rows = (_rows("none", lambda u, d: False)
            + _rows("universal-a", lambda u, d: True)                       # always wrong
            + _rows("pgd-b", lambda u, d: d == 0.0 and u < 15)              # wrong in sync only, 15 of 20
            + _rows("pgd-c", lambda u, d: u < 2, delays=(0.0,), n_utt=5))   # 5 utterances, delay 0 only
    return pd.DataFrame(rows)


def test_pairs_count_discordant_cells_and_split_by_delay():
    res = all_attack_pairs(_frame(), by="delay_ms")
    ab = {(r["group"] or {}).get("delay_ms"): r for r in res if (r["attack_a"], r["attack_b"]) == ("pgd-b", "universal-a")}
    pooled, sync, late = ab[None], ab[0.0], ab[500.0]
    assert pooled["n_pairs"] == 40 and pooled["a_only"] == 0 and pooled["b_only"] == 25
    assert pooled["p_value"] == pytest.approx(mcnemar_exact(0, 25))
    assert (sync["b_only"], late["b_only"]) == (5, 20)
    assert pooled["diff"] == pytest.approx(15 / 40 - 1.0) and pooled["diff_lo"] <= pooled["diff"] <= pooled["diff_hi"]
    assert pooled["n_utterances"] == 20
    # the clean baseline is never compared; pgd-c meets the others only on its 5 utterances at delay 0
    assert all("none" not in (r["attack_a"], r["attack_b"]) for r in res)
    bc = [r for r in res if (r["attack_a"], r["attack_b"]) == ("pgd-b", "pgd-c")]
    assert [r["n_pairs"] for r in bc] == [5]          # one delay shared: no per-delay rows
    # Holm over every row: never below the raw p, all rows counted
    assert all(r["p_holm"] >= r["p_value"] and r["n_comparisons"] == len(res) for r in res)


def test_identical_attacks_are_within_noise_and_failed_captures_drop_out():
    df = _frame()
    df.loc[(df["attack_id"] == "universal-a") & (df["utterance_id"] == "u0"), "failed"] = True
    pairs = paired_attack_errors(df, "pgd-b", "universal-a")
    assert len(pairs) == 38 and "u0" not in set(pairs.index.get_level_values("utterance_id"))
    same = pd.concat([df, df[df["attack_id"] == "pgd-b"].assign(attack_id="pgd-b2")])
    r = next(r for r in all_attack_pairs(same) if (r["attack_a"], r["attack_b"]) == ("pgd-b", "pgd-b2"))
    assert (r["a_only"], r["b_only"], r["p_value"], r["diff"]) == (0, 0, 1.0, 0.0)
