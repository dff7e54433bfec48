"""The Ray Tune backend: ``--workers`` trials at once on a private local Ray or a cluster, MO-ASHA as a Tune
scheduler.

What a trial computes is the Optuna backend's: every trial runs `TrialRunner` (the same `run_trial` over the
run folder's stage cache and ticket table), with ``--threads`` torch threads, and gets the data the pre-run
checks built through Ray's object store. Ray decides where: ``workers`` trials at once, each reserving
``cpus_per_trial`` CPUs (default: its threads) and ``gpus_per_trial`` GPUs, on a local Ray started for this
search (``address="local"``, shut down at the end) or on the cluster at ``--address``.

The searcher asks and finishes every trial through the run's `SearchStudy`, as the Optuna backend's workers
do: the same study (journal or ``--storage`` URL), sampler, budget, retries and repeat rule, so resume,
``sltsearch pareto`` and optuna-dashboard see one study whichever backend ran it. Tune adds only what is its
own: a result per IMP round (MO-ASHA's rungs), and restarts of a trial whose worker died (``FailureConfig``;
the restart reuses the cached stages). A trial that raises is recorded with its error (FAIL, traceback in
``logs/``) and the search goes on. Tune's own files go under ``<run>/ray/``. Ray is imported only here, so the
CLI and the Optuna backend never load it.
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
from pathlib import Path
from typing import Any

import optuna
from ray.tune import Callback
from ray.tune.search import Searcher

from sltsearch.compat import ray as ray_compat
from sltsearch.errors import UserError, one_line
from sltsearch.results.record import MAIN_KINDS, Ticket
from sltsearch.results.store import INTERRUPTED, OK, TicketStore, part_path, read_columns, stage_compute
from sltsearch.search import interrupts, liveness
from sltsearch.search.backend import SearchJob
from sltsearch.search.early_stop import RungStopper, StoppedEarly, imp_rounds
from sltsearch.search.events import TrialEnd, TrialProgress, TrialStart
from sltsearch.search.mo_asha import RUNG_KINDS
from sltsearch.search.ray_env import AUTH
from sltsearch.search.study import FailureStreak, SearchStudy, SpaceExhausted

NUMBER = "sltsearch_trial"  # config key: the Optuna trial number (ticket ids t<number>r<round>)
ERROR_KEY = "sltsearch_error"  # result key of a trial that raised: its one-line error
COMPUTE_KEY = "sltsearch_compute"  # result key: epochs x T trained since the trial's previous result
FINAL_KEY = "sltsearch_final"  # result key of a trial's last result: its value (a path may end before its plan)
RAY_DIR = "ray"  # Tune's experiment folders, under the run folder
MAX_WORKER_RETRIES = 2  # Tune restarts of a trial whose worker died
MAX_TEMP_BASE = 40  # longest temp folder a private Ray's session (sockets) can live under
LOGS = "logs"


def _result(ticket: Ticket, number: int) -> dict[str, Any]:
    """A ticket as one Tune result: its scalar columns (metrics, round, kind, ticket id)."""
    row = ticket.row()
    out = {k: v for k, v in row.items() if isinstance(v, bool | int | float | str) and not k.startswith("param_")}
    out[NUMBER] = number
    return out


def make_trainable(job: SearchJob) -> Callable[..., None]:
    """The Tune function trainable: one trial through `TrialRunner`, one result per round's ticket."""
    spec, run_dir, device, threads = job.spec, job.run_dir, job.device, job.threads

    def trainable(config: dict[str, Any], data_memo: dict[str, Any]) -> None:
        import ray
        import torch
        from ray import tune

        from sltsearch.search.execute import TrialRunner

        torch.set_num_threads(threads)  # concurrent trials never oversubscribe the cores
        params = {k: v for k, v in config.items() if k != NUMBER}
        number = int(config[NUMBER])
        node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"
        runner = TrialRunner(spec, run_dir, device=device, node=node, data_memo=data_memo, worker="ray")

        pending = [0.0]  # compute of the tickets not reported yet (controls ride with the next round's result)

        def on_ticket(ticket: Ticket) -> None:
            pending[0] += stage_compute(ticket)
            if ticket.kind not in MAIN_KINDS:  # the tickets reported to Tune: one per round
                return
            try:
                tune.report({**_result(ticket, number), COMPUTE_KEY: pending[0]})
                pending[0] = 0.0
            except SystemExit:  # Tune stopped the trial (MO-ASHA): end it here, its tickets stand
                raise StoppedEarly(ticket) from None

        try:
            tickets = runner(number, params, on_ticket=on_ticket)
            # the trial's value last (a path's is not always its last round), marked as its end
            tune.report({**_result(tickets[-1], number), COMPUTE_KEY: pending[0], FINAL_KEY: True})
        except StoppedEarly:
            return
        except Exception as err:  # noqa: BLE001 - a trial's failure is recorded; the search goes on
            runner.log_error(number, "".join(traceback.format_exception(err)))
            failed = {m: math.nan for m in spec.objective.metrics}  # Tune wants the metrics in every result
            tune.report({**failed, NUMBER: number, ERROR_KEY: one_line(err, first_line=True)})

    return trainable


