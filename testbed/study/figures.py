"""One picture per paper figure, drawn from the study table with the paper's axes; every point
carries its Wilson 95 % interval as an error bar."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from testbed.study.table import pick  # noqa: E402

TITLES = {
    "fig4": "Fig 4: white-box error vs eps (uncompressed and compressed)",
    "fig5": "Fig 5: black-box error vs eps (untargeted; targeted success dashed)",
    "fig6": "Fig 6: error vs sync delay",
    "fig7": "Fig 7: transfer across architectures (error %)",
    "fig8": "Fig 8: error under attack vs ensemble members",
    "fig9": "Fig 9: error by bit depth",
    "defence": "Defences: white-box error vs eps",
}


#: Fig 5's colour of each black-box attack (its targeted curve is the same colour, dashed)
BLACK_BOX_COLOURS = {"nes": "C0", "square": "C1"}
#: each model variant's colour in Figs 4 and 9's lines and the defence figure, the same in every panel
VARIANT_COLOURS = {v: f"C{i}" for i, v in enumerate(("fp32", "lowrank", "int16", "int8", "int4"))} | {
    v: f"C{i}" for i, v in enumerate(("fp32", "slr8", "advtrain", "distill", "rse", "smooth"))}
#: each white-box attack's line style in Fig 4 (the colour is the model's)
ATTACK_STYLES = {"fgsm": ":", "pgd": "-", "apgd": "--", "auto": "-"}


def _errbar(ax, x, rows: pd.DataFrame, label: str, **kw) -> None:
    y = 100 * rows.error_rate.to_numpy()
    lo, hi = 100 * rows.ci_low.to_numpy(), 100 * rows.ci_high.to_numpy()
    ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=label, **kw)


def _lines(ax, rows: pd.DataFrame, by: list[str], x: str, logx: bool = False,
           styles: dict[str, dict] | None = None) -> None:
    """One error-bar line per group of ``by``; ``styles`` maps a line's label to its plot keywords."""
    for keys, g in rows.groupby(by, sort=True):
        g = g.sort_values(x)
        label = " ".join(str(k) for k in np.atleast_1d(keys))
        _errbar(ax, g[x].to_numpy(), g, label, **(styles or {}).get(label, {}))
    if logx:                # label the measured bounds only (log-scale minor labels overlap)
        ax.set_xscale("log")
        ticks = np.unique(rows[x].to_numpy(dtype=float))
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=7)
        ax.minorticks_off()
    ax.set_ylim(-2, 102)
    ax.set_ylabel("error %")
    ax.grid(alpha=0.3)
    many = rows.groupby(by).ngroups > 6         # Fig 4's 15 lines: a short, wide legend at the bottom
    ax.legend(fontsize=6 if many else 7, ncol=3 if many else 1, loc="lower right" if logx else "best")


def _per_arch(table: pd.DataFrame, figure: str, draw) -> plt.Figure | None:
    rows = pick(table, figure=figure)
    if rows.empty:
        return None
    archs = sorted(rows.arch.unique())
    fig, axes = plt.subplots(1, len(archs), figsize=(5 * len(archs), 3.8), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        draw(ax, rows[rows.arch == arch])
        ax.set_title(arch.upper())
    return fig


def draw_figures(table: pd.DataFrame, out_dir: Path | str) -> dict[str, Path]:
    """PNG per figure that has finished cells: ``{figure: path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs: dict[str, plt.Figure | None] = {}
    untargeted = table[table.target_label == "untargeted"]

    def eps_lines(ax, rows):
        # colour = model variant, line style = attack, the same in every panel
        styles = {f"{v} {a}": {"color": VARIANT_COLOURS.get(v), "linestyle": ATTACK_STYLES.get(a, "-")}
                  for v, a in zip(rows.variant, rows.attack)}
        _lines(ax, rows, ["variant", "attack"], "eps", logx=True, styles=styles)
        ax.set_xlabel("eps (L-inf, PCM)")

    figs["fig4"] = _per_arch(untargeted, "fig4", eps_lines)

    def black(ax, rows):
        # one colour per attack in every panel, whichever attacks a panel has
        _lines(ax, rows[rows.target_label == "untargeted"], ["attack"], "eps", logx=True,
               styles={a: {"color": c} for a, c in BLACK_BOX_COLOURS.items()})
        for keys, g in rows[rows.target_label != "untargeted"].groupby(["attack", "target_label"]):
            g = g.sort_values("eps")
            ax.plot(g.eps, 100 * g.success_rate.astype(float), "--", marker="x", label=f"{keys[0]} -> {keys[1]}",
                    color=BLACK_BOX_COLOURS.get(keys[0]))
        ax.legend(fontsize=7)
        ax.set_xlabel("eps (L-inf, PCM)")

    figs["fig5"] = _per_arch(table, "fig5", black)

    def delay(ax, rows):
        _lines(ax, rows, ["attack", "eps"], "delay_ms")
        ax.set_xlabel("sync delay (ms)")

    figs["fig6"] = _per_arch(untargeted, "fig6", delay)
    rows = pick(untargeted, figure="fig7")
    if not rows.empty:
        attacks = sorted(rows.attack.unique())
        fig, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 4), squeeze=False)
        for ax, attack in zip(axes[0], attacks):
            m = rows[rows.attack == attack].pivot_table(index="source", columns="target", values="error_rate")
            ax.imshow(100 * m.to_numpy(), vmin=0, vmax=100, cmap="magma")
            ax.set_xticks(range(len(m.columns)), m.columns, rotation=45, fontsize=7)
            ax.set_yticks(range(len(m.index)), m.index, fontsize=7)
            ax.set_xlabel("evaluated on", fontsize=8)
            ax.set_ylabel("crafted on", fontsize=8)
            for (i, j), v in np.ndenumerate(100 * m.to_numpy()):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="w" if v < 60 else "k", fontsize=8)
            ax.set_title(f"{attack.upper()}, eps {rows.eps.iloc[0]:g}")
        figs["fig7"] = fig

    def members(ax, rows):
        rows = rows.assign(k=rows.target.str.extract(r"@k(\d+)$")[0].astype(int))
        _lines(ax, rows, ["attack"], "k")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("ensemble members at inference")

    figs["fig8"] = _per_arch(untargeted, "fig8", members)

    def bits(ax, rows):
        rows = rows[rows.variant.isin(["fp32", "int16", "int8", "int4"])]
        rows = rows[np.isclose(rows.eps, rows.eps.min())]
        order = [v for v in ("fp32", "int16", "int8", "int4") if v in set(rows.variant)]
        for i, (attack, g) in enumerate(rows.groupby("attack")):
            g = g.set_index("variant").reindex(order)
            x = np.arange(len(order)) + 0.25 * i
            y = 100 * g.error_rate.to_numpy()
            ax.bar(x, y, width=0.25, label=f"{attack} eps {rows.eps.min():g}",
                   yerr=[y - 100 * g.ci_low.to_numpy(), 100 * g.ci_high.to_numpy() - y], capsize=3)
        ax.set_xticks(np.arange(len(order)), order)
        ax.set_ylim(0, 102)
        ax.set_ylabel("error %")
        ax.legend(fontsize=7)

    figs["fig9"] = _per_arch(untargeted.assign(figure=untargeted.figure.replace({"fig4": "fig9"})), "fig9", bits)
    figs["defence"] = _per_arch(untargeted, "defence", eps_lines)
    paths = {}
    for name, fig in figs.items():
        if fig is None:
            continue
        fig.suptitle(TITLES[name], fontsize=10)
        fig.tight_layout()
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=90)
        plt.close(fig)
    return paths
