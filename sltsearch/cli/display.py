"""The progress display of `sltsearch run`: trials done / total, the best validation accuracy so far, and a
line per running trial with the worker that runs it and its threads.

It hears the search's typed events (`sltsearch.search.events`), from this process and from the worker
processes (through a forwarding thread), so every change happens under one lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from sltsearch.search.events import Event, SearchStart, TrialEnd, TrialProgress, TrialStart, WorkerNote


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class _Running:
    """What the display knows of a running trial."""

    worker: str
    rounds: str
    where: str = "starting"


class RunDisplay:
    """Rich progress for a search (an event sink: call it with each event); `stop` when the search ends.

    Printing happens outside the display's lock: a print redraws the live display, whose refresh thread
    reads the state without that lock (a copy of the running trials)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.fields[what]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.live = Live(self, console=console, refresh_per_second=4, transient=False)
        self.task: int | None = None
        self.budget: int | None = None  # the compute budget's bar (epochs x T), when the spec sets one
        self.best = float("nan")
        self.threads = 1
        self.running: dict[int, _Running] = {}
        self._lock = threading.RLock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            lines = self._hear(event)
            if isinstance(event, SearchStart):
                self.live.start()
        for line in lines:  # outside the lock: printing redraws the display, which reads the state
            self.console.print(line, highlight=False, soft_wrap=True)

    def _hear(self, event: Event) -> list[str]:
        """Take in ``event``; returns the lines to print above the display."""
        if isinstance(event, SearchStart):
            self.threads = event.threads
            setup = f"{plural(event.workers, 'worker')} x {plural(event.threads, 'thread')}"
            self.task = self.progress.add_task("", total=event.n_trials, completed=event.done, what="trials")
            if event.budget_epochs is not None:
                self.budget = self.progress.add_task(
                    "epochs x T trained", total=event.budget_epochs, completed=min(event.spent, event.budget_epochs),
                    what="compute",
                )
            return [
                escape(f"run folder: {event.run_dir}"),
                f"{event.backend} backend: {setup} (trials at once x torch CPU threads each; OMP_WAIT_POLICY "
                f"{event.wait_policy}; change with --workers / --threads)",
            ]
        if self.task is None:
            return []
        if isinstance(event, TrialStart):
            most = str(event.rounds or "?")
            self.running[event.number] = _Running(event.worker, f"≤{most}" if event.path else most)
        elif isinstance(event, TrialProgress):
            self._progress(event)
        elif isinstance(event, TrialEnd):
            self.running.pop(event.number, None)
            self.progress.update(self.task, completed=event.done)
            if event.state == "FAIL":
                where = f" (traceback: {event.log})" if event.log else ""
                message = f"trial {event.number} failed: {event.reason or 'unknown error'}{where}"
                return [f"[yellow]{escape(message)}[/]"]
        elif isinstance(event, WorkerNote):
            return [f"[yellow]{escape(f'{event.worker} stopped: {event.message}')}[/]"]
        return []

    def _progress(self, event: TrialProgress) -> None:
        trial = self.running.setdefault(event.number, _Running("?", "?"))
        if event.stage == "ticket":
            if self.budget is not None and event.compute:
                self.progress.advance(self.budget, event.compute)
            if event.val is not None:
                self.best = event.val if self.best != self.best else max(self.best, event.val)
                self.progress.update(self.task, description=f"best val acc {100 * self.best:.1f}%")
            return
        if event.stage == "branch":  # a path that starts from another path's ticket (`sltsearch.trial.paths`)
            trial.rounds = f"≤{event.rounds}"
            trial.where = f"branch after round {event.round}"
            return
        where = "dense" if event.stage == "dense" else f"round {event.round}/{trial.rounds}"
        trial.where = where + (f" epoch {event.epoch}" if event.epoch is not None else "")

    def __rich__(self) -> RenderableType:
        rows = Table.grid(padding=(0, 2))
        for number, trial in sorted(dict(self.running).items()):  # a copy: events change it meanwhile
            rows.add_row(
                Text(f"  trial {number}"),
                Text(f"{trial.worker}, {plural(self.threads, 'thread')}", style="dim"),
                Text(trial.where),
            )
        return Group(self.progress.get_renderable(), rows)

    def stop(self) -> None:
        with self._lock:
            if self.live.is_started:
                self.live.stop()
