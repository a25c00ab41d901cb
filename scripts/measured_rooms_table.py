"""Issue 20's table: how far an over-the-air attack crafted on a simulated rig carries to measured rooms.

Given a zoo root, a crafting rig (e.g. ``rigs/office-sim.toml``) and a folder of measured room
impulse responses (one room per ``.wav``/``.flac`` file; e.g. ``../shared/data/rir-dev``), this
script

1. makes one measured-room rig per file in a temporary folder (or ``--keep DIR``): the crafting
   rig's speakers, DUT mic and positions, ``[room] model = "measured"``, the file's first channel
   as the user's path and its second channel (the first again for a mono file) as the
   adversary's, each onset moved to the path's geometric delay, and ``gain_db`` set so the
   room's mean path energy equals the simulated rig's mean DUT-path energy (the SNR at the mic
   is then the simulated one: ``../shared/NOTES-measured-rooms.md``);
2. runs the public held-out-channel protocol once, ``testbed attack eval --attack ota-pgd --rig
   CRAFT --eval-rig CRAFT --eval-rig ROOM ... --json`` (a subprocess of this Python), which
   crafts over-the-air PGD through the crafting rig's EOT bank and digital PGD, and plays both
   and the clean command through (a) the crafting channels, (b) fresh simulated draws of the
   crafting rig and (c) every measured room;
3. prints the table (markdown, or ``--json``) and writes ``table.json`` and ``table.md`` to ``--out``.

Usage::

    python scripts/measured_rooms_table.py --root models --rig rigs/office-sim.toml \\
        --irs ../shared/data/rir-dev --model lm-fp32 --eps 0.01,0.005 --n 200 [--json] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from testbed.acoustics import sample_channel  # noqa: E402
from testbed.acoustics.measured import IR_EXTENSIONS, read_ir  # noqa: E402
from testbed.errors import TestbedError  # noqa: E402
from testbed.fileio import atomic_write  # noqa: E402
from testbed.rig import load_rig  # noqa: E402


def energy_db(h: np.ndarray) -> float:
    """``10 log10(sum h^2)``: a digital path's gain, dB."""
    return 10 * math.log10(max(float(np.sum(np.asarray(h, dtype=np.float64) ** 2)), 1e-30))


def simulated_energy_db(rig) -> dict[str, float]:
    """Energy of the crafting rig's nominal user and adversary paths to its DUT mic, dB."""
    ch = sample_channel(rig, rig.dut.mic, None, rng=np.random.default_rng(0))
    return {s: energy_db(ch.h[s]) for s in (rig.user_speaker, rig.adversary_speaker)}


