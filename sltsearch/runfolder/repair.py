"""`sltsearch repair RUN_DIR`: bring a damaged run folder back from what is still intact.

The study and the stage cache between them hold every finished ticket: a journal with damaged lines inside
it is kept whole in ``.damaged/`` and read from its other lines (`sltsearch.search.journal`); a damaged
ticket-table file is set aside and its trial's tickets are measured again from the cached stages (no
training, unless a stage is damaged too); a study that was lost (``study.journal`` deleted) is rebuilt from
the ticket table, trial by trial with the same numbers, so ticket ids are never reused. Nothing intact is rewritten.

Both steps are resumable, so a repair killed half-way is finished by the next one: a study that holds fewer
trials than the table has tickets of (a rebuild cut short) is rebuilt on from where it stopped, and a
finished trial whose rows are not all ``ok`` (a re-measurement cut short leaves them ``running``) is
measured again. `finish_records` does the second for `sltsearch run` too, before its first trial.

Named ``run_repair`` (not ``repair``) so that the module never shadows the function ``sltsearch.repair``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
from optuna.storages import InMemoryStorage, JournalStorage
from optuna.storages.journal import JournalFileSymlinkLock
from optuna.trial import TrialState, create_trial

from sltsearch.compat import optuna as optuna_compat
from sltsearch.results.record import MAIN_KINDS, Ticket, row_params
from sltsearch.results.store import (
    INTERRUPTED,
    OK,
    RUNNING,
    TICKETS_DIR,
    TicketStore,
    TicketTableDamaged,
    check_tickets,
    load_tickets,
    read_columns,
)
from sltsearch.runfolder.folder import read_run, run_folder_id
from sltsearch.search import journal, liveness, optuna_backend
from sltsearch.search.execute import TrialRunner
from sltsearch.search.space import to_distributions
from sltsearch.search.study import RUN_FOLDER
from sltsearch.spec import Spec
from sltsearch.trial.context import TrialAborted


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
    """Re-create a lost study's trials from the ticket table, numbered as before (0..max trial); a study that
    already holds the first trials (a rebuild that was cut short) gets the rest. Returns how many it added."""
    distributions = to_distributions(spec.space)
    metrics = list(spec.objective.metrics)
    last = int(frame["trial"].max())
    first = len(study.get_trials(deepcopy=False))
    for number in range(first, last + 1):
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
    return max(0, last + 1 - first)


def repair(run_dir: str | Path, *, storage: str | None = None, device: str | None = None) -> RepairReport:
    """Set damaged ticket files aside, rebuild a lost study, re-measure finished trials' missing tickets."""
    run_dir, spec = read_run(run_dir)
    report = RepairReport(run_dir)
    old_nodes: dict[int, str] = {}
    known: set[int] = set()  # trials this folder had rows of, in the files set aside
    for path, _ in check_tickets(run_dir):
        old_nodes.update(readable_nodes(path))
        if path.stem.removeprefix("trial-").isdigit():
            known.add(int(path.stem.removeprefix("trial-")))
        report.set_aside.append(_set_aside(path, run_dir))
    frame = load_tickets(run_dir)
    if storage is None and spec.search.storage is None:  # the folder's own journal: read around damaged lines
        path = run_dir / optuna_backend.JOURNAL_FILE
        copy = journal.drop_damaged_lines(path, JournalFileSymlinkLock(str(path)))
        if copy is not None:
            report.set_aside.append(copy)
    study = optuna_backend.open_study(spec, run_dir, storage)
    if not frame.empty and len(study.get_trials(deepcopy=False)) <= int(frame["trial"].max()):
        report.study_rebuilt = rebuild_study(spec, study, frame)
    report.trials_remeasured = finish_records(
        spec, run_dir, study, frame, device=device, old_nodes=old_nodes, known=known | set(old_nodes)
    )
    return report


