"""Scaling a search to 2 workers on one machine: Optuna worker processes, Ray Tune trials, and Optuna
processes on PostgreSQL.

The same search (digits, tiny spiking CNN, ``--trials`` trials, seed 0) runs with 1 and with 2 workers,
each worker with 1 torch thread, from an empty run folder every time:
- Optuna (the default): `sltsearch run --workers N` (worker processes sharing the run folder's journal);
- Ray: `sltsearch run --backend ray --workers N --cpus-per-trial 1` (a private local Ray);
- Optuna + PostgreSQL: N `sltsearch run --storage postgresql://... --workers 1` processes sharing one study
  and one run folder, on a throwaway PostgreSQL server on a loopback port (tests/pg_server.py).
Reported: wall time, trials per hour and its 2-worker / 1-worker ratio; dense trainings (ticket rows of the
dense round whose stage was computed, not loaded: the dense run is trained once for all workers); the
overhead share = 1 - (time inside trials, summed over the trials' ticket rows) / (wall time x workers), which
holds process start-up, Ray / database round trips and waiting for the dense run's lock. The ticket-append
timings come from benchmarks/ticket_store.py, run in the same process.

    .venv/bin/python benchmarks/scaling.py            # writes results/benchmarks/scaling.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from harness import Bench, load_now  # noqa: E402

from sltsearch.results.store import load_tickets  # noqa: E402

OUT = ROOT / "results" / "benchmarks" / "scaling.md"


def spec_dict(trials: int, epochs: int) -> dict:
    return {
        "name": "scaling",
        "seed": 0,
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "spiking_cnn", "preset": "tiny", "time_steps": 4},
        "train": {"epochs": epochs, "lr": 0.01},
        "tickets": {"rounds": 2, "prune_rate": 0.5, "rewind_epoch": 1},
        "objective": {"energy": {"samples": 128}},
        "search": {"n_trials": trials, "population_size": 4, "sampler": "random"},
        # continuous: no two trials share an IMP stage, so every trial trains (only the dense run is shared)
        "space": {"prune_rate": {"type": "float", "low": 0.3, "high": 0.8}},
    }


def run_workers(commands: list[list[str]]) -> float:
    start = time.perf_counter()
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a worker failed: {err.strip().splitlines()[-1] if err.strip() else process.returncode}")
    return time.perf_counter() - start


def train_epochs(spec_path: Path, epochs: int) -> None:
    """Child process of `ceiling`: the search's own model and data, ``epochs`` training epochs, 1 thread.
    Prints the seconds the training took (imports and data building excluded)."""
    import torch

    from sltsearch.spec import load_spec
    from sltsearch.train import make_optimizer, train_one_epoch
    from sltsearch.trial.context import TrialContext, prepare
    from sltsearch.trial.stages import new_model, train_loader

    torch.set_num_threads(1)
    spec = load_spec(spec_path)
    setup = prepare(spec, TrialContext(device="cpu"))
    model = new_model(setup)
    optimizer = make_optimizer(model, spec.train)
    start = time.perf_counter()
    for epoch in range(epochs):
        train_one_epoch(model, train_loader(setup, epoch), optimizer, setup.device)
    print(time.perf_counter() - start)


def ceiling(spec: Path, epochs: int) -> float:
    """What 2 workers can gain on this machine right now: the same training run alone and as 2 copies at
    once (the same model, data and thread count as a trial), throughput ratio 2 x alone / together."""
    child = [sys.executable, __file__, "--train-child", str(spec), str(epochs)]

    def timed(copies: int) -> float:
        processes = [subprocess.Popen(child, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
        return max(float(p.communicate()[0].strip().splitlines()[-1]) for p in processes)

    return 2 * timed(1) / timed(2)


def measure(kind: str, workers: int, spec: Path, root: Path, url: str | None, repeat: int) -> dict:
    run_dir = root / f"{kind}-{workers}-{repeat}"
    base = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(run_dir), "-q", "--threads", "1"]
    before = load_now()
    if kind == "ray":
        commands = [[*base, "--backend", "ray", "--workers", str(workers), "--cpus-per-trial", "1"]]
    elif kind == "optuna":
        commands = [[*base, "--workers", str(workers)]]
    else:
        assert url is not None
        commands = [[*base, "--storage", url, "--workers", "1"] for _ in range(workers)]
    wall = run_workers(commands)
    # the fixed cost of one command: the same command again with nothing left to run (process start, imports,
    # pre-run checks, opening the study, starting and stopping Ray, writing the front)
    startup = run_workers(commands[:1])
    frame = load_tickets(run_dir)
    ok = frame[frame["status"] == "ok"]
    trials = ok["trial"].nunique()
    inside = float(ok["wall_time_s"].sum())
    dense = frame[frame["round"] == 0]
    return {
        "kind": kind,
        "workers": workers,
        "wall_s": wall,
        "trials": trials,
        "per_hour": 3600 * trials / wall,
        "dense_trainings": int((~dense["cached"].astype(bool)).sum()),
        "overhead": max(0.0, 1 - inside / (wall * workers)),
        "startup_s": startup,
        "load": f"{before} -> {load_now()}",
        "repeat": repeat,
    }


def main() -> None:
    if sys.argv[1:2] == ["--train-child"]:
        train_epochs(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (1 and 2 workers side by side)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["optuna", "ray", "postgres"])
    args = parser.parse_args()
    bench = Bench()
    root = Path(tempfile.mkdtemp(prefix="sltsearch-scaling-"))
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(args.trials, args.epochs)))
    rows: list[dict] = []
    server = None
    try:
        postgres = "postgres" not in args.skip
        if postgres:
            from pg_server import server_bin, start_server

            if server_bin() is None:
                print("no PostgreSQL server binaries: apt-get install postgresql; skipping that part")
                postgres = False
            else:
                server = start_server()
        # repeats interleaved: each 1-worker run sits next to its 2-worker run, so a change in the other jobs'
        # load hits both sides of a ratio alike; the ratio is taken per repeat, then its median and range
        ceilings = []
        for repeat in range(args.repeats):
            ceilings.append(ceiling(spec, args.epochs))
            print({"ceiling": ceilings[-1], "load": load_now()}, flush=True)
            for workers in (1, 2):
                if "optuna" not in args.skip:
                    rows.append(measure("optuna", workers, spec, root, None, repeat))
                    print(rows[-1], flush=True)
                if "ray" not in args.skip:
                    rows.append(measure("ray", workers, spec, root, None, repeat))
                    print(rows[-1], flush=True)
                if postgres:
                    assert server is not None
                    db = f"scaling{workers}r{repeat}"
                    env = {**os.environ, "PGPASSWORD": "pw"}
                    subprocess.run([str(server.bin / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U",
                                    "sltsearch", db], check=True, env=env, capture_output=True)
                    rows.append(measure("postgres", workers, spec, root, server.url(db), repeat))
                    print(rows[-1], flush=True)
        from ticket_store import PER_TRIAL, fill, part_append, time_appends

        appends = {}
        for size in (10, 1_000, 100_000):
            store_root = Path(tempfile.mkdtemp(prefix="sltsearch-store-"))
            try:
                fill(store_root, size)
                appends[size] = time_appends(part_append(store_root, size // PER_TRIAL), 30)
            finally:
                shutil.rmtree(store_root, ignore_errors=True)
        print(appends, flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    def ratios(kind: str) -> list[float]:
        """2-worker / 1-worker trials per hour, one per repeat."""
        out = []
        for repeat in range(args.repeats):
            pair = {r["workers"]: r for r in rows if r["kind"] == kind and r["repeat"] == repeat}
            if 1 in pair and 2 in pair:
                out.append(pair[2]["per_hour"] / pair[1]["per_hour"])
        return out

    def ratio(kind: str) -> float:
        return statistics.median(ratios(kind))

    def spread(kind: str) -> str:
        values = ratios(kind)
        return f"median {ratio(kind):.2f}x, min..max {min(values):.2f}..{max(values):.2f} over {len(values)} repeats"

    def steady(kind: str) -> float:
        """The ratio with each command's fixed cost (its rerun with nothing left to run) taken off its wall."""
        values = []
        for repeat in range(args.repeats):
            pair = {r["workers"]: r for r in rows if r["kind"] == kind and r["repeat"] == repeat}
            if 1 in pair and 2 in pair:
                one, two = (pair[w]["wall_s"] - pair[w]["startup_s"] for w in (1, 2))
                values.append(one / two)
        return statistics.median(values)

    kinds = sorted({r["kind"] for r in rows})
    lines = [
        *bench.header("Scaling to 2 workers on one machine", seeds=[0], notes=[
            "Load average (1/5/15 min) before -> after each run in the table."]),
        f"Search: digits, tiny spiking CNN, T=4, {args.epochs} epochs, 2 IMP rounds, {args.trials} trials, random "
        "sampler, seed 0, 1 torch thread per worker.  ",
        "",
        f"Repeats: {args.repeats}, interleaved (optuna 1, ray 1, postgres 1, optuna 2, ray 2, postgres 2, then "
        "again); ratios are "
        "taken per repeat, then the median and range. 'fixed s' is the same command rerun with nothing left to "
        "run (process start, imports, pre-run checks, study, Ray start and stop, front): a cost every command "
        "pays once, whatever the search's size.",
        "",
        "| engine | workers | repeat | wall s | trials | trials / hour | dense trainings | overhead | fixed s | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        *[
            f"| {r['kind']} | {r['workers']} | {r['repeat']} | {r['wall_s']:.1f} | {r['trials']} | "
            f"{r['per_hour']:.0f} | {r['dense_trainings']} | {100 * r['overhead']:.1f} % | {r['startup_s']:.1f} | "
            f"{r['load']} |"
            for r in rows
        ],
        "",
        *[f"- {kind}: 2 workers / 1 worker, trials per hour: {spread(kind)} (goal >= 1.7x); with each command's "
          f"fixed cost taken off: {steady(kind):.2f}x" for kind in kinds],
        f"- this machine's own ceiling, measured before each repeat: one training run of {args.epochs} epochs (the "
        "search's model and data, 1 thread) alone and as 2 copies at once, throughput ratio "
        f"{', '.join(f'{c:.2f}x' for c in ceilings)} (median {statistics.median(ceilings):.2f}x): the 2 vCPUs "
        "are shared with other jobs, and 2x is the ideal only when both are free.",
        "",
        "Reading these numbers: the 1-worker and 2-worker runs pay the same fixed cost (the 'fixed s' column) "
        "and train the shared dense run once, which every trial rewinds to (the second worker waits for it), "
        "so on a search of 8 short trials 2 workers cannot reach the machine's ceiling; the ratio with the "
        "fixed cost taken off shows what the search itself scales to, and the ceiling what the shared cores "
        "allow. Larger searches (more trials, more rounds per trial) shrink both the fixed cost's and the dense "
        "run's share.",
        "",
        "Ticket append (one ticket, median of 30, part-per-trial table): "
        + ", ".join(f"{size:,} rows {ms:.2f} ms" for size, ms in appends.items()),
        "",
        bench.summary(
            [
                f"ray workers {ratio('ray'):.2f}x" if "ray" in kinds else "ray workers not run",
                f"postgres workers {ratio('postgres'):.2f}x" if "postgres" in kinds else "postgres workers not run",
                f"dense trainings {max((r['dense_trainings'] for r in rows), default=0)}",
                f"append at 100000 rows {appends[100_000]:.1f} ms",
            ]
        ),
        "",
    ]
    bench.write(OUT, lines)


if __name__ == "__main__":
    main()
