"""The Python API; the CLI is a thin layer over these functions.

import sltsearch
result = sltsearch.run("search_spaces/default.yaml")    # or a Spec, or None for the default
df = sltsearch.load(result.run_dir)                      # one row per ticket
front = sltsearch.pareto(result.run_dir)                 # non-dominated tickets
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sltsearch.errors import RunDirError, SpecError
from sltsearch.results import (
    accuracy_floor,
    load_runs,
    load_tickets,
    ok_rows,
    pareto_front,
    parse_objectives,
    unique_tickets,
)
from sltsearch.results import hypervolume as results_hypervolume
from sltsearch.results.pareto import shared_reference, trial_counts
from sltsearch.results.plots import plot_front
from sltsearch.results.tickets import run_labels
from sltsearch.runfolder.folder import default_run_dir, prepare_run_dir, read_run, record  # noqa: F401 (read_run is API)
from sltsearch.runfolder.resume import (
    check_study_matches_table,
    check_tickets_readable,
    finish_interrupted_records,
)
from sltsearch.search.backend import BACKENDS, SearchJob
from sltsearch.search.backend import backend as backend_called
from sltsearch.search.events import Event
from sltsearch.search.interrupts import sigterm_as_interrupt
from sltsearch.search.study import check_study_spec, finished_trials, open_study
from sltsearch.spec import Spec, load_spec, preflight, provenance
from sltsearch.spec.overrides import Overrides, overridden

# where bundled spaces live: its own module, so lower layers (the energy report) need not import the API
from sltsearch.spec.spaces import DEFAULT_SPACE, bundled_spaces, resolve_spec_path  # noqa: F401 (API)
from sltsearch.system.diskfull import DiskFull, is_disk_full
from sltsearch.system.files import atomic_write
from sltsearch.system.threads import configure_threads, env_threads, plan, usable_cores

if TYPE_CHECKING:
    import torch


def validate(
    spec: str | Path | Spec | None = None, *, device: str | None = None, overrides: Overrides = None
) -> Spec:
    """Check a spec as `run` would before its first trial (spec, data, model, device; a user's network named
    by import path is imported and probed) without running it. ``overrides`` as for `run`."""
    return check(spec, device=device, overrides=overrides).spec


def check(
    spec: str | Path | Spec | None = None,
    *,
    device: str | None = None,
    data_memo: dict[str, Any] | None = None,
    overrides: Overrides = None,
) -> Any:
    """`validate` with its findings: a `sltsearch.spec.preflight.Checked` (the spec, data and model it built)."""
    return preflight.check(_as_spec(spec, overrides), device=device, data_memo=data_memo)


@dataclass
class RunResult:
    run_dir: Path
    spec: Spec
    tickets: pd.DataFrame
    front: pd.DataFrame


def _as_spec(spec: str | Path | Spec | None, overrides: Overrides = None) -> Spec:
    """A spec object, a spec file or a bundled space's name as a `Spec`, with ``overrides`` set."""
    if isinstance(spec, Spec):
        return overridden(spec, overrides)
    return load_spec(resolve_spec_path(spec), overrides)


