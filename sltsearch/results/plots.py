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
from sltsearch.results.labels import Box, place, segments_of, step_vertices
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
class _Axes:
    """What every plot of fronts draws around its points: the objectives on its axes, the accuracy window's
    floor (``low``), the note below it, and where it is written (`_Figure` here, `run_plots._Runs`)."""

    objectives: Mapping[str, str]
    x: str
    y: str
    path: Path
    title: str
    low: float | None
    note: str
    projected: bool


@dataclass(frozen=True)
class _Figure(_Axes):
    """What both renderers of one run's front draw: the tickets, the dense networks and the front."""

    tickets: pd.DataFrame
    dense: pd.DataFrame
    front: pd.DataFrame


def plot_file(path: Path) -> Path:
    """``path`` as a plot file: .png or .html, else a one-line error naming the fix."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"--plot {path}: the plot is written as .png or .html; name the file accordingly")
    return path


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
    path = plot_file(path)
    figure = _front_figure(frame, front, objectives, path, title, floor)
    if figure is None:
        return None
    return _plot_html(figure) if path.suffix.lower() == ".html" else _plot_png(figure)


def _front_figure(
    frame: pd.DataFrame, front: pd.DataFrame, objectives: Mapping[str, str], path: Path, title: str,
    floor: float | None,
) -> _Figure | None:
    """What `plot_front` draws; None when there is nothing to draw."""
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
    return _Figure(objectives, x, y, path, title, low, note, len(names) > 2, tickets=tickets, dense=dense, front=front)


def _front_label(objectives: Mapping[str, str], projected: bool) -> str:
    return f"Pareto front ({len(objectives)} objectives, projected)" if projected else "Pareto front"


def _plot_png(fig: _Figure) -> Path:
    return _save_png(_png_figure(fig), fig.path)


def _save_png(figure: Any, path: Path) -> Path:
    """Write a matplotlib figure as a PNG, atomically, and close it."""
    try:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    finally:
        _pyplot().close(figure)
    return path


def _png_figure(fig: _Figure) -> Any:
    """The matplotlib figure of a front, laid out and labelled (`_plot_png` saves it)."""
    tickets, dense, front, objectives = fig.tickets, fig.dense, fig.front, fig.objectives
    x, y, title, low, note, projected = fig.x, fig.y, fig.title, fig.low, fig.note, fig.projected
    plt = _pyplot()
    sx, sy = scale(x), scale(y)
    figure, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    pruned = tickets[tickets["kind"] != "dense"] if "kind" in tickets.columns else tickets
    colour = pruned["sparsity"] * 100 if "sparsity" in pruned.columns else None
    marks: list[tuple[pd.DataFrame, float]] = []  # plotted points and their marker areas (pt^2): labels avoid them
    lines: list[tuple[list[float], list[float]]] = []
    sc = None
    for rows in networks(pruned):
        marker, _, _, _, name = NETWORK_STYLE[str(rows.name)]
        part = pruned[rows]
        size = 22 if marker == "^" else 18
        sc = ax.scatter(
            part[x] * sx, part[y] * sy, c=None if colour is None else colour[rows], cmap="viridis", vmin=0,
            vmax=100, s=size, alpha=0.75, marker=marker,
            label=f"{name} tickets" if len(networks(tickets)) > 1 else "tickets",
        )
        marks.append((part, size))
    if not front.empty:
        if not projected:
            f = front.sort_values(x)
            lines.append(step_vertices(list(f[x] * sx), list(f[y] * sy), post=objectives[x] == "minimize"))
            ax.plot(*lines[-1], color="black", lw=1)
        ax.scatter(
            front[x] * sx, front[y] * sy, facecolors="none", edgecolors="black", s=60, lw=1.2,
            label=_front_label(objectives, projected),
        )
        marks.append((front, 60))
    if not dense.empty:
        both = len(networks(tickets)) > 1
        for rows in networks(dense):
            _, marker, _, _, name = NETWORK_STYLE[str(rows.name)]
            ax.scatter(dense[rows][x] * sx, dense[rows][y] * sy, marker=marker, c="tab:red", s=40, zorder=3,
                       label=f"dense {name}" if both else "dense network")
        marks.append((dense, 40))
    if low is not None:
        top = max(float(tickets[y].max()), float(dense[y].max()) if not dense.empty else 0.0)
        ax.set_ylim(low * sy, top * sy + 0.10 * (top - low) * sy + 1e-9)
    ax.set_xlabel(axis_title(x, objectives[x]))
    ax.set_ylabel(axis_title(y, objectives[y]))
    ax.set_title(title, fontsize=8)
    if colour is not None and sc is not None:
        figure.colorbar(sc, ax=ax, label="weight sparsity [%]")
    if ax.get_legend_handles_labels()[0]:  # a run stopped before its first ticket has nothing to label
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    _finish(figure, ax, note)
    if not dense.empty:
        labels = [(text, row[x] * sx, row[y] * sy) for text, (_, row) in zip(dense_labels(dense), dense.iterrows(),
                                                                             strict=True)]
        _label_points(figure, ax, labels, [(rows[x] * sx, rows[y] * sy, size) for rows, size in marks], lines,
                      "tab:red")
    return figure


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(figure: Any, ax: Any, note: str) -> None:
    """Lay the figure out; the note goes below the axes, where it crosses nothing plotted."""
    if note:
        figure.text(0.01, 0.012, note, fontsize=7, color="dimgray", ha="left", va="bottom")
    figure.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    ax.set_xlim(ax.get_xlim())  # frozen: the labels are placed in these pixels
    ax.set_ylim(ax.get_ylim())
    figure.canvas.draw()


def _label_points(
    figure: Any,
    ax: Any,
    labels: list[tuple[str, float, float]],
    marks: list[tuple[pd.Series, pd.Series, float]],
    lines: list[tuple[list[float], list[float]]],
    colour: str,
) -> None:
    """Write each ``(text, x, y)`` label beside its point, clear of every plotted point, line, the legend and the
    other labels (`sltsearch.results.labels.place`), inside the axes."""
    renderer = figure.canvas.get_renderer()
    to_px = ax.transData.transform
    frame = ax.get_window_extent(renderer)
    area = Box(frame.x0 + 2, frame.y0 + 2, frame.x1 - 2, frame.y1 - 2)
    obstacles = []
    for xs, ys, size in marks:
        radius = (size**0.5) / 2 * figure.dpi / 72  # a marker of area s pt^2 spans sqrt(s) points
        for px, py in to_px(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)])):
            if np.isfinite(px) and np.isfinite(py):
                obstacles.append(Box(px - radius, py - radius, px + radius, py + radius))
    legend = ax.get_legend()
    if legend is not None:
        obstacles.append(_box(legend.get_window_extent(renderer)))
    segments = [seg for xs, ys in lines for seg in segments_of([tuple(p) for p in to_px(np.column_stack([xs, ys]))])]
    texts, anchors, sizes = [], [], []
    for text, lx, ly in labels:
        artist = ax.annotate(text, (lx, ly), xytext=(0, 0), textcoords="offset pixels", fontsize=7, color=colour)
        extent = artist.get_window_extent(renderer)
        texts.append(artist)
        anchors.append(tuple(to_px((lx, ly))))
        sizes.append((extent.width, extent.height))
    for artist, spot in zip(texts, place(anchors, sizes, area, obstacles, segments), strict=True):
        artist.set_position((spot.dx, spot.dy))
        artist.set_ha(spot.ha)
        artist.set_va(spot.va)


def _box(extent: Any) -> Box:
    return Box(extent.x0, extent.y0, extent.x1, extent.y1)


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


# the HTML figure's size and margins, fixed so that labels can be placed in its pixels
HTML_SIZE = (900, 620)
HTML_MARGIN = {"l": 80, "r": 150, "t": 90, "b": 150}  # r: the colour bar; b: the legend below the axes


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise UserError("--plot *.html needs plotly: pip install 'sltsearch[plot]' (or plot to a .png)") from None
    return go


def _plot_html(fig: _Figure) -> Path:
    tickets, dense, front, objectives = fig.tickets, fig.dense, fig.front, fig.objectives
    x, y, path, title, low, note, projected = fig.x, fig.y, fig.path, fig.title, fig.low, fig.note, fig.projected
    go = _plotly()
    sx, sy = scale(x), scale(y)
    fig = go.Figure()
    pruned = tickets[tickets["kind"] != "dense"] if "kind" in tickets.columns else tickets
    both = len(networks(tickets)) > 1
    marks: list[tuple[pd.Series, pd.Series, float]] = []  # plotted points and their diameters in pixels
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
        marks.append((part[x] * sx, part[y] * sy, 7))
    lines: list[tuple[list[float], list[float]]] = []
    if not front.empty:
        f = front.sort_values(x)
        line = {"shape": "hv" if objectives[x] == "minimize" else "vh", "color": "black", "width": 1}
        fig.add_trace(go.Scatter(
            x=f[x] * sx, y=f[y] * sy, mode="markers" if projected else "lines+markers",
            name=_front_label(objectives, projected), line=line,
            marker={"size": 11, "symbol": "circle-open", "color": "black", "line": {"width": 2}},
            text=_hover(f), hoverinfo="text",
        ))
        marks.append((f[x] * sx, f[y] * sy, 13))
        if not projected:
            lines.append(step_vertices(list(f[x] * sx), list(f[y] * sy), post=objectives[x] == "minimize"))
    for rows in networks(dense):
        _, _, _, symbol, name = NETWORK_STYLE[str(rows.name)]
        part = dense[rows]
        fig.add_trace(go.Scatter(
            x=part[x] * sx, y=part[y] * sy, mode="markers", name=f"dense {name}" if both else "dense network",
            marker={"symbol": symbol, "size": 10, "color": "crimson"}, text=_hover(part), hoverinfo="text",
        ))
        marks.append((part[x] * sx, part[y] * sy, 10))
    x_range = _padded([m[0] for m in marks])
    if low is not None:
        top = max(float(tickets[y].max()), float(dense[y].max()) if not dense.empty else 0.0)
        y_range = (low * sy, top * sy + 0.10 * (top - low) * sy + 1e-9)
    else:
        y_range = _padded([m[1] for m in marks])
    _layout_html(fig, title, note, axis_title(x, objectives[x]), axis_title(y, objectives[y]), x_range, y_range)
    if not dense.empty:
        labels = [(text, row[x] * sx, row[y] * sy) for text, (_, row) in zip(dense_labels(dense), dense.iterrows(),
                                                                             strict=True)]
        _label_html(fig, labels, marks, lines, x_range, y_range, "crimson")
    # self-contained (works offline), written atomically like every file of a run folder
    atomic_write(path, lambda tmp: fig.write_html(str(tmp), include_plotlyjs=True, full_html=True))
    return path


def _padded(columns: list[pd.Series], pad: float = 0.05) -> tuple[float, float]:
    """The range of the values in ``columns``, widened by ``pad`` of it on each side."""
    values = pd.to_numeric(pd.concat(columns), errors="coerce")
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    span = (high - low) or abs(high) or 1.0
    return low - pad * span, high + pad * span


def _layout_html(
    fig: Any, title: str, note: str, x_title: str, y_title: str, x_range: tuple[float, float],
    y_range: tuple[float, float],
) -> None:
    width, height = HTML_SIZE
    fig.update_layout(
        title={"text": title + (f"<br><sup>{note}</sup>" if note else ""), "font": {"size": 13}},
        xaxis_title=x_title, yaxis_title=y_title, template="plotly_white",
        legend={"orientation": "h", "y": -0.2}, width=width, height=height, autosize=False,
        margin={**HTML_MARGIN, "autoexpand": False},
    )
    fig.update_xaxes(range=list(x_range), autorange=False)
    fig.update_yaxes(range=list(y_range), autorange=False)


def _label_html(
    fig: Any,
    labels: list[tuple[str, float, float]],
    marks: list[tuple[pd.Series, pd.Series, float]],
    lines: list[tuple[list[float], list[float]]],
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    colour: str,
) -> None:
    """The labels as annotations shifted clear of the points, lines and each other, in the pixels of the fixed
    figure (`HTML_SIZE`, `HTML_MARGIN`, the axes' ranges); text size estimated from its font."""
    width, height = HTML_SIZE
    left, bottom = HTML_MARGIN["l"], HTML_MARGIN["b"]
    plot_w, plot_h = width - left - HTML_MARGIN["r"], height - bottom - HTML_MARGIN["t"]

    def to_px(vx: float, vy: float) -> tuple[float, float]:
        return (left + (vx - x_range[0]) / (x_range[1] - x_range[0]) * plot_w,
                bottom + (vy - y_range[0]) / (y_range[1] - y_range[0]) * plot_h)

    obstacles = []
    for xs, ys, size in marks:
        for vx, vy in zip(xs, ys, strict=True):
            if np.isfinite(vx) and np.isfinite(vy):
                px, py = to_px(float(vx), float(vy))
                obstacles.append(Box(px - size / 2, py - size / 2, px + size / 2, py + size / 2))
    segments = [seg for xs, ys in lines for seg in segments_of([to_px(a, b) for a, b in zip(xs, ys, strict=True)])]
    font = 11
    anchors = [to_px(lx, ly) for _, lx, ly in labels]
    sizes = [(0.62 * font * len(text) + 4, font * 1.35) for text, _, _ in labels]
    area = Box(left + 2, bottom + 2, left + plot_w - 2, bottom + plot_h - 2)
    for (text, lx, ly), spot in zip(labels, place(anchors, sizes, area, obstacles, segments), strict=True):
        fig.add_annotation(
            x=lx, y=ly, text=text, showarrow=False, xshift=spot.dx, yshift=spot.dy,
            xanchor={"left": "left", "right": "right", "center": "center"}[spot.ha],
            yanchor={"bottom": "bottom", "top": "top", "center": "middle"}[spot.va],
            font={"color": colour, "size": font},
        )
