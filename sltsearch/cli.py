"""`sltsearch` command line: typer commands over the Python API, rich tables and progress.

Bad input ends with one line on stderr naming the problem and the fix, exit code 2, no traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sltsearch.errors import UserError
from sltsearch.system.diskfull import DiskFull, describe

if TYPE_CHECKING:  # torch, pandas, Optuna and the API are imported inside the commands that need them
    import pandas as pd

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Search for sparse, energy-efficient spiking lottery tickets.",
)
console = Console()
err_console = Console(stderr=True)


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            # a name holding rich markup is shown, not obeyed (UserError already escapes line breaks)
            message = escape(str(err))
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except DiskFull as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as err:  # a write sltsearch does not make itself (Optuna's journal) on a full disk
            text = describe(err)
            if text is None:
                raise
            err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as err:
            from sltsearch.search.interrupts import EXIT_CODE, Terminated

            how = "terminated" if isinstance(err, Terminated) else "interrupted"
            err_console.print(
                f"{how}: finished trials and stages are kept; rerun the same command to resume",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_CODE if isinstance(err, Terminated) else 130) from None

    return wrapper


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


def _rate_label(network: str) -> str:
    """What a report's ``firing_rate`` is: spikes per neuron per step, or the ANN twin's activation density."""
    return "ANN twin, every synaptic op a MAC | activation density" if network == "ann" else "firing rate"


def _fmt(column: str, value: Any) -> str:
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
    cells = [[_fmt(c, row[c]) for c in columns] for _, row in front.iterrows()]
    for i, col in enumerate(columns):
        style = "bold" if col in objectives else None
        header = FRONT_COLUMNS.get(col, col.removeprefix("param_"))
        # values are never cut; a narrow terminal folds the headers instead
        widest = max((len(r[i]) for r in cells), default=1)
        table.add_column(header, justify="right", style=style, min_width=widest, overflow="fold")
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


@app.command()
@_user_errors
def run(
    spec: Annotated[
        str | None, typer.Argument(help="spec file, or a bundled space name (default: 'default')")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="run folder (default: results/<spec name>)")
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="total trials the study should hold")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="RDB URL shared by many workers (e.g. postgresql://...)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="override train.device: auto | cpu | cuda")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="trials run at once (processes on this machine, or Ray workers); default: usable cores /"
            " threads, at most the trials left"
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="torch CPU threads per trial; default: usable cores / workers (1 when there are trials enough"
            " for every core), or OMP_NUM_THREADS"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
    backend: Annotated[
        str | None,
        typer.Option(help="optuna (worker processes here, or on one --storage) | ray (Ray Tune, local or a cluster)"),
    ] = None,
    cpus_per_trial: Annotated[
        float | None, typer.Option(help="ray: CPUs a trial reserves (default: its threads)")
    ] = None,
    gpus_per_trial: Annotated[float, typer.Option(help="ray: GPUs per trial (fractions share one)")] = 0.0,
    address: Annotated[
        str | None, typer.Option(help="ray: join this Ray cluster (default: a private local Ray)")
    ] = None,
) -> None:
    """Run (or resume) a search and print the Pareto front of its tickets."""
    from sltsearch import api
    from sltsearch.run_display import RunDisplay

    display = None if quiet else RunDisplay(console)
    try:
        result = api.run(
            spec,
            run_dir=run_dir,
            n_trials=trials,
            storage=storage,
            device=device,
            threads=threads,
            on_event=display,
            backend=backend,
            workers=workers,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            address=address,
        )
    finally:
        if display:
            display.stop()
    objectives = result.spec.objective.metrics
    frame = result.tickets
    if frame.empty:
        err_console.print("error: the search produced no tickets (every trial failed; see the messages above)")
        raise typer.Exit(1)
    n_trials = frame["trial"].nunique() if not frame.empty else 0
    from sltsearch.results import ok_rows, unique_tickets

    n_tickets = len(unique_tickets(ok_rows(frame)))  # a dense network shared by many trials counts once
    console.print(
        front_table(
            result.front,
            objectives,
            f"Pareto front: {len(result.front)} of {n_tickets} tickets, {n_trials} trials "
            f"(seed {result.spec.seed})",
            networks=has_ann(frame),
        )
    )
    console.print(
        f"tickets: {result.run_dir / 'tickets'}/ (sltsearch.load('{result.run_dir}'))   "
        f"front: {result.run_dir / 'pareto.csv'}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
@_user_errors
def validate(
    spec: Annotated[str, typer.Argument(help="spec file or bundled space name")],
    device: Annotated[str | None, typer.Option(help="check this device instead of train.device")] = None,
) -> None:
    """Check a spec as `run` would before its first trial (spec, data, model, device), without running it."""
    from sltsearch.spec import load_spec
    from sltsearch.spec.spaces import resolve_spec_path

    parsed = load_spec(resolve_spec_path(spec))  # the spec's own errors come before torch is loaded
    from sltsearch import api

    checked = api.check(parsed, device=device)
    params = ", ".join(parsed.space) or "nothing"
    console.print(
        "[green]ok[/]: "
        + escape(f"{spec} (name {parsed.name}; searches {params}; {parsed.search.n_trials} trials; ")
        + escape(f"{checked.summary()})"),
        highlight=False,
    )


@app.command()
@_user_errors
def pareto(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `sltsearch run`")],
    objectives: Annotated[
        str | None,
        typer.Option(help="columns and directions, e.g. val_accuracy:max,energy_uj:min,storage_bits:min"
                     " (default: the spec's objectives)"),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="also write the front to this CSV file")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="also plot all tickets and the front: F.png, or F.html (interactive)")
    ] = None,
    min_accuracy: Annotated[
        float | None, typer.Option(help="hide tickets below this validation accuracy (0-1), e.g. near-chance ones")
    ] = None,
) -> None:
    """Print the Pareto front of a run's finished tickets (one row per ticket) and the dense networks."""
    from sltsearch import api as python_api
    from sltsearch.results import accuracy_floor, ok_rows, parse_objectives, unique_tickets
    from sltsearch.results.plots import SUFFIXES, plot_front

    run_dir, spec = python_api.read_run(run_dir)
    chosen = parse_objectives(objectives) if objectives else parse_objectives(spec.objective.metrics)
    if plot is not None and plot.suffix.lower() not in SUFFIXES:
        raise UserError(f"--plot {plot}: the plot is written as .png or .html; name the file accordingly")
    frame = python_api.load(run_dir)
    if frame.empty:
        raise UserError(f"{run_dir}: no tickets yet; run the search first (`sltsearch run`)")
    front = python_api.pareto(run_dir, chosen, min_accuracy=min_accuracy)
    if csv is not None:
        _write_csv(front, csv)
    tickets = unique_tickets(ok_rows(frame))
    networks = has_ann(tickets)
    console.print(
        front_table(
            front, chosen, f"Pareto front of {run_dir}: {len(front)} of {len(tickets)} tickets", networks=networks
        )
    )
    dense = tickets[tickets["kind"] == "dense"] if "kind" in tickets.columns else tickets.iloc[0:0]
    if not dense.empty:
        per = "one per T and network" if networks else "one per T"
        reference = front_table(dense, chosen, f"dense networks (reference, {per})", networks=networks)
        reference.caption = None
        console.print(reference)
    if plot is not None:
        shown = accuracy_floor(frame, min_accuracy)
        try:
            plot_front(shown, front, chosen, plot, python_api.front_title(spec, frame), floor=min_accuracy)
        except OSError as err:
            raise UserError(f"--plot {plot}: cannot write there ({err.strerror or err}); choose another path") from None
        console.print(f"plot: {plot}")


