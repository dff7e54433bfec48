"""The Ray Tune backend: many trials at once, Optuna as the searcher, MO-ASHA as a Tune scheduler.

What a trial computes is the Optuna backend's: every trial runs `TrialRunner` (the same `run_trial` over the
run folder's stage cache and ticket table). Ray decides where: ``workers`` trials at once, each with
``cpus_per_trial`` CPUs (its torch threads) and ``gpus_per_trial`` GPUs, on a local Ray started for this
search (``address="local"``, shut down at the end) or on the cluster at ``--address``.

The searcher is `ray.tune.search.optuna.OptunaSearch` over the same study (the run folder's journal or the
``--storage`` URL), distributions, sampler and seed as the Optuna backend, so resume, ``sltsearch pareto``
and optuna-dashboard see one study whichever backend ran it. A subclass adds what the budget rules need and
OptunaSearch does not do: the trial number in the config (ticket ids), repeats of finished trials skipped,
a failed trial told FAIL (OptunaSearch tells COMPLETE when a result exists), a trial stopped by MO-ASHA told
PRUNED with its last ticket, constraint values, and the owner/heartbeat liveness records.

Every IMP round's ticket is reported to Tune as one result. A trial that raises is recorded with its error
(FAIL, traceback in ``logs/``) and the search goes on; a trial whose worker died is retried by Tune
(``FailureConfig``) and the retry reuses the cached stages. Tune's own files go under ``<run>/ray/``.
Ray is imported only here, so the CLI and the Optuna backend never load it.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune import Callback

from sltsearch.errors import UserError
from sltsearch.results.record import Ticket
from sltsearch.results.store import INTERRUPTED, OK, TicketStore
from sltsearch.search import liveness, optuna_backend
from sltsearch.search.constraints import set_trial_constraints
from sltsearch.search.early_stop import RungStopper, StoppedEarly
from sltsearch.search.mo_asha import RUNG_KINDS
from sltsearch.search.space import to_distributions
from sltsearch.spec import Spec

NUMBER = "sltsearch_trial"  # config key: the Optuna trial number (ticket ids t<number>r<round>)
ERROR_KEY = "sltsearch_error"  # result key of a trial that raised: its one-line error
MAIN_KINDS = ("dense", *RUNG_KINDS, "early_time")  # the tickets reported to Tune (one per round)
RAY_DIR = "ray"  # Tune's experiment folders, under the run folder
MAX_WORKER_RETRIES = 2  # Tune restarts of a trial whose worker died
MAX_TEMP_BASE = 40  # longest temp folder a private Ray's session (sockets) can live under


@dataclass
class RayOptions:
    """Where and how wide the search runs."""

    workers: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None
    storage_url: str | None = None

    def check(self) -> None:
        if self.workers < 1:
            raise UserError(f"--workers: must be at least 1, got {self.workers}")
        if self.cpus_per_trial <= 0:
            raise UserError(f"--cpus-per-trial: must be above 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0:
            raise UserError(f"--gpus-per-trial: must not be negative, got {self.gpus_per_trial}")


def _result(ticket: Ticket, number: int) -> dict[str, Any]:
    """A ticket as one Tune result: its scalar columns (metrics, round, kind, ticket id)."""
    row = ticket.row()
    out = {k: v for k, v in row.items() if isinstance(v, bool | int | float | str) and not k.startswith("param_")}
    out[NUMBER] = number
    return out


def make_trainable(spec: Spec, run_dir: Path, device: str | None, cpus: float) -> Callable[[dict], None]:
    """The Tune function trainable: one trial through `TrialRunner`, one result per round's ticket."""

    def trainable(config: dict[str, Any]) -> None:
        import ray
        import torch
        from ray import tune

        from sltsearch.search.execute import TrialRunner

        torch.set_num_threads(max(1, math.floor(cpus)))  # concurrent trials never oversubscribe the cores
        params = {k: v for k, v in config.items() if k != NUMBER}
        number = int(config[NUMBER])
        node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"
        runner = TrialRunner(spec, run_dir, device=device, node=node)

        def on_ticket(ticket: Ticket) -> None:
            if ticket.kind not in MAIN_KINDS:
                return
            try:
                tune.report(_result(ticket, number))
            except SystemExit:  # Tune stopped the trial (MO-ASHA): end it here, its tickets stand
                raise StoppedEarly(ticket) from None

        try:
            runner(number, params, on_ticket=on_ticket)
        except StoppedEarly:
            return
        except Exception as err:  # noqa: BLE001 - a trial's failure is recorded; the search goes on
            runner.log_error(number, "".join(traceback.format_exception(err)))
            failed = {m: math.nan for m in spec.objective.metrics}  # Tune wants the metrics in every result
            tune.report({**failed, NUMBER: number, ERROR_KEY: optuna_backend._one_line(err)})  # noqa: SLF001

    return trainable


