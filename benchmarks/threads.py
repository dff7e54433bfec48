"""Benchmark: how much one busy core slows a search, with torch's thread defaults and with sltsearch's.

Four runs of the same small search, each into a fresh run folder (nothing cached), side by side:

- ``torch``: torch's own defaults: one intra-op thread per core, libgomp's default wait policy (torch is
  imported before sltsearch, so sltsearch cannot set ``OMP_WAIT_POLICY``, and ``--threads`` = torch's count,
  which leaves room for one worker: trials one after another, as before sltsearch chose its defaults);
- ``sltsearch``: no flags (sltsearch's defaults: ``OMP_WAIT_POLICY=PASSIVE``, workers x threads = the usable
  cores, one thread per worker: on 2 cores, 2 trials at once);

each once on the machine as it is ("quiet") and once while this script keeps one core busy with
``python -c "while True: pass"`` (started before the run, killed by its pid after it). A run that exceeds
``--cap`` times the slowest quiet run is stopped and reported as a lower bound. Beside every timing: how
many cores all other processes used meanwhile (from /proc/stat, less this search and the busy core) and
the 1-minute load average; on a shared machine, judge the ratios by them.

    python benchmarks/threads.py                        # default space, --trials 2
    python benchmarks/threads.py --trials 1 --cap 6     # quicker
    python benchmarks/threads.py --append               # add the run below the earlier ones
Writes results/benchmarks/threads.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import Bench, load_average

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
    """The 1-minute load average, beside each timing."""
    return f"{load_average()[0]:.2f}"


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has spent so far (from /proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) one live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    settings: str
    machine: str
    seconds: float
    stopped: bool
    load_before: str
    others_cores: float  # mean cores used by processes other than this search and the busy core


@dataclass
class Measured:
    """One command's run: its wall time, whether the cap stopped it, and what else the machine did meanwhile."""

    seconds: float
    stopped: bool
    returncode: int | None
    stderr: str
    load_before: str
    others_cores: float  # mean cores used by processes other than the command and the busy core
    started_at: float  # time.time() when it started (to place the files it wrote on its clock)


def run_measured(command: list[str], env: dict[str, str], cap_s: float | None, busy: bool,
                 cwd: Path | None = None) -> Measured:
    """Run ``command`` in ``cwd`` (with one core kept busy when ``busy``), stopped after ``cap_s`` seconds; how long
    it took and how many cores all other processes used meanwhile (from /proc/stat, less the command and the busy
    core)."""
    hog = busy_core() if busy else None
    try:
        before = load()
        busy0, mine0 = machine_busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
        started_at, started = time.time(), time.perf_counter()
        with tempfile.TemporaryFile("w+") as sink:
            # its own session: a stopped search is killed with its worker processes
            proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=sink,
                                    start_new_session=True)
            workers_cpu: dict[int, float] = {}  # the search's worker processes, which it never waits for
            try:
                stopped = watch(proc, cap_s, workers_cpu)
            except BaseException:  # interrupted or terminated: leave no search running behind
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            sink.seek(0)
            err = sink.read()
        seconds = time.perf_counter() - started
        hog_s = process_cpu_s(hog.pid) if hog else 0.0
        busy1, mine1 = machine_busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if hog:
            hog.kill()
            hog.wait()
    search_s = (mine1.ru_utime + mine1.ru_stime) - (mine0.ru_utime + mine0.ru_stime) + sum(workers_cpu.values())
    others = max(0.0, (busy1 - busy0) - search_s - hog_s) / seconds
    return Measured(seconds, stopped, proc.returncode, err, before, others, started_at)


def cli_env(root: Path = ROOT) -> dict[str, str]:
    """The environment a measured `sltsearch` runs in: no OpenMP variables, the checkout at ``root`` first."""
    env = {k: v for k, v in os.environ.items() if k not in {"OMP_WAIT_POLICY", "OMP_NUM_THREADS"}}
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def timed_run(settings: str, machine: str, args: argparse.Namespace, cap_s: float | None,
              root: Path = ROOT) -> Timing:
    """One search under ``settings`` (of the checkout at ``root``), and how many cores everything else on the
    machine used meanwhile."""
    code = TORCH_DEFAULTS if settings == "torch" else SLTSEARCH_DEFAULTS
    with tempfile.TemporaryDirectory(prefix="sltsearch-threads-") as tmp:
        command = [
            sys.executable, "-c", code, "run", args.space, "--trials", str(args.trials),
            "--run-dir", str(Path(tmp) / "run"), "--quiet",
        ]  # fmt: skip
        # run in ``root``: ``python -c`` puts the working folder first on sys.path, before PYTHONPATH
        run = run_measured(command, cli_env(root), cap_s, busy=machine == "one busy core", cwd=root)
    if not run.stopped and run.returncode != 0:
        raise SystemExit(f"the {settings} run failed (exit {run.returncode}):\n{run.stderr}")
    return Timing(settings, machine, run.seconds, run.stopped, run.load_before, run.others_cores)


