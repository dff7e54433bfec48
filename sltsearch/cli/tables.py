"""Rich tables of the commands: a front (or any ticket rows), a per-layer energy report, recorded vs measured
metrics; the cell formats they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from sltsearch.cli.output import visible

if TYPE_CHECKING:
    import pandas as pd


# column -> short header, so a front fits an 80-column terminal
FRONT_COLUMNS = {
    "ticket_id": "ticket",
    "network": "net",  # snn | ann (the ANN twin), shown when a run holds ANN tickets
    "sparsity": "sparsity",
    "time_steps": "T",
    "val_accuracy": "val acc",
    "test_accuracy": "test acc",
    "energy_uj": "energy uJ",
    # the paper's symbols for the searched IMP parameters
    "param_prune_rate": "p",
    "param_rounds": "R",
    "param_rewind_epoch": "k",
    # MultiSp levels
    "param_patch_keep": "keep",
    "param_pep_sparsity": "pep sp",
    "param_pep_binary_weights": "bin w",
    "param_pep_binary_activations": "bin a",
    "param_attn_sparsity": "attn",
    "param_mlp_sparsity": "mlp",
    "param_pep_first_conv": "1st",
    # the encoding layer: searched encoder and target; "1x" marks tickets whose energy assumes first_layer: once
    "param_encoder": "enc",
    "param_encoding_sparsity": "enc sp",
    "first_layer_once": "1x",
}


def rate_label(network: str) -> str:
    """What a report's ``firing_rate`` is: spikes per neuron per step, or the ANN twin's activation density."""
    return "ANN twin, every synaptic op a MAC | activation density" if network == "ann" else "firing rate"


def fmt(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "y" if value else "n"
    if isinstance(value, float):
        if column in {"val_accuracy", "test_accuracy", "sparsity"}:
            return f"{100 * value:.1f}%"
        if column == "energy_uj":
            return f"{value:.4f}"
        if not column.startswith("param_"):
            return f"{value:.4g}"  # a metric (firing rate, a further objective) to four significant digits
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"  # 1e-4 is not 0.00
    return str(value)


def has_ann(frame: pd.DataFrame) -> bool:
    """The table holds ANN twin tickets (its ``network`` column says ``ann`` somewhere)."""
    return "network" in frame.columns and bool((frame["network"] == "ann").any())


# searched parameters without a header above get these when their full names do not fit the terminal
PARAM_SYMBOLS = {
    "param_time_steps_search": "Ts",
    "param_target_sparsity": "target",
    "param_rewind_iteration": "k it",
    "param_eb_threshold": "eb",
    "param_weight_decay": "wd",
    "param_encoder_channels": "enc ch",
    "param_strategy": "strat",
    "param_epochs": "ep",
}
# further objectives (`--objectives`), when their names do not fit
OBJECTIVE_HEADERS = {
    "storage_bits": "bits",
    "firing_rate": "rate",
    "nonzero_params": "nonzero",
    "macs": "MACs",
    "acs": "ACs",
    "density": "dens",
}
CAPTION = "selected on validation metrics; test accuracy reported, never used to choose"


def front_table(
    front: pd.DataFrame,
    objectives: dict[str, str],
    title: str,
    networks: bool | None = None,
    width: int | None = None,
) -> Table:
    """The front (or any ticket rows) as a table; ``networks``: show the snn/ann column (default: when ``front``
    has ANN tickets). With ``width`` (the terminal's), searched parameters get short headers when their names
    do not fit; see `front_view` for a front that fits any terminal."""
    return _layout(front, objectives, title, networks, width, below=False, caption=True)[0]


def front_view(
    front: pd.DataFrame,
    objectives: dict[str, str],
    title: str,
    *,
    width: int,
    networks: bool | None = None,
    caption: bool = True,
) -> RenderableType:
    """The front fitted to a terminal ``width`` wide: full column names where they fit, else short headers for
    the searched parameters (named in the caption), else the searched parameters listed below the table, one
    line per ticket. Values and names are never cut; every value from the table prints as itself (`visible`).
    ``caption``: say below the table that the front is selected on validation metrics (the legend of short
    headers is there in any case)."""
    table, below = _layout(front, objectives, title, networks, width, below=True, caption=caption)
    return table if below is None else Group(table, below)


def _layout(
    front: pd.DataFrame,
    objectives: dict[str, str],
    title: str,
    networks: bool | None,
    width: int | None,
    below: bool,
    caption: bool,
) -> tuple[Table, RenderableType | None]:
    """The table, and the searched parameters' listing when they had to leave it."""
    columns = _columns(front, objectives, networks)
    cells = {c: [fmt(c, v) for v in front[c].tolist()] for c in columns}
    full = {c: FRONT_COLUMNS.get(c, c.removeprefix("param_")) for c in columns}
    note = CAPTION if caption else None
    table = _table(title, columns, full, cells, objectives, {}, note)
    if width is None or _width(table) <= width:
        return table, None
    # the columns without a short header above: searched parameters and further objectives
    extra = [c for c in columns if c.startswith("param_") or c not in FRONT_COLUMNS]
    short = dict(full)
    for col in extra:
        if col not in FRONT_COLUMNS:
            short[col] = OBJECTIVE_HEADERS.get(col) or _symbol(col, set(short.values()))
    named = {c: c.removeprefix("param_") for c in extra}  # what a short header stands for
    legend = {short[c]: named[c] for c in extra if short[c] != named[c]}
    table = _table(title, columns, short, cells, objectives, legend, note)
    if not below or _width(table) <= width:
        return table, None
    # below the table: the searched parameters first, then the further objectives too if still too wide
    for leaving in ([c for c in extra if c.startswith("param_")], extra):
        kept = [c for c in columns if c not in leaving]
        left = {short[c]: named[c] for c in kept if c in extra and short[c] != named[c]}
        table = _table(title, kept, short, cells, objectives, left, note)
        if _width(table) <= width:
            break
    below_legend = {short[c]: named[c] for c in leaving if short[c] != named[c]}
    return table, _listed_below(front, leaving, short, below_legend)


def _columns(front: pd.DataFrame, objectives: dict[str, str], networks: bool | None) -> list[str]:
    params = [c for c in front.columns if c.startswith("param_")]
    shown = [c for c in FRONT_COLUMNS if c in front.columns]
    if "first_layer_once" in shown and not front["first_layer_once"].fillna(False).astype(bool).any():
        shown.remove("first_layer_once")  # only a front with tickets that assume it gets the column
    if "network" in shown and not (has_ann(front) if networks is None else networks):
        shown.remove("network")  # a purely spiking run shows no snn/ann column
    columns = shown + [c for c in objectives if c in front.columns and c not in shown]
    hidden = {"param_time_steps"} | ({"param_model.neuron.type"} if "network" in shown else set())  # T, net say it
    columns += [p for p in params if p not in FRONT_COLUMNS and p not in hidden]
    # a searched parameter no row holds says nothing (the dense networks' pruning parameters)
    return [c for c in columns if not c.startswith("param_") or front[c].notna().any() or front.empty]


def _table(
    title: str,
    columns: list[str],
    headers: dict[str, str],
    cells: dict[str, list[str]],
    objectives: dict[str, str],
    legend: dict[str, str],
    note: str | None,
) -> Table:
    table = Table(
        title=Text(visible(title)),
        caption=Text("; ".join(filter(None, [_legend(legend), note]))) if legend or note else None,
        box=box.SIMPLE_HEAD,  # no vertical rules: a front with MultiSp columns still fits 80 columns
        pad_edge=False,
        padding=(0, 0),  # the box already puts one space between columns
    )
    for col in columns:
        widest = max((len(visible(v)) for v in cells[col]), default=1)
        table.add_column(
            visible(headers[col]), justify="right", style="bold" if col in objectives else None, min_width=widest,
            overflow="fold",
        )
    for i in range(len(next(iter(cells.values()), []))):
        table.add_row(*[Text(visible(cells[col][i])) for col in columns])
    return table


def _width(table: Table) -> int:
    """The width ``table`` takes when nothing constrains it (its title and caption wrap to it)."""
    console = Console(width=100_000)
    return Measurement.get(console, console.options, table).maximum


def _symbol(column: str, taken: set[str]) -> str:
    """A short header for a searched parameter (or a column): its symbol, its last name if short, else its words'
    initials."""
    name = column.removeprefix("param_").rsplit(".", 1)[-1]
    base = PARAM_SYMBOLS.get(column) or (name if len(name) <= 6 else "".join(w[0] for w in name.split("_") if w))
    symbol, n = base, 2
    while symbol in taken:
        symbol, n = f"{base}{n}", n + 1
    return symbol


def _listed_below(
    front: pd.DataFrame, params: list[str], headers: dict[str, str], legend: dict[str, str]
) -> RenderableType:
    """The searched parameters (and further objectives), one line per ticket (``p=0.60 R=3 ...``), wrapped
    between values."""
    grid = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2))
    grid.add_column("ticket", justify="right", no_wrap=True)
    grid.add_column("values", overflow="fold")
    for _, row in front.iterrows():
        values = " ".join(f"{visible(headers[c]).replace(' ', '_')}={visible(fmt(c, row[c]))}" for c in params)
        grid.add_row(Text(visible(fmt("ticket_id", row.get("ticket_id", "")))), Text(values))
    named = "searched parameters" if all(c.startswith("param_") for c in params) else "further columns"
    return Group(Text(f"{named}{f' ({_legend(legend)})' if legend else ''}:"), grid)


def _legend(legend: dict[str, str]) -> str:
    return ", ".join(f"{short.replace(' ', '_')}: {name}" for short, name in legend.items())


# energy table: column -> header; the CSV keeps every column of `sltsearch.energy_model.report.COLUMNS`
ENERGY_TABLE = {
    "name": "layer",
    "type": "type",
    "input_kind": "input",
    "op_rate": "op rate",  # fraction of input positions that cost ops (as the count and approx_ops use it)
    "dense_ops": "dense ops",
    "ops": "counted",
    "macs": "MACs",
    "acs": "ACs",
    "binary_ops": "binary",
    "energy_share": "energy",
}


def energy_cell(column: str, value: Any) -> str:
    if column in {"firing_rate", "op_rate"}:
        return f"{value:.3f}"
    if column == "energy_share":
        return f"{100 * value:.1f}%"
    if isinstance(value, float | int) and not isinstance(value, bool):
        for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= div:
                return f"{value / div:.2f}{unit}"
        return f"{value:.4g}" if value else "-"
    return str(value)


def metric_cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in {"val_accuracy", "test_accuracy", "sparsity"}:
        return f"{100 * value:.4f}%"
    if isinstance(value, float):
        return f"{value:.10g}"
    return f"{value:,}"