def held_here(
    study: optuna.Study, run_dir: Path | None, frame: pd.DataFrame, known: Iterable[int] = ()
) -> Callable[[optuna.trial.FrozenTrial], bool]:
    """Whether a trial's tickets belong in this run folder's table.

    A journal study is the folder's own: all its trials. A study in a database may be shared with machines
    that have run folders of their own (README: no shared filesystem), and each folder holds only its own
    trials: those tagged with its id (``run_folder``), and, among trials from before trials were tagged, those
    the folder has rows of or had (``known``: trials of damaged files set aside)."""
    if isinstance(optuna_compat.storage_of(study), (JournalStorage, InMemoryStorage)):
        return lambda trial: True
    mine = run_folder_id(run_dir) if run_dir is not None else None
    present = set(frame["trial"].astype(int)) if not frame.empty else set()
    present |= set(known)

    def held(trial: optuna.trial.FrozenTrial) -> bool:
        tag = trial.user_attrs.get(RUN_FOLDER)
        return tag == mine if tag else trial.number in present

    return held


def unrecorded_trials(
    study: optuna.Study, frame: pd.DataFrame, run_dir: Path | None = None, known: Iterable[int] = ()
) -> list[optuna.trial.FrozenTrial]:
    """Finished trials of this run folder (`held_here`) whose tickets are missing from the table or not all
    ``ok`` (their recording was cut short: a damaged file set aside, or a re-measurement killed half-way,
    which leaves rows ``running``)."""
    recorded: set[int] = set()
    if not frame.empty:
        status_ok = (frame["status"] == OK).groupby(frame["trial"].astype(int)).all()
        recorded = {int(n) for n, ok in status_ok.items() if ok}
    held = held_here(study, run_dir, frame, known)
    out = []
    for trial in study.get_trials(deepcopy=False, states=optuna_backend.FINISHED):
        if trial.number in recorded or not trial.params or not held(trial):
            continue
        if trial.state == TrialState.PRUNED and trial.user_attrs.get("tickets") == 0:
            continue  # stopped before its first ticket: nothing to record
        out.append(trial)
    return out


def settle_ended(run_dir: Path, study: optuna.Study, frame: pd.DataFrame) -> list[int]:
    """Mark ``interrupted`` the ``running`` rows of trials the study holds as failed; their numbers."""
    if frame.empty:
        return []
    running = set(frame.loc[frame["status"] == RUNNING, "trial"].astype(int))
    ended = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in running]
    store = TicketStore(run_dir)
    for number in ended:
        store.set_status(number, INTERRUPTED)
    return ended


def finish_records(
    spec: Spec,
    run_dir: Path,
    study: optuna.Study,
    frame: pd.DataFrame,
    *,
    device: str | None = None,
    old_nodes: dict[int, str] | None = None,
    known: Iterable[int] = (),
    data_memo: dict | None = None,
) -> list[int]:
    """Measure the tickets of every `unrecorded_trials` trial again from the stage cache; their numbers.
    ``known``: trials whose rows were in files set aside (in a shared study, the folder's own, `held_here`).

    First, rows still ``running`` of trials the study has ended unfinished are marked ``interrupted`` (their
    process could not mark them: killed, or no room left on the disk)."""
    settle_ended(run_dir, study, frame)
    trials = unrecorded_trials(study, frame, run_dir, known=known)
    if not trials:
        return []
    runner = TrialRunner(
        spec, run_dir, device=device, data_memo=data_memo if data_memo is not None else {}, follow_front=False
    )
    for trial in trials:
        runner.node = trial_node(trial, old_nodes or {}, spec.search.backend)
        _replay(runner, trial)
    return [t.number for t in trials]


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
    """Run a finished trial again over the cache (its stages load, only the measurement is redone). A trial
    stopped early, or a path (which stopped against the front of its time), stops where it stopped."""
    stopped = trial.state == TrialState.PRUNED or runner.spec.search.paths is not None
    keep = trial.user_attrs.get("tickets") if stopped else None
    seen: list[Ticket] = []

    def stop_where_it_stopped(ticket: Ticket) -> None:
        seen.append(ticket)
        if keep is not None and len(seen) >= int(keep):
            raise TrialAborted

    with contextlib.suppress(TrialAborted):
        runner(trial.number, dict(trial.params), on_ticket=stop_where_it_stopped)