class _Progress(Callback):
    """Turns Tune's trial events into the run's events (the CLI's progress display)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], searcher: Any, study: Any, run_dir: Path) -> None:
        self.emit, self.searcher, self.study, self.run_dir = emit, searcher, study, run_dir

    def __getstate__(self) -> dict[str, Any]:
        return {}  # Tune pickles its callbacks with the experiment; a display (locks, a terminal) stays here

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.emit, self.searcher, self.study, self.run_dir = (lambda event: None), None, None, Path(".")

    def _done(self) -> int:
        return optuna_backend.finished_trials(self.study) if self.study is not None else 0

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.emit({"event": "trial_start", "trial": trial.config.get(NUMBER), "params": trial.config})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if ERROR_KEY not in result:
            self.emit({"event": "progress", "trial": result.get(NUMBER), "stage": "ticket",
                       "round": result.get("round"), "val": result.get("val_accuracy")})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.emit({"event": "trial_end", "state": "FAIL", "number": trial.config.get(NUMBER), "done": self._done(),
                   "reason": "its Ray worker died (retries used up)"})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        number = trial.config.get(NUMBER)
        state = dict(self.searcher.ended).get(number, "FAIL") if self.searcher is not None else "FAIL"
        reason = (trial.last_result or {}).get(ERROR_KEY, "")
        if reason:
            self.emit({"event": "trial_error", "number": number,
                       "log": self.run_dir / "logs" / f"trial-{number:06d}.log"})
        self.emit({"event": "trial_end", "state": state, "number": number, "done": self._done(), "reason": reason})


def _searcher_class() -> type:
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.searcher import Searcher

    class SltOptunaSearch(OptunaSearch):
        """OptunaSearch plus sltsearch's budget rules (see the module docstring)."""

        def __init__(self, spec: Spec, run_dir: Path, stopped: set[int], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.spec = spec
            self.run_dir = run_dir
            self.stopped = stopped  # trial numbers the MO-ASHA scheduler stopped
            self.numbers: dict[str, int] = {}
            self.beats: dict[str, liveness.Heartbeat] = {}
            self.ended: list[tuple[int, str]] = []  # (number, COMPLETE | PRUNED | FAIL)

        def suggest(self, trial_id: str) -> dict | None:
            for _ in range(optuna_backend.MAX_REPEATS_IN_ROW):
                config = super().suggest(trial_id)
                ot_trial = self._ot_trials[trial_id]
                if optuna_backend.skip_if_repeat(
                    self._ot_study, ot_trial, optuna_backend.finished_params(self._ot_study)
                ) is None:
                    break
                del self._ot_trials[trial_id]  # ask again: a repeat is never run as new exploration
            else:
                return Searcher.FINISHED
            self.numbers[trial_id] = ot_trial.number
            beat = liveness.Heartbeat(ot_trial)  # the driver owns the trial: stale if this process dies
            self.beats[trial_id] = beat.__enter__()
            return {**config, NUMBER: ot_trial.number}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id not in self._ot_trials or trial_id in self._completed_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            number = self.numbers[trial_id]
            beat = self.beats.pop(trial_id, None)
            if beat is not None:
                beat.__exit__(None, None, None)
            metrics = list(self.spec.objective.metrics)
            reason = (result or {}).get(ERROR_KEY) or ("the trial's worker died" if error else "")
            if not reason and result and number not in self.stopped and not self._finished(ot_trial, result):
                reason = f"stopped by Tune after round {result.get('round')} of its rounds"
            if error or reason or not result or any(m not in result for m in metrics):
                ot_trial.set_user_attr(optuna_backend.ERROR, reason or "no result")
                ot_trial.storage.set_trial_system_attr(ot_trial._trial_id, liveness.END, "error")  # noqa: SLF001
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                state = "FAIL"
            else:
                ot_trial.set_user_attr("final_ticket", result["ticket_id"])
                ot_trial.set_user_attr("test_accuracy", result["test_accuracy"])
                if result.get("node"):
                    ot_trial.set_user_attr(optuna_backend.NODE, result["node"])  # for `sltsearch repair`
                if self.spec.objective.constraints:
                    set_trial_constraints(ot_trial, self.spec, result)
                if number in self.stopped:
                    TicketStore(self.run_dir).set_status(number, OK)  # its worker was stopped mid-trial
                    self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
                    state = "PRUNED"
                else:
                    self._ot_study.tell(ot_trial, [float(result[m]) for m in metrics])
                    state = "COMPLETE"
            self._completed_trials.add(trial_id)
            self.ended.append((number, state))

        def _finished(self, ot_trial: Any, result: dict) -> bool:
            """True when ``result`` is the trial's last round (its value), not a round Tune cut it at."""
            rounds = len(self.spec.with_params(dict(ot_trial.params)).tickets.round_rates())
            return int(result.get("round", 0)) >= rounds

        def interrupt(self) -> None:
            """Ctrl-C: every trial still in flight ends FAIL (interrupted), its rows off the front; a rerun
            runs its parameters again."""
            for trial_id, ot_trial in list(self._ot_trials.items()):
                if trial_id in self._completed_trials or trial_id not in self.numbers:
                    continue
                number = self.numbers[trial_id]
                try:
                    ot_trial.storage.set_trial_system_attr(ot_trial._trial_id, liveness.END, "interrupted")  # noqa: SLF001
                    self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                except (RuntimeError, ValueError):  # already ended
                    pass
                TicketStore(self.run_dir).set_status(number, INTERRUPTED)
                self._completed_trials.add(trial_id)

        def save(self, checkpoint_path: str) -> None:
            """Nothing to save: the study (journal or RDB) is the searcher's state, and a rerun resumes from it."""

        def restore(self, checkpoint_path: str) -> None:
            """See `save`."""

        def __getstate__(self) -> dict[str, Any]:
            """Pickles empty. Tune pickles its searcher into ``tuner.pkl`` for `Tuner.restore`, which sltsearch
            never uses (a rerun resumes from the study); the live sampler (Optuna's NSGA-II sampler holds a
            thread lock), study and heartbeats stay in this process."""
            return {}

        def close(self) -> None:
            """End the heartbeats of trials Tune never completed (Ctrl-C): they become stale, then rerun."""
            for beat in self.beats.values():
                beat.__exit__(None, None, None)
            self.beats.clear()

    return SltOptunaSearch


def _scheduler(stopper: RungStopper, stopped: set[int]) -> Any:
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class MOASHAScheduler(FIFOScheduler):
        """MO-ASHA over IMP rounds as a Tune scheduler: the pure rule on the run folder's rung tables."""

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if ERROR_KEY in result or result.get("kind") not in RUNG_KINDS or int(result.get("round", 0)) < 1:
                return TrialScheduler.CONTINUE
            number = int(result[NUMBER])
            params = {k: v for k, v in trial.config.items() if k != NUMBER}
            if stopper.should_stop(number, params, result, int(result["round"])):
                stopped.add(number)
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    return MOASHAScheduler()


def private_temp_dir(base: str | None = None) -> Path:
    """A new folder for a private Ray's session files, short enough for its unix sockets.

    Ray puts sockets at ``<folder>/session_<date>_<pid>/sockets/<name>``, and a socket path may not exceed
    107 bytes: under a long ``TMPDIR`` Ray fails to start, so a long temp folder falls back to /tmp.
    """
    base = base or tempfile.gettempdir()
    if len(base) > MAX_TEMP_BASE and os.access("/tmp", os.W_OK):
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="sltsearch-ray-", dir=base))


