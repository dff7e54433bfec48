"""What every benchmark report states about how it was made, written one way: the harness of `benchmarks/*.py`.

A report is only as good as what it says about its run: on a shared 2-core machine a timing means little
without the load beside it. Each script makes one `Bench` when it starts and asks it for the report's
provenance lines when it writes the report::

    from harness import Bench           # scripts run as `python benchmarks/NAME.py`: benchmarks/ is on sys.path

    def main() -> None:
        args = parser.parse_args()
        bench = Bench()                 # now: the command line, the UTC start time, the load average
        ...                             # the measurements
        lines = bench.header("What this report measures", seeds=args.seeds, threads=torch.get_num_threads())
        lines += [...]                  # the report's own text and tables
        lines.append(bench.summary(["cache 1.20x", "workers 1.41x"]))
        bench.write(args.out, lines)    # atomically; prints the report too

`bench.header` gives the title and the provenance block; `bench.provenance` the block alone, for a report that
puts its own paragraphs first. The block reads (each line ends with two spaces: a Markdown line break)::

    Command: `python benchmarks/NAME.py --seeds 3` (2026-12-06 15:00 UTC, 5.7 min)
    Machine: vm, x86_64, 2 usable cores, Python 3.11.7, torch 2.14.1, 1 torch thread per process; load average
    (1/5/15 min) 8.10 / 8.65 / 5.72 at start, 6.97 / 7.34 / 6.04 at end
    Seeds: 0, 1, 2; git 3187520 (clean)

`load_now()` formats the load average for a report that puts it beside every timing. `summary` writes
the one ``Summary:`` line the site's benchmark index shows (docs/hooks/benchmark_reports.py). torch is named
only when the script has imported it (the harness never imports it), its threads only when the script says.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the folders whose changes a report's git line reports as "modified"
SOURCES = ("sltsearch", "benchmarks", "search_spaces")


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (zeros where the platform has none)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)


def format_load(load: Sequence[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def load_now() -> str:
    """The load average now, formatted: for reports that show it beside every timing."""
    return format_load(load_average())


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as containers and schedulers set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def git_commit() -> str:
    """The checkout's short commit, and whether the measured code differs from it ("unknown" outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *SOURCES], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = sorted({line[3:].split("/", 1)[0] for line in dirty.splitlines() if line.strip()})
    return f"{head} ({'uncommitted changes in ' + ', '.join(changed) if changed else 'clean'})"


def machine(threads: int | None = None) -> str:
    """Host, CPU, usable cores, Python, torch (when the script imported it) and the torch threads it names."""
    parts = [platform.node(), platform.processor() or platform.machine(), f"{usable_cores()} usable cores",
             f"Python {platform.python_version()}"]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__}")
    if threads is not None:
        parts.append(f"{threads} torch thread{'s' if threads != 1 else ''} per process")
    return ", ".join(parts)


def _seeds(seeds: int | Iterable[int] | None) -> str | None:
    if seeds is None:
        return None
    values = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    return ", ".join(str(s) for s in values)


class Bench:
    """One benchmark run: made when the script starts, asked for the report's provenance when it writes it."""

    def __init__(self, argv: Sequence[str] | None = None) -> None:
        argv = list(sys.argv if argv is None else argv)
        script = Path(argv[0]) if argv else Path("benchmark")
        try:
            shown = script.resolve().relative_to(ROOT)
        except ValueError:
            shown = script
        self.command = " ".join(["python", shlex.quote(str(shown)), *map(shlex.quote, argv[1:])])
        self.started_utc = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        self.load_start = load_average()
        self._t0 = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def provenance(self, *, seeds: int | Iterable[int] | None = None, threads: int | None = None,
                   notes: Iterable[str] = ()) -> list[str]:
        """Command (with start time and wall time so far), machine with the load at start and now, seeds, git."""
        lines = [
            f"Command: `{self.command}` ({self.started_utc}, {self.elapsed_s / 60:.1f} min)",
            f"Machine: {machine(threads)}; load average (1/5/15 min) {format_load(self.load_start)} at start, "
            f"{format_load(load_average())} at end",
        ]
        seed_text = _seeds(seeds)
        lines.append(("" if seed_text is None else f"Seeds: {seed_text}; ") + f"git {git_commit()}")
        lines += list(notes)
        return [line + "  " for line in lines[:-1]] + [lines[-1]]

    def header(self, title: str, *, seeds: int | Iterable[int] | None = None, threads: int | None = None,
               notes: Iterable[str] = ()) -> list[str]:
        """The report's title and provenance block, then a blank line."""
        return [f"# {title}", "", *self.provenance(seeds=seeds, threads=threads, notes=notes), ""]

    @staticmethod
    def summary(parts: Iterable[str]) -> str:
        """The report's one ``Summary:`` line (the site's benchmark index shows it)."""
        return "Summary: " + "; ".join(parts)

    @staticmethod
    def write(path: Path, lines: Iterable[str], *, echo: bool = True) -> str:
        """Write the report (a temp file renamed over ``path``) and print it; returns the text."""
        text = "\n".join(lines).rstrip("\n") + "\n"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        if echo:
            print(text)
        return text