class _Progress(Callback):
    """Turns Tune's trial events into the search's events (the CLI's progress display)."""

    def __init__(self, job: SearchJob, searcher: StudySearcher) -> None:
        self.emit, self.searcher, self.run_dir, self.spec = job.emit, searcher, job.run_dir, job.spec

    def __getstate__(self) -> dict[str, Any]:
        return {}  # Tune pickles its callbacks with the experiment; a display (locks, a terminal) stays here

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.emit, self.searcher, self.run_dir, self.spec = (lambda event: None), None, Path("."), None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        params = {k: v for k, v in trial.config.items() if k != NUMBER}
        rounds = imp_rounds(self.spec, params) if self.spec is not None else None
        path = self.spec is not None and self.spec.search.paths is not None
        self.emit(TrialStart(int(trial.config[NUMBER]), params, "ray", rounds, path))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if ERROR_KEY not in result:
            self.emit(TrialProgress(int(result[NUMBER]), "ticket", int(result.get("round", 0)),
                                    val=result.get("val_accuracy")))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        number = int(trial.config[NUMBER])
        self.emit(TrialEnd(number, "FAIL", self._done(), "its Ray worker died (retries used up)"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        number = int(trial.config[NUMBER])
        ended = {n: state for n, state, _ in self.searcher.ended} if self.searcher is not None else {}
        state = ended.get(number, "FAIL")
        reason = (trial.last_result or {}).get(ERROR_KEY, "")
        log = self.run_dir / LOGS / f"trial-{number:06d}.log" if reason else None
        self.emit(TrialEnd(number, state, self._done(), reason, log))

    def _done(self) -> int:
        return self.searcher.shared.finished() if self.searcher is not None else 0


class StudySearcher(Searcher):
    """Tune's searcher over the run's `SearchStudy`: asks there, finishes there (see the module docstring)."""

    def __init__(self, shared: SearchStudy, stopped: set[int]) -> None:
        super().__init__()
        self.shared = shared
        self.run_dir = shared.run_dir or Path(".")
        self.stopped = stopped  # trial numbers the MO-ASHA scheduler stopped
        self.trials: dict[str, optuna.Trial] = {}
        self.beats: dict[str, liveness.Heartbeat] = {}
        self.ended: list[tuple[int, str, str]] = []  # (number, COMPLETE | PRUNED | FAIL, why it failed)
        self.asked = 0

    def suggest(self, trial_id: str) -> dict | str | None:
        try:
            trial = self.shared.retrying(self.shared.ask, "asking for a trial")
        except SpaceExhausted:
            return Searcher.FINISHED
        if trial is None:  # the budget is held by other processes' trials
            return Searcher.FINISHED
        self.trials[trial_id] = trial
        self.asked += 1
        self.beats[trial_id] = liveness.Heartbeat(trial).__enter__()  # the driver owns the trial
        return {**trial.params, NUMBER: trial.number}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self.trials.get(trial_id)
        if trial is not None and result.get(COMPUTE_KEY):
            self.shared.add_compute(trial.number, float(result[COMPUTE_KEY]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.trials.pop(trial_id, None)
        if trial is None:
            return
        beat = self.beats.pop(trial_id, None)
        if beat is not None:
            beat.__exit__(None, None, None)
        number = trial.number
        reason = (result or {}).get(ERROR_KEY) or ("the trial's worker died" if error else "")
        if not reason and result and number not in self.stopped and not self._finished(trial, result):
            reason = f"stopped by Tune after round {result.get('round')} of its rounds"
        if error or reason or not result or any(m not in result for m in self.shared.metrics):
            reason = reason or "no result"
            self.shared.fail(trial, reason)
            state = "FAIL"
        elif number in self.stopped:
            TicketStore(self.run_dir).set_status(number, OK)  # its worker was stopped mid-trial
            taken = not self.shared.prune(trial, result, self._tickets(number))
            state = "FAIL" if taken else "PRUNED"
        else:
            taken = not self.shared.complete(trial, result, self._tickets(number))
            state = "FAIL" if taken else "COMPLETE"  # taken: another process found it stale and ended it
        self.ended.append((number, state, reason))

    def _finished(self, trial: optuna.Trial, result: dict) -> bool:
        """True when ``result`` is the trial's last round (its value), not a round Tune cut it at."""
        if result.get(FINAL_KEY):
            return True
        return int(result.get("round", 0)) >= imp_rounds(self.shared.spec, dict(trial.params))

    def _tickets(self, number: int) -> int | None:
        """How many tickets the trial wrote (where a replay by `sltsearch repair` stops)."""
        try:
            return len(read_columns(part_path(self.run_dir, number), ["trial"])["trial"])
        except Exception:  # noqa: BLE001 - a count only; the trial's end is recorded without it
            return None

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: every trial still in flight ends FAIL (interrupted), its rows off the front; a
        rerun runs its parameters again."""
        for trial_id, trial in list(self.trials.items()):
            self.shared.fail(trial, "", end="interrupted")
            TicketStore(self.run_dir).set_status(trial.number, INTERRUPTED)
            del self.trials[trial_id]

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study (journal or RDB) is the searcher's state, and a rerun resumes from it."""

    def restore(self, checkpoint_path: str) -> None:
        """See `save`."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickles empty. Tune pickles its searcher into ``tuner.pkl`` for `Tuner.restore`, which sltsearch
        never uses (a rerun resumes from the study); the study, its sampler (Optuna's NSGA-II sampler holds a
        thread lock) and the heartbeats stay in this process."""
        return {}

    def close(self) -> None:
        """End the heartbeats of trials Tune never completed: they become stale, then run again."""
        for beat in self.beats.values():
            beat.__exit__(None, None, None)
        self.beats.clear()


def _scheduler(stopper: RungStopper, stopped: set[int]) -> Any:
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class MOASHAScheduler(FIFOScheduler):
        """MO-ASHA over IMP rounds as a Tune scheduler: the pure rule on the run folder's rung tables."""

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if ERROR_KEY in result or FINAL_KEY in result or result.get("kind") not in RUNG_KINDS or int(
                result.get("round", 0)
            ) < 1:
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


def _start_ray(job: SearchJob) -> tuple[bool, Path | None]:
    """Connect to ``job.address`` or start a private local Ray; (whether this call connected or started it,
    the private Ray's session folder to remove at the end)."""
    import ray

    if ray.is_initialized():
        return False, None
    common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if job.address:
        try:
            ray.init(address=job.address, **common)
        except Exception as err:  # noqa: BLE001 - any connection error is a user-fixable address problem
            raise UserError(f"--address: cannot join the Ray cluster at '{job.address}': {err}") from None
        return True, None
    if not any(os.environ.get(k) for k in AUTH):  # Ray imported before `private_ray_env` could set one
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    workers = job.workers or 1
    cpus = max(1, math.ceil(workers * _cpus(job)))
    gpus = math.ceil(workers * job.gpus_per_trial) if job.gpus_per_trial else 0
    # "local": never attach to another job's Ray on this machine. Its session files (sockets, logs) go to a
    # private short folder (unix socket paths are limited to ~107 bytes, so not the run folder), removed at the
    # end: nothing is left in the shared /tmp/ray
    temp_dir = private_temp_dir()
    try:
        ray_compat.init_local(cpus, gpus, temp_dir, **common)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return True, temp_dir


def run_search(job: SearchJob) -> None:
    """The backend: Tune experiments until the study holds ``search.n_trials`` finished trials."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ctrl-C raises KeyboardInterrupt here (as under the Optuna backend) instead of Tune's own handler, which
    # ends the experiment quietly and points at Tune's restore: a rerun of the same command resumes instead
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    import ray

    job.run_dir = Path(job.run_dir).resolve()
    shared = SearchStudy.open(job.spec, job.run_dir, job.storage)
    started, temp_dir = _start_ray(job)
    interrupts.arm()  # ray.init installed its own SIGTERM handler (a node teardown under Tune): ours again
    try:
        if job.workers is None:  # on a cluster, by default as many trials at once as it has CPUs for
            job.workers = max(1, int(ray.cluster_resources().get("CPU", 1) // _cpus(job)))
        job.started(shared.finished(), shared.spent())
        memo = ray.put(job.data_memo)  # once in the object store, for every trial
        failures = FailureStreak(shared.budget)
        while True:
            shared.retrying(lambda: shared.recover(requeue_always=True), "recovering interrupted trials")
            remaining = shared.budget - shared.finished()
            if remaining <= 0 or shared.out_of_budget():
                return
            if remaining <= shared.running():  # other processes hold the rest of the budget: wait for them
                time.sleep(2.0)
                continue
            ended = _one_fit(job, shared, memo, remaining)
            if ended is None:  # the sampler proposed only repeats: the space is exhausted
                return
            for _, state, reason in ended:
                failures.add(state, reason)
    finally:
        if started:
            ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _cpus(job: SearchJob) -> float:
    return job.cpus_per_trial if job.cpus_per_trial is not None else float(job.threads)


def _one_fit(job: SearchJob, shared: SearchStudy, memo: Any, remaining: int) -> list[tuple[int, str, str]] | None:
    """One Tune experiment of ``remaining`` trials; returns how each ended (None: nothing left to ask)."""
    from ray import tune

    stopped: set[int] = set()
    stopper = job.stopper()
    searcher = StudySearcher(shared, stopped)
    trainable = tune.with_resources(
        tune.with_parameters(make_trainable(job), data_memo=memo),
        {"cpu": _cpus(job), "gpu": job.gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_scheduler(stopper, stopped) if stopper is not None else None,
            num_samples=remaining,
            max_concurrent_trials=job.workers,
            reuse_actors=True,  # one worker process runs trial after trial: torch is imported once
        ),
        run_config=tune.RunConfig(
            name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            storage_path=str(job.run_dir / RAY_DIR),
            failure_config=tune.FailureConfig(max_failures=MAX_WORKER_RETRIES),
            callbacks=[_Progress(job, searcher)],
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
        for number, state, _ in searcher.ended:
            if state == "PRUNED":
                TicketStore(job.run_dir).set_status(number, OK)  # again, after the stopped worker is gone
    if not searcher.asked:
        return None
    return searcher.ended
