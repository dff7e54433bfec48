"""The commands about a run's tickets: pareto (the front), energy (one ticket's per-layer report), export
(one ticket as a self-contained folder) and evaluate (an export re-measured, or run in an NIR consumer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from sltsearch.cli.output import console, plain, user_errors, visible, write_csv, write_json
from sltsearch.cli.tables import ENERGY_TABLE, energy_cell, front_view, has_ann, metric_cell, rate_label
from sltsearch.errors import UserError

# one option for every command that reads a folder (a run or an export): its spec may name a user's module
TRUST_CODE = typer.Option(
    "--trust-code",
    help="the folder's spec names your own network (model.name an import path): import and run that module",
)


@user_errors
def pareto(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(metavar="RUN_DIR", help="a run folder written by `sltsearch run`; several: fronts compared"),
    ],
    objectives: Annotated[
        str | None,
        typer.Option(help="columns and directions, e.g. val_accuracy:max,energy_uj:min,storage_bits:min"
                     " (default: the spec's objectives)"),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="also write the front (every column) to this CSV file")] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="also write the front (every column) to this JSON file")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="also plot all tickets and the front: F.png, or F.html (interactive)")
    ] = None,
    min_accuracy: Annotated[
        float | None, typer.Option(help="hide tickets below this validation accuracy (0-1), e.g. near-chance ones")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(help="with several runs: the hypervolume reference point, e.g. val_accuracy=0,energy_uj=1.5"
                     " (default: each objective's worst value over the runs' tickets, 10 % of its range beyond)"),
    ] = None,
) -> None:
    """Print a run's Pareto front (one row per ticket) and dense networks; several runs: fronts and hypervolumes.

    Given several run folders, each run's front, and their hypervolumes against one shared reference point."""
    from sltsearch.results.plots import SUFFIXES

    if plot is not None and plot.suffix.lower() not in SUFFIXES:
        raise UserError(f"--plot {plot}: the plot is written as .png or .html; name the file accordingly")
    if reference is not None and len(run_dirs) < 2:
        raise UserError("--reference: compares the hypervolumes of several runs; pass two or more run folders")
    if len(run_dirs) > 1:
        _compare(run_dirs, objectives, csv, json_file, plot, min_accuracy, reference)
        return
    from sltsearch import api as python_api
    from sltsearch.results import accuracy_floor, ok_rows, parse_objectives, unique_tickets
    from sltsearch.results.plots import plot_front

    run_dir, spec = python_api.read_run(run_dirs[0])
    chosen = parse_objectives(objectives) if objectives else parse_objectives(spec.objective.metrics)
    frame = python_api.load(run_dir)
    if frame.empty:
        raise UserError(f"{run_dir}: no tickets yet; run the search first (`sltsearch run`)")
    front = python_api.pareto(run_dir, chosen, min_accuracy=min_accuracy)
    _write_front(front, csv, json_file)
    tickets = unique_tickets(ok_rows(frame))
    networks = has_ann(tickets)
    title = f"Pareto front of {run_dir}: {len(front)} of {python_api.ticket_census(frame)}"
    console.print(front_view(front, chosen, title, networks=networks, width=console.width))
    dense = tickets[tickets["kind"] == "dense"] if "kind" in tickets.columns else tickets.iloc[0:0]
    if not dense.empty:
        per = "one per T and network" if networks else "one per T"
        title = f"dense networks (reference, {per})"
        console.print(front_view(dense, chosen, title, networks=networks, width=console.width, caption=False))
    if plot is not None:
        shown = accuracy_floor(frame, min_accuracy)
        try:
            written = plot_front(shown, front, chosen, plot, python_api.front_title(spec, frame), floor=min_accuracy)
        except OSError as err:
            raise UserError(f"--plot {plot}: cannot write there ({err.strerror or err}); choose another path") from None
        console.print(f"plot: {plain(plot)}" if written else "plot: none written (no finished tickets yet)")