def room_files(folder: Path) -> list[Path]:
    """Every ``.wav``/``.flac`` directly in ``folder`` (one room each), sorted."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IR_EXTENSIONS)
    if not files:
        raise SystemExit(f"{folder}: no .wav or .flac impulse responses")
    return files


def make_room_rig(craft_path: Path, ir_file: Path, out_dir: Path, target_db: dict[str, float]) -> tuple[Path, dict]:
    """A measured-room rig for ``ir_file`` in ``out_dir/<stem>/``; returns its path and facts."""
    import tomli_w

    craft = load_rig(craft_path)
    user, adv, dut = craft.user_speaker, craft.adversary_speaker, craft.dut.mic
    data, fs = sf.read(str(ir_file), dtype="float64", always_2d=True)
    room_dir = out_dir / ir_file.stem
    irs = room_dir / "irs"
    irs.mkdir(parents=True, exist_ok=True)
    chans = {user: 0, adv: 1 if data.shape[1] > 1 else 0}
    for spk, c in chans.items():
        sf.write(irs / f"{spk}__{dut}.wav", data[:, c], int(fs), subtype="FLOAT")
    measured = {s: energy_db(read_ir(irs / f"{s}__{dut}.wav", craft.sample_rate)) for s in chans}
    gain_db = float(np.mean([target_db[s] - measured[s] for s in chans]))
    rig = tomllib.loads(Path(craft_path).read_text())
    rig["name"] = ir_file.stem
    rig["mics"] = {dut: rig["mics"][dut]}
    rig.pop("placements", None)
    room = rig["room"]
    for k in ("rt60_s", "rt60_bands_s", "air_absorption", "ray_tracing", "materials"):
        room.pop(k, None)
    room.update(model="measured", irs="irs", gain_db=round(gain_db, 3), channel=1, align="geometry")
    path = room_dir / "rig.toml"
    path.write_text(tomli_w.dumps(rig))
    load_rig(path)  # a bad file is one line naming it, before any crafting
    facts = {"room": ir_file.stem, "file": str(ir_file), "rig": str(path), "channels": int(data.shape[1]),
             "file_rate_hz": int(fs), "gain_db": round(gain_db, 2),
             "energy_db_as_recorded": {s: round(v, 2) for s, v in measured.items()},
             "energy_db_target": {s: round(v, 2) for s, v in target_db.items()}}
    return path, facts


def run_eval(args, craft_path: Path, room_rigs: list[Path], out: Path) -> dict:
    """``testbed attack eval --eval-rig ...`` in a subprocess; its heldout.json."""
    cmd = [sys.executable, "-c", "from testbed.cli.app import main; main()", "attack", "eval",
           "--model", args.model, "--attack", "ota-pgd", "--eps", args.eps, "--n", str(args.n),
           "--rig", str(craft_path), "--eval-rig", str(craft_path),
           *[a for p in room_rigs for a in ("--eval-rig", str(p))],
           "--eval-jitter-m", str(args.eval_jitter_m), "--eval-channels", str(args.eval_channels),
           "--seed", str(args.seed), "--root", str(args.root), "--out", str(out), "--json"]
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    if args.data:
        cmd += ["--data", args.data]
    for p in args.param or []:
        cmd += ["--param", p]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"testbed attack eval failed (exit {proc.returncode}): {tail[0]}")
    return json.loads((out / "heldout.json").read_text())


def table_rows(doc: dict, rooms: list[dict]) -> list[dict]:
    """One row per (eps, channels): (a) crafting channels, (b) fresh simulated draws, (c) each room."""
    names = {Path(r["rig"]).resolve(): r["room"] for r in rooms}
    rows = []
    for c in doc["craft"]:
        rows.append({"eps": c["eps"], "channels": "a", "where": f"{c['rig']} (crafting channels)", **_rates(c)})
        for e in doc["eval_rigs"]:
            if e["eps"] != c["eps"]:
                continue
            if e["kind"] == "measured":
                where, tag = names.get(Path(e["path"]).resolve(), e["rig"]), "c"
            else:
                where, tag = f"{e['rig']} (fresh simulated draws)", "b"
            rows.append({"eps": e["eps"], "channels": tag, "where": where, **_rates(e)})
    return rows


def _rates(r: dict) -> dict:
    return {"n": r["n"], "clean_error": r["clean_error"], "digital_pgd_error": r["digital_pgd_error"],
            "ota_pgd_error": r["error_rate"], "gap_vs_craft": r["gap_vs_craft"]}


def markdown(doc: dict, rows: list[dict], rooms: list[dict]) -> str:
    def pct(r):
        return f"{100 * r['value']:.1f} [{100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}]"

    lines = [f"`{doc['model']}`, over-the-air PGD crafted on `{doc['craft_rig']}`, {doc['n']} clips "
             f"(error %, Wilson 95 % interval; gap: crafting-channel error minus this one)", "",
             "| eps | channels | clean | digital PGD | OTA-PGD | gap (a) - here |", "|---|---|---|---|---|---|"]
    for r in rows:
        g = r["gap_vs_craft"]
        gap = "-" if r["channels"] == "a" else f"{100 * g['value']:+.1f} [{100 * g['ci95'][0]:+.0f}, {100 * g['ci95'][1]:+.0f}]"
        lines.append(f"| {r['eps']:g} | ({r['channels']}) {r['where']} | {pct(r['clean_error'])} | "
                     f"{pct(r['digital_pgd_error'])} | {pct(r['ota_pgd_error'])} | {gap} |")
    lines += ["", "| room | file channels | rate Hz | gain_db |", "|---|---|---|---|"]
    lines += [f"| {r['room']} | {r['channels']} | {r['file_rate_hz']} | {r['gain_db']:+.1f} |" for r in rooms]
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="zoo folder")
    ap.add_argument("--rig", type=Path, required=True, help="the simulated rig the attack is crafted on")
    ap.add_argument("--irs", type=Path, required=True, help="folder of measured room IRs, one room per file")
    ap.add_argument("--model", default="lm-fp32")
    ap.add_argument("--eps", default="0.01,0.005", help="L-inf bounds, comma-separated")
    ap.add_argument("--n", type=int, default=200, help="test clips")
    ap.add_argument("--steps", type=int, default=None, help="PGD steps (default: the attack's)")
    ap.add_argument("--param", action="append", help="more ota-pgd hyper-parameters, KEY=VALUE (repeatable)")
    ap.add_argument("--data", default=None, help="data set spec (default: the model card's)")
    ap.add_argument("--eval-jitter-m", type=float, default=0.5)
    ap.add_argument("--eval-channels", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("analysis/measured-rooms"))
    ap.add_argument("--keep", type=Path, default=None, help="write the measured rigs here instead of a temp folder")
    ap.add_argument("--json", action="store_true", help="print the JSON document instead of markdown")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    argv = None if argv is None else [str(a) for a in argv]
    args = parse_args(argv)
    try:
        craft = load_rig(args.rig)
        target = simulated_energy_db(craft)
        with tempfile.TemporaryDirectory(prefix="measured-rooms-") as tmp:
            rig_dir = args.keep or Path(tmp)
            made = [make_room_rig(args.rig, f, rig_dir, target) for f in room_files(args.irs)]
            rooms = [facts for _, facts in made]
            doc = run_eval(args, args.rig.resolve(), [p for p, _ in made], args.out)
    except TestbedError as exc:
        raise SystemExit(str(exc)) from None
    rows = table_rows(doc, rooms)
    result = {"model": doc["model"], "craft_rig": doc["craft_rig"], "n": doc["n"], "eps": [c["eps"] for c in doc["craft"]],
              "data": doc["data"], "eval_jitter_m": doc["eval_jitter_m"], "eval_channels": doc["eval_channels"],
              "rooms": rooms, "rows": rows, "command": "python scripts/measured_rooms_table.py "
              + " ".join(sys.argv[1:] if argv is None else argv)}
    md = markdown(doc, rows, rooms)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "table.json", json.dumps(result, indent=2), durable=False)
    atomic_write(args.out / "table.md", md, durable=False)
    print(json.dumps(result, indent=2) if args.json else md)
    return result


if __name__ == "__main__":
    main()