@app.command()
@_user_errors
def repair(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `sltsearch run`")],
    storage: Annotated[
        str | None, typer.Option(help="the RDB URL the run's study lives in, if not the journal")
    ] = None,
    device: Annotated[str | None, typer.Option(help="device to re-measure tickets on: auto | cpu | cuda")] = None,
) -> None:
    """Repair a damaged run folder: rebuild ticket files from the study and the cache, or a lost study."""
    from sltsearch import api

    report = api.repair(run_dir, storage=storage, device=device)
    lines = [f"set aside damaged file: {path}" for path in report.set_aside]
    if report.study_rebuilt:
        lines.append(f"rebuilt the study from the ticket table: {report.study_rebuilt} trials")
    if report.trials_remeasured:
        trials = ", ".join(str(n) for n in report.trials_remeasured)
        lines.append(f"re-measured the tickets of trials {trials} from the stage cache")
    lines.append(f"[green]ok[/]: {run_dir} " + ("repaired" if report.changed else "needed no repair"))
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


@app.command()
def spaces() -> None:
    """List the bundled search spaces."""
    from sltsearch.spec import load_spec
    from sltsearch.spec.spaces import bundled_spaces

    table = Table(title="bundled search spaces")
    table.add_column("name")
    table.add_column("searches")
    table.add_column("path")
    for name, path in bundled_spaces().items():
        try:
            searched = ", ".join(load_spec(path).space)
        except UserError as err:
            searched = f"[red]invalid: {err}[/]"
        table.add_row(name, searched, str(path))
    console.print(table)


