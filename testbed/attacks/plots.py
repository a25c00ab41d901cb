"""Pictures of an attack evaluation: error vs eps, error vs delay, transfer heatmap, targeted
success against audibility (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_error_vs_eps(table: pd.DataFrame, path: Path, delay_ms: float | None = None) -> Path:
    """Error rate (%) against eps (log axis), one line per source -> target, at one delay (default: smallest)."""
    plt = _figure()
    delay_ms = float(table["delay_ms"].min()) if delay_ms is None else delay_ms
    sel = table[np.isclose(table["delay_ms"], delay_ms)]
    fig, ax = plt.subplots(figsize=(6, 4))
    for (src, tgt), g in sel.groupby(["source", "target"], sort=False):
        g = g.sort_values("eps")
        ax.plot(g["eps"], 100 * g["error_rate"], marker="o", label=f"{src} -> {tgt}")
    ax.set_xscale("log")
    return _save_error_axes(plt, fig, ax, path, "eps (PCM scale, L-inf)",
                            f"{', '.join(sel['attack'].unique())}: error vs eps (delay {delay_ms:g} ms)")


def plot_error_vs_delay(table: pd.DataFrame, path: Path) -> Path:
    """Error rate (%) against sync delay (ms), one line per (source -> target, eps)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    for (src, tgt, eps), g in table.groupby(["source", "target", "eps"], sort=False):
        g = g.sort_values("delay_ms")
        ax.plot(g["delay_ms"], 100 * g["error_rate"], marker="o", label=f"{src} -> {tgt}, eps {eps:g}")
    return _save_error_axes(plt, fig, ax, path, "sync delay of the perturbation (ms)",
                            f"{', '.join(table['attack'].unique())}: error vs delay")


def _save_error_axes(plt, fig, ax, path: Path, xlabel: str, title: str) -> Path:
    """Label an error-rate (%) plot, save it as PNG and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error rate under attack (%)")
    ax.set_ylim(0, 100)
    return _finish(plt, fig, ax, path, title)


def _finish(plt, fig, ax, path: Path, title: str, title_size: float | None = None) -> Path:
    """Title, grid and legend; save as PNG (110 dpi) and close."""
    ax.set_title(title, fontsize=title_size)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_transfer_heatmap(matrix: pd.DataFrame, path: Path, title: str = "transfer: error rate (%)") -> Path:
    """Heatmap of a transfer matrix (sources x targets, error rates as fractions)."""
    plt = _figure()
    values = 100 * matrix.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * matrix.shape[1], 1.2 + 0.8 * matrix.shape[0]))
    im = ax.imshow(values, vmin=0, vmax=100, cmap="magma")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    ax.set_xlabel("target model")
    ax.set_ylabel("source model")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center",
                        color="white" if values[i, j] < 60 else "black", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_tradeoff(curve: pd.DataFrame, path: Path, title: str = "targeted success against audibility") -> Path:
    """One line per pair (and eps / model when several): success with at most a fraction of frames
    above the masking threshold, with its Wilson 95 % band (:func:`testbed.attacks.targeted.tradeoff`)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, g in curve.groupby(["source", "target", "eps", "delay_ms", "source_label", "target_label"], sort=False):
        src, tgt, eps, delay, a, b = key
        label = f"{a}->{b}" + (f" eps {eps:g}" if curve["eps"].nunique() > 1 else "") + \
            (f" {delay:g} ms" if curve["delay_ms"].nunique() > 1 else "") + \
            (f" on {tgt}" if curve["target"].nunique() > 1 else "")
        x = 100 * g["fraction"].to_numpy()
        ax.plot(x, 100 * g["rate"].to_numpy(), marker="o", label=f"{label} (n={int(g['n'].iloc[0])})")
        ax.fill_between(x, 100 * g["lo"].to_numpy(), 100 * g["hi"].to_numpy(), alpha=0.15)
    ax.axvline(5, color="grey", lw=0.8, ls=":")
    ax.axhline(80, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("frames above the masking threshold, at most (%)")
    ax.set_ylabel("target reached (%)")
    ax.set_ylim(-2, 102)
    return _finish(plt, fig, ax, path, title, title_size=9)