def run(
    spec: str | Path | Spec | None = None,
    *,
    overrides: Overrides = None,
    run_dir: str | Path | None = None,
    n_trials: int | None = None,
    budget_epochs: float | None = None,
    storage: str | None = None,
    device: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    model: Callable[..., Any] | None = None,
    data: Sequence[Any] | None = None,
    backend: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float = 0.0,
    address: str | None = None,
) -> RunResult:
    """Run (or resume) a search and return its tickets and Pareto front.

    ``overrides`` set spec fields by dotted key before the spec is validated, as ``--set`` does:
    ``["seed=1", "space.time_steps.choices=[2, 4]"]`` (values read as YAML) or ``{"train.epochs": 5}``; the
    run folder's frozen spec holds the result, and resuming a run with other overrides is refused as any
    other spec is.

    ``n_trials`` overrides ``search.n_trials`` (the total the study should hold), ``budget_epochs``
    ``search.budget_epochs`` (the epochs x T its trials may train, cached stages free); ``storage`` an RDB URL
    shared by `sltsearch run` processes on several machines. Rerunning into the same folder resumes: finished
    stages and trials are kept.

    ``workers`` trials run at once, each with ``threads`` torch CPU threads; by default workers x threads =
    the usable cores (one thread per worker, never more workers than trials left; one worker on a GPU).
    Under the ``optuna`` backend the workers are processes on this machine that share the run's study and
    stage cache; from a script, start the search under ``if __name__ == "__main__":``, as for any
    multiprocessing. ``on_event`` hears the search's typed events (`sltsearch.search.events`), those of other
    workers from a thread of this process (make it thread-safe).

    ``model``: your own network builder ``(input_shape, num_classes, options) -> nn.Module`` (the spec's
    ``model.name`` becomes its ``module:qualname``); ``data``: your own torch Datasets ``(train, val, test)``
    (val / test may be None: carved from train). Both are checked before the first trial
    (`sltsearch.spec.preflight`), and live in this process only: the search runs one worker.

    ``backend`` (``optuna`` | ``ray``) overrides ``search.backend``. Under Ray, each trial reserves
    ``cpus_per_trial`` CPUs (default: its threads) and ``gpus_per_trial`` GPUs, on a private local Ray started
    for this search (Tune's files under ``<run>/ray/``) or on the cluster at ``address`` (there, by default,
    as many trials at once as the cluster has CPUs for).
    """
    spec = preflight.with_python_inputs(_as_spec(spec, overrides), model, data)
    if backend is not None:
        if backend not in BACKENDS:
            raise SpecError(f"--backend: must be optuna or ray, got '{backend}'")
        spec = spec.model_copy(update={"search": spec.search.model_copy(update={"backend": backend})})
    ray = spec.search.backend == "ray"
    _check_counts(
        trials=n_trials,
        budget_epochs=budget_epochs,
        workers=workers,
        threads=threads,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
    )
    if not ray and (address or gpus_per_trial or cpus_per_trial is not None):
        raise SpecError(
            "--cpus-per-trial/--gpus-per-trial/--address need --backend ray (the optuna backend runs --workers "
            "processes on this machine; for more machines, start `sltsearch run` on each with one --storage URL)"
        )
    in_process = model is not None or data is not None
    if in_process and (ray or (workers or 1) > 1):
        raise SpecError(
            "model=/data= objects live in this Python process only, and other workers or Ray run trials in "
            "other processes: name the network by import path (model.name: 'pkg.module:make_net') and the data "
            "by file (data: {name: arrays, path: ...}), or run with workers=1"
        )
    if n_trials is not None:
        spec = spec.model_copy(update={"search": spec.search.model_copy(update={"n_trials": n_trials})})
    if budget_epochs is not None:
        spec = spec.model_copy(update={"search": spec.search.model_copy(update={"budget_epochs": budget_epochs})})
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(spec)
    if not ray and not in_process and (workers or usable_cores()) > 1 and spec.search.n_trials > 1:
        from sltsearch.search.workers import warm_up

        warm_up()  # the workers' imports overlap the checks below
    data_memo: dict[str, Any] = {}
    checked = preflight.check(spec, device=device, data_memo=data_memo)  # what a trial could fail on, in one line
    inputs = provenance.run_inputs(spec) if preflight.needs_check(spec) else {}
    if inputs:  # users' code and data: a run folder holds one version of them
        provenance.check_resume(run_dir, inputs)
    check_study_spec(spec, run_dir, storage)  # a study of another spec: refused before the folder is touched
    prepare_run_dir(spec, run_dir, storage)
    if inputs:
        record(run_dir, inputs=inputs)
    check_tickets_readable(run_dir)
    study = open_study(spec, run_dir, storage)
    check_study_matches_table(run_dir, study)
    finish_interrupted_records(spec, run_dir, study, device, data_memo)
    if workers is None and (in_process or any(d.strip() != "cpu" for d in checked.device.split(","))):
        workers = 1  # Python objects, or an accelerator: one process runs the trials
    left = spec.search.n_trials - finished_trials(study)
    workers, threads = _workers_and_threads(workers, threads, cpus_per_trial, cluster=ray and bool(address), left=left)
    job = SearchJob(
        spec=spec,
        run_dir=run_dir,
        storage=storage,
        device=device,
        workers=workers,
        threads=configure_threads(threads),
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        address=address,
        data_memo=data_memo,
        emit=on_event or (lambda event: None),
    )
    disk_full = False
    try:
        if ray:
            from sltsearch.search.ray_env import private_ray_env

            private_ray_env(address)  # a private local Ray listens on 127.0.0.1 only, with a token of its own
        with sigterm_as_interrupt():
            backend_called(spec.search.backend)(job)
    except (OSError, KeyboardInterrupt) as err:
        disk_full = is_disk_full(err)
        if disk_full and not isinstance(err, DiskFull):  # Optuna's journal: one line naming this run's disk
            raise DiskFull(run_dir) from err
        raise
    finally:
        frame = load_tickets(run_dir)
        try:
            front = write_front(run_dir, spec, frame)
        except DiskFull:
            if not disk_full:
                raise  # else no room for the front either: the line of the first failure stands
    return RunResult(run_dir=run_dir, spec=spec, tickets=frame, front=front)


