"""The report's figures: positions over the floor plan, delay, eps, bit depth, ensemble, transfer, mics.

Every ``plot_*`` function takes an evaluations frame and returns a matplotlib Figure, or
``None`` when the data hold nothing to draw (e.g. a single bit depth). :func:`figure_png`
turns a figure into PNG bytes for the self-contained report.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from testbed.analysis.compare import mic_tiers
from testbed.analysis.dimensions import with_dimensions
from testbed.analysis.metrics import rate_table, usable
from testbed.rig.schema import Rig


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG bytes and close it."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def dut_view(df: pd.DataFrame) -> pd.DataFrame:
    """Evaluations at the DUT's own mic (all rows when the store does not say which that is)."""
    if "is_dut_mic" in df.columns and df["is_dut_mic"].fillna(False).astype(bool).any():
        return df[df["is_dut_mic"].fillna(False).astype(bool)]
    return df


def _attacked(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["attack"].astype(str) != "none"]


def _clean_rate(df: pd.DataFrame) -> float | None:
    clean = usable(df[df["attack"].astype(str) == "none"])
    if clean.empty:
        return None
    return float((~clean["correct"].astype(bool)).mean())


def _errbar(ax, x, t: pd.DataFrame, label: str, **kw) -> None:
    y = t["error_rate"].to_numpy(float) * 100
    lo = t["error_lo"].to_numpy(float) * 100
    hi = t["error_hi"].to_numpy(float) * 100
    ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=label, **kw)


