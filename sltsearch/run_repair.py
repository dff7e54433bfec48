"""`sltsearch repair RUN_DIR`: bring a damaged run folder back from what is still intact.

The study and the stage cache between them hold every finished ticket: a damaged ticket-table file is set
aside and its trial's tickets are measured again from the cached stages (no training, unless a stage is
damaged too); a study that was lost (``study.journal`` deleted) is rebuilt from the ticket table, trial by
trial with the same numbers, so ticket ids are never reused. Nothing intact is rewritten.

Named ``run_repair`` (not ``repair``) so that the module never shadows the function ``sltsearch.repair``.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState, create_trial

from sltsearch.results.record import MAIN_KINDS, Ticket, row_params
from sltsearch.results.store import (
    OK,
    TICKETS_DIR,
    TicketTableDamaged,
    check_tickets,
    load_tickets,
    read_columns,
)
from sltsearch.rundir import read_run
from sltsearch.search import liveness, optuna_backend
from sltsearch.search.execute import TrialRunner
from sltsearch.search.space import to_distributions
from sltsearch.spec import Spec
from sltsearch.trial_context import TrialAborted


@dataclass
class RepairReport:
    run_dir: Path
    set_aside: list[Path] = field(default_factory=list)  # damaged table files moved out of the way
    study_rebuilt: int = 0  # trials re-created in a lost study from the ticket table
    trials_remeasured: list[int] = field(default_factory=list)  # finished trials whose tickets were rebuilt

    @property
    def changed(self) -> bool:
        return bool(self.set_aside or self.study_rebuilt or self.trials_remeasured)


def _set_aside(path: Path, run_dir: Path) -> Path:
    target = run_dir / TICKETS_DIR / ".damaged" / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return target


def rebuild_study(spec: Spec, study: optuna.Study, frame: pd.DataFrame) -> int:
    """Re-create a lost study's trials from the ticket table, numbered as before (0..max trial)."""
    distributions = to_distributions(spec.space)
    metrics = list(spec.objective.metrics)
    last = int(frame["trial"].max())
    for number in range(last + 1):
        rows = frame[frame["trial"] == number]
        if rows.empty:  # a trial that failed before its first ticket: a placeholder keeps the numbering
            study.add_trial(create_trial(state=TrialState.FAIL, params={}, distributions={}))
            continue
        params = {k: v for k, v in row_params(rows.iloc[0]).items() if k in distributions}
        main = rows[rows["kind"].isin(MAIN_KINDS)]
        if (rows["status"] == OK).all() and not main.empty:
            final = main.iloc[-1]
            trial = create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                values=[float(final[m]) for m in metrics],
                user_attrs={"tickets": len(rows), "final_ticket": final["ticket_id"], "rebuilt": True},
            )
        else:  # an unfinished trial: failed, so the next run repeats its parameters
            trial = create_trial(
                state=TrialState.FAIL,
                params=params,
                distributions={k: distributions[k] for k in params},
                user_attrs={"rebuilt": True},
            )
        study.add_trial(trial)
    return last + 1


def repair(run_dir: str | Path, *, storage: str | None = None, device: str | None = None) -> RepairReport:
    """Set damaged ticket files aside, rebuild a lost study, re-measure finished trials' missing tickets."""
    run_dir, spec = read_run(run_dir)
    report = RepairReport(run_dir)
    old_nodes: dict[int, str] = {}
    for path, _ in check_tickets(run_dir):
        old_nodes.update(readable_nodes(path))
        report.set_aside.append(_set_aside(path, run_dir))
    frame = load_tickets(run_dir)
    study = optuna_backend.open_study(spec, run_dir, storage)
    if not study.get_trials(deepcopy=False) and not frame.empty:
        report.study_rebuilt = rebuild_study(spec, study, frame)
    have = set(frame.loc[frame["status"] == OK, "trial"].astype(int)) if not frame.empty else set()
    runner = TrialRunner(spec, run_dir, device=device)
    for trial in study.get_trials(deepcopy=False, states=optuna_backend.FINISHED):
        if trial.number in have or not trial.params:
            continue
        runner.node = trial_node(trial, old_nodes, spec.search.backend)
        _replay(runner, trial)
        report.trials_remeasured.append(trial.number)
    return report


def readable_nodes(path: Path) -> dict[int, str]:
    """trial -> node from a damaged table file, where its ``trial`` and ``node`` columns can still be read
    (a Parquet column is stored and checksummed apart from the others); empty when they cannot."""
    try:
        columns = read_columns(path, ["trial", "node"])
    except (TicketTableDamaged, FileNotFoundError):  # a truncated footer or a damaged page of these columns
        return {}
    if "trial" not in columns or "node" not in columns:  # a file from before rows named their node
        return {}
    nodes: dict[int, str] = {}
    for trial, node in zip(columns["trial"], columns["node"], strict=True):
        if trial is not None and node:
            nodes[int(trial)] = str(node)  # a trial runs on one node (a Tune retry rewrites all its rows)
    return nodes


def trial_node(trial: optuna.trial.FrozenTrial, old_nodes: dict[int, str], backend: str) -> str:
    """Where ``trial`` ran, from the best record there is (see the module docstring); "" when none says."""
    if trial.number in old_nodes:
        return old_nodes[trial.number]
    recorded = trial.user_attrs.get(optuna_backend.NODE)
    if recorded:
        return str(recorded)
    owner = trial.system_attrs.get(liveness.OWNER) or {}
    if backend == "optuna" and owner.get("host"):  # under Ray the owner is the driver, not the trial's node
        return str(owner["host"])
    return ""


def _replay(runner: TrialRunner, trial: optuna.trial.FrozenTrial) -> None:
    """Run a finished trial again over the cache (its stages load, only the measurement is redone)."""
    keep = trial.user_attrs.get("tickets") if trial.state == TrialState.PRUNED else None
    seen: list[Ticket] = []

    def stop_where_it_stopped(ticket: Ticket) -> None:
        seen.append(ticket)
        if keep is not None and len(seen) >= int(keep):
            raise TrialAborted

    with contextlib.suppress(TrialAborted):
        runner(trial.number, dict(trial.params), on_ticket=stop_where_it_stopped)