def watch(proc: subprocess.Popen, cap_s: float | None, workers_cpu: dict[int, float]) -> bool:
    """Wait for the search (True when stopped at ``cap_s``), sampling its descendants' CPU seconds every
    0.5 s into ``workers_cpu`` (the worker processes live as long as the search; what a process spends after
    its last sample is missed)."""
    import psutil

    deadline = None if cap_s is None else time.perf_counter() + cap_s
    while proc.poll() is None:
        if deadline is not None and time.perf_counter() >= deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    times = child.cpu_times()
                    workers_cpu[child.pid] = times.user + times.system
        except psutil.Error:
            pass
        time.sleep(0.5)
    return False


def busy_core() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="default", help="bundled space or spec file (default: default)")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--cap", type=float, default=8.0, help="stop a busy run after this many quiet times")
    parser.add_argument("--append", action="store_true", help="add this run below the earlier ones in --out")
    parser.add_argument("--out", type=Path, default=OUT, help="markdown file (default: results/benchmarks/threads.md)")
    args = parser.parse_args()
    # a SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the busy core and the search are killed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    bench = Bench()
    probe = CLEAN + "import torch; print(torch.__version__, torch.get_num_threads())"
    version, torch_threads = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    cores = len(os.sched_getaffinity(0))
    notes = [
        f"torch {version} (torch's default threads: {torch_threads})",
        f"search: `sltsearch run {args.space} --trials {args.trials}` into a fresh run folder each time "
        "(seed from the spec)",
    ]
    print(f"command: {bench.command}\n" + "\n".join(notes), flush=True)
    timings: list[Timing] = []
    quiet: dict[str, float] = {}
    for settings in ("torch", "sltsearch"):
        timing = timed_run(settings, "quiet", args, None)
        quiet[settings] = timing.seconds
        timings.append(timing)
        print(f"{settings:9} quiet: {timing.seconds:7.1f} s   others used {timing.others_cores:.2f} cores", flush=True)
    cap_s = args.cap * max(quiet.values())
    for settings in ("torch", "sltsearch"):
        timing = timed_run(settings, "one busy core", args, cap_s)
        timings.append(timing)
        mark = ">" if timing.stopped else " "
        print(f"{settings:9} busy:  {mark}{timing.seconds:6.1f} s   others used {timing.others_cores:.2f} cores")

    reference = quiet["torch"]
    busiest = max(t.others_cores for t in timings)
    verdict = (
        f"**Not a quiet machine**: other processes used up to {busiest:.2f} of the {cores} cores during a run, so "
        "these ratios are not trustworthy."
        if busiest > 0.25
        else f"Other processes used at most {busiest:.2f} cores during any run."
    )
    lines = [
        *bench.provenance(notes=notes),
        "",
        verdict,
        "",
        "| settings | machine | wall s | vs torch quiet | vs same settings quiet | others' cores | load before |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        mark = ">" if t.stopped else ""
        lines.append(
            f"| {t.settings} | {t.machine} | {mark}{t.seconds:.1f} | {mark}{t.seconds / reference:.2f}x "
            f"| {mark}{t.seconds / quiet[t.settings]:.2f}x | {t.others_cores:.2f} | {t.load_before} |"
        )
    explanation = [
        "# One busy core: torch's thread defaults vs sltsearch's",
        "",
        "`torch` = torch's defaults (one thread per core, libgomp's default wait policy); `sltsearch` = no flags "
        "(OMP_WAIT_POLICY=PASSIVE, a worker per usable core with one thread each, see sltsearch/system/threads.py). "
        "The busy core is "
        '`python -c "while True: pass"`, started before the run and killed after it. `>` = stopped at the cap '
        "(`--cap` times the slowest quiet run), a lower bound. Others' cores = CPU seconds that every other "
        "process on the machine used during the run (from /proc/stat, less the search's and the busy core's "
        "own) / wall seconds: 0 on a quiet machine. Load = 1-minute load average before the run (it lags, and "
        "includes the previous run).",
        "",
    ]
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and out.exists():
        out.write_text(out.read_text() + "\n---\n\n" + "\n".join(lines) + "\n")
    else:
        out.write_text("\n".join(explanation + lines) + "\n")
    print("\n".join(lines[1:]))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