def _finish(ax, xlabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error rate (%)")
    ax.set_ylim(-3, 103)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def plot_positions(df: pd.DataFrame, rig: Rig | None = None):
    """Attack error rate at the DUT mic vs adversary position, over the room's floor plan.

    Each adversary position (one per placement) is a disc coloured by its error rate and
    labelled with the rate and Wilson 95% interval; speakers, mics and the room are drawn by
    :func:`testbed.rig.mapping.draw_rig` when the rig is known.
    """
    need = {"adv_x_m", "adv_y_m"}
    att = _attacked(dut_view(df))
    if att.empty or not need <= set(att.columns) or att[["adv_x_m", "adv_y_m"]].isna().all().all():
        return None
    plt = _plt()
    from matplotlib import cm, colors

    att = att.copy()
    key = "placement" if "placement" in att.columns else None
    if key is None:
        att["_pos"] = att["adv_x_m"].round(1).astype(str) + "," + att["adv_y_m"].round(1).astype(str)
        key = "_pos"
    table = rate_table(att, [key])
    pos = att.groupby(key, observed=True)[["adv_x_m", "adv_y_m"]].mean()
    if rig is not None:
        lx, ly, _ = rig.room.size_m
        fig, ax = plt.subplots(figsize=(7.5, 7.5 * ly / lx + 0.8))
        from testbed.rig.mapping import draw_rig

        draw_rig(ax, rig, show_placements=False)
    else:
        fig, ax = plt.subplots(figsize=(7, 6))
        ax.set_aspect("equal")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.grid(alpha=0.3)
    norm = colors.Normalize(0, 100)
    cmap = plt.get_cmap("RdYlGn_r")
    for _, row in table.iterrows():
        x, y = pos.loc[row[key], "adv_x_m"], pos.loc[row[key], "adv_y_m"]
        rate = row["error_rate"] * 100
        ax.scatter([x], [y], s=420, color=cmap(norm(rate)), alpha=0.9, edgecolors="k", zorder=4)
        ax.annotate(f"{row[key]}: {rate:.0f}% [{row['error_lo'] * 100:.0f}, {row['error_hi'] * 100:.0f}]",
                    (x, y), textcoords="offset points", xytext=(0, -20), ha="center", va="top",
                    fontsize=8, zorder=5, weight="bold",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.6", alpha=0.85))
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.04,
                 label="attack error rate at DUT mic (%)")
    clean = _clean_rate(dut_view(df))
    ax.set_title("Error rate vs adversary position (attacks pooled)"
                 + (f"; clean error {clean * 100:.0f}%" if clean is not None else ""), fontsize=10)
    return fig


def plot_delay_curves(df: pd.DataFrame):
    """Error rate vs sync delay (ms), one curve per attack and eps, at the DUT mic (paper Fig. 6)."""
    data = dut_view(df)
    att = _attacked(data)
    if att.empty or att["delay_ms"].nunique() < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    t = rate_table(att, ["attack", "eps", "delay_ms"])
    for (attack, eps), g in t.groupby(["attack", "eps"], sort=True):
        g = g.sort_values("delay_ms")
        _errbar(ax, g["delay_ms"].to_numpy(float), g, f"{attack} eps {eps:g}")
    clean = _clean_rate(data)
    if clean is not None:
        ax.axhline(clean * 100, ls="--", color="0.4", label="clean (no attack)")
    _finish(ax, "sync delay (ms, adversary start minus user start)", "Error rate vs synchronisation delay")
    return fig


def plot_eps_curves(df: pd.DataFrame):
    """Error rate vs perturbation bound eps per model, one panel per attack (paper Fig. 4)."""
    data = dut_view(df)
    att = _attacked(data)
    if att.empty:
        return None
    attacks = sorted(att["attack"].astype(str).unique())
    plt = _plt()
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.2 * len(attacks), 4), squeeze=False)
    clean = rate_table(data[data["attack"].astype(str) == "none"], ["model"]) if (
        data["attack"].astype(str) == "none").any() else None
    for ax, attack in zip(axes[0], attacks):
        t = rate_table(att[att["attack"].astype(str) == attack], ["model", "eps"])
        eps_vals = sorted(t["eps"].unique())
        xs = {e: i + 1 for i, e in enumerate(eps_vals)}
        for model, g in t.groupby("model", sort=True):
            g = g.sort_values("eps")
            x = [xs[e] for e in g["eps"]]
            y0 = None
            if clean is not None and model in set(clean["model"]):
                y0 = clean[clean["model"] == model].iloc[0]
            if y0 is not None:
                g = pd.concat([y0.to_frame().T, g], ignore_index=True)
                x = [0, *x]
            _errbar(ax, x, g, str(model))
        ax.set_xticks([0, *xs.values()], ["clean", *[f"{e:g}" for e in eps_vals]])
        _finish(ax, "eps (L-inf, PCM full scale)", f"{attack}: error rate vs eps")
    fig.tight_layout()
    return fig


def _curve_by(df: pd.DataFrame, dim: str, xlabel: str, title: str):
    data = with_dimensions(dut_view(df), [dim])
    data = data[np.isfinite(data[dim].astype(float))]
    if data.empty or data[dim].nunique() < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    t = rate_table(data, ["attack", dim])
    for attack, g in t.groupby("attack", sort=True):
        g = g.sort_values(dim)
        _errbar(ax, g[dim].to_numpy(float), g, "no attack" if attack == "none" else str(attack))
    _finish(ax, xlabel, title)
    return fig, ax


def plot_bit_depth(df: pd.DataFrame):
    """Error rate vs weight bit depth (fp32 = 32, int8 = 8, ...) per attack (paper Fig. 9)."""
    out = _curve_by(df, "bits", "weight bit depth (bits)", "Error rate vs quantisation bit depth")
    if out is None:
        return None
    fig, ax = out
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(with_dimensions(dut_view(df), ["bits"])["bits"].dropna().unique()))
    ax.get_xaxis().set_major_formatter("{x:g}")
    return fig


def plot_ensemble_size(df: pd.DataFrame):
    """Error rate vs number of ensemble members used at inference, per attack (paper Fig. 8)."""
    out = _curve_by(df, "ensemble_size", "ensemble members at inference",
                    "Error rate vs ensemble size")
    return None if out is None else out[0]