def _compare(
    run_dirs: list[Path],
    objectives: str | None,
    csv: Path | None,
    json_file: Path | None,
    plot: Path | None,
    min_accuracy: float | None,
    reference: str | None,
) -> None:
    """`pareto` of several runs: each run's front, a summary of their hypervolumes against one reference point,
    and their fronts on one plot."""
    import pandas as pd

    from sltsearch import api as python_api
    from sltsearch.results import ok_rows, unique_tickets
    from sltsearch.results.pareto import parse_reference, trial_counts
    from sltsearch.results.run_plots import plot_runs

    compared = python_api.compare(
        run_dirs, objectives, min_accuracy=min_accuracy,
        reference=parse_reference(reference) if reference is not None else None,
    )
    chosen = compared.objectives
    summary = Table(title="hypervolume against one reference point", box=box.SIMPLE_HEAD)
    for col in ("run", "trials", "tickets", "front", "hypervolume"):
        summary.add_column(col, justify="left" if col == "run" else "right", overflow="fold")
    for label, front in compared.fronts.items():
        frame = compared.tickets[label]
        hv = compared.hypervolumes[label]
        title = f"{label}: {len(front)} on the front of {python_api.ticket_census(frame)}; hypervolume {hv:.6g}"
        console.print(front_view(front, chosen, title, width=console.width, caption=False))
        finished, unfinished = trial_counts(frame)
        trials = f"{finished}" + (f" (+{unfinished} unfinished)" if unfinished else "")
        tickets = len(unique_tickets(ok_rows(frame)))
        summary.add_row(Text(visible(label)), trials, str(tickets), str(len(front)), f"{hv:.6g}")
    console.print(summary)
    point = ", ".join(f"{name} {value:.6g}" for name, value in compared.reference.items())
    how = "given by --reference" if reference is not None else "each objective's worst value, 10 % of its range beyond"
    same = "sltsearch.hypervolume(RUN, reference) gives the same numbers"
    console.print(Text(f"reference point: {point} ({how}); {same}"))
    console.print(Text("selected on validation metrics; test accuracy reported, never used to choose"))
    stacked = [front.assign(run=label)[["run", *front.columns]] for label, front in compared.fronts.items()]
    _write_front(pd.concat(stacked, ignore_index=True), csv, json_file)
    if plot is not None:
        title = f"{len(compared.fronts)} runs compared: " + ", ".join(
            f"{label} (hv {hv:.3g})" for label, hv in compared.hypervolumes.items()
        )
        try:
            written = plot_runs(compared.tickets, compared.fronts, chosen, plot, title, floor=min_accuracy,
                                note=f"hypervolume against the reference point {point}")
        except OSError as err:
            raise UserError(f"--plot {plot}: cannot write there ({err.strerror or err}); choose another path") from None
        console.print(f"plot: {plain(plot)}" if written else "plot: none written (no finished tickets yet)")


def _write_front(front: Any, csv: Path | None, json_file: Path | None) -> None:
    """``--csv`` / ``--json``: the front with every column of the ticket table (the printed table shows a part)."""
    if csv is not None:
        write_csv(front, csv)
    if json_file is not None:
        write_json(front, json_file)


@user_errors
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
    trust_code: Annotated[bool, TRUST_CODE] = False,
) -> None:
    """Per-layer operation counts and energy of a ticket, or of a spec's (untrained) dense model."""
    chosen = {"model": model, "nonbinary": nonbinary, "real_inputs": real_inputs, "first_layer": first_layer}
    overrides = {f"objective.energy.{k}": v for k, v in chosen.items() if v is not None}
    from sltsearch import api

    result = api.energy(
        target, ticket=ticket, samples=samples, device=device, overrides=overrides, trust_code=trust_code
    )
    rep = result.report
    frame = result.frame()
    if csv is not None:
        write_csv(frame, csv)
    table = Table(
        title=f"energy per sample: {plain(result.source)}",
        caption=(
            f"{rep.energy_uj:.4f} uJ ({rep.model}: compute {rep.compute_uj:.4f}, memory {rep.memory_uj:.4f}) | "
            f"MACs {rep.macs:,.0f} x {rep.e_mac_pj} pJ, ACs {rep.acs:,.0f} + binary {rep.binary_ops:,.0f} "
            f"x {rep.e_ac_pj} pJ | {rate_label(rep.network)} {rep.firing_rate:.4f} | T={rep.time_steps}, "
            f"encoder {rep.encoder or '?'}, encoding layer {rep.encoding_energy_uj:.4f} uJ"
            f"{' (counted once)' if rep.first_layer_once else ''}, real inputs: {rep.real_inputs} | "
            f"{rep.samples} val samples | params {rep.params:,} ({rep.nonzero_params:,} non-zero), "
            f"storage {rep.storage_bits:,} bits (dense fp32 {rep.dense_storage_bits:,})"
        ),
    )
    columns = [c for c in ENERGY_TABLE if c != "binary_ops" or rep.binary_ops]
    if console.width < 110:  # narrow terminal: the op-type split is in the caption and the CSV
        columns = [c for c in columns if c not in {"macs", "acs", "binary_ops"}]
    for col in columns:
        text = col in {"name", "type", "input_kind"}
        table.add_column(
            ENERGY_TABLE[col],
            justify="left" if text else "right",
            overflow="fold" if text else "ellipsis",
            min_width=14 if col == "name" else None,
        )
    for _, row in frame.iterrows():
        table.add_row(*[plain(energy_cell(c, row[c])) for c in columns])
    console.print(table)
    if csv is not None:
        console.print(f"per-layer table: {plain(csv)}")


