"""Nothing lost, nothing silently wrong: failed and interrupted trials, damaged files, secrets, run folders."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import optuna
import pandas as pd
import pytest
from conftest import tiny_spec_dict, write_spec
from optuna.trial import TrialState
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.search import execute, optuna_backend
from sltsearch.trial import run_trial as real_run_trial

runner = CliRunner()


def _study(run_dir: Path) -> optuna.Study:
    spec = sltsearch.load_spec(run_dir / "spec.yaml")
    return optuna_backend.open_study(spec, run_dir)


def _states(run_dir: Path) -> list[str]:
    return [t.state.name for t in _study(run_dir).get_trials(deepcopy=False)]


def _failing_first(monkeypatch: pytest.MonkeyPatch, failures: int, exc: BaseException) -> list[dict]:
    """Make the first ``failures`` trials raise ``exc`` after their first ticket; returns the params seen."""
    seen: list[dict] = []

    def flaky(spec, params, ctx):  # noqa: ANN001, ANN202 - same signature as run_trial
        seen.append(dict(params))
        if len(seen) <= failures:
            report = ctx.report

            def report_then_fail(ticket):  # noqa: ANN001, ANN202
                report(ticket)
                raise exc

            ctx.report = report_then_fail
        return real_run_trial(spec, params, ctx)

    monkeypatch.setattr(execute, "run_trial", flaky)
    return seen


def _check_table(run_dir: Path, complete: int) -> pd.DataFrame:
    frame = sltsearch.load(run_dir)
    assert frame["ticket_id"].is_unique
    trials = _study(run_dir).get_trials(deepcopy=False)
    done = [t.number for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == complete
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    ok = frame[frame["status"] == "ok"]
    assert sorted(ok["trial"].unique()) == sorted(done)  # every finished trial's tickets, and only those
    return frame


def test_failed_trials_do_not_use_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict())
    seen = _failing_first(monkeypatch, 1, RuntimeError("CUDA error: no kernel image"))
    result = sltsearch.run(spec, run_dir=tmp_path / "r", workers=1)  # the patched trial runs in this process
    assert _states(tmp_path / "r") == ["FAIL", "COMPLETE", "COMPLETE"]  # 2 finished: the budget
    frame = _check_table(tmp_path / "r", 2)
    assert set(frame.loc[frame["trial"] == 0, "status"]) == {"failed"}  # kept, marked, off the front
    assert 0 not in set(result.front["trial"])
    log = (tmp_path / "r" / "logs" / "trial-000000.log").read_text()
    assert "CUDA error" in log and "Traceback" in log
    assert len(seen) == 3


def test_rerun_repeats_a_failed_trials_parameters_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failure (say a bad --device), a rerun runs that trial's parameters again, not new ones."""
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 1}))
    seen = _failing_first(monkeypatch, 3, RuntimeError("boom"))
    result = runner.invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "r"), "-q", "--workers", "1"])
    assert result.exit_code == 2
    assert "stopped after 3 trials in a row failed; last error: RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.output
    assert _states(tmp_path / "r") == ["FAIL"] * 3
    monkeypatch.setattr(execute, "run_trial", real_run_trial)
    study_params = [t.params for t in _study(tmp_path / "r").get_trials(deepcopy=False)]
    assert sltsearch.run(spec, run_dir=tmp_path / "r").tickets is not None
    trials = _study(tmp_path / "r").get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL"] * 3 + ["COMPLETE"]
    assert trials[3].params == study_params[0] == seen[0] and trials[3].user_attrs["retry_of"] == 0
    _check_table(tmp_path / "r", 1)


def test_ctrl_c_marks_the_trial_and_a_rerun_completes_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict())
    _failing_first(monkeypatch, 1, KeyboardInterrupt())
    result = runner.invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "r"), "-q", "--workers", "1"])
    assert result.exit_code == 130
    assert "interrupted" in result.stderr and "Traceback" not in result.output
    trial = _study(tmp_path / "r").get_trials(deepcopy=False)[0]
    assert trial.state == TrialState.FAIL and trial.system_attrs["sltsearch:end"] == "interrupted"
    frame = sltsearch.load(tmp_path / "r")
    assert set(frame["status"]) == {"interrupted"}  # the dense ticket it measured, kept off the front
    monkeypatch.setattr(execute, "run_trial", real_run_trial)
    result = runner.invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 0, result.output
    trials = _study(tmp_path / "r").get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params == trial.params  # the interrupted trial's parameters, first
    _check_table(tmp_path / "r", 2)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random"])