def _start_ray(options: RayOptions, temp_dir: Path) -> bool:
    """Connect to ``options.address`` or start a private local Ray whose session files go to ``temp_dir``;
    True when this call connected or started it."""
    import ray

    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if options.address:
        try:
            ray.init(address=options.address, **common)
        except Exception as err:  # noqa: BLE001 - any connection error is a user-fixable address problem
            raise UserError(f"--address: cannot join the Ray cluster at '{options.address}': {err}") from None
        return True
    if not any(os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        # a private cluster keeps Ray's token auth, with a token held in memory (inherited by its workers)
        # instead of the ~/.ray/auth_token file Ray would otherwise create in the home folder
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    cpus = max(1, math.ceil(options.workers * options.cpus_per_trial))
    gpus = math.ceil(options.workers * options.gpus_per_trial) if options.gpus_per_trial else 0
    # "local": never attach to another job's Ray on this machine. Its session files (sockets, logs) go to a
    # private short folder (unix socket paths are limited to ~107 bytes, so not the run folder), removed at the
    # end: nothing is left in the shared /tmp/ray
    ray.init(address="local", num_cpus=cpus, num_gpus=gpus, _temp_dir=str(temp_dir), **common)
    return True


def optimize_ray(
    spec: Spec,
    study: optuna.Study,
    run_dir: Path,
    options: RayOptions,
    *,
    device: str | None = None,
    emit: Callable[[dict[str, Any]], None] = lambda event: None,
    stopper: RungStopper | None = None,
    max_rounds_all_failed: int = 3,
) -> None:
    """Run trials under Ray Tune until the study holds ``search.n_trials`` finished ones."""
    options.check()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ctrl-C raises KeyboardInterrupt here (as under the Optuna backend) instead of Tune's own handler, which
    # ends the experiment quietly and points at Tune's restore: a rerun of the same command resumes instead
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    import ray
    from ray import tune

    run_dir = Path(run_dir).resolve()
    temp_dir = private_temp_dir()
    try:
        started = _start_ray(options, temp_dir)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    try:
        all_failed = 0
        while True:
            optuna_backend.fail_stale_and_requeue(  # a dead process's trial: rows marked, parameters re-run
                study,
                spec.search.n_trials,
                lambda number: TicketStore(run_dir).set_status(number, INTERRUPTED),
                requeue_always=True,
            )
            remaining = spec.search.n_trials - optuna_backend.finished_trials(study)
            if remaining <= 0:
                return
            ended = _one_fit(spec, study, run_dir, options, device, stopper, remaining, emit, tune)
            if ended is None:  # the sampler proposed only repeats: the space is exhausted
                return
            if ended and all(state == "FAIL" for _, state in ended):
                all_failed += 1
                if all_failed >= max_rounds_all_failed:
                    raise optuna_backend.SearchFailed(
                        f"stopped after {len(ended)} trials in a row failed under Ray (see logs/ in {run_dir}); "
                        "fix the cause and rerun the same command: failed trials do not use up the budget"
                    )
            else:
                all_failed = 0
    finally:
        if started:
            ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _one_fit(
    spec: Spec,
    study: optuna.Study,
    run_dir: Path,
    options: RayOptions,
    device: str | None,
    stopper: RungStopper | None,
    remaining: int,
    emit: Callable[[dict[str, Any]], None],
    tune: Any,
) -> list[tuple[int, str]] | None:
    """One Tune experiment of ``remaining`` trials; returns how each ended (None: nothing left to ask)."""
    stopped: set[int] = set()
    metrics = list(spec.objective.metrics)
    searcher = _searcher_class()(
        spec,
        run_dir,
        stopped,
        space=to_distributions(spec.space),
        metric=metrics,
        mode=["max" if d == "maximize" else "min" for d in spec.objective.metrics.values()],
        sampler=optuna_backend.make_sampler(spec, len(study.get_trials(deepcopy=False))),
        study_name=study.study_name,
        storage=study._storage,  # noqa: SLF001 - the same storage object the Optuna backend opened
    )

    trainable = tune.with_resources(
        make_trainable(spec, run_dir, device, options.cpus_per_trial),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_scheduler(stopper, stopped) if stopper is not None else None,
            num_samples=remaining,
            max_concurrent_trials=options.workers,
            reuse_actors=True,  # one worker process runs trial after trial: torch is imported once
        ),
        run_config=tune.RunConfig(
            name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            storage_path=str(run_dir / RAY_DIR),
            failure_config=tune.FailureConfig(max_failures=MAX_WORKER_RETRIES),
            callbacks=[_Progress(emit, searcher, study, run_dir)],
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    except KeyboardInterrupt:
        searcher.interrupt()
        raise
    finally:
        searcher.close()
        for number, state in searcher.ended:
            if state == "PRUNED":
                TicketStore(run_dir).set_status(number, OK)  # again, after the stopped worker is gone
    if not searcher.ended and not searcher.numbers:
        return None
    return searcher.ended