@app.command()
@_user_errors
def models() -> None:
    """List the model families and datasets a spec can name: built-in and plugged in (entry points)."""
    from sltsearch.api import catalog

    listing = catalog()
    for kind, columns in (("models", ("name", "presets", "source")), ("datasets", ("name", "reads", "source"))):
        table = Table(title="model families (model.name)" if kind == "models" else "datasets (data.name)")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in listing[kind]:
            table.add_row(*[row[c] for c in columns])
        console.print(table)


# energy table: column -> header; the CSV keeps every column of `sltsearch.energy_model.report.COLUMNS`
_ENERGY_TABLE = {
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


def _energy_cell(column: str, value: Any) -> str:
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


@app.command()
@_user_errors
def energy(
    target: Annotated[str, typer.Argument(help="a run folder (with --ticket), or a spec file / bundled space")],
    ticket: Annotated[str | None, typer.Option(help="a ticket_id of the run (sltsearch.load), e.g. t0003r02")] = None,
    csv: Annotated[Path | None, typer.Option(help="also write the per-layer table to this CSV file")] = None,
    samples: Annotated[
        int | None, typer.Option(help="validation samples to measure on (default: objective.energy.samples)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="override train.device: auto | cpu | cuda")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="override objective.energy.model: mac_ac | memory")
    ] = None,
    nonbinary: Annotated[
        str | None, typer.Option(help="override objective.energy.nonbinary: mac | ac_weighted")
    ] = None,
    real_inputs: Annotated[
        str | None, typer.Option(help="override objective.energy.real_inputs: all | nonzero (NeuroBench's)")
    ] = None,
    first_layer: Annotated[
        str | None, typer.Option(help="override objective.energy.first_layer: per_step | once")
    ] = None,
) -> None:
    """Per-layer operation counts and energy of a ticket, or of a spec's (untrained) dense model."""
    chosen = {"model": model, "nonbinary": nonbinary, "real_inputs": real_inputs, "first_layer": first_layer}
    overrides = {f"objective.energy.{k}": v for k, v in chosen.items() if v is not None}
    from sltsearch import api

    result = api.energy(target, ticket=ticket, samples=samples, device=device, overrides=overrides)
    rep = result.report
    frame = result.frame()
    if csv is not None:
        _write_csv(frame, csv)
    table = Table(
        title=f"energy per sample: {result.source}",
        caption=(
            f"{rep.energy_uj:.4f} uJ ({rep.model}: compute {rep.compute_uj:.4f}, memory {rep.memory_uj:.4f}) | "
            f"MACs {rep.macs:,.0f} x {rep.e_mac_pj} pJ, ACs {rep.acs:,.0f} + binary {rep.binary_ops:,.0f} "
            f"x {rep.e_ac_pj} pJ | {_rate_label(rep.network)} {rep.firing_rate:.4f} | T={rep.time_steps}, "
            f"encoder {rep.encoder or '?'}, encoding layer {rep.encoding_energy_uj:.4f} uJ"
            f"{' (counted once)' if rep.first_layer_once else ''}, real inputs: {rep.real_inputs} | "
            f"{rep.samples} val samples | params {rep.params:,} ({rep.nonzero_params:,} non-zero), "
            f"storage {rep.storage_bits:,} bits (dense fp32 {rep.dense_storage_bits:,})"
        ),
    )
    columns = [c for c in _ENERGY_TABLE if c != "binary_ops" or rep.binary_ops]
    if console.width < 110:  # narrow terminal: the op-type split is in the caption and the CSV
        columns = [c for c in columns if c not in {"macs", "acs", "binary_ops"}]
    for col in columns:
        text = col in {"name", "type", "input_kind"}
        table.add_column(
            _ENERGY_TABLE[col],
            justify="left" if text else "right",
            overflow="fold" if text else "ellipsis",
            min_width=14 if col == "name" else None,
        )
    for _, row in frame.iterrows():
        table.add_row(*[_energy_cell(c, row[c]) for c in columns])
    console.print(table)
    if csv is not None:
        console.print(f"per-layer table: {csv}")


@app.command("export")
@_user_errors
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `sltsearch run`")],
    ticket: Annotated[str | None, typer.Option(help="ticket_id to export, e.g. t0003r02")] = None,
    select: Annotated[
        str | None,
        typer.Option(help="or choose one on validation metrics: knee | max-accuracy | min-energy"),
    ] = None,
    min_accuracy: Annotated[
        float | None, typer.Option(help="with --select: only tickets with val_accuracy >= this (0-1)")
    ] = None,
    max_energy: Annotated[
        float | None, typer.Option(help="with --select: only tickets with energy_uj <= this")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="export folder (default: RUN_DIR/exports/<ticket_id>)")] = None,
    format: Annotated[  # noqa: A002 (the option is --format)
        str, typer.Option("--format", help="safetensors, or nir (adds ticket.nir for --target)")
    ] = "safetensors",
    target: Annotated[
        str | None,
        typer.Option(help="with --format nir: the graph's consumer: snntorch (default) | sinabs | rockpool"),
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="override data.root (where an on-disk dataset lives now)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="override train.device: auto | cpu | cuda")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace an earlier export in --out (never a run folder or other files)")
    ] = False,
) -> None:
    """Export one ticket: weights (masks folded in), masks, MultiSp switches and ticket.json with checksums."""
    from sltsearch import api as python_api

    result = python_api.export(
        run_dir,
        ticket=ticket,
        select=select,
        min_accuracy=min_accuracy,
        max_energy=max_energy,
        out=out,
        format=format,
        data_root=data_root,
        device=device,
        force=force,
        target=target,
    )
    row = result.manifest["ticket"]
    how = result.manifest["source"]["selected_by"]
    chosen = f" (chosen by --select {how['rule']} on validation metrics)" if how else ""
    console.print(
        f"exported ticket {result.ticket_id}{chosen}: val acc {100 * row['val_accuracy']:.2f}%, "
        f"test acc {100 * row['test_accuracy']:.2f}%, {row['energy_uj']:.4f} uJ, sparsity "
        f"{100 * row['sparsity']:.1f}%"
    )
    if not result.reproduced:
        differing = [m["metric"] for m in result.manifest["export_check"]["metrics"] if not m["equal"]]
        console.print(
            f"[yellow]note: re-measured at export, {', '.join(differing)} differ from the run's table "
            f"(another device or library version?); both are in ticket.json[/]"
        )
    console.print(f"folder: {result.path}  (files: {', '.join(result.manifest['files'])}, ticket.json)")


