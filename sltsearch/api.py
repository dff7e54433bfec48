"""The Python API; the CLI is a thin layer over these functions.

import sltsearch
result = sltsearch.run("search_spaces/default.yaml")    # or a Spec, or None for the default
df = sltsearch.load(result.run_dir)                      # one row per ticket
front = sltsearch.pareto(result.run_dir)                 # non-dominated tickets
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sltsearch.cache import StageCache
from sltsearch.errors import RunDirError, SpecError
from sltsearch.results import TicketStore, load_tickets, pareto_front
from sltsearch.results.plots import plot_front
from sltsearch.rundir import default_run_dir, prepare_run_dir, read_run  # noqa: F401 (read_run is API)
from sltsearch.search import optuna_backend
from sltsearch.spaces import DEFAULT_SPACE, bundled_spaces, resolve_spec_path  # noqa: F401 (API)
from sltsearch.spec import Spec, load_spec
from sltsearch.threads import configure_threads, wait_policy
from sltsearch.ticket import Ticket
from sltsearch.trial import TrialContext, run_trial


def validate(spec: str | Path | Spec | None = None, *, device: str | None = None) -> Spec:
    """Check a spec as `run` would before its first trial (spec, data, model, device) without running it."""
    return check(spec, device=device).spec


def check(
    spec: str | Path | Spec | None = None, *, device: str | None = None, data_memo: dict[str, Any] | None = None
) -> Any:
    """`validate` with its findings: a `sltsearch.preflight.Checked` (the spec, data and model it built)."""
    from sltsearch import preflight

    return preflight.check(_as_spec(spec), device=device, data_memo=data_memo)


@dataclass
class RunResult:
    run_dir: Path
    spec: Spec
    tickets: pd.DataFrame
    front: pd.DataFrame


def _as_spec(spec: str | Path | Spec | None) -> Spec:
    return spec if isinstance(spec, Spec) else load_spec(resolve_spec_path(spec))


def run(
    spec: str | Path | Spec | None = None,
    *,
    run_dir: str | Path | None = None,
    n_trials: int | None = None,
    storage: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run (or resume) a search and return its tickets and Pareto front.

    ``n_trials`` overrides ``search.n_trials`` (the total the study should hold); ``storage`` an RDB URL
    shared by several workers. ``threads`` sets torch's CPU threads for this process: several workers on
    one machine should split the cores between them, because oversubscribed torch threads slow the small
    ops of SNN training down by an order of magnitude. Rerunning into the same folder resumes: finished
    stages and trials are kept.
    """
    spec = _as_spec(spec)
    if threads is not None and threads < 1:
        raise SpecError(f"--threads: must be at least 1, got {threads}")
    threads = configure_threads(threads)
    if n_trials is not None:
        if n_trials < 1:
            raise SpecError(f"--trials: must be at least 1, got {n_trials}")
        spec = spec.model_copy(update={"search": spec.search.model_copy(update={"n_trials": n_trials})})
    data_memo: dict[str, Any] = {}
    check(spec, device=device, data_memo=data_memo)  # everything a trial could fail on, before any trial
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(spec)
    prepare_run_dir(spec, run_dir, storage)

    store = TicketStore(run_dir)
    cache = StageCache(run_dir / "cache")
    emit = on_event or (lambda event: None)

    def run_one(number: int, params: dict[str, Any]) -> list[Ticket]:
        emit({"event": "trial_start", "trial": number, "params": params})
        ctx = TrialContext(
            trial_number=number,
            cache=cache,
            report=lambda t: store.append([t]),
            on_progress=lambda e: emit({"event": "progress", **e}),
            device=device,
            data_memo=data_memo,
        )
        tickets = run_trial(spec, params, ctx)
        emit({"event": "trial_done", "trial": number, "final": tickets[-1]})
        return tickets

    study = optuna_backend.open_study(spec, run_dir, storage)
    emit(
        {
            "event": "start",
            "n_trials": spec.search.n_trials,
            "done": optuna_backend.finished_trials(study),
            "run_dir": run_dir,
            "threads": threads,
            "wait_policy": wait_policy(),
        }
    )
    optuna_backend.optimize(
        spec,
        study,
        run_one,
        on_trial_done=lambda s, t: emit(
            {
                "event": "trial_end",
                "state": t.state.name,
                "number": t.number,
                "done": optuna_backend.finished_trials(s),
            }
        ),
    )
    frame = load_tickets(run_dir)
    front = write_front(run_dir, spec, frame)
    return RunResult(run_dir=run_dir, spec=spec, tickets=frame, front=front)


def write_front(run_dir: Path, spec: Spec, frame: pd.DataFrame) -> pd.DataFrame:
    """Compute the front over every ticket and write pareto.csv and pareto.png beside the table."""
    if frame.empty:
        return frame
    objectives = spec.objective.metrics
    front = pareto_front(frame, objectives)
    front.to_csv(run_dir / "pareto.csv", index=False)
    trials = frame["trial"].nunique()
    plot_front(
        frame,
        front,
        objectives,
        run_dir / "pareto.png",
        f"{spec.name}: {len(frame)} tickets from {trials} trials, seed {spec.seed} (single seed per ticket)",
    )
    return front


def load(run_dir: str | Path) -> pd.DataFrame:
    """Every ticket of a run as a DataFrame (one row per IMP round of every trial, round 0 = dense)."""
    run_dir, _ = read_run(run_dir)
    return load_tickets(run_dir)


def pareto(run_dir: str | Path, objectives: dict[str, str] | None = None) -> pd.DataFrame:
    """The non-dominated tickets of a run, by the spec's objectives unless others are given."""
    run_dir, spec = read_run(run_dir)
    frame = load_tickets(run_dir)
    if frame.empty:
        raise RunDirError(
            f"{run_dir}: no tickets yet (no trial has finished a round, or every trial failed); "
            "run or resume it with `sltsearch run`"
        )
    return pareto_front(frame, objectives or spec.objective.metrics)


def energy(
    target: str | Path,
    *,
    ticket: str | None = None,
    samples: int | None = None,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """Per-layer energy report (`sltsearch.energy.report.EnergyRun`) of a run's ticket or a spec's model.

    ``target`` is a run folder (then ``ticket`` = its ticket_id, e.g. ``t0003r02``) or a spec file /
    bundled space name (its dense model, untrained). ``overrides`` sets spec fields by dotted path, e.g.
    ``{"objective.energy.model": "memory"}``. ``.report`` holds the totals, ``.frame()`` the layers.
    """
    from sltsearch.energy.report import energy_report

    if ticket is not None and not Path(target).exists():
        raise RunDirError(f"{target}: no such run folder; pass the folder `sltsearch run` wrote")

    return energy_report(target, ticket=ticket, samples=samples, device=device, overrides=overrides)
