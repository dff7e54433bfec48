"""Benchmark: how much one busy core slows a search, with torch's thread defaults and with sltsearch's.

Four runs of the same small search, each into a fresh run folder (nothing cached), side by side:

- ``torch``: torch's own defaults: one intra-op thread per core, libgomp's default wait policy (torch is
  imported before sltsearch, so sltsearch cannot set ``OMP_WAIT_POLICY``, and ``--threads`` = torch's count);
- ``sltsearch``: no flags (sltsearch's defaults: ``OMP_WAIT_POLICY=PASSIVE``, half the cores);

each once on the machine as it is ("quiet") and once while this script keeps one core busy with
``python -c "while True: pass"`` (started before the run, killed by its pid after it). A run that exceeds
``--cap`` times the slowest quiet run is stopped and reported as a lower bound. The machine load (1-minute
load average, and the number of cores) is printed beside every timing: other users of a shared machine
make a quiet measurement impossible, so judge the ratios by it.

    python benchmarks/threads.py                        # default space, --trials 2
    python benchmarks/threads.py --trials 1 --cap 6     # quicker
Writes results/benchmarks/threads.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks" / "threads.md"

# Both start from a clean OpenMP environment: the variables are dropped from the child's environment and, in
# case a sitecustomize sets them again at start-up, unset before anything loads torch.
CLEAN = "import os; [os.environ.pop(k, None) for k in ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY')]; "
# torch's defaults: import torch first (libgomp reads the environment then, without sltsearch's policy) and
# pass torch's own thread count, which is what a run did before sltsearch chose its defaults.
TORCH_DEFAULTS = CLEAN + (
    "import sys, torch; n = torch.get_num_threads(); from sltsearch.cli import main; "
    "sys.argv = ['sltsearch', *sys.argv[1:], '--threads', str(n)]; main()"
)
SLTSEARCH_DEFAULTS = CLEAN + (
    "import sys; from sltsearch.cli import main; sys.argv = ['sltsearch', *sys.argv[1:]]; main()"
)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


def timed_run(settings: str, args: argparse.Namespace, cap_s: float | None) -> tuple[float, bool, str, str]:
    """Seconds one search takes under ``settings``; whether it was stopped at the cap; load before/after."""
    code = TORCH_DEFAULTS if settings == "torch" else SLTSEARCH_DEFAULTS
    env = {k: v for k, v in os.environ.items() if k not in {"OMP_WAIT_POLICY", "OMP_NUM_THREADS"}}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="sltsearch-threads-") as tmp:
        command = [
            sys.executable, "-c", code, "run", args.space, "--trials", str(args.trials),
            "--run-dir", str(Path(tmp) / "run"), "--quiet",
        ]  # fmt: skip
        before = load()
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=cap_s)
            stopped = False
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            stopped = True
        except BaseException:  # interrupted or terminated: leave no search running behind
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
        if not stopped and proc.returncode != 0:
            raise SystemExit(f"the {settings} run failed (exit {proc.returncode}):\n{err}")
        return seconds, stopped, before, load()


def busy_core() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="default", help="bundled space or spec file (default: default)")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--cap", type=float, default=8.0, help="stop a busy run after this many quiet times")
    args = parser.parse_args()
    # a SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the busy core and the search are killed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    me = "python benchmarks/threads.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    probe = CLEAN + "import torch; print(torch.__version__, torch.get_num_threads())"
    version, torch_threads = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    cores = len(os.sched_getaffinity(0))
    header = (
        f"command: `{me}`  \nmachine: {platform.processor() or platform.machine()}, {cores} usable cores, "
        f"torch {version} (torch's default threads: {torch_threads}), "
        f"Python {platform.python_version()}  \nsearch: `sltsearch run {args.space} --trials {args.trials}` into "
        f"a fresh run folder each time (seed from the spec)\n"
    )
    print(header)
    rows: list[tuple[str, str, float, bool, str, str]] = []
    quiet: dict[str, float] = {}
    for settings in ("torch", "sltsearch"):
        seconds, stopped, before, after = timed_run(settings, args, None)
        quiet[settings] = seconds
        rows.append((settings, "quiet", seconds, stopped, before, after))
        print(f"{settings:9} quiet: {seconds:7.1f} s   load {before} -> {after}", flush=True)
    cap_s = args.cap * max(quiet.values())
    for settings in ("torch", "sltsearch"):
        hog = busy_core()
        try:
            seconds, stopped, before, after = timed_run(settings, args, cap_s)
        finally:
            hog.kill()
            hog.wait()
        rows.append((settings, "one busy core", seconds, stopped, before, after))
        mark = ">" if stopped else " "
        print(f"{settings:9} busy:  {mark}{seconds:6.1f} s   load {before} -> {after}", flush=True)

    reference = quiet["torch"]
    busiest = max(float(r[4].split()[0]) for r in rows)
    warning = (
        f"**The machine was not quiet** (1-minute load up to {busiest:.2f} before a run, on {cores} cores): other "
        "processes shared the cores, so these ratios are not trustworthy.\n"
        if busiest > 0.5 * cores
        else ""
    )
    lines = [
        "# One busy core: torch's thread defaults vs sltsearch's",
        "",
        header,
        "`torch` = torch's defaults (one thread per core, libgomp's default wait policy); `sltsearch` = no flags "
        "(OMP_WAIT_POLICY=PASSIVE, half the usable cores, see sltsearch/threads.py). The busy core is "
        '`python -c "while True: pass"`, started before the run and killed after it. `>` = stopped at the cap '
        f"({args.cap:g}x the slowest quiet run), a lower bound. Load = 1-minute load average before -> after "
        "the run (it includes this search and the busy core themselves).",
        "",
        warning,
        "| settings | machine | wall s | vs torch quiet | vs same settings quiet | load before -> after |",
        "|---|---|---:|---:|---:|---|",
    ]
    for settings, machine, seconds, stopped, before, after in rows:
        mark = ">" if stopped else ""
        lines.append(
            f"| {settings} | {machine} | {mark}{seconds:.1f} | {mark}{seconds / reference:.2f}x "
            f"| {mark}{seconds / quiet[settings]:.2f}x | {before} -> {after} |"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(rows) - 2 :]))
    print(f"written: {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
