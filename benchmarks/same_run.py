"""Does `python -m sltsearch run` behave as another checkout of sltsearch does? Same tickets, same numbers, same files.

Runs a reduced default search (``search_spaces/default.yaml`` with ``train.epochs`` and ``--trials`` scaled down,
the same spec file for both) once with each checkout's code (``PYTHONPATH`` = the checkout, same interpreter,
same torch threads) into separate run folders, then compares:

- the ticket tables, row by row in ``ticket_id`` order: every column except wall times (``wall_time_s``),
  numbers compared exactly (bit for bit: same seeds, same machine), stage keys and parameters included;
- the Pareto fronts (``pareto.csv``), exactly;
- the run folders' file lists (relative paths; the stage cache's folders are named by the stage keys).

Prints each difference and exits 1 when there is one. The "before" checkout is e.g. a git worktree of main:

    git worktree add /tmp/before 3b09291
    .venv/bin/python benchmarks/same_run.py --before /tmp/before --after . --trials 2 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
TIMES = {"wall_time_s"}  # columns that measure this run of a ticket, not the ticket


def reduced_spec(checkout: Path, out: Path, epochs: int) -> Path:
    """The default space with ``train.epochs`` set (and ``rewind_epoch`` kept below it), written once so both
    checkouts read the same file."""
    data = yaml.safe_load((checkout / "search_spaces" / "default.yaml").read_text())
    data["train"]["epochs"] = epochs
    rewind = data["space"].get("rewind_epoch")
    if rewind and rewind["high"] >= epochs:  # a rewind point must lie inside the shorter recipe
        rewind["high"] = epochs - 1
    path = out / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(checkout: Path, spec: Path, run_dir: Path, trials: int, threads: int) -> str:
    """One search with ``checkout``'s code; returns the sltsearch file it ran (to show which code it was)."""
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    which = subprocess.run(
        [sys.executable, "-c", "import sltsearch; print(sltsearch.__file__)"],
        env=env, capture_output=True, text=True, check=True, cwd=run_dir.parent,  # not a checkout: its sltsearch
    ).stdout.strip()
    if not which.startswith(str(checkout.resolve())):
        raise SystemExit(f"{checkout}: PYTHONPATH did not select its sltsearch (got {which})")
    cmd = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(run_dir), "--trials", str(trials),
           "--threads", str(threads), "--quiet"]
    subprocess.run(cmd, env=env, check=True, cwd=run_dir.parent, stdout=subprocess.DEVNULL)
    return which


def table(run_dir: Path) -> pd.DataFrame:
    """The run's ticket table (every part file), in ticket order."""
    files = sorted((run_dir / "tickets").glob("*.parquet")) or [run_dir / "tickets.parquet"]
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame.sort_values(["ticket_id"]).reset_index(drop=True)


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def _same(x: Any, y: Any) -> bool:
    """Exactly equal, or both missing (None / NaN)."""
    missing = [v is None or (isinstance(v, float) and v != v) for v in (x, y)]
    return all(missing) if any(missing) else bool(x == y)


def differences(before: Path, after: Path) -> list[str]:
    out: list[str] = []
    a, b = table(before), table(after)
    if list(a["ticket_id"]) != list(b["ticket_id"]):
        out.append(f"tickets differ: {list(a['ticket_id'])} vs {list(b['ticket_id'])}")
        return out
    for column in sorted(set(a.columns) | set(b.columns)):
        if column in TIMES:
            continue
        if column not in a.columns or column not in b.columns:
            out.append(f"column {column} only {'after' if column in b.columns else 'before'}")
            continue
        for i, (x, y) in enumerate(zip(a[column], b[column], strict=True)):
            if not _same(x, y):
                out.append(f"{a['ticket_id'][i]}.{column}: {x!r} before, {y!r} after")
    fronts = [before / "pareto.csv", after / "pareto.csv"]
    if fronts[0].exists() != fronts[1].exists():
        out.append("pareto.csv written by one checkout only")
    elif fronts[0].exists():
        fa, fb = (pd.read_csv(f).drop(columns=list(TIMES), errors="ignore") for f in fronts)
        if not fa.equals(fb):
            out.append(f"pareto.csv differs:\n{fa}\n{fb}")
    only = files(before) ^ files(after)
    out += [f"file {f} only {'before' if f in files(before) else 'after'}" for f in sorted(only)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the code to compare against")
    parser.add_argument("--after", type=Path, default=ROOT, help="checkout under test (default: this one)")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("same_run"), help="folder for the spec and both runs")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the runs start in their own folder: a relative path would point elsewhere
    args.out.mkdir(parents=True, exist_ok=True)
    spec = reduced_spec(args.after, args.out, args.epochs)
    runs = {}
    for label, checkout in (("before", args.before), ("after", args.after)):
        run_dir = args.out / label / "default"
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        if run_dir.exists():
            raise SystemExit(f"{run_dir} exists: pass a fresh --out (a resumed run would not be compared)")
        runs[label] = run_dir
        print(f"{label}: {run(checkout, spec, run_dir, args.trials, args.threads)}", flush=True)
    found = differences(runs["before"], runs["after"])
    frame = table(runs["after"])
    summary: dict[str, Any] = {
        "tickets": len(frame),
        "columns_compared": len([c for c in frame.columns if c not in TIMES]),
        "files": len(files(runs["after"])),
        "differences": len(found),
    }
    print(json.dumps(summary))
    for line in found:
        print(line)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
