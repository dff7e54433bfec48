"""The Optuna backend's worker processes on this machine: started, heard, watched and stopped.

Not a scheduler: every worker runs the same loop (`sltsearch.search.worker_loop.work`) against the run's
shared study and stage cache, and the study decides what each runs. The process that starts the search is
worker 1; `WorkerProcesses` starts the others. They start from a fork server that imported the trial code
once (``spawn`` where there is none), never by forking the caller: a forked copy of a process with torch's
thread pools and heartbeat threads can hang. Each worker gets the data the pre-run checks built (tensors
travel through shared memory), so none rebuilds it.

Their events come back through a queue to the caller's event sink. Ctrl-C in a terminal reaches every
process of the group: workers ignore it, and the caller sends each one SIGTERM instead, which ends its trial
as interrupted (`sltsearch.search.interrupts`); a worker whose caller died (SIGKILL) does the same by itself.
A worker that stops on an error of its own reports it as one line (`WorkerNote`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from types import TracebackType
from typing import Any

from sltsearch.errors import UserError
from sltsearch.search import interrupts, liveness
from sltsearch.search.backend import SearchJob, label
from sltsearch.search.events import WorkerNote

HELD = (signal.SIGINT, signal.SIGTERM)  # what a worker's start holds back
STOP_WAIT_S = 60.0  # how long a stopped worker may take to mark its trial, before it is killed
PRELOAD = ["sltsearch.search.fork_server"]  # what the fork server imports once for every worker


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM that arrive in the block take effect at its end (main thread only). A signal mask
    would not do: the kernel hands a process's signal to any thread that does not block it, and Python then
    runs the handler in the main thread wherever it stands."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    previous = {signum: signal.signal(signum, lambda number, frame: came.append(number)) for signum in HELD}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if came:
            signal.raise_signal(came[0])  # now, to the handler in force (Ctrl-C: KeyboardInterrupt)


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def warm_up() -> None:
    """Start the fork server now: its import of the trial code then overlaps this process's pre-run checks,
    and the workers start at once when the search does."""
    if _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()




def _watch_caller(caller: dict[str, Any]) -> None:
    """Stop this worker (SIGTERM to itself) once the process that started it is gone."""
    while liveness.owner_alive(caller) is not False:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(job: SearchJob, index: int, deadline: float | None, events: Any, caller: dict[str, Any]) -> None:
    """A worker process: the search loop until the study holds the budget, events to the caller."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller forwards Ctrl-C as SIGTERM, once
    try:
        interrupts.arm()
        threading.Thread(target=_watch_caller, args=(caller,), name="sltsearch-caller-watch", daemon=True).start()
        from sltsearch.search.worker_loop import work
        from sltsearch.system.threads import configure_threads

        configure_threads(job.threads)
        job.emit = events.put
        work(job, index, deadline)
    except KeyboardInterrupt:
        sys.exit(interrupts.EXIT_CODE)
    except UserError as err:
        events.put(WorkerNote(label(index), str(err)))
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - the caller shows it in one line; the other workers go on
        events.put(WorkerNote(label(index), f"{type(err).__name__}: {err}"))
        sys.exit(1)


class WorkerProcesses:
    """Workers 2..N of a search (a context manager): started on entry, stopped on an error or interrupt."""

    def __init__(self, job: SearchJob, deadline: float | None) -> None:
        self.job = job
        self.deadline = deadline
        self.notes: list[WorkerNote] = []
        self.processes: list[Any] = []
        self._events: Any = None
        self._pump: threading.Thread | None = None
        self._done = threading.Event()

    def __enter__(self) -> WorkerProcesses:
        if (self.job.workers or 1) <= 1:
            return self
        context = _context()
        self._events = context.Queue()
        self._pump = threading.Thread(target=self._forward, name="sltsearch-worker-events", daemon=True)
        self._pump.start()
        shipped = replace(self.job, emit=None)  # the caller's display stays here
        caller = liveness.owner_record()
        try:
            for index in range(2, self.job.workers + 1):
                try:
                    self._start(context, shipped, index, caller)
                except (pickle.PicklingError, TypeError, AttributeError) as err:  # data that cannot leave here
                    if self.processes or not shipped.data_memo:
                        raise UserError(f"cannot start worker {index} ({err}); run with --workers 1") from None
                    shipped = replace(shipped, data_memo={})  # then every worker builds the data itself
                    self._start(context, shipped, index, caller)
        except BaseException:  # interrupted while starting them: stop those started
            self.stop()
            raise
        return self

    def _start(self, context: Any, job: SearchJob, index: int, caller: dict[str, Any]) -> None:
        """Start one worker. Ctrl-C and SIGTERM wait until it is in `processes`: a worker this process no
        longer knows of would outlive it, and fail to read its arguments once it is gone."""
        args = (job, index, self.deadline, self._events, caller)
        process = context.Process(target=_worker_main, args=args, name=f"sltsearch-worker-{index}")
        with _signals_held():
            process.start()
            self.processes.append(process)

    def _forward(self) -> None:
        """Hand the workers' events to the caller's sink, in this process."""
        while not (self._done.is_set() and self._events.empty()):
            try:
                event = self._events.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(event, WorkerNote):
                self.notes.append(event)
            self.job.emit(event)

    def wait(self) -> None:
        """Wait for the workers to end (they stop when the study holds the budget)."""
        for process in self.processes:
            process.join()

    def stop(self) -> None:
        """Ask every running worker to stop (SIGTERM: its trial ends as interrupted); kill it if it lingers."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()  # its trial goes stale, and runs again on the next run
                process.join()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if kind is not None:
                self.stop()
                return
            try:
                self.wait()
            except BaseException:  # interrupted while the last trials end
                self.stop()
                raise
        finally:
            self._done.set()
            if self._pump is not None:
                self._pump.join()
            if self._events is not None:
                self._events.close()
