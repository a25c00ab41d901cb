"""`testbed attack eval --eval-rig ...`: the held-out-channel protocol's printing and JSON.

Kept apart from ``cli/attack.py`` (which only calls :func:`run_heldout`) so that the
held-out protocol and new attack kinds change different files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from testbed.cli.common import console, make_progress, print_json


def run_heldout(model, model_name: str, x, y, spec: str, *, kind: str, eps: Sequence[float], params: dict,
                craft_rig_path: Path | None, eval_rig_paths: Sequence[Path], eval_jitter_m: float,
                n_channels: int, seed: int, batch_size: int, out: Path, json_out: bool) -> None:
    """Craft ``ota-pgd`` through ``craft_rig_path``, evaluate through each ``eval_rig_paths``; print and save.

    Writes ``heldout.json`` to ``out``; with ``json_out`` prints the same object:
    ``{"attack", "model", "craft_rig", "n", "eval_jitter_m", "data", "craft": [row per eps],
    "eval_rigs": [row per eval rig and eps]}``, each row holding ``rig``, ``path``, ``kind``,
    ``eps``, ``n``, ``clean_error``, ``error_rate``, ``digital_pgd_error`` (each
    ``{value, ci95, k, n}``) and ``gap_vs_craft`` (``{value, ci95}``).
    """
    import json

    from rich.table import Table

    from testbed.attacks.heldout import heldout_eval
    from testbed.errors import AttackError
    from testbed.fileio import atomic_write
    from testbed.rig import load_rig

    if kind != "ota-pgd":
        raise AttackError(f"--eval-rig: the held-out-channel protocol crafts with --attack ota-pgd, not {kind!r}")
    if craft_rig_path is None:
        raise AttackError("--eval-rig: give --rig, the rig whose channels the attack is crafted through")
    if eval_jitter_m < 0:
        raise AttackError(f"--eval-jitter-m: must be >= 0 metres, got {eval_jitter_m}")
    if n_channels < 1:
        raise AttackError(f"--eval-channels: must be at least 1, got {n_channels}")
    craft_rig = params.pop("rig", None) or load_rig(craft_rig_path)
    eval_rigs = [load_rig(p) for p in eval_rig_paths]  # a bad eval rig fails before any crafting
    with make_progress(transient=True, disable=json_out) as bar:
        task = bar.add_task("held-out channels", total=None)
        rows = heldout_eval(model, x, y, craft_rig=craft_rig, eval_rigs=eval_rigs, eps=eps, params=params,
                            eval_jitter_m=eval_jitter_m, n_eval_channels=n_channels, seed=seed,
                            batch_size=batch_size, progress=lambda msg: bar.update(task, description=msg))
    paths = [str(craft_rig_path)] + [str(p) for p in eval_rig_paths]
    doc = {"attack": kind, "model": model_name, "craft_rig": craft_rig.name, "craft_rig_path": str(craft_rig_path),
           "n": int(len(x)), "data": spec, "eval_jitter_m": eval_jitter_m, "eval_channels": n_channels,
           "craft": [], "eval_rigs": []}
    per_eps = len(eval_rigs) + 1
    for i, r in enumerate(rows):
        d = {**r.as_dict(), "path": paths[i % per_eps]}
        (doc["craft"] if r.kind == "craft" else doc["eval_rigs"]).append(d)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "heldout.json", json.dumps(doc, indent=2), durable=False)
    if json_out:
        print_json(doc)
        return
    t = Table(title=f"{model_name}: ota-pgd crafted on {craft_rig.name}, {len(x)} clips "
                    "(error %, Wilson 95 % interval)")
    for col in ("eps", "played in", "kind", "clean", "digital PGD", "over the air", "gap vs craft"):
        t.add_column(col, justify="left" if col in ("played in", "kind") else "right")

    def pct(rate):
        return f"{100 * rate.value:.1f} [{100 * rate.ci95[0]:.0f}-{100 * rate.ci95[1]:.0f}]"

    for r in rows:
        g = r.gap_vs_craft
        t.add_row(f"{r.eps:g}", r.rig, r.kind, pct(r.clean_error), pct(r.digital_pgd_error), pct(r.error_rate),
                  "-" if r.kind == "craft" else
                  f"{100 * g['value']:+.1f} [{100 * g['ci95'][0]:+.0f}, {100 * g['ci95'][1]:+.0f}]")
    console.print(t)
    console.print(f"wrote {out / 'heldout.json'}")
