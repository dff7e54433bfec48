"""Several runs' fronts on one figure (`sltsearch pareto RUN_A RUN_B --plot`): each run its own colour and legend
entry, its other tickets faint in the same colour; PNG (matplotlib) or HTML (plotly). The single-run plot and the
helpers both draw with are in `sltsearch.results.plots`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sltsearch.results.labels import step_vertices
from sltsearch.results.plots import (
    _Axes,
    _finish,
    _hover,
    _plotly,
    _pyplot,
    _save_png,
    accuracy_window,
    axis_title,
    plot_file,
    scale,
)
from sltsearch.results.tickets import ok_rows, unique_tickets
from sltsearch.system.files import atomic_write

RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")  # tab10


def plot_runs(
    tickets: Mapping[str, pd.DataFrame],
    fronts: Mapping[str, pd.DataFrame],
    objectives: Mapping[str, str],
    path: Path,
    title: str,
    floor: float | None = None,
    note: str = "",
) -> Path | None:
    """Several runs' fronts on one figure (``path``: .png or .html), each run in its own colour with its own
    legend entry, its other tickets faint in the same colour. None with fewer than two objectives or no
    finished ticket in any run."""
    path = plot_file(path)
    names = list(objectives)
    shown = {label: unique_tickets(ok_rows(frame)) for label, frame in tickets.items()}
    if len(names) < 2 or all(frame.empty for frame in shown.values()):
        return None
    y, x = names[0], names[1]
    every = pd.concat([f for f in shown.values() if not f.empty], ignore_index=True)
    on_fronts = pd.concat([f for f in fronts.values() if not f.empty] or [every.iloc[0:0]], ignore_index=True)
    low, below = accuracy_window(y, every, on_fronts, floor)
    if below and low is not None:
        hidden = f"{below} ticket{'s' if below != 1 else ''} below {scale(y) * low:.1f} % not shown"
        note = f"{note}; {hidden}" if note else hidden
    colours = {label: RUN_COLOURS[i % len(RUN_COLOURS)] for i, label in enumerate(shown)}
    figure = _Runs(objectives, x, y, path, title, low, note, len(names) > 2, tickets=shown, fronts=dict(fronts),
                   colours=colours)
    return _runs_html(figure) if path.suffix.lower() == ".html" else _runs_png(figure)


@dataclass(frozen=True)
class _Runs(_Axes):
    """What both renderers of a comparison draw: each run's tickets and front, in its colour."""

    tickets: dict[str, pd.DataFrame]
    fronts: dict[str, pd.DataFrame]
    colours: dict[str, str]

    def y_limits(self) -> tuple[float, float] | None:
        if self.low is None:
            return None
        top = max(float(f[self.y].max()) for f in self.tickets.values() if not f.empty)
        sy = scale(self.y)
        return self.low * sy, top * sy + 0.10 * (top - self.low) * sy + 1e-9


def _runs_png(fig: _Runs) -> Path:
    plt = _pyplot()
    x, y, objectives = fig.x, fig.y, fig.objectives
    sx, sy = scale(x), scale(y)
    figure, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    for label, frame in fig.tickets.items():
        colour = fig.colours[label]
        if not frame.empty:
            ax.scatter(frame[x] * sx, frame[y] * sy, s=10, alpha=0.25, color=colour, linewidths=0)
        front = fig.fronts[label]
        if front.empty:
            continue
        f = front.sort_values(x)
        if not fig.projected:
            ax.plot(*step_vertices(list(f[x] * sx), list(f[y] * sy), post=objectives[x] == "minimize"),
                    color=colour, lw=1.2)
        ax.scatter(f[x] * sx, f[y] * sy, s=36, color=colour, edgecolors="black", linewidths=0.6, zorder=3,
                   label=f"{label}: front ({len(front)} tickets)")
    limits = fig.y_limits()
    if limits is not None:
        ax.set_ylim(*limits)
    ax.set_xlabel(axis_title(x, objectives[x]))
    ax.set_ylabel(axis_title(y, objectives[y]))
    ax.set_title(fig.title, fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    _finish(figure, ax, fig.note)
    return _save_png(figure, fig.path)


def _runs_html(fig: _Runs) -> Path:
    go = _plotly()
    x, y, objectives = fig.x, fig.y, fig.objectives
    sx, sy = scale(x), scale(y)
    plot = go.Figure()
    for label, frame in fig.tickets.items():
        colour = fig.colours[label]
        if not frame.empty:
            plot.add_trace(go.Scatter(
                x=frame[x] * sx, y=frame[y] * sy, mode="markers", name=f"{label}: tickets", legendgroup=label,
                marker={"size": 5, "opacity": 0.3, "color": colour}, text=_hover(frame), hoverinfo="text",
                showlegend=False,
            ))
        front = fig.fronts[label]
        if front.empty:
            continue
        f = front.sort_values(x)
        line = {"shape": "hv" if objectives[x] == "minimize" else "vh", "color": colour, "width": 1.5}
        plot.add_trace(go.Scatter(
            x=f[x] * sx, y=f[y] * sy, mode="markers" if fig.projected else "lines+markers", legendgroup=label,
            name=f"{label}: front ({len(front)} tickets)", line=line,
            marker={"size": 9, "color": colour, "line": {"width": 1, "color": "black"}}, text=_hover(f),
            hoverinfo="text",
        ))
    plot.update_layout(
        title={"text": fig.title + (f"<br><sup>{fig.note}</sup>" if fig.note else ""), "font": {"size": 13}},
        xaxis_title=axis_title(x, objectives[x]), yaxis_title=axis_title(y, objectives[y]),
        template="plotly_white", legend={"orientation": "h", "y": -0.2},
    )
    limits = fig.y_limits()
    if limits is not None:
        plot.update_yaxes(range=list(limits))
    atomic_write(fig.path, lambda tmp: plot.write_html(str(tmp), include_plotlyjs=True, full_html=True))
    return fig.path
