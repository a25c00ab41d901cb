"""The rig map: a top-down picture of room, speakers, mics and placements."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from testbed.rig.schema import Rig

ROLE_COLOURS = {"user": "tab:blue", "adversary": "tab:red"}


def draw_rig(ax, rig: Rig, placement: str | None = None, show_placements: bool = True) -> None:
    """Draw ``rig`` top-down (x right, y up, metres) onto a matplotlib ``ax``."""
    from matplotlib.patches import Rectangle

    lx, ly, _ = rig.room.size_m
    ax.add_patch(Rectangle((0, 0), lx, ly, fill=False, lw=2, color="0.3"))
    pos = rig.positions(placement)
    for name, spk in rig.speakers.items():
        x, y, _ = pos[name]
        c = ROLE_COLOURS[spk.role]
        ax.plot(x, y, "s", ms=11, color=c, zorder=3)
        a = np.deg2rad(spk.facing_deg)
        ax.annotate("", xy=(x + 0.4 * np.cos(a), y + 0.4 * np.sin(a)), xytext=(x, y),
                    arrowprops=dict(arrowstyle="->", color=c, lw=1.5), zorder=3)
        ax.annotate(f"{name} ({spk.role})", (x, y), textcoords="offset points", xytext=(8, 8),
                    color=c, fontsize=9, weight="bold")
    for name, mic in rig.mics.items():
        x, y, _ = pos[name]
        dut = name == rig.dut.mic
        ax.plot(x, y, "o", ms=9, color="tab:green" if dut else "tab:olive", zorder=3,
                mec="k" if dut else None)
        ax.annotate(f"{name} [{mic.tier}]" + (" DUT" if dut else ""), (x, y),
                    textcoords="offset points", xytext=(8, -12), fontsize=8, color="tab:green")
    if rig.room.model == "measured":
        _draw_measured_paths(ax, rig, pos)
    if show_placements:
        for pname, moves in rig.placements.items():
            for thing, (x, y, _) in moves.items():
                ax.plot(x, y, "x", ms=8, color="0.4", zorder=2)
                ax.annotate(f"{pname}:{thing}", (x, y), textcoords="offset points",
                            xytext=(6, 4), fontsize=7, color="0.35")
    ax.set_xlim(-0.3, lx + 0.3)
    ax.set_ylim(-0.3, ly + 0.3)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.grid(alpha=0.3)


def _draw_measured_paths(ax, rig: Rig, pos: dict) -> None:
    """Dashed speaker -> mic lines labelled 'measured': these paths come from IR files, not the shoebox."""
    for sname, spk in rig.speakers.items():
        sx, sy, _ = pos[sname]
        for mname in rig.mics:
            mx, my, _ = pos[mname]
            ax.plot([sx, mx], [sy, my], "--", lw=1, color=ROLE_COLOURS[spk.role], alpha=0.6, zorder=1)
            ax.annotate("measured", ((sx + mx) / 2, (sy + my) / 2), fontsize=6, alpha=0.8,
                        color=ROLE_COLOURS[spk.role], ha="center")


def save_rig_map(rig: Rig, out: Path | str, placement: str | None = None) -> Path:
    """Write the rig map PNG to ``out`` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lx, ly, lz = rig.room.size_m
    fig, ax = plt.subplots(figsize=(7, 7 * ly / lx + 0.6))
    draw_rig(ax, rig, placement)
    acoustics = (f"measured IRs from {rig.room.irs}" if rig.room.model == "measured"
                 else f"RT60 {rig.room.rt60_s:g} s")
    ax.set_title(f"rig {rig.name}: {lx:g} x {ly:g} x {lz:g} m, {acoustics}"
                 + (f", placement {placement}" if placement else ""))
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