def _workers_and_threads(
    workers: int | None, threads: int | None, cpus_per_trial: float | None, *, cluster: bool, left: int
) -> tuple[int | None, int]:
    """The workers (None: a Ray cluster's size decides) and torch threads per trial of a search with ``left``
    trials to run: the user's choice, the rest filling this machine's usable cores (`sltsearch.system.threads.plan`)."""
    if threads is None and cpus_per_trial is not None:
        threads = max(1, int(cpus_per_trial))  # a trial's threads follow the CPUs it reserves
    if cluster and workers is None:
        return None, threads or env_threads() or 1
    return plan(workers, threads, left)


MAX_THREADS = 1024  # torch threads per trial: past a machine's cores they only slow it down (and exhaust its threads)


def _check_counts(**counts: float | None) -> None:
    """``--trials``, ``--workers``, ``--threads``: at least 1; ``--trials`` at most what ``search.n_trials``
    allows, ``--threads`` at most `MAX_THREADS`; ``--cpus-per-trial`` and ``--budget-epochs``: above 0;
    ``--gpus-per-trial``: not negative."""
    lowest = {
        "cpus_per_trial": ("be above 0", 0.0, False),
        "budget_epochs": ("be above 0", 0.0, False),
        "gpus_per_trial": ("not be negative", 0.0, True),
    }
    highest = {"trials": _schema_max("n_trials"), "threads": max(MAX_THREADS, usable_cores())}
    for name, value in counts.items():
        if value is None:
            continue
        if name in highest and value > highest[name]:
            raise SpecError(f"--{name}: must be at most {highest[name]}, got {value}")
        wanted, bound, inclusive = lowest.get(name, ("be at least 1", 1, True))
        if value < bound or (value == bound and not inclusive):
            flag = "--" + name.replace("_", "-")
            raise SpecError(f"{flag}: must {wanted}, got {value}")


def _schema_max(field: str) -> int:
    """The upper bound the spec's ``search`` section declares for ``field`` (one place for it)."""
    info = Spec.model_fields["search"].annotation.model_fields[field]
    return next(int(m.le) for m in info.metadata if getattr(m, "le", None) is not None)


def write_front(run_dir: Path, spec: Spec, frame: pd.DataFrame) -> pd.DataFrame:
    """Compute the front over every ticket and write pareto.csv and pareto.png beside the table."""
    if frame.empty:
        return frame
    objectives = spec.objective.metrics
    front = pareto_front(frame, objectives)
    atomic_write(run_dir / "pareto.csv", lambda tmp: front.to_csv(tmp, index=False))
    plot_front(frame, front, objectives, run_dir / "pareto.png", front_title(spec, frame))
    return front


