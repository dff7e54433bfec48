"""The study every backend and every worker shares: storage, sampler, budget, retries, stale trials, and
how a trial is asked, finished and recorded.

Storage is a journal file in the run folder by default (embedded, resumable; Optuna's file lock lets many
processes on one machine share it); an RDB URL (e.g. PostgreSQL) lets processes on many machines share one
study. Whoever runs the trials (this process, worker processes, Ray Tune) asks and finishes them here, so
the rules below hold for all of them:

- The budget (``search.n_trials``) counts trials that finished (COMPLETE or PRUNED); a trial that failed or
  was interrupted never uses it up. A trial asked when the budget is held by others is given back unrun.
- Interrupted, stale (their process died) and failed trials have their parameters queued again once, so a
  rerun after Ctrl-C, SIGKILL or a fixed ``--device`` resumes where the search stood.
- A configuration is never run twice: a draw equal to a finished trial's, or to one another worker is
  running, ends unrun (FAIL, ``duplicate``; no budget). Asks by workers sharing a run folder are serialised
  by a file lock, so each sees the others' draws; the sampler is seeded per trial number (unique in the
  study), so workers never draw in lockstep.
- A study belongs to one spec: it carries the spec's run identity (`sltsearch.spec.keys.run_identity`, the
  fields that decide what a trial computes or how it is judged), and a spec with another identity is refused
  before its first trial, whichever run folder it runs into. Every trial records the run folder whose
  workers ran it (``run_folder``): a machine with a run folder of its own joining a shared study never redoes
  the trials other folders hold (`sltsearch.runfolder.repair.unrecorded_trials`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.storages import InMemoryStorage, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from sltsearch.compat import optuna as optuna_compat
from sltsearch.errors import RunDirError, UserError, warn
from sltsearch.results.store import INTERRUPTED, TicketStore
from sltsearch.runfolder.folder import SPEC_FILE, run_folder_id
from sltsearch.search import liveness
from sltsearch.search.constraints import metric_value, set_trial_constraints
from sltsearch.search.space import to_distributions
from sltsearch.search.storage import JOURNAL_FILE, driver_url, make_storage  # noqa: F401 - reached through here
from sltsearch.search.study_identity import (  # noqa: F401 - names other modules reach through this one
    IDENTITY,
    IDENTITY_SPEC,
    MADE_BY,
    StudyOfAnotherSpec,
    _another_spec,
    _same_identity,
    claim_identity,
    spec_identity,
)
from sltsearch.spec import Spec
from sltsearch.system.secrets import mask_url
from sltsearch.trial.paths import cheapest_start

ASK_LOCK = "study.ask.lock"  # serialises asks of the workers sharing a run folder
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
RETRY_OF = "retry_of"  # user attr of a trial that re-runs the parameters of trial N
ERROR = "error"  # user attr: the one-line error of a failed trial
DUPLICATE_OF = "duplicate_of"  # user attr of an asked trial never run: its parameters were run or are running
NODE = "node"  # user attr: the node that ran a finished trial (its tickets' ``node``)
COMPUTE = "compute"  # user attr: epochs x T a trial trained so far (its uncached stages), for search.budget_epochs
RUN_FOLDER = "run_folder"  # user attr: the id of the run folder whose workers ran the trial (its run.json)
MAX_REPEATS_IN_ROW = 100  # the sampler proposing only repeats this often means the space is exhausted


class SearchFailed(UserError):
    """Every recent trial failed: the search stops instead of burning through its budget."""


class StorageUnavailable(UserError):
    """The study's database stayed unreachable: the worker stops with one line (finished trials are saved)."""


class FailureStreak:
    """Trials that failed in a row: past ``max(3, budget)`` of them the search stops (every backend)."""

    def __init__(self, budget: int, limit: int | None = None) -> None:
        self.limit = limit or max(3, budget)
        self.count = 0

    def add(self, state: str, reason: str = "") -> None:
        """Count a trial's end; raise `SearchFailed` when too many failed in a row."""
        if state != "FAIL":
            self.count = 0
            return
        self.count += 1
        if self.count >= self.limit:
            raise SearchFailed(
                f"stopped after {self.count} trials in a row failed; last error: {reason or 'unknown'} "
                "(fix the cause and rerun the same command: failed trials do not use up the budget)"
            )


