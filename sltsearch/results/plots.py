"""Pareto plots: a PNG (matplotlib, headless) or an interactive HTML page (plotly, the ``plot`` extra).

Both show every finished ticket once (one point per ticket, coloured by weight sparsity), the front
highlighted, each dense network (one per T) marked and labelled, and axes named with their units, in the
units of the front table (accuracy and sparsity in %). The first objective is the y axis, the second the
x axis; when y is an accuracy, its axis starts just below the front and the dense networks (the useful
region) or at the accuracy floor, and says how many tickets lie below it. A run with ANN twin tickets
(``network`` = ``ann``) draws them with their own markers (triangles; their dense networks as diamonds), so one
front shows SNN and ANN tickets side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sltsearch.errors import UserError
from sltsearch.results.tickets import ok_rows, unique_tickets
from sltsearch.system.files import atomic_write

PERCENT = {"val_accuracy", "test_accuracy", "sparsity", "density", "patch_keep"}
LABELS = {
    "val_accuracy": ("validation accuracy", "%"),
    "test_accuracy": ("test accuracy", "%"),
    "energy_uj": ("energy per inference", "µJ"),
    "sparsity": ("weight sparsity", "%"),
    "density": ("weight density", "%"),
    "storage_bits": ("storage", "bits"),
    "nonzero_params": ("non-zero prunable weights", "count"),
    "firing_rate": ("firing rate", "spikes per neuron per step"),
    "macs": ("MACs per inference", "count"),
    "acs": ("ACs per inference", "count"),
}
SUFFIXES = (".png", ".html")
# network -> (matplotlib marker of tickets, of dense networks, plotly symbols of both, legend name)
NETWORK_STYLE = {
    "snn": ("o", "s", "circle", "square", "SNN"),
    "ann": ("^", "D", "triangle-up", "diamond", "ANN"),
}
USEFUL_DROP = 0.10  # the default accuracy axis reaches this far (10 points) below the best front/dense ticket


def scale(column: str) -> float:
    """Factor from the table's value to the plotted one (fractions to %)."""
    return 100.0 if column in PERCENT else 1.0


def axis_title(column: str, direction: str) -> str:
    label, unit = LABELS.get(column, (column, ""))
    better = "higher" if direction == "maximize" else "lower"
    return f"{label} [{unit}] ({better} is better)" if unit else f"{label} ({better} is better)"


def networks(frame: pd.DataFrame) -> list[pd.Series]:
    """One row mask per network in ``frame`` (``snn`` first), each with its network as ``name``; a table
    without a ``network`` column (older runs) is all spiking."""
    kinds = frame["network"].fillna("snn") if "network" in frame.columns else pd.Series("snn", index=frame.index)
    return [(kinds == net).rename(net) for net in NETWORK_STYLE if (kinds == net).any()]


def dense_labels(dense: pd.DataFrame) -> list[str]:
    """``dense T=4`` per dense network (``dense ANN`` for the ANN twin); the ticket id is added where one label
    has several."""
    steps = dense["time_steps"].tolist() if "time_steps" in dense.columns else [None] * len(dense)
    nets = dense["network"].fillna("snn").tolist() if "network" in dense.columns else ["snn"] * len(dense)
    ids = dense["ticket_id"].tolist() if "ticket_id" in dense.columns else [""] * len(dense)
    names = [
        "dense ANN" if net == "ann" else (f"dense T={t}" if t is not None else "dense")
        for t, net in zip(steps, nets, strict=True)
    ]
    return [name + (f" ({tid})" if names.count(name) > 1 else "") for name, tid in zip(names, ids, strict=True)]


def accuracy_window(
    column: str, frame: pd.DataFrame, keep: pd.DataFrame, floor: float | None
) -> tuple[float | None, int]:
    """Lower limit of an accuracy axis (table units) and how many tickets lie below it.

    The useful region spans the front and the dense networks (``keep``), with a margin of 8 % of its
    height (at least 1 point), but reaches at most ``USEFUL_DROP`` (10 points) below the best of them, so
    near-chance tickets at the cheap end of the front do not squash the plot; ``floor`` (the accuracy
    floor, ``--min-accuracy``) wins when given.
    """
    if column not in PERCENT or not column.endswith("accuracy") or frame.empty:
        return None, 0
    values = pd.to_numeric(keep[column], errors="coerce").dropna()
    if floor is not None:
        low = float(floor)
    elif values.empty:
        return None, 0
    else:
        span = float(values.max() - values.min())
        low = max(0.0, float(values.min()) - max(0.08 * span, 0.01), float(values.max()) - USEFUL_DROP)
    below = int((pd.to_numeric(frame[column], errors="coerce") < low).sum())
    return low, below