def test_resumed_sampler_does_not_repeat_its_first_draws(tmp_path: Path, sampler: str) -> None:
    """A rerun re-creates the seeded sampler: it must continue with new draws, not replay trials 0, 1, 2."""
    spec = sltsearch.Spec.model_validate(tiny_spec_dict(search={"n_trials": 3, "sampler": sampler}))
    space = {"prune_rate": optuna.distributions.FloatDistribution(0.3, 0.7)}

    def draw(run_dir: Path, n: int) -> list[float]:
        run_dir.mkdir(exist_ok=True)
        study = optuna_backend.open_study(spec, run_dir)
        values = []
        for _ in range(n):
            trial = study.ask(space)
            values.append(trial.params["prune_rate"])
            study.tell(trial, [0.5, 1.0])
        return values

    once = draw(tmp_path / "a", 3)
    assert draw(tmp_path / "b", 3) == once  # an uninterrupted run is reproducible
    resumed = draw(tmp_path / "c", 1) + draw(tmp_path / "c", 2)
    assert resumed == once  # every trial drawn with the seed of its number: resumed or not, the same search


def test_stale_running_trial_is_failed_and_replaced(tmp_path: Path) -> None:
    """A trial whose process died (SIGKILL) stays RUNNING in the journal: the next run fails and re-runs it."""
    spec_file = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 1}))
    spec = sltsearch.load_spec(spec_file)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    study = optuna_backend.open_study(spec, run_dir)
    dead = subprocess.Popen(["true"])
    dead.wait()
    trial = study.ask({"prune_rate": optuna.distributions.FloatDistribution(0.3, 0.7)})
    trial.storage.set_trial_system_attr(
        trial._trial_id, "sltsearch:owner", {"host": os.uname().nodename, "pid": dead.pid, "start": "0"}
    )
    from sltsearch.results import TicketStore
    from sltsearch.results.record import Ticket

    measured = {k: 0.5 for k in ("sparsity", "density", "val_accuracy", "test_accuracy", "energy_uj", "macs", "acs")}
    partial = Ticket(0, 0, "dense", trial.params, 0, 2, nonzero_params=1, prunable_params=1, firing_rate=0.1,
                     best_epoch=1, epochs_trained=2, wall_time_s=1.0, stage_key="k", **measured)
    TicketStore(run_dir).append([partial], status="running")  # what the killed process had written
    sltsearch.run(spec_file, run_dir=run_dir)
    frame = sltsearch.load(run_dir)
    assert frame.loc[frame["trial"] == 0, "status"].tolist() == ["interrupted"]
    trials = _study(run_dir).get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[0].system_attrs["sltsearch:end"] == "stale" and trials[1].params == trial.params


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished search (2 trials), copied by the tests that damage it."""
    root = tmp_path_factory.mktemp("finished")
    spec = write_spec(root / "tiny.yaml", tiny_spec_dict())
    sltsearch.run(spec, run_dir=root / "run")
    return root / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp_path / "run"))


def _cli_run(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = runner.invoke(app, ["run", str(run_dir / "spec.yaml"), "--run-dir", str(run_dir), "-q", *args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


_MEASURED = ["ticket_id", "trial", "round", "kind", "status", "val_accuracy", "test_accuracy", "energy_uj", "sparsity"]
_RESTORED = ["ticket_id", "feasible", "node"]  # not measured: from the spec's constraints and the trial's records
ELSEWHERE = "gpu-node-7/0123456789ab"  # a node that is not this host (a Ray worker elsewhere)


@pytest.fixture(scope="module")
def constrained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished search whose trials ran on another node, with a constraint that only dense tickets meet."""
    root = tmp_path_factory.mktemp("constrained")
    spec = write_spec(root / "tiny.yaml", tiny_spec_dict(objective={"constraints": {"sparsity": {"max": 0.1}}}))
    post_init = execute.TrialRunner.__post_init__

    def elsewhere(self: execute.TrialRunner) -> None:
        post_init(self)
        self.node = ELSEWHERE

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execute.TrialRunner, "__post_init__", elsewhere)
        sltsearch.run(spec, run_dir=root / "run", workers=1)  # the patched runner works in this process
    frame = sltsearch.load(root / "run")
    assert frame["feasible"].any() and not frame["feasible"].all()  # both kinds of row to restore
    assert (frame["node"] == ELSEWHERE).all()
    return root / "run"