class SpaceExhausted(Exception):
    """The sampler proposed only configurations that ran or are running, `MAX_REPEATS_IN_ROW` times."""


def _sampler_for(spec: Spec, seed: int) -> BaseSampler:
    if spec.search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=spec.search.population_size, seed=seed)
    if spec.search.sampler == "tpe":
        startup = spec.search.startup_trials
        extra = {"n_startup_trials": startup} if startup else {}
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, **extra)
    return optuna.samplers.RandomSampler(seed=seed)


class TrialSeededSampler(BaseSampler):
    """The spec's sampler, seeded afresh for every trial with ``spec.seed`` + the trial's number.

    A trial number is unique in the study whichever worker asked it, so workers that share a study never draw
    in lockstep (each process seeding one sampler with ``seed + len(trials)`` made two workers started
    together propose the same parameters), a rerun continues with new draws instead of the first ones, and a
    search gives the same draws resumed or not. The samplers keep their state in the study (NSGA-II's
    generations are trial attributes), so a fresh one per trial loses nothing.
    """

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.inner = _sampler_for(spec, spec.seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner = _sampler_for(self.spec, self.spec.seed + trial.number)
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def make_sampler(spec: Spec) -> BaseSampler:
    """The spec's sampler, as every study of a search uses it (`TrialSeededSampler`)."""
    return TrialSeededSampler(spec)


def open_study(spec: Spec, run_dir: Path, storage_url: str | None = None) -> optuna.Study:
    """The run's Optuna study (created on first use), with the spec's directions and sampler; refused
    (`StudyOfAnotherSpec`) when it was made by a spec with another run identity."""
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(
        study_name=spec.search.study_name or spec.name,
        storage=make_storage(spec, run_dir, storage_url),
        sampler=make_sampler(spec),
        directions=list(spec.objective.metrics.values()),
        load_if_exists=True,
    )
    claim_identity(study, spec, run_dir)
    if spec.search.paths is not None and not study.get_trials(deepcopy=False):
        cheapest = cheapest_start(spec)
        if cheapest:
            study.enqueue_trial(cheapest)
    return study


def check_study_spec(spec: Spec, run_dir: Path, storage_url: str | None = None) -> None:
    """`open_study`'s refusal of a study made by another spec, before anything is written (no study is made,
    and the run folder is not touched): a refused spec must leave nothing that blocks the right one. A folder
    with a frozen spec is left to its own check (`prepare_run_dir`), which names the folder."""
    if (run_dir / SPEC_FILE).is_file():
        return
    if storage_url is None and spec.search.storage is None and not (run_dir / JOURNAL_FILE).is_file():
        return
    try:
        storage = make_storage(spec, run_dir, storage_url)
    except UserError:  # told by `open_study` once the folder records where the study lives, as before
        return
    name = spec.search.study_name or spec.name
    try:
        attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    except KeyError:  # no such study yet
        return
    if IDENTITY in attrs and not _same_identity(spec, attrs):
        raise _another_spec(name, attrs)


def finished_trials(study: optuna.Study) -> int:
    """Trials that used up budget: COMPLETE or PRUNED."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _retried(study: optuna.Study) -> set[int]:
    """Numbers of the trials whose parameters were queued again already (by this or another worker)."""
    return {int(t.user_attrs[RETRY_OF]) for t in study.get_trials(deepcopy=False) if RETRY_OF in t.user_attrs}


def enqueue_retries(study: optuna.Study, limit: int) -> list[int]:
    """Queue the parameters of up to ``limit`` failed, interrupted or stale trials not re-run yet (oldest first)."""
    retried = _retried(study)
    queued: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if len(queued) >= limit:
            break
        if trial.number in retried or trial.system_attrs.get(liveness.END) in ("surplus", "duplicate"):
            continue
        if not trial.params:
            continue
        if RETRY_OF in trial.user_attrs:  # a retry that failed again is not retried a third time
            continue
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
        queued.append(trial.number)
    return queued


def _db_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable database raises: the driver's errors, or Optuna's wrapper of a failed commit."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import DBAPIError

    return (DBAPIError, StorageInternalError)


def params_key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


class SearchStudy:
    """A spec's study as the backends use it: budget, recovery, asks, and the end of every trial."""

    def __init__(self, spec: Spec, study: optuna.Study, run_dir: Path | None = None) -> None:
        self.spec = spec
        self.study = study
        self.budget = spec.search.n_trials
        self.distributions = to_distributions(spec.space)
        self.metrics = list(spec.objective.metrics)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        # workers sharing the run folder ask one at a time (a study without a folder has one process)
        self._ask_lock = FileLock(str(self.run_dir / ASK_LOCK)) if self.run_dir is not None else nullcontext()
        self._identities: dict[int, tuple | str] = {}
        self._asked: dict[int, optuna.Trial] = {}  # trials this process asked, by number (their compute is ours)
        self._compute: dict[int, float] = {}
        self._watch = liveness.StalenessWatch()  # other workers' heartbeats, timed on this process's clock
        # the run folder whose trials this study's asks make (None: a study without a folder, or an old one)
        self.run_id = run_folder_id(self.run_dir) if self.run_dir is not None else None
        # a database can be away for a while (a restart); Optuna wraps an RDB storage in a cache of its own
        self._db = not isinstance(optuna_compat.storage_of(study), (JournalStorage, InMemoryStorage))
        # the journal file this study reads, as first seen: deleted or replaced under a search, it stops it
        self._journal = None
        if isinstance(optuna_compat.storage_of(study), JournalStorage) and self.run_dir is not None:
            self._journal = _file_id(self.run_dir / JOURNAL_FILE)

    @classmethod
    def open(cls, spec: Spec, run_dir: Path, storage_url: str | None = None) -> SearchStudy:
        return cls(spec, open_study(spec, run_dir, storage_url), run_dir)

    # -- the budget

    def finished(self) -> int:
        return finished_trials(self.study)

    def running(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def spent(self) -> float:
        """Epochs x T every trial of the study trained so far (running ones included, as of their last round)."""
        return sum(float(t.user_attrs.get(COMPUTE, 0.0)) for t in self.study.get_trials(deepcopy=False))

    def budget_left(self) -> float | None:
        """Epochs x T the search may still train (``search.budget_epochs``); None without a compute budget."""
        limit = self.spec.search.budget_epochs
        return None if limit is None else limit - self.spent()

    def compute_spent(self) -> bool:
        """The study's trials trained ``search.budget_epochs`` (never, without a compute budget)."""
        left = self.budget_left()
        return left is not None and left <= 0

    def out_of_budget(self) -> bool:
        """The study holds ``search.n_trials`` finished trials, or spent ``search.budget_epochs``."""
        return self.finished() >= self.budget or self.compute_spent()

    def add_compute(self, number: int, amount: float) -> None:
        """Count ``amount`` epochs x T trained by trial ``number`` (asked by this process) in the study."""
        if amount <= 0 or number not in self._asked:
            return
        self._compute[number] = self._compute.get(number, 0.0) + amount
        total = self._compute[number]
        self.retrying(lambda: self._asked[number].set_user_attr(COMPUTE, total), f"saving trial {number}'s compute")

    def recover(self, requeue_always: bool = False) -> int:
        """Fail the stale RUNNING trials (their process died; their ticket rows are marked interrupted, off the
        front), then queue the parameters of failed trials again within the budget left (when any went stale,
        or ``requeue_always``, as at the start of a run). Returns how many trials were stale."""
        self.check_folder()
        with self._ask_lock:  # two workers never queue the same retry
            stale = liveness.fail_stale_trials(self.study, self._watch)
            if self.run_dir is not None:
                for trial in stale:
                    TicketStore(self.run_dir).set_status(trial.number, INTERRUPTED)
            if stale or requeue_always:
                pending = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
                enqueue_retries(self.study, self.budget - self.finished() - len(pending))
        return len(stale)

    def retrying(self, call: Callable[[], Any], what: str, wait_s: float = 60.0) -> Any:
        """``call()``, retried every 2 s while the study's database is unreachable (a restart), at most
        ``wait_s``; a journal file has no such outage, and its calls run once."""
        if not self._db:
            try:
                return call()
            except Exception:
                self.check_folder()  # the journal's reader fails in odd ways when the file went away under it
                raise
        errors = _db_errors()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return call()
            except errors as err:
                if time.monotonic() >= deadline:
                    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    raise StorageUnavailable(
                        f"the study's database did not answer for {wait_s:.0f} s while {what} ({mask_url(first)}); "
                        "finished trials are saved: rerun the same command when the database is back"
                    ) from None
                time.sleep(2.0)

    def check_folder(self) -> None:
        """Raise `RunDirError` when the run folder's journal was deleted or replaced while this search ran (the
        folder deleted): the study it held is gone, and going on would write trials into nowhere."""
        if self._journal is None or _file_id(self.run_dir / JOURNAL_FILE) == self._journal:
            return
        raise RunDirError(
            f"{self.run_dir}: its {JOURNAL_FILE} was deleted or replaced while the search ran (was the run folder "
            "deleted?); the study it held is gone: restore the folder and rerun, or rerun with a new --run-dir"
        )

    # -- asking

    def ask(self) -> optuna.Trial | None:
        """A new trial to run, its parameters drawn (or a queued retry's); None when the budget is held by
        trials of other workers (the trial asked meanwhile is given back). Raises `SpaceExhausted`."""
        with self._ask_lock:
            if self.compute_spent():  # nothing more to ask
                return None
            claim_identity(self.study, self.spec, self.run_dir)  # a study another spec made meanwhile: stop
            for _ in range(MAX_REPEATS_IN_ROW):
                trial = self.study.ask(self.distributions)
                if self._ahead_of(trial.number) >= self.budget:
                    self._end_unrun(trial, "surplus")
                    return None
                original = self.repeat_of(trial)
                if original is None:
                    liveness.claim(trial)  # its owner: from now on other workers see it as taken
                    self._asked[trial.number] = trial
                    if self.run_id:  # whose tickets it writes: only this folder ever re-measures them
                        trial.set_user_attr(RUN_FOLDER, self.run_id)
                    return trial
                trial.set_user_attr(DUPLICATE_OF, original)
                self._end_unrun(trial, "duplicate")
        raise SpaceExhausted

    def repeat_of(self, trial: optuna.Trial | FrozenTrial) -> int | None:
        """The number of a trial that ran, or is running, ``trial``'s parameters or parameters that compute the
        same stages (`stages.trial_identity`); None when they are new.

        The same stages give the same tickets, so running them again would spend a trial on nothing new.
        Of two trials running the same parameters, the one claimed first (its owner recorded), or else the
        one asked first, keeps them."""
        key = self._identity(trial.number, trial.params)
        for other in self.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING)):
            if other.number == trial.number or self._identity(other.number, other.params) != key:
                continue
            if other.state != TrialState.RUNNING or other.number < trial.number or liveness.OWNER in other.system_attrs:
                return other.number
        return None

    def _identity(self, number: int, params: Mapping[str, Any]) -> tuple | str:
        """What a trial computes (`stages.trial_identity`), remembered per trial (its parameters never change);
        its parameters themselves where they make no valid spec (the trial then fails with that error)."""
        if number not in self._identities:
            from sltsearch.trial import stages  # torch and the models: only a study that runs trials needs them

            try:
                self._identities[number] = stages.trial_identity(self.spec.with_params(dict(params)))
            except (ValueError, UserError):  # pydantic's ValidationError is a ValueError
                self._identities[number] = params_key(params)
        return self._identities[number]

    def _ahead_of(self, number: int) -> int:
        """Trials numbered below ``number`` that hold budget (finished or running)."""
        held = self.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        return sum(1 for t in held if t.number < number)

    def _end_unrun(self, trial: optuna.Trial, why: str) -> None:
        """End an asked trial without running it: FAIL, marked ``why`` (never retried, no budget)."""
        optuna_compat.set_system_attr(optuna_compat.storage_of(self.study), trial, liveness.END, why)
        self.study.tell(trial, state=TrialState.FAIL)

    # -- finishing and recording a trial

    def complete(self, trial: optuna.Trial, final: Any, tickets: int | None = None) -> bool:
        """The trial ran all its rounds: record its ticket (``final``: a `Ticket` or a result mapping with the
        ticket's columns) and tell its objective values. False when the trial was `taken` from this process."""

        def tell() -> None:
            self.record(trial, final, tickets)
            self.study.tell(trial, [metric_value(final, m) for m in self.metrics])

        return self._finish(trial, tell)

    def prune(self, trial: optuna.Trial, last: Any | None, tickets: int | None) -> bool:
        """Early stopping ended the trial after a round: its last kept ticket is its value (``last``). False
        when the trial was `taken` from this process."""

        def tell() -> None:
            if last is not None:
                self.record(trial, last, tickets)
            else:
                trial.set_user_attr("tickets", tickets)
            self.study.tell(trial, state=TrialState.PRUNED)

        return self._finish(trial, tell)

    def _finish(self, trial: optuna.Trial, tell: Callable[[], None]) -> bool:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self.retrying(tell, f"saving trial {trial.number}")
        except UpdateFinishedTrialError:
            self.taken(trial)
            return False
        return True

    def taken(self, trial: optuna.Trial) -> None:
        """Another worker ended this process's trial while it ran (it found the trial's heartbeat silent, or its
        owner gone): the study holds it FAIL and runs its parameters again, so its tickets here are marked
        ``interrupted``, off the front, as the study says; one line tells the user."""
        if self.run_dir is not None:
            TicketStore(self.run_dir).set_status(trial.number, INTERRUPTED)
        warn(
            f"trial {trial.number} was ended by another worker while it ran here (its heartbeat looked silent for "
            f"{liveness.GRACE_S:.0f} s): its tickets are marked interrupted and its parameters run again"
        )

    def fail(self, trial: optuna.Trial, reason: str, end: str = "error") -> None:
        """The trial failed (``end`` = ``error``, its one-line ``reason`` recorded) or was ``interrupted``;
        either way its parameters run again once (`recover`)."""
        try:
            if reason:
                trial.set_user_attr(ERROR, reason)
            optuna_compat.set_system_attr(optuna_compat.storage_of(self.study), trial, liveness.END, end)
            self.study.tell(trial, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # already ended (an interrupt reaching a trial as it was told)
            pass

    def record(self, trial: optuna.Trial, final: Any, tickets: int | None) -> None:
        """The trial's ticket in its user attrs, and its constraint values where the samplers read them."""
        trial.set_user_attr("tickets", tickets)
        trial.set_user_attr("final_ticket", _field(final, "ticket_id"))
        trial.set_user_attr("test_accuracy", _field(final, "test_accuracy"))  # reported, never optimised
        node = _field(final, "node")
        if node:  # where it ran: `sltsearch repair` restores it in re-measured rows
            trial.set_user_attr(NODE, node)
        if self.spec.objective.constraints:
            set_trial_constraints(trial, self.spec, final)


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``: the same file while it is neither deleted nor replaced; None when absent."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _field(ticket: Any, name: str) -> Any:
    return ticket.get(name) if isinstance(ticket, Mapping) else getattr(ticket, name, None)
