"""Pareto plots (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

LABELS = {"val_accuracy": "validation accuracy", "energy_uj": "energy per sample (µJ)", "sparsity": "weight sparsity",
          "storage_bits": "storage (bits)", "nonzero_params": "non-zero parameters", "firing_rate": "firing rate"}


def plot_front(
    frame: pd.DataFrame, front: pd.DataFrame, objectives: Mapping[str, str], path: Path, title: str
) -> Path | None:
    """Scatter of every ticket and the front on the first two objectives; None with fewer than two."""
    names = list(objectives)
    if len(names) < 2 or frame.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_name, x_name = names[0], names[1]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    ok = frame[frame.get("status", "ok") == "ok"] if "status" in frame else frame
    dense = ok[ok["kind"] == "dense"] if "kind" in ok else ok.iloc[0:0]
    imp = ok[ok["kind"] != "dense"] if "kind" in ok else ok
    sc = ax.scatter(
        imp[x_name],
        imp[y_name],
        c=imp["sparsity"],
        cmap="viridis",
        s=18,
        alpha=0.7,
        label="tickets",
        vmin=0,
        vmax=1,
    )
    if not dense.empty:
        ax.scatter(dense[x_name], dense[y_name], marker="s", c="tab:red", s=28, label="dense")
    f = front.sort_values(x_name)
    ax.step(f[x_name], f[y_name], where="post", color="black", lw=1.2, label="Pareto front")
    ax.scatter(f[x_name], f[y_name], facecolors="none", edgecolors="black", s=50)
    ax.set_xlabel(f"{LABELS.get(x_name, x_name)} — {objectives[x_name]}")
    ax.set_ylabel(f"{LABELS.get(y_name, y_name)} — {objectives[y_name]}")
    ax.set_title(title, fontsize=9)
    fig.colorbar(sc, ax=ax, label="weight sparsity")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