def _damage_column(path: Path, column: str) -> None:
    """Flip a byte in one column's pages: that column fails its checksum, the others stay readable."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index(column))
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start + chunk.total_compressed_size - 1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "one column"])
def test_repair_restores_feasible_and_node(constrained_run: Path, tmp_path: Path, damage: str) -> None:
    # truncated: nothing of the file is readable, the node comes from the study's record of the trial;
    # one column: the damaged file's node column is still readable and is what the row gets back
    run = _copy(constrained_run, tmp_path)
    before = sltsearch.load(run)
    part = run / "tickets" / "trial-000001.parquet"
    if damage == "truncated":
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    else:
        _damage_column(part, "val_accuracy")
    result = runner.invoke(app, ["repair", str(run)])
    assert result.exit_code == 0 and "re-measured the tickets of trials 1" in result.output, result.output
    after = sltsearch.load(run)
    pd.testing.assert_frame_equal(after[_MEASURED], before[_MEASURED])
    pd.testing.assert_frame_equal(after[_RESTORED], before[_RESTORED])  # never this host's name


def test_repaired_node_comes_from_the_best_record_or_stays_empty() -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from sltsearch.runfolder.repair import trial_node
    from sltsearch.search import liveness

    def trial(user: dict, system: dict) -> optuna.trial.FrozenTrial:
        made = create_trial(params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, values=[1.0],
                            user_attrs=user, system_attrs=system)
        made.number = 3
        return made

    owner = {liveness.OWNER: {"host": "owner-host", "pid": 1, "start": None}}
    full = trial({optuna_backend.NODE: "recorded/node"}, owner)
    assert trial_node(full, {3: "from-old-data"}, "optuna") == "from-old-data"  # the damaged file's own column
    assert trial_node(full, {4: "another trial's"}, "optuna") == "recorded/node"  # the study's record of the end
    assert trial_node(trial({}, owner), {}, "optuna") == "owner-host"  # Optuna backend: the owner ran it
    assert trial_node(trial({}, owner), {}, "ray") == ""  # Ray: the owner is the driver, not the node
    assert trial_node(trial({}, {}), {}, "optuna") == ""  # nothing recorded: left empty, never invented


def test_damaged_ticket_file_is_refused_then_repaired(finished_run: Path, tmp_path: Path) -> None:
    run = _copy(finished_run, tmp_path)
    before = sltsearch.load(run)
    part = run / "tickets" / "trial-000001.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated
    journal = (run / "study.journal").read_bytes()
    result = _cli_run(run, "--trials", "3")
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(part) in result.stderr and f"sltsearch repair {run}" in result.stderr
    assert (run / "study.journal").read_bytes() == journal  # no trial ran, nothing burned
    result = runner.invoke(app, ["repair", str(run)])
    assert result.exit_code == 0, result.output
    assert "set aside damaged file" in result.output and "re-measured the tickets of trials 1" in result.output
    after = sltsearch.load(run)
    pd.testing.assert_frame_equal(after[_MEASURED], before[_MEASURED])  # the same numbers, from the cache
    pd.testing.assert_frame_equal(after[_RESTORED], before[_RESTORED])
    assert after.loc[after["trial"] == 1, "cached"].all()  # no stage was trained again
    assert runner.invoke(app, ["repair", str(run)]).output.strip().endswith("needed no repair")


def test_lost_journal_is_refused_then_rebuilt(finished_run: Path, tmp_path: Path) -> None:
    run = _copy(finished_run, tmp_path)
    before = sltsearch.load(run)
    (run / "study.journal").unlink()
    result = _cli_run(run, "--trials", "3")
    assert result.returncode == 2 and "study is empty" in result.stderr and "sltsearch repair" in result.stderr
    assert sltsearch.load(run).equals(before)
    result = runner.invoke(app, ["repair", str(run)])
    assert result.exit_code == 0 and "rebuilt the study from the ticket table: 2 trials" in result.output
    assert _cli_run(run, "--trials", "3").returncode == 0
    after = sltsearch.load(run)
    assert after["ticket_id"].is_unique and sorted(after["trial"].unique()) == [0, 1, 2]
    assert after.iloc[: len(before)][_MEASURED].equals(before[_MEASURED])


def test_damaged_cache_stage_is_set_aside_and_recomputed(finished_run: Path, tmp_path: Path, capfd) -> None:  # noqa: ANN001
    run = _copy(finished_run, tmp_path)
    before = sltsearch.load(run)
    row = before[before["round"] == 1].iloc[0]
    state = run / "cache" / "imp" / row["stage_key"] / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-8] ^= 0xFF  # one flipped bit in a weight: loads fine, numbers silently change
    state.write_bytes(bytes(data))
    spec = sltsearch.load_spec(run / "spec.yaml")
    import torch

    from sltsearch.trial import TrialContext, run_trial
    from sltsearch.trial.cache import StageCache

    cache = StageCache(run / "cache")
    torch.set_num_threads(1)  # as the run's trials (a thread count changes the last digits)
    tickets = run_trial(spec, {"prune_rate": float(row["param_prune_rate"])}, TrialContext(cache=cache))
    err = capfd.readouterr().err
    assert f"cache: {state} is damaged (checksum mismatch" in err and "recomputing" in err
    assert not tickets[-1].cached and cache.set_aside and (cache.set_aside[0] / "state.safetensors").exists()
    assert tickets[-1].val_accuracy == row["val_accuracy"] and tickets[-1].energy_uj == row["energy_uj"]
    assert (run / "cache" / "imp" / row["stage_key"] / "meta.json").exists()  # recomputed in place
    state.write_bytes(b"\x00" * 10)  # a damaged header: also named, set aside, recomputed (no traceback)
    capfd.readouterr()
    params = {"prune_rate": float(row["param_prune_rate"])}
    again = run_trial(spec, params, TrialContext(cache=StageCache(run / "cache")))
    assert str(state) in capfd.readouterr().err and again[-1].val_accuracy == row["val_accuracy"]


def test_run_folder_files_honour_the_umask(finished_run: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    files = [p for p in finished_run.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert files and {p.name: p.stat().st_mode & 0o777 for p in files} == {p.name: expected for p in files}


def test_storage_password_is_never_printed_or_written(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict())
    url = "postgresql://alice:hunter2@127.0.0.1:1/sltsearch"
    result = runner.invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "r"), "--storage", url])
    assert result.exit_code == 2 and "alice:***@127.0.0.1" in result.stderr
    assert "hunter2" not in result.output + result.stderr
    assert json.loads((tmp_path / "r" / "run.json").read_text())["storage"] == "postgresql://alice:***@127.0.0.1:1/sltsearch"
    assert not [p for p in (tmp_path / "r").rglob("*") if p.is_file() and b"hunter2" in p.read_bytes()]


def test_run_folder_that_cannot_be_one(tmp_path: Path, tiny_spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for target, fragment in ((afile, "is a file, not a folder"), (afile / "sub", "is a file, so no folder")):
        result = runner.invoke(app, ["run", str(tiny_spec_file), "--run-dir", str(target)])
        assert result.exit_code == 2 and fragment in result.stderr and "Traceback" not in result.output
    assert afile.read_text() == "x"
    readonly = tmp_path / "ro"
    readonly.mkdir()
    if os.geteuid() != 0:
        readonly.chmod(0o555)
    else:  # root writes through mode bits: stand in for a read-only filesystem
        import errno
        import tempfile

        def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    result = runner.invoke(app, ["run", str(tiny_spec_file), "--run-dir", str(readonly / "run")])
    assert result.exit_code == 2 and "cannot write in" in result.stderr and "Traceback" not in result.output
    assert not (readonly / "run").exists()


def test_half_written_journal_line_is_dropped(finished_run: Path, tmp_path: Path) -> None:
    run = _copy(finished_run, tmp_path)
    journal = run / "study.journal"
    journal.write_bytes(journal.read_bytes() + b'{"op_code": 5, "worker_id": "x", "trial_id"')  # killed mid-write
    assert _cli_run(run, "--trials", "3").returncode == 0
    assert _states(run) == ["COMPLETE"] * 3


def _entry_point() -> list[str]:
    import shutil
    import sys

    exe = shutil.which("sltsearch", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "sltsearch"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGKILL", "SIGINT"])
def test_killed_at_random_moments_then_rerun(tmp_path: Path, signum: str) -> None:
    """Kill the real CLI 3 times after random delays (seeded), then rerun: the trial count is exact, no ticket
    id is duplicated, every finished trial's tickets are there, no trial is left RUNNING, nothing is corrupt."""
    import random
    import signal
    import time

    rng = random.Random(f"kill-{signum}")
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 4, "population_size": 2}))
    run = tmp_path / "run"
    command = [*_entry_point(), "run", str(spec), "--run-dir", str(run), "-q", "--threads", "1"]
    finished_before: set[int] = set()
    for _ in range(3):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(4.0, 14.0))
        process.send_signal(getattr(signal, signum))
        _, err = process.communicate(timeout=120)
        if signum == "SIGINT" and process.returncode == 130:
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        if (run / "study.journal").exists() and (run / "tickets").exists():
            frame = sltsearch.load(run)  # readable after every kill
            assert frame["ticket_id"].is_unique
            study = _study(run)
            done = {t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE}
            assert finished_before <= done  # a finished trial is never lost
            ok = set(frame.loc[frame["status"] == "ok", "trial"])
            assert done <= ok
            finished_before = done
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    frame = _check_table(run, 4)
    assert set(frame["status"]) <= {"ok", "interrupted", "failed"}
    from sltsearch.trial.cache import StageCache

    cache = StageCache(run / "cache")
    stages = [f for f in (run / "cache").glob("*/*") if (f / "meta.json").is_file()]
    assert stages and all(cache.fetch(f.parent.name, f.name, verify_all=True) for f in stages)  # none damaged
    assert not cache.set_aside