@dataclass(frozen=True)
class _Figure:
    """What both renderers draw: the tickets, the dense networks, the front, the axes and their window."""

    tickets: pd.DataFrame
    dense: pd.DataFrame
    front: pd.DataFrame
    objectives: Mapping[str, str]
    x: str
    y: str
    path: Path
    title: str
    low: float | None
    note: str
    projected: bool


def _parts(frame: pd.DataFrame, front: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    tickets = unique_tickets(ok_rows(frame))
    dense = tickets[tickets["kind"] == "dense"] if "kind" in tickets.columns else tickets.iloc[0:0]
    return tickets, dense, front


def plot_front(
    frame: pd.DataFrame,
    front: pd.DataFrame,
    objectives: Mapping[str, str],
    path: Path,
    title: str,
    floor: float | None = None,
) -> Path | None:
    """Plot every ticket and the front on the first two objectives to ``path`` (.png or .html).

    None with fewer than two objectives or no finished tickets (a run interrupted before its first finished
    ticket: an empty plot would say nothing, and matplotlib would warn on stderr about its empty legend).
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"--plot {path}: the plot is written as .png or .html; name the file accordingly")
    names = list(objectives)
    if len(names) < 2 or frame.empty:
        return None
    tickets, dense, front = _parts(frame, front)
    if tickets.empty:
        return None
    y, x = names[0], names[1]
    low, below = accuracy_window(y, tickets, pd.concat([front, dense]), floor)
    note = ""
    if below and low is not None:
        on_front = int((pd.to_numeric(front[y], errors="coerce") < low).sum()) if not front.empty else 0
        of_front = f" ({on_front} on the front)" if on_front else ""
        note = (
            f"{below} ticket{'s' if below != 1 else ''}{of_front} below {scale(y) * low:.1f} % not shown"
            " (--min-accuracy sets the floor)"
        )
    figure = _Figure(tickets, dense, front, objectives, x, y, path, title, low, note, len(names) > 2)
    return _plot_html(figure) if path.suffix.lower() == ".html" else _plot_png(figure)


def _front_label(objectives: Mapping[str, str], projected: bool) -> str:
    return f"Pareto front ({len(objectives)} objectives, projected)" if projected else "Pareto front"


def _plot_png(fig: _Figure) -> Path:
    tickets, dense, front, objectives = fig.tickets, fig.dense, fig.front, fig.objectives
    x, y, path, title, low, note, projected = fig.x, fig.y, fig.path, fig.title, fig.low, fig.note, fig.projected
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sx, sy = scale(x), scale(y)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    pruned = tickets[tickets["kind"] != "dense"] if "kind" in tickets.columns else tickets
    colour = pruned["sparsity"] * 100 if "sparsity" in pruned.columns else None
    groups = networks(pruned)
    sc = None
    for rows in groups:
        marker, _, _, _, name = NETWORK_STYLE[str(rows.name)]
        part = pruned[rows]
        sc = ax.scatter(
            part[x] * sx, part[y] * sy, c=None if colour is None else colour[rows], cmap="viridis", vmin=0,
            vmax=100, s=22 if marker == "^" else 18, alpha=0.75, marker=marker,
            label=f"{name} tickets" if len(networks(tickets)) > 1 else "tickets",
        )
    if not front.empty:
        if not projected:
            f = front.sort_values(x)
            ax.step(f[x] * sx, f[y] * sy, where="post" if objectives[x] == "minimize" else "pre", color="black", lw=1)
        ax.scatter(
            front[x] * sx, front[y] * sy, facecolors="none", edgecolors="black", s=60, lw=1.2,
            label=_front_label(objectives, projected),
        )
    if not dense.empty:
        both = len(networks(tickets)) > 1
        for rows in networks(dense):
            _, marker, _, _, name = NETWORK_STYLE[str(rows.name)]
            ax.scatter(dense[rows][x] * sx, dense[rows][y] * sy, marker=marker, c="tab:red", s=40, zorder=3,
                       label=f"dense {name}" if both else "dense network")
        middle = float(tickets[x].min() + tickets[x].max()) / 2
        for label, (_, row) in zip(dense_labels(dense), dense.iterrows(), strict=True):
            right = row[x] > middle  # labels of points in the right half go to their left, inside the axes
            ax.annotate(label, (row[x] * sx, row[y] * sy), xytext=(-6 if right else 6, 5), textcoords="offset points",
                        fontsize=7, color="tab:red", ha="right" if right else "left")
    if low is not None:
        top = max(float(tickets[y].max()), float(dense[y].max()) if not dense.empty else 0.0)
        ax.set_ylim(low * sy, top * sy + 0.10 * (top - low) * sy + 1e-9)
    ax.set_xlabel(axis_title(x, objectives[x]))
    ax.set_ylabel(axis_title(y, objectives[y]))
    ax.set_title(title, fontsize=8)
    if colour is not None and sc is not None:
        fig.colorbar(sc, ax=ax, label="weight sparsity [%]")
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="dimgray")
    if ax.get_legend_handles_labels()[0]:  # a run stopped before its first ticket has nothing to label
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return path


def _hover(rows: pd.DataFrame) -> list[str]:
    shown = [
        "ticket_id", "network", "kind", "time_steps", "round", "val_accuracy", "test_accuracy", "energy_uj", "sparsity"
    ]
    params = [c for c in rows.columns if str(c).startswith("param_")]
    out = []
    for _, row in rows.iterrows():
        parts = []
        for col in [c for c in shown if c in rows.columns] + params:
            value: Any = row[col]
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if col in PERCENT:
                value = f"{100 * value:.2f} %"
            elif isinstance(value, float):
                value = f"{value:.4g}"
            parts.append(f"{col.removeprefix('param_')}: {value}")
        out.append("<br>".join(parts))
    return out


def _plot_html(fig: _Figure) -> Path:
    tickets, dense, front, objectives = fig.tickets, fig.dense, fig.front, fig.objectives
    x, y, path, title, low, note, projected = fig.x, fig.y, fig.path, fig.title, fig.low, fig.note, fig.projected
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise UserError("--plot *.html needs plotly: pip install 'sltsearch[plot]' (or plot to a .png)") from None
    sx, sy = scale(x), scale(y)
    fig = go.Figure()
    pruned = tickets[tickets["kind"] != "dense"] if "kind" in tickets.columns else tickets
    both = len(networks(tickets)) > 1
    for i, rows in enumerate(networks(pruned)):
        _, _, symbol, _, name = NETWORK_STYLE[str(rows.name)]
        part = pruned[rows]
        marker: dict[str, Any] = {"size": 7, "opacity": 0.75, "symbol": symbol}
        if "sparsity" in part.columns:
            marker.update(color=part["sparsity"] * 100, colorscale="Viridis", cmin=0, cmax=100)
            if i == 0:
                marker["colorbar"] = {"title": "weight sparsity [%]"}
        fig.add_trace(go.Scatter(x=part[x] * sx, y=part[y] * sy, mode="markers",
                                 name=f"{name} tickets" if both else "tickets", marker=marker,
                                 text=_hover(part), hoverinfo="text"))
    if not front.empty:
        f = front.sort_values(x)
        line = {"shape": "hv" if objectives[x] == "minimize" else "vh", "color": "black", "width": 1}
        fig.add_trace(go.Scatter(
            x=f[x] * sx, y=f[y] * sy, mode="markers" if projected else "lines+markers",
            name=_front_label(objectives, projected), line=line,
            marker={"size": 11, "symbol": "circle-open", "color": "black", "line": {"width": 2}},
            text=_hover(f), hoverinfo="text",
        ))
    for rows in networks(dense):
        _, _, _, symbol, name = NETWORK_STYLE[str(rows.name)]
        part = dense[rows]
        fig.add_trace(go.Scatter(
            x=part[x] * sx, y=part[y] * sy, mode="markers+text", name=f"dense {name}" if both else "dense network",
            marker={"symbol": symbol, "size": 10, "color": "crimson"}, text=dense_labels(part),
            textposition="top right", hovertext=_hover(part), hoverinfo="text",
        ))
    fig.update_layout(
        title={"text": title + (f"<br><sup>{note}</sup>" if note else ""), "font": {"size": 13}},
        xaxis_title=axis_title(x, objectives[x]), yaxis_title=axis_title(y, objectives[y]),
        template="plotly_white", legend={"orientation": "h", "y": -0.2},
    )
    if low is not None:
        top = max(float(tickets[y].max()), float(dense[y].max()) if not dense.empty else 0.0)
        fig.update_yaxes(range=[low * sy, top * sy + 0.10 * (top - low) * sy + 1e-9])
    # self-contained (works offline), written atomically like every file of a run folder
    atomic_write(path, lambda tmp: fig.write_html(str(tmp), include_plotlyjs=True, full_html=True))
    return path
