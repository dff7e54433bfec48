"""The commands that run or check a search and look after its run folder: run, validate, repair, spaces,
schema, models, dashboard.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sltsearch.cli.output import console, err_console, user_errors, visible
from sltsearch.cli.tables import front_view, has_ann
from sltsearch.errors import UserError

SET_HELP = (
    "set a spec field: dotted KEY=VALUE, the value read as YAML (e.g. --set seed=1 --set train.epochs=5 "
    "--set 'space.time_steps.choices=[2,4]'); checked as the same value in the file is; repeatable"
)


@user_errors
def run(
    spec: Annotated[
        str | None, typer.Argument(help="spec file, or a bundled space name (default: 'default')")
    ] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="run folder (default: results/<spec name>)")
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="total trials the study should hold")
    ] = None,
    budget_epochs: Annotated[
        float | None,
        typer.Option(help="compute budget: stop once the trials trained this many epochs x T (cached stages free)"),
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
    from sltsearch.cli.display import RunDisplay

    display = None if quiet else RunDisplay(console)
    try:
        result = api.run(
            spec,
            overrides=overrides,
            run_dir=run_dir,
            n_trials=trials,
            budget_epochs=budget_epochs,
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
    front_title = f"Pareto front: {len(result.front)} of {api.ticket_census(frame)} (seed {result.spec.seed})"
    console.print(front_view(result.front, objectives, front_title, networks=has_ann(frame), width=console.width))
    for line in (
        f"tickets: {result.run_dir / 'tickets'}/ (sltsearch.load('{result.run_dir}'))",
        f"front: {result.run_dir / 'pareto.csv'} (all columns)",
    ):
        console.print(Text(visible(line)), soft_wrap=True)  # a path is printed whole, never folded


@user_errors
def validate(
    spec: Annotated[str, typer.Argument(help="spec file or bundled space name")],
    overrides: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    device: Annotated[str | None, typer.Option(help="check this device instead of train.device")] = None,
) -> None:
    """Check a spec as `run` would before its first trial (spec, data, model, device), without running it."""
    from sltsearch.spec import load_spec
    from sltsearch.spec.spaces import resolve_spec_path

    parsed = load_spec(resolve_spec_path(spec), overrides)  # the spec's own errors come before torch is loaded
    from sltsearch import api

    checked = api.check(parsed, device=device)
    params = ", ".join(parsed.space) or "nothing"
    given = f"{spec} with --set {' '.join(overrides)}" if overrides else spec
    console.print(
        "[green]ok[/]: "
        + escape(f"{given} (name {parsed.name}; searches {params}; {parsed.search.n_trials} trials; ")
        + escape(f"{checked.summary()})"),
        highlight=False,
    )


@user_errors
def repair(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `sltsearch run`")],
    storage: Annotated[
        str | None, typer.Option(help="the RDB URL the run's study lives in, if not the journal")
    ] = None,
    device: Annotated[str | None, typer.Option(help="device to re-measure tickets on: auto | cpu | cuda")] = None,
    trust_code: Annotated[bool, typer.Option("--trust-code", help="model.name is your module: import it")] = False,
) -> None:
    """Repair a damaged run folder: rebuild ticket files from the study and the cache, or a lost study."""
    from sltsearch import api

    report = api.repair(run_dir, storage=storage, device=device, trust_code=trust_code)
    lines = [f"set aside damaged file: {path}" for path in report.set_aside]
    if report.study_rebuilt:
        lines.append(f"rebuilt the study from the ticket table: {report.study_rebuilt} trials")
    if report.trials_remeasured:
        trials = ", ".join(str(n) for n in report.trials_remeasured)
        lines.append(f"re-measured the tickets of trials {trials} from the stage cache")
    lines.append(f"[green]ok[/]: {run_dir} " + ("repaired" if report.changed else "needed no repair"))
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def spaces() -> None:
    """List the bundled search spaces."""
    from sltsearch.spec import load_spec
    from sltsearch.spec.spaces import bundled_spaces

    table = Table(title="bundled search spaces")
    table.add_column("name", no_wrap=True)
    table.add_column("searches", overflow="fold")
    table.add_column("path", overflow="fold")  # folded onto more lines in a narrow terminal, never cut with '…'
    for name, path in bundled_spaces().items():
        try:
            searched = ", ".join(load_spec(path).space)
        except UserError as err:
            searched = f"[red]invalid: {err}[/]"
        table.add_row(name, searched, str(path))
    console.print(table)


def schema() -> None:
    """Print the JSON Schema of a spec file (for editors: `# yaml-language-server: $schema=FILE` on its first line)."""
    from sltsearch.spec.json_schema import spec_json_schema_text

    sys.stdout.write(spec_json_schema_text())  # plain text: rich would wrap and colour it


@user_errors
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


@user_errors
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