def front_title(spec: Spec, frame: pd.DataFrame) -> str:
    """What a front plot shows: how many distinct finished tickets from how many finished trials, and the seed."""
    return f"{spec.name}: {ticket_census(frame)}, seed {spec.seed} (single seed per ticket)"


def ticket_census(frame: pd.DataFrame) -> str:
    """``35 tickets from 10 finished trials`` (``, 1 unfinished`` when a trial is running, interrupted or failed:
    its tickets are not counted, as they are not plotted)."""
    finished, unfinished = trial_counts(frame)
    tickets = len(unique_tickets(ok_rows(frame)))
    more = f", {unfinished} unfinished" if unfinished else ""
    return f"{tickets} ticket{'s' * (tickets != 1)} from {finished} finished trial{'s' * (finished != 1)}{more}"


def load(run_dir: str | Path | list[str | Path] | tuple[str | Path, ...]) -> pd.DataFrame:
    """Every ticket of a run as a DataFrame (one row per IMP round of every trial, round 0 = dense).

    Given several run folders, their tables stacked with a ``run`` column (the folder name, or the whole
    path where two names clash) to compare searches.
    """
    if isinstance(run_dir, list | tuple):
        return load_runs(run_dir)
    run_dir, _ = read_run(run_dir)
    return load_tickets(run_dir)


DEFAULT_OBJECTIVES = {"val_accuracy": "maximize", "energy_uj": "minimize"}


def _frame_and_objectives(
    run_or_frame: str | Path | pd.DataFrame | list[str | Path] | tuple[str | Path, ...],
) -> tuple[pd.DataFrame, dict[str, str]]:
    """A ticket table and the objectives it was searched on (a run's spec; validation accuracy vs energy
    for a table or several runs)."""
    if isinstance(run_or_frame, pd.DataFrame):
        return run_or_frame, dict(DEFAULT_OBJECTIVES)
    if isinstance(run_or_frame, list | tuple):
        return load_runs(run_or_frame), dict(DEFAULT_OBJECTIVES)
    run_dir, spec = read_run(run_or_frame)
    return load_tickets(run_dir), parse_objectives(spec.objective.metrics)


def pareto(
    run_or_frame: str | Path | pd.DataFrame | list[str | Path],
    objectives: str | dict[str, str] | None = None,
    *,
    min_accuracy: float | None = None,
) -> pd.DataFrame:
    """The non-dominated finished tickets, one row per ticket (a shared dense network once).

    ``objectives``: ``{"val_accuracy": "max", "energy_uj": "min"}`` or ``"val_accuracy:max,energy_uj:min"``;
    default: the run's spec objectives (for a table: validation accuracy vs energy). ``min_accuracy``
    hides tickets below that validation accuracy (e.g. near-chance ones) before the front is taken.
    """
    frame, spec_objectives = _frame_and_objectives(run_or_frame)
    chosen = parse_objectives(objectives) if objectives is not None else spec_objectives
    return pareto_front(accuracy_floor(frame, min_accuracy), chosen)


def hypervolume(
    run_or_frame: str | Path | pd.DataFrame | list[str | Path],
    reference: dict[str, float],
    objectives: str | dict[str, str] | None = None,
) -> float:
    """Hypervolume of the finished tickets w.r.t. ``reference`` (one value per objective, in its units).

    Use one fixed reference to compare runs, e.g. ``{"val_accuracy": 0.0, "energy_uj": <dense energy>}``.
    """
    frame, spec_objectives = _frame_and_objectives(run_or_frame)
    chosen = parse_objectives(objectives) if objectives is not None else spec_objectives
    return results_hypervolume(unique_tickets(frame), chosen, reference)


