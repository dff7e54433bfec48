"""Optuna workers sharing one study on a real PostgreSQL server (a throwaway one on a loopback port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from conftest import tiny_spec_dict, write_spec
from optuna.trial import TrialState
from pg_server import PgServer, server_bin, start_server

import sltsearch
from sltsearch.search import optuna_backend

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        server_bin() is None,
        reason="needs a PostgreSQL server: apt-get install postgresql (.ci/run installs it when missing)",
    ),
]


@pytest.fixture
def pg() -> Iterator[PgServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


def _worker(spec: Path, run_dir: Path, url: str, workers: int = 1) -> subprocess.Popen[str]:
    """One `sltsearch run` process on the database, with ``workers`` workers of one thread each."""
    command = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(run_dir), "--storage", url]
    command += ["-q", "--workers", str(workers), "--threads", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(run_dir: Path, url: str) -> list[optuna.trial.FrozenTrial]:
    spec = sltsearch.load_spec(run_dir / "spec.yaml")
    return optuna_backend.open_study(spec, run_dir, url).get_trials(deepcopy=False)


def _check(run_dir: Path, url: str, complete: int) -> list[optuna.trial.FrozenTrial]:
    trials = _trials(run_dir, url)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == complete
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    frame = sltsearch.load(run_dir)
    assert frame["ticket_id"].is_unique
    ok = frame[frame["status"] == "ok"]
    assert sorted(ok["trial"].unique()) == sorted(t.number for t in done)
    return trials


def test_two_workers_share_one_study(pg: PgServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 4, "population_size": 2}))
    run_dir, url = tmp_path / "shared", pg.url()
    workers = [_worker(spec, run_dir, url) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
        assert "pw@" not in err
    trials = _check(run_dir, url, 4)
    owners = {t.system_attrs["sltsearch:owner"]["pid"] for t in trials if t.state == TrialState.COMPLETE}
    assert owners == {w.pid for w in workers}  # both workers ran trials
    frame = sltsearch.load(run_dir)
    dense = frame[frame["round"] == 0]
    assert (~dense["cached"]).sum() == 1  # one dense training for both workers (the stage cache is shared)
    assert "pw" not in (run_dir / "run.json").read_text().replace("pid", "")


def test_one_command_runs_its_worker_processes_on_the_database(pg: PgServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 4, "population_size": 2}))
    run_dir, url = tmp_path / "shared", pg.url()
    command = _worker(spec, run_dir, url, workers=2)
    _, err = command.communicate(timeout=600)
    assert command.returncode == 0, err
    trials = _check(run_dir, url, 4)
    owners = {t.system_attrs["sltsearch:owner"]["pid"] for t in trials if t.state == TrialState.COMPLETE}
    assert command.pid in owners and len(owners) == 2  # the command and its worker process both ran trials
    assert "pw@" not in err and "pw" not in (run_dir / "run.json").read_text().replace("pid", "")


def test_killed_worker_is_replaced_and_the_other_finishes(pg: PgServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 4, "population_size": 2}))
    run_dir, url = tmp_path / "shared", pg.url()
    victim, survivor = _worker(spec, run_dir, url), _worker(spec, run_dir, url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until the victim is inside a trial
        if (run_dir / "spec.yaml").exists():
            running = [
                t for t in _trials(run_dir, url)
                if t.state == TrialState.RUNNING and t.system_attrs.get("sltsearch:owner", {}).get("pid") == victim.pid
            ]
            if running:
                break
        time.sleep(0.5)
    else:
        pytest.fail("the first worker never started a trial")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    trials = _check(run_dir, url, 4)
    killed = [t for t in trials if t.system_attrs.get("sltsearch:end") == "stale"]
    assert len(killed) == 1 and killed[0].number == running[0].number
    # replaced: its parameters run again when budget was left at the moment it was found (else later trials
    # already filled the budget); either way 4 trials finished and none ran twice
    retries = [t for t in trials if t.user_attrs.get("retry_of") == killed[0].number]
    assert all(t.params == killed[0].params for t in retries)
    # a retry either ran, or was given back unrun (asked beyond the budget, or equal to a finished trial)
    assert all(
        t.state == TrialState.COMPLETE or t.system_attrs.get("sltsearch:end") in ("surplus", "duplicate")
        for t in retries
    )
    assert len(retries) <= 1 and max(t.number for t in trials) > killed[0].number
    before = len(trials)
    rerun = _worker(spec, run_dir, url)
    assert rerun.wait(timeout=300) == 0
    assert len(_trials(run_dir, url)) == before  # nothing repeated


def test_database_restart_mid_search(pg: PgServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 3, "population_size": 2}))
    run_dir, url = tmp_path / "shared", pg.url()
    worker = _worker(spec, run_dir, url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # restart once the first trial has finished and the second runs
        if any(t.state == TrialState.COMPLETE for t in _trials_or_none(run_dir, url)):
            break
        time.sleep(0.5)
    pg.pg_ctl("restart", "-m", "fast")
    _, err = worker.communicate(timeout=600)
    assert worker.returncode == 0, err
    _check(run_dir, url, 3)


def _trials_or_none(run_dir: Path, url: str) -> list[optuna.trial.FrozenTrial]:
    return _trials(run_dir, url) if (run_dir / "spec.yaml").exists() else []


def test_wrong_password_is_one_masked_line(pg: PgServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict())
    url = pg.url(password="wrong-secret")
    result = subprocess.run(
        [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(tmp_path / "r"), "--storage", url],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "wrong-secret" not in result.stderr + result.stdout
    assert "sltsearch:***@127.0.0.1" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_run_folders_share_a_study_of_one_spec_only(pg: PgServer, tmp_path: Path) -> None:
    """Issue 32, item 2: a second spec on the same study is refused in one line before any trial; the same
    spec from a new run folder (a machine without a shared filesystem) retrains none of the first's trials."""
    spec = write_spec(tmp_path / "a.yaml", tiny_spec_dict(search={"n_trials": 2, "population_size": 2}))
    other = write_spec(tmp_path / "b.yaml", tiny_spec_dict(train={"epochs": 1, "lr": 0.02}))
    url = pg.url()
    first = _worker(spec, tmp_path / "a", url)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    refused = _worker(other, tmp_path / "b", url)
    _, err = refused.communicate(timeout=600)
    assert refused.returncode == 2 and len(err.strip().splitlines()) == 1 and "another spec" in err, err
    assert not (tmp_path / "b").exists()  # refused before its run folder was made
    assert len(_trials(tmp_path / "a", url)) == 2
    joined = subprocess.run(
        [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(tmp_path / "c"), "--storage", url,
         "-q", "--workers", "1", "--threads", "1", "--trials", "3"],
        capture_output=True, text=True, timeout=600,
    )
    assert joined.returncode == 0 and "re-measured" not in joined.stderr, joined.stderr
    assert set(sltsearch.load(tmp_path / "c")["trial"]) == {2}  # its own trial only
    assert sum(t.state == TrialState.COMPLETE for t in _trials(tmp_path / "c", url)) == 3