def plot_transfer_matrix(df: pd.DataFrame):
    """Error rate of each evaluated model (columns) on perturbations crafted on each source model
    (rows), one panel per attack (paper Fig. 7)."""
    att = _attacked(dut_view(df))
    if att.empty or "source_model" not in att.columns:
        return None
    att = att[att["source_model"].notna() & (att["source_model"].astype(str) != "")]
    if att.empty:
        return None
    attacks = sorted(att["attack"].astype(str).unique())
    plt = _plt()
    models = sorted(att["model"].astype(str).unique())
    sources = sorted(att["source_model"].astype(str).unique())
    fig, axes = plt.subplots(1, len(attacks), squeeze=False,
                             figsize=(1.2 + 1.3 * len(models) * len(attacks), 1.6 + 0.7 * len(sources)))
    for ax, attack in zip(axes[0], attacks):
        t = rate_table(att[att["attack"].astype(str) == attack], ["source_model", "model"])
        mat = np.full((len(sources), len(models)), np.nan)
        for _, r in t.iterrows():
            mat[sources.index(str(r["source_model"])), models.index(str(r["model"]))] = r["error_rate"] * 100
        ax.imshow(mat, vmin=0, vmax=100, cmap="Reds", aspect="auto")
        for i in range(len(sources)):
            for j in range(len(models)):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.0f}%", ha="center", va="center",
                            color="white" if mat[i, j] > 60 else "black", fontsize=9)
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(sources)), sources, fontsize=8)
        ax.set_xlabel("evaluated model")
        ax.set_ylabel("source model")
        ax.set_title(f"{attack}: transfer (error rate)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_mics(df: pd.DataFrame):
    """Error rate per microphone (tier in the label), one bar per attack, with Wilson intervals."""
    if df["mic"].nunique() < 2:
        return None
    plt = _plt()
    t = rate_table(df, ["mic", "attack"])
    mics = sorted(t["mic"].astype(str).unique())
    tiers = mic_tiers(df)
    attacks = sorted(t["attack"].astype(str).unique(), key=lambda a: (a != "none", a))
    width = 0.8 / len(attacks)
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(mics), 4))
    for k, attack in enumerate(attacks):
        g = t[t["attack"].astype(str) == attack].set_index("mic").reindex(mics)
        x = np.arange(len(mics)) + (k - (len(attacks) - 1) / 2) * width
        y = g["error_rate"].to_numpy(float) * 100
        err = [y - g["error_lo"].to_numpy(float) * 100, g["error_hi"].to_numpy(float) * 100 - y]
        ax.bar(x, y, width, yerr=err, capsize=2, label="no attack" if attack == "none" else attack)
    ax.set_xticks(range(len(mics)), [f"{m}\n[{tiers.get(m, '?')}]" for m in mics], fontsize=8)
    _finish(ax, "microphone [tier]", "Error rate per microphone (all models, delays, placements)")
    return fig


#: Report figure id -> (caption, function of (df, rig)).
FIGURES = {
    "positions": ("Attack error rate at the DUT mic by adversary position over the floor plan.",
                  lambda df, rig: plot_positions(df, rig)),
    "delay": ("Error rate vs synchronisation delay per attack and eps (cf. paper Fig. 6).",
              lambda df, rig: plot_delay_curves(df)),
    "eps": ("Error rate vs perturbation bound per model (cf. paper Fig. 4).",
            lambda df, rig: plot_eps_curves(df)),
    "mics": ("Error rate per microphone and attack.", lambda df, rig: plot_mics(df)),
    "bits": ("Error rate vs weight bit depth (cf. paper Fig. 9).", lambda df, rig: plot_bit_depth(df)),
    "ensemble": ("Error rate vs ensemble size at inference (cf. paper Fig. 8).",
                 lambda df, rig: plot_ensemble_size(df)),
    "transfer": ("Transfer matrix: source model vs evaluated model (cf. paper Fig. 7).",
                 lambda df, rig: plot_transfer_matrix(df)),
}
