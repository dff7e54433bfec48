"""Rich tables of the commands: a front (or any ticket rows), a per-layer energy report, recorded vs measured
metrics; the cell formats they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

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
        return f"{value:.2f}"
    return str(value)


def has_ann(frame: pd.DataFrame) -> bool:
    """The table holds ANN twin tickets (its ``network`` column says ``ann`` somewhere)."""
    return "network" in frame.columns and bool((frame["network"] == "ann").any())


def front_table(
    front: pd.DataFrame, objectives: dict[str, str], title: str, networks: bool | None = None
) -> Table:
    """The front (or any ticket rows) as a table; ``networks``: show the snn/ann column (default: when ``front``
    has ANN tickets)."""
    params = [c for c in front.columns if c.startswith("param_")]
    table = Table(
        title=title,
        caption="selected on validation metrics; test accuracy reported, never used to choose",
        box=box.SIMPLE_HEAD,  # no vertical rules: a front with MultiSp columns still fits 80 columns
        pad_edge=False,
        padding=(0, 0),  # the box already puts one space between columns
    )
    shown = [c for c in FRONT_COLUMNS if c in front.columns]
    if "first_layer_once" in shown and not front["first_layer_once"].fillna(False).astype(bool).any():
        shown.remove("first_layer_once")  # only a front with tickets that assume it gets the column
    if "network" in shown and not (has_ann(front) if networks is None else networks):
        shown.remove("network")  # a purely spiking run shows no snn/ann column
    columns = shown + [c for c in objectives if c in front.columns and c not in shown]
    hidden = {"param_time_steps"} | ({"param_model.neuron.type"} if "network" in shown else set())  # T, net say it
    columns += [p for p in params if p not in FRONT_COLUMNS and p not in hidden]
    cells = [[fmt(c, row[c]) for c in columns] for _, row in front.iterrows()]
    for i, col in enumerate(columns):
        style = "bold" if col in objectives else None
        header = FRONT_COLUMNS.get(col, col.removeprefix("param_"))
        # values are never cut; a narrow terminal folds the headers instead
        widest = max((len(r[i]) for r in cells), default=1)
        table.add_column(header, justify="right", style=style, min_width=widest, overflow="fold")
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


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