@dataclass
class Comparison:
    """Several runs' fronts on the same objectives, and their hypervolumes against one ``reference`` point.

    ``tickets``, ``fronts`` and ``hypervolumes`` are keyed by the runs' labels (folder names, or whole paths
    where two share a name), in the order given; ``specs`` holds each run's frozen spec."""

    objectives: dict[str, str]
    reference: dict[str, float]
    run_dirs: dict[str, Path]
    specs: dict[str, Spec]
    tickets: dict[str, pd.DataFrame]
    fronts: dict[str, pd.DataFrame]
    hypervolumes: dict[str, float]


def compare(
    run_dirs: Sequence[str | Path],
    objectives: str | dict[str, str] | None = None,
    *,
    min_accuracy: float | None = None,
    reference: dict[str, float] | None = None,
) -> Comparison:
    """The fronts of several runs and their hypervolumes against one shared reference point (`sltsearch pareto
    RUN_A RUN_B`). ``objectives``: default the runs' spec objectives (they must agree). ``reference``: default
    per objective the worst value any run's finished ticket reaches, 10 % of the range beyond
    (`sltsearch.results.pareto.shared_reference`). ``min_accuracy`` hides tickets below it in every run first."""
    read = [read_run(path) for path in run_dirs]
    if not read:
        raise RunDirError("compare: pass at least one run folder")
    labels = run_labels([path for path, _ in read])
    seen = [path.resolve() for path, _ in read]
    twice = next((path for i, (path, _) in enumerate(read) if seen[i] in seen[:i]), None)
    if twice is not None:
        raise RunDirError(f"{twice}: given twice; name each run folder once")
    if objectives is None:
        chosen = [parse_objectives(spec.objective.metrics) for _, spec in read]
        if any(c != chosen[0] for c in chosen):
            differing = "; ".join(f"{label}: {','.join(c)}" for label, c in zip(labels, chosen, strict=True))
            raise SpecError(f"the runs search different objectives ({differing}); choose them with --objectives")
        wanted = chosen[0]
    else:
        wanted = parse_objectives(objectives)
    tickets: dict[str, pd.DataFrame] = {}
    for label, (path, _) in zip(labels, read, strict=True):
        frame = load_tickets(path)
        if frame.empty:
            raise RunDirError(f"{path}: no tickets yet; run the search first (`sltsearch run`)")
        tickets[label] = accuracy_floor(frame, min_accuracy)
    fronts = {label: pareto_front(frame, wanted) for label, frame in tickets.items()}
    if reference is None:
        reference = shared_reference([unique_tickets(ok_rows(f)) for f in tickets.values()], wanted)
    hypervolumes = {
        label: results_hypervolume(unique_tickets(frame), wanted, reference) for label, frame in tickets.items()
    }
    return Comparison(
        objectives=wanted,
        reference=dict(reference),
        run_dirs={label: path for label, (path, _) in zip(labels, read, strict=True)},
        specs={label: spec for label, (_, spec) in zip(labels, read, strict=True)},
        tickets=tickets,
        fronts=fronts,
        hypervolumes=hypervolumes,
    )


def select(
    frame: str | Path | pd.DataFrame,
    rule: str = "knee",
    *,
    min_accuracy: float | None = None,
    max_energy: float | None = None,
) -> pd.Series:
    """One ticket's row, chosen on validation metrics only: ``knee``, ``max-accuracy`` or ``min-energy``
    among finished tickets with ``val_accuracy >= min_accuracy`` and ``energy_uj <= max_energy``."""
    from sltsearch.results.select import select as select_row

    table, _ = _frame_and_objectives(frame)
    return select_row(table, rule, min_accuracy=min_accuracy, max_energy=max_energy)