def _metric_cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in {"val_accuracy", "test_accuracy", "sparsity"}:
        return f"{100 * value:.4f}%"
    if isinstance(value, float):
        return f"{value:.10g}"
    return f"{value:,}"


def _print_consumer_check(result: Any, folder: Path, strict: bool) -> None:
    table = Table(
        title=f"ticket {result.info.ticket_id} from {folder}: its ticket.nir run by {result.consumer}",
        caption=f"{result.consumer}: {result.note}",
    )
    for col in ("split", "samples", "recorded acc", f"{result.target} acc", "sltsearch acc now", "same class",
                "max readout diff"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for s in result.splits:
        table.add_row(
            s.split, str(s.samples), _metric_cell("val_accuracy", s.recorded_accuracy),
            _metric_cell("val_accuracy", s.consumer_accuracy), _metric_cell("val_accuracy", s.sltsearch_accuracy),
            f"{100 * s.argmax_agreement:.2f}%", f"{s.max_readout_diff:.3g}",
        )
    console.print(table)
    if result.agreement_min == 1.0:
        console.print(f"[green]{result.consumer} predicts the ticket's class on every sample[/]")
    else:
        console.print(f"[yellow]{result.consumer} predicts another class on some samples (see 'same class')[/]")
        if strict:
            raise typer.Exit(1)


@app.command("evaluate")
@_user_errors
def evaluate_cmd(
    folder: Annotated[Path, typer.Argument(help="an export folder written by `sltsearch export`")],
    data_root: Annotated[
        Path | None, typer.Option(help="override data.root (where an on-disk dataset lives now)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="override train.device: auto | cpu | cuda")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="exit with code 1 when any metric differs")] = False,
    trust_code: Annotated[
        bool,
        typer.Option(
            "--trust-code", help="build a ticket of a user's network (model.name an import path): runs that module"
        ),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(help="re-run the folder's ticket.nir in this consumer instead: snntorch | sinabs | rockpool"),
    ] = None,
) -> None:
    """Verify an export's checksums, rebuild it from ticket.json alone and re-measure test accuracy and energy;
    with --target, run its NIR graph in that consumer and compare its accuracy with the recorded one."""
    from sltsearch import api as python_api

    if target is not None:
        _print_consumer_check(
            python_api.evaluate(folder, data_root=data_root, target=target, trust_code=trust_code), folder, strict
        )
        return
    result = python_api.evaluate(folder, data_root=data_root, device=device, trust_code=trust_code)
    table = Table(
        title=f"ticket {result.info.ticket_id} from {folder}: recorded vs measured ({result.device})",
        caption="checksums verified; model rebuilt from ticket.json",
    )
    for col in ("metric", "recorded", "measured", "same"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in result.metrics:
        same = "[green]yes[/]" if m["equal"] else "[red]no[/]"
        recorded, measured = _metric_cell(m["metric"], m["recorded"]), _metric_cell(m["metric"], m["measured"])
        table.add_row(m["metric"], recorded, measured, same)
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
    if result.matches:
        console.print("[green]all metrics match the recorded values exactly[/]")
    else:
        console.print("[yellow]some metrics differ from the recorded values (see the table)[/]")
        if strict:
            raise typer.Exit(1)


@app.command()
@_user_errors
def dashboard(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `sltsearch run`")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (default 0: a free one)")] = 0,
    storage: Annotated[
        str | None, typer.Option(help="the study's RDB URL, when the run used one (run.json masks its password)")
    ] = None,
    allow_writes: Annotated[
        bool,
        typer.Option("--allow-writes", help="let the dashboard change the study (notes, delete, rename, tell)"),
    ] = False,
) -> None:
    """Open the run's Optuna study in optuna-dashboard on 127.0.0.1 only, read-only unless --allow-writes."""
    from sltsearch.results.dashboard import serve

    def ready(url: str, study: str) -> None:
        mode = "read-write" if allow_writes else "read-only"
        console.print(f"optuna-dashboard for study '{study}' ({mode}): {url}  (Ctrl-C stops it)", soft_wrap=True)
        sys.stdout.flush()

    try:
        serve(run_dir, port=port, storage=storage, on_ready=ready, allow_writes=allow_writes)
    except KeyboardInterrupt:
        console.print("dashboard stopped")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a table to CSV, creating its folder; a path that cannot be written is one line, not a traceback."""
    from sltsearch.system.files import atomic_write

    try:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    except OSError as err:
        raise UserError(f"--csv {path}: cannot write there ({err.strerror or err}); choose another path") from None


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C outside a command (while starting up): one line, no traceback
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
