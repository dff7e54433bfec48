"""Benchmark: what `sltsearch run` spends before its first trial, in each worker's start, and after its last.

CPU time, not wall time (pyinstrument sampling on the process's CPU clock), so a busy machine slows the
numbers little: a profile counts what the search itself computes. Three phases, each in a fresh process,
into a fresh run folder:

- **start**: `sltsearch run SPACE` (the CLI, as a user types it) up to the moment its first trial starts:
  imports, the spec, the pre-run checks (data built, model probed), the run folder, the study;
- **worker**: what a worker process needs before its first trial: the fork server's import of the trial code
  (once for all workers) and the worker's own start (the study, the runner);
- **end**: reading the ticket table and writing the front (pareto.csv, pareto.png) once the trials are done
  (on a finished 2-trial, 4-epoch search of the same space).

Each phase runs twice: plain for its CPU seconds (the table), then profiled for its call tree (calls above
--threshold of the phase). Writes results/benchmarks/startup.md.

    python benchmarks/startup.py                  # default space
    python benchmarks/startup.py --space tiny.yaml --threshold 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Bench

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks" / "startup.md"

# every phase runs this prologue: the CPU clock for pyinstrument, then the profiled body
PROLOGUE = """
import json, sys, time
class FirstTrial(BaseException):
    pass
def stop_at_first_trial(self, *args, **kwargs):
    raise FirstTrial
if PROFILE:
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler
    get_stack_sampler().timer_func = time.process_time  # sample on CPU time: other processes do not count
    profiler = Profiler(interval=0.002)
    profiler.start()
cpu0, wall0 = time.process_time(), time.perf_counter()
"""

EPILOGUE = """
out = {"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0}
if PROFILE:
    profiler.stop()
    out["text"] = profiler.output_text(processor_options={"filter_threshold": THRESHOLD})
print("@@" + json.dumps(out))
"""

# the CLI until its first trial starts (one worker: the worker start is measured on its own below)
START = """
import sltsearch.cli
from sltsearch.search import execute
execute.TrialRunner.__call__ = stop_at_first_trial
try:
    sltsearch.cli.app(["run", SPACE, "--run-dir", RUN_DIR, "-q", "--workers", "1"], standalone_mode=False)
except FirstTrial:
    pass
"""

# a worker: the fork server's import of the trial code, then the worker's own start (sltsearch.search.workers)
WORKER = """
import sltsearch.search.optuna_backend as backend
from sltsearch.search.backend import SearchJob
from sltsearch.spec import load_spec
from sltsearch.system.threads import configure_threads
backend.TrialRunner.__call__ = stop_at_first_trial
configure_threads(1)
job = SearchJob(load_spec(RUN_DIR + "/spec.yaml"), __import__("pathlib").Path(RUN_DIR))  # the data: in its trial
try:
    backend.work(job, 2, None)
except FirstTrial:
    pass
"""

# the end of a search: the table read, the front computed and written (csv and plot), in a process that ran
# the search (its modules imported already), on a finished search of the same space cut to 4 epochs and 2 trials
FINISHED = """
import yaml
from sltsearch import api
from sltsearch.spec.spaces import resolve_spec_path
spec = yaml.safe_load(open(resolve_spec_path(SPACE)))
spec["train"]["epochs"], spec["search"]["n_trials"] = 4, 2  # 4: the space rewinds to epoch 3
open(RUN_DIR + ".yaml", "w").write(yaml.safe_dump(spec))
api.run(RUN_DIR + ".yaml", run_dir=RUN_DIR + "-finished")
"""
END_SETUP = "from sltsearch import api\n"
END = """
run_dir, spec = api.read_run(RUN_DIR + "-finished")
api.write_front(run_dir, spec, api.load_tickets(run_dir))
"""


def _run(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"a phase failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("@@"))
    return json.loads(line[2:])


def profile(body: str, threshold: float, setup: str = "", **names: str) -> dict:
    """Run ``body`` twice in fresh interpreters: plain, for its CPU / wall seconds, then under the CPU-clock
    profiler for its call tree (the profiler's own cost inflates the seconds it shows, not their shares)."""
    given = "".join(f"{k} = {v}\n" for k, v in names.items()) + setup
    plain = _run(given + "PROFILE = False\n" + PROLOGUE + body + EPILOGUE)
    tree = _run(given + f"PROFILE = True\nTHRESHOLD = {threshold}\n" + PROLOGUE + body + EPILOGUE)
    return {**plain, "text": tree["text"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="default", help="bundled space or spec file (default: default)")
    parser.add_argument("--threshold", type=float, default=0.02, help="hide calls below this share of a phase")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    bench = Bench()
    phases: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="sltsearch-startup-") as tmp:
        run_dir = str(Path(tmp) / "run")
        given = {"RUN_DIR": repr(run_dir), "threshold": args.threshold}
        phases.append(("start: `sltsearch run` to its first trial", profile(START, SPACE=repr(args.space), **given)))
        phases.append(("worker: fork server import + a worker's own start", profile(WORKER, **given)))
        _run(f"SPACE = {args.space!r}\nRUN_DIR = {run_dir!r}\n" + FINISHED + "print('@@{}')")
        phases.append(("end: the table read, the front written", profile(END, setup=END_SETUP, **given)))
    lines = [
        *bench.header("Start-up: CPU time before the first trial, per worker, and after the last trial"),
        "CPU seconds of the process (`time.process_time`, all its threads), which other processes on a busy "
        "machine hardly change (wall time would); measured in a plain run of each phase, while the call trees "
        "below come from a second, profiled run (pyinstrument sampling on the same clock: its own cost "
        "inflates their seconds, not their shares). A worker process starts from the fork server, which "
        "imported the trial code once for all workers while `sltsearch run` did its checks: the worker phase "
        "is that import plus the worker's own start, and is paid in parallel with the start phase.",
        "",
        "| phase | CPU s |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {p['cpu_s']:.2f} |" for name, p in phases]
    for name, p in phases:
        lines += ["", f"## {name}", "", "```", p["text"].strip(), "```"]
    bench.write(args.out, lines, echo=False)
    print("\n".join(lines))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