def test_a_run_folder_deleted_mid_search_stops_it_in_one_line(tmp_path: Path) -> None:
    """Issue 32, item 7: deleting the run folder under a running search ended in a JSONDecodeError traceback."""
    import shutil

    from sltsearch.errors import RunDirError
    from sltsearch.runfolder.folder import prepare_run_dir

    spec = sltsearch.Spec.model_validate(tiny_spec_dict(search={"n_trials": 3}))
    run_dir = tmp_path / "r"
    prepare_run_dir(spec, run_dir, None)

    def run_one(number: int, params: dict) -> list[dict]:
        if number == 1:
            shutil.rmtree(run_dir)  # the user deletes the folder while trial 1 runs
        run_dir.mkdir(exist_ok=True)  # as the trial's next write of a ticket recreates it
        return [{"ticket_id": f"t{number:04d}r00", **{m: 0.5 for m in spec.objective.metrics}}]

    with pytest.raises(RunDirError, match="was deleted or replaced while the search ran"):
        optuna_backend.optimize(spec, optuna_backend.open_study(spec, run_dir), run_one, run_dir=run_dir)


@pytest.mark.parametrize(("flag", "value"), [("--trials", "1000000000"), ("--threads", "100000")])
def test_counts_beyond_any_machine_are_one_line(tiny_spec_file: Path, tmp_path: Path, flag: str, value: str) -> None:
    """Issue 32, item 7: a pydantic traceback (--trials), a RuntimeError leaving the trial RUNNING (--threads)."""
    result = runner.invoke(app, ["run", str(tiny_spec_file), "--run-dir", str(tmp_path / "r"), flag, value])
    assert result.exit_code == 2 and f"{flag}: must be at most" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_an_exhausted_space_says_how_many_trials_finished_and_exits_0(tmp_path: Path) -> None:
    """Issue 32, item 7: two configurations and a budget of 5: the search ends at 2, says so, and exits 0 (every
    configuration ran; a rerun would add nothing: README, 'A search space with no new configuration left')."""
    space = {"prune_rate": {"type": "categorical", "choices": [0.3, 0.5]}}
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 5}, space=space))
    result = runner.invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "r"), "-q", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "space looks exhausted; a worker stops with 2 of 5 trials finished" in result.stderr
    assert _states(tmp_path / "r").count("COMPLETE") == 2


def test_a_trial_whose_heartbeat_cannot_start_is_not_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 32, item 7: a process out of threads (--threads 100000) failed to start the heartbeat with a
    RuntimeError traceback, after the trial was claimed: the trial stayed RUNNING."""
    from sltsearch.runfolder.folder import prepare_run_dir
    from sltsearch.search import liveness

    spec = sltsearch.Spec.model_validate(tiny_spec_dict(search={"n_trials": 1}))
    prepare_run_dir(spec, tmp_path, None)

    def no_thread(self: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(liveness.threading.Thread, "start", no_thread)

    def run_one(number: int, params: dict) -> list[dict]:
        return [{"ticket_id": f"t{number:04d}r00", **{m: 0.5 for m in spec.objective.metrics}}]

    optuna_backend.optimize(spec, optuna_backend.open_study(spec, tmp_path), run_one, run_dir=tmp_path)
    assert _states(tmp_path) == ["COMPLETE"]
    assert "trial 0: no heartbeat (can't start new thread)" in capfd.readouterr().err
