"""Parallel workers on the Optuna backend: worker processes sharing one run folder's study and stage cache.

The same rules as one worker: an exact trial count, no ticket twice, the dense network trained once, a killed
worker's trial run again, no configuration drawn that another worker runs or ran, SIGTERM and Ctrl-C ending
every worker's trial as interrupted.
"""

from __future__ import annotations

import contextlib
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
from optuna.trial import FrozenTrial, TrialState

import sltsearch
from sltsearch.search import liveness
from sltsearch.search.study import open_study, params_key

pytestmark = pytest.mark.slow

# four values, four trials: a worker drawing another's configuration would show as a repeated value
SPACE = {"prune_rate": {"type": "categorical", "choices": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}}


def _spec(tmp_path: Path, trials: int = 4, **search: object) -> Path:
    data = tiny_spec_dict(search={"n_trials": trials, "population_size": 2, **search}, space=SPACE)
    return write_spec(tmp_path / "s.yaml", data)


def _cli(spec: Path, run_dir: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(run_dir), "-q", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(run_dir: Path) -> list[FrozenTrial]:
    spec = sltsearch.load_spec(run_dir / "spec.yaml")
    return open_study(spec, run_dir).get_trials(deepcopy=False)


def _ran(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials a worker claimed and ran (or was running): not the draws given back unrun."""
    return [t for t in trials if liveness.OWNER in t.system_attrs]


def _check(run_dir: Path, complete: int) -> list[FrozenTrial]:
    """Exact count, nothing left running, every finished trial's tickets and only those, no ticket twice, and no
    configuration run twice except a retry of a trial that did not finish."""
    trials = _trials(run_dir)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == complete
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    frame = sltsearch.load(run_dir)
    assert frame["ticket_id"].is_unique
    assert sorted(frame.loc[frame["status"] == "ok", "trial"].unique()) == sorted(t.number for t in done)
    finished = [params_key(t.params) for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == len(set(finished)), "a configuration finished twice"
    return trials


def _wait_for(condition, what: str, timeout_s: float = 300.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _running_owned(run_dir: Path, pred) -> list[FrozenTrial]:  # noqa: ANN001
    if not (run_dir / "study.journal").exists():
        return []
    return [t for t in _trials(run_dir) if t.state == TrialState.RUNNING and pred(t.system_attrs.get(liveness.OWNER))]


def test_two_workers_share_the_study_and_the_cache(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = sltsearch.run(_spec(tmp_path), run_dir=run_dir, workers=2, threads=1)
    trials = _check(run_dir, 4)
    owners = {t.system_attrs[liveness.OWNER]["pid"] for t in trials if t.state == TrialState.COMPLETE}
    assert len(owners) == 2 and os.getpid() in owners  # this process is worker 1, a worker process ran trials too
    ran = [params_key(t.params) for t in _ran(trials)]
    assert len(ran) == len(set(ran)), "a worker drew a configuration another worker ran or was running"
    dense = result.tickets[result.tickets["round"] == 0]
    assert (~dense["cached"]).sum() == 1  # one dense training for both workers (the stage cache is shared)


def test_two_cli_processes_on_one_run_folder_never_repeat_each_other(tmp_path: Path) -> None:
    """Issue 24, item 9: two `sltsearch run` started together on one folder drew the same parameters."""
    spec, run_dir = _spec(tmp_path), tmp_path / "conc"
    processes = [_cli(spec, run_dir, "--workers", "1", "--threads", "1") for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    trials = _check(run_dir, 4)
    ran = [params_key(t.params) for t in _ran(trials)]
    assert len(ran) == len(set(ran)) == 4, [t.params for t in _ran(trials)]
    assert len({t.system_attrs[liveness.OWNER]["pid"] for t in _ran(trials)}) == 2


def test_a_killed_worker_process_trial_runs_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cli = _cli(_spec(tmp_path), run_dir, "--workers", "2", "--threads", "1")
    victim = _wait_for(
        lambda: _running_owned(run_dir, lambda owner: owner and owner["pid"] != cli.pid), "a worker process's trial"
    )[0]
    os.kill(victim.system_attrs[liveness.OWNER]["pid"], signal.SIGKILL)  # a worker this test's CLI started
    _, err = cli.communicate(timeout=600)
    assert cli.returncode == 0, err
    trials = _check(run_dir, 4)
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL and killed.system_attrs[liveness.END] == "stale"
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].params == victim.params
    assert retries[0].state == TrialState.COMPLETE or retries[0].system_attrs.get(liveness.END) == "surplus"
    frame = sltsearch.load(run_dir)
    assert set(frame.loc[frame["trial"] == victim.number, "status"]) <= {"interrupted"}  # off the front


# exec the command with SIGINT at its default disposition, as an interactive shell starts a foreground job
_SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def _as_a_terminal_starts(command: list[str]) -> subprocess.Popen[str]:
    """Start ``command`` (a Python command line) as a terminal's shell does: in its own process group (Ctrl-C
    reaches it and its workers together) and with SIGINT at its default, whatever this process inherited.

    A process started in the background of a non-interactive shell inherits SIGINT ignored (so a script's
    Ctrl-C spares its background jobs), its children inherit that too, and Python then never turns SIGINT
    into KeyboardInterrupt: started from such a parent, the CLI under test never saw the test's Ctrl-C."""
    with _sigint_ignored():  # the worst parent: the test must not depend on how pytest was started
        return subprocess.Popen(
            [sys.executable, "-c", _SIGINT_DEFAULT, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_interrupt_every_worker_then_a_rerun_resumes(tmp_path: Path, signum: int) -> None:
    spec, run_dir = _spec(tmp_path, trials=3), tmp_path / "run"
    command = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(run_dir), "-q",
               "--workers", "2", "--threads", "1"]
    cli = _as_a_terminal_starts(command)
    _wait_for(lambda: len(_running_owned(run_dir, bool)) == 2, "both workers inside a trial")
    if signum == signal.SIGINT:
        os.killpg(cli.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    else:
        cli.send_signal(signal.SIGTERM)  # a scheduler stopping the job: the CLI only
    _, err = cli.communicate(timeout=300)
    assert cli.returncode == (143 if signum == signal.SIGTERM else 130), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert ("terminated" if signum == signal.SIGTERM else "interrupted") in err
    trials = _trials(run_dir)
    interrupted = [t for t in trials if t.system_attrs.get(liveness.END) == "interrupted"]
    assert len(interrupted) == 2 and not [t for t in trials if t.state == TrialState.RUNNING]
    rerun = _cli(spec, run_dir, "--workers", "2", "--threads", "1")
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    trials = _check(run_dir, 3)
    rerun_params = {params_key(t.params) for t in trials if "retry_of" in t.user_attrs}
    assert {params_key(t.params) for t in interrupted} <= rerun_params  # their parameters ran again


def test_sampler_seeds_follow_the_trial_number(tmp_path: Path) -> None:
    """Two samplers of one study (two workers) asked in turn draw what one sampler would: trial n's draw
    depends on n and the study, not on which process asks."""
    spec = sltsearch.Spec.model_validate(tiny_spec_dict(search={"sampler": "random"}))
    space = {"prune_rate": optuna.distributions.FloatDistribution(0.3, 0.7)}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = open_study(spec, tmp_path / "a")
    alone = [one.ask(space).params["prune_rate"] for _ in range(4)]
    first, second = open_study(spec, tmp_path / "b"), open_study(spec, tmp_path / "b")
    turns = [(first if n % 2 else second).ask(space).params["prune_rate"] for n in range(4)]
    assert turns == alone and len(set(alone)) == 4