@user_errors
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
    trust_code: Annotated[bool, TRUST_CODE] = False,
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
        trust_code=trust_code,
    )
    row = result.manifest["ticket"]
    how = result.manifest["source"]["selected_by"]
    chosen = f" (chosen by --select {how['rule']} on validation metrics)" if how else ""
    console.print(
        f"exported ticket {plain(result.ticket_id)}{chosen}: val acc {100 * row['val_accuracy']:.2f}%, "
        f"test acc {100 * row['test_accuracy']:.2f}%, {row['energy_uj']:.4f} uJ, sparsity "
        f"{100 * row['sparsity']:.1f}%"
    )
    if not result.reproduced:
        differing = [m["metric"] for m in result.manifest["export_check"]["metrics"] if not m["equal"]]
        console.print(
            f"[yellow]note: re-measured at export, {', '.join(differing)} differ from the run's table "
            f"(another device or library version?); both are in ticket.json[/]"
        )
    files = ", ".join(result.manifest["files"])
    console.print(f"folder: {plain(result.path)}  (files: {plain(files)}, ticket.json)")


def print_consumer_check(result: Any, folder: Path, strict: bool) -> None:
    table = Table(
        title=f"ticket {plain(result.info.ticket_id)} from {plain(folder)}: its ticket.nir run by {result.consumer}",
        caption=f"{result.consumer}: {result.note}",
    )
    for col in ("split", "samples", "recorded acc", f"{result.target} acc", "sltsearch acc now", "same class",
                "max readout diff"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for s in result.splits:
        table.add_row(
            s.split, str(s.samples), metric_cell("val_accuracy", s.recorded_accuracy),
            metric_cell("val_accuracy", s.consumer_accuracy), metric_cell("val_accuracy", s.sltsearch_accuracy),
            f"{100 * s.argmax_agreement:.2f}%", f"{s.max_readout_diff:.3g}",
        )
    console.print(table)
    if result.agreement_min == 1.0:
        console.print(f"[green]{result.consumer} predicts the ticket's class on every sample[/]")
    else:
        console.print(f"[yellow]{result.consumer} predicts another class on some samples (see 'same class')[/]")
        if strict:
            raise typer.Exit(1)


@user_errors
def evaluate_cmd(
    folder: Annotated[Path, typer.Argument(help="an export folder written by `sltsearch export`")],
    data_root: Annotated[
        Path | None, typer.Option(help="override data.root (where an on-disk dataset lives now)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="override train.device: auto | cpu | cuda")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="exit with code 1 when any metric differs")] = False,
    trust_code: Annotated[bool, TRUST_CODE] = False,
    target: Annotated[
        str | None,
        typer.Option(help="re-run the folder's ticket.nir in this consumer instead: snntorch | sinabs | rockpool"),
    ] = None,
    max_memory_gb: Annotated[
        float | None,
        typer.Option(help="refuse a ticket whose evaluation could need more memory than this (default 8 GB)"),
    ] = None,
) -> None:
    """Verify an export's checksums, rebuild it from ticket.json alone and re-measure test accuracy and energy;
    with --target, run its NIR graph in that consumer and compare its accuracy with the recorded one."""
    from sltsearch import api as python_api

    def state(budget: Any) -> None:  # before the evaluation runs
        console.print(budget.describe(), highlight=False)

    limits = {"trust_code": trust_code, "max_memory_gb": max_memory_gb, "on_budget": state}
    if target is not None:
        print_consumer_check(python_api.evaluate(folder, data_root=data_root, target=target, **limits), folder, strict)
        return
    result = python_api.evaluate(folder, data_root=data_root, device=device, **limits)
    table = Table(
        title=f"ticket {plain(result.info.ticket_id)} from {plain(folder)}: recorded vs measured ({result.device})",
        caption="checksums verified; model rebuilt from ticket.json",
    )
    for col in ("metric", "recorded", "measured", "same"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in result.metrics:
        same = "[green]yes[/]" if m["equal"] else "[red]no[/]"
        recorded, measured = metric_cell(m["metric"], m["recorded"]), metric_cell(m["metric"], m["measured"])
        table.add_row(m["metric"], recorded, measured, same)
    console.print(table)
    for note in result.notes:
        console.print(f"note: {plain(note)}")
    if result.matches:
        console.print("[green]all metrics match the recorded values exactly[/]")
    else:
        console.print("[yellow]some metrics differ from the recorded values (see the table)[/]")
        if strict:
            raise typer.Exit(1)