def energy(
    target: str | Path,
    *,
    ticket: str | None = None,
    samples: int | None = None,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
    trust_code: bool = False,
) -> Any:
    """Per-layer energy report (`sltsearch.energy_model.report.EnergyRun`) of a run's ticket or a spec's model.

    ``target`` is a run folder (then ``ticket`` = its ticket_id, e.g. ``t0003r02``) or a spec file /
    bundled space name (its dense model, untrained). ``overrides`` sets spec fields by dotted path, e.g.
    ``{"objective.energy.model": "memory"}``. ``.report`` holds the totals, ``.frame()`` the layers. A run
    folder whose spec names your own network (an import path) needs ``trust_code=True``: it imports that module.
    """
    from sltsearch.energy_model.report import energy_report

    if ticket is not None and not Path(target).exists():
        raise RunDirError(f"{target}: no such run folder; pass the folder `sltsearch run` wrote")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise SpecError(f"--samples: {samples} is not a number of validation samples (a whole number of at least 1)")

    from sltsearch.models.user import reading

    folder = Path(target).is_dir()  # a run folder is data; a spec file the user names is theirs
    with reading(target, trust_code) if folder else contextlib.nullcontext():
        return energy_report(target, ticket=ticket, samples=samples, device=device, overrides=overrides)


def repair(
    run_dir: str | Path, *, storage: str | None = None, device: str | None = None, trust_code: bool = False
) -> Any:
    """Repair a damaged run folder (`sltsearch.runfolder.repair.RepairReport`): damaged ticket files set aside and their
    finished trials re-measured from the stage cache; a lost study rebuilt from the ticket table. Re-measuring
    a run of your own network (an import path) needs ``trust_code=True``: it imports that module."""
    from sltsearch.models.user import reading
    from sltsearch.runfolder.repair import repair as repair_run

    with reading(run_dir, trust_code):
        report = repair_run(run_dir, storage=storage, device=device)
    if report.changed:
        _, spec = read_run(run_dir)
        write_front(Path(run_dir), spec, load_tickets(run_dir))
    return report


def catalog() -> dict[str, list[dict[str, str]]]:
    """The model families and datasets a spec can name (built-in, registered, plugged in but not loaded):
    `sltsearch models`. Here, above both registries, so that `sltsearch.spec.plugins` (which they load entry points
    through) imports neither."""
    from sltsearch.data.registry import DATASETS, PATHED, ROOTED
    from sltsearch.models.registry import MODELS
    from sltsearch.spec.plugins import DATASET_GROUP, MODEL_GROUP, origin, plugged_in

    models = [
        {"name": name, "presets": ", ".join(family.presets), "source": _source(family.build)}
        for name, family in sorted(MODELS.items())
    ]
    models += [
        {"name": name, "presets": "", "source": f"plugin: {origin(ep)} ({ep.value})"}
        for name, ep in sorted(plugged_in(MODEL_GROUP).items())
        if name not in MODELS
    ]
    models.append({"name": "pkg.module:make_net", "presets": "", "source": "your own builder (import path)"})
    datasets = [
        {
            "name": name,
            "reads": "data.root" if name in ROOTED else "data.path" if name in PATHED else _READS.get(name, "-"),
            "source": _source(builder),
        }
        for name, builder in sorted(DATASETS.items())
    ]
    datasets += [
        {"name": name, "reads": "?", "source": f"plugin: {origin(ep)} ({ep.value})"}
        for name, ep in sorted(plugged_in(DATASET_GROUP).items())
        if name not in DATASETS
    ]
    return {"models": models, "datasets": datasets}


_READS = {"python": "sltsearch.run(data=...)"}


def _source(obj: Any) -> str:
    module = str(getattr(obj, "__module__", ""))
    return "built-in" if module.startswith("sltsearch.") else f"registered: {module}"


def export(
    run_dir: str | Path,
    *,
    ticket: str | None = None,
    select: str | None = None,
    min_accuracy: float | None = None,
    max_energy: float | None = None,
    out: str | Path | None = None,
    format: str = "safetensors",  # noqa: A002 (mirrors the CLI's --format)
    data_root: str | Path | None = None,
    device: str | None = None,
    force: bool = False,
    target: str | None = None,
    trust_code: bool = False,
) -> Any:
    """Export one ticket (``ticket`` id, or ``select`` = knee | max-accuracy | min-energy on validation
    metrics within ``min_accuracy`` / ``max_energy``) to ``out`` (default ``run_dir/exports/<ticket_id>``).

    Returns a `sltsearch.ticket_io.ExportResult` (``.path``, ``.ticket_id``, ``.manifest``). ``format="nir"``
    adds ``ticket.nir`` for the consumer ``target`` (snntorch by default, sinabs, rockpool); a model the
    target cannot express raises a `UserError` saying what would export. ``force`` replaces an earlier export in
    ``out`` (never a run folder or any other folder or file). A run of your own network (``model.name`` an
    import path) needs ``trust_code=True``: rebuilding its ticket imports that module.
    """
    from sltsearch.ticket_io import export_ticket

    return export_ticket(
        run_dir,
        ticket=ticket,
        select_rule=select,
        min_accuracy=min_accuracy,
        max_energy=max_energy,
        out=out,
        fmt=format,
        data_root=data_root,
        device=device,
        overwrite=force,
        target=target,
        trust_code=trust_code,
    )


def load_ticket(path: str | Path, device: str = "cpu", *, trust_code: bool = False) -> tuple[torch.nn.Module, Any]:
    """An exported ticket as ``(model, info)``: a torch module in eval mode (``model(x)`` -> logits; call
    ``model.reset_state()`` between batches) and a `sltsearch.ticket_io.TicketInfo` (spec, row, manifest).
    Every file's checksum is verified first. A ticket of your own network (``model.name`` an import path)
    is refused unless ``trust_code=True``: building it imports and runs that module."""
    from sltsearch.ticket_io import load_ticket as load_exported

    return load_exported(path, device, trust_code=trust_code)


def evaluate(
    path: str | Path,
    *,
    data_root: str | Path | None = None,
    device: str | None = None,
    trust_code: bool = False,
    target: str | None = None,
    max_memory_gb: float | None = None,
    on_budget: Callable[[Any], None] | None = None,
) -> Any:
    """Re-measure an exported ticket from its folder alone (test + validation accuracy, energy) and compare
    with the recorded values: a `sltsearch.ticket_io.Evaluation` (``.metrics``, ``.matches``). ``trust_code``
    as for `load_ticket`. Its worst-case memory (a `sltsearch.ticket_io.budget.Budget`, handed to ``on_budget``)
    is worked out before anything is allocated; above ``max_memory_gb`` (default 8) it is refused.

    With ``target`` (snntorch | sinabs | rockpool), run the folder's ``ticket.nir`` in that consumer instead:
    a `sltsearch.ticket_io.ConsumerEvaluation` (``.splits`` with recorded and consumer accuracy, argmax
    agreement with sltsearch's model and the largest readout difference; ``.agreement_min``)."""
    if target is not None:
        from sltsearch.ticket_io import evaluate_in_consumer

        return evaluate_in_consumer(
            path, target=target, data_root=data_root, trust_code=trust_code, max_memory_gb=max_memory_gb,
            on_budget=on_budget,
        )
    from sltsearch.ticket_io import evaluate_ticket

    return evaluate_ticket(
        path, data_root=data_root, device=device, trust_code=trust_code, max_memory_gb=max_memory_gb,
        on_budget=on_budget,
    )


def dashboard(run_dir: str | Path, *, port: int = 0, storage: str | None = None, allow_writes: bool = False) -> None:
    """Serve the run's Optuna study in optuna-dashboard on 127.0.0.1 (``port`` 0: a free one) until
    interrupted; needs the ``dashboard`` extra. ``storage``: the RDB URL when the run used one. Read-only
    unless ``allow_writes``; requests whose Host is not the loopback address are refused."""
    from sltsearch.results.dashboard import serve

    serve(
        run_dir,
        port=port,
        storage=storage,
        on_ready=lambda url, study: print(f"{study}: {url}", flush=True),
        allow_writes=allow_writes,
    )
