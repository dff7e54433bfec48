"""A `sltsearch repair` killed half-way is finished by the next repair or run (issue 24, items 7 and 8)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_spec_dict, write_spec
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.search import optuna_backend

runner = CliRunner()
_MEASURED = ["ticket_id", "trial", "round", "kind", "status", "val_accuracy", "test_accuracy", "energy_uj", "sparsity"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished search of 3 trials."""
    root = tmp_path_factory.mktemp("resume")
    spec = write_spec(root / "tiny.yaml", tiny_spec_dict(search={"n_trials": 3, "population_size": 2}))
    sltsearch.run(spec, run_dir=root / "run")
    return root / "run"


def _copy(run: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


def _trials(run: Path) -> list:
    spec = sltsearch.load_spec(run / "spec.yaml")
    return optuna_backend.open_study(spec, run).get_trials(deepcopy=False)


def _killed_repair(run: Path, patch: str) -> None:
    """`repair` in a child process that stops at the point ``patch`` marks (it prints 'paused'); SIGKILL then."""
    argv = ["sltsearch", "repair", str(run)]
    code = f"import sys, time\n{patch}\nfrom sltsearch.cli import main\nsys.argv = {argv!r}\nmain()\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == "paused":
                break
        else:
            pytest.fail("the repair ended before the point it was to be killed at")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the process this test started, by its pid
        proc.wait(timeout=60)


def _cli_run(run: Path, *args: str):  # noqa: ANN202
    return runner.invoke(app, ["run", str(run / "spec.yaml"), "--run-dir", str(run), "-q", *args])


def test_a_repair_killed_while_rebuilding_the_study_is_finished_and_ids_keep_their_meaning(
    finished: Path, tmp_path: Path
) -> None:
    run = _copy(finished, tmp_path)
    before = sltsearch.load(run)
    (run / "study.journal").unlink()
    stop_after_first = (
        "import optuna\n"
        "original = optuna.study.Study.add_trial\n"
        "def add_trial(self, trial):\n"
        "    original(self, trial)\n"
        "    print('paused', flush=True); time.sleep(600)\n"
        "optuna.study.Study.add_trial = add_trial"
    )
    _killed_repair(run, stop_after_first)
    assert len(_trials(run)) == 1  # trial 0 rebuilt, 1 and 2 not: the state the issue describes
    refused = _cli_run(run, "--trials", "4")
    assert refused.exit_code == 2 and "sltsearch repair" in refused.stderr and "trial 2" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert sltsearch.load(run)[_MEASURED].equals(before[_MEASURED])
    repaired = runner.invoke(app, ["repair", str(run)])
    assert repaired.exit_code == 0 and "rebuilt the study from the ticket table: 2 trials" in repaired.output
    assert [t.number for t in _trials(run)] == [0, 1, 2]
    assert _cli_run(run, "--trials", "4").exit_code == 0
    after = sltsearch.load(run)
    assert after["ticket_id"].is_unique and sorted(after["trial"].unique()) == [0, 1, 2, 3]
    old = after[after["trial"] < 3].reset_index(drop=True)
    pd.testing.assert_frame_equal(old[_MEASURED], before[_MEASURED])  # t0001r01 etc. mean what they meant


@pytest.mark.parametrize("finisher", ["repair", "run"])
def test_rows_left_running_by_a_killed_repair_are_finished_by_the_next_repair_or_run(
    finished: Path, tmp_path: Path, finisher: str
) -> None:
    run = _copy(finished, tmp_path)
    before = sltsearch.load(run)
    part = run / "tickets" / "trial-000001.parquet"
    part.write_bytes(part.read_bytes()[:100])  # damaged: the repair sets it aside and re-measures trial 1
    stop_after_first_row = (
        "from sltsearch.results import store\n"
        "original = store.TicketStore.append\n"
        "def append(self, tickets, status=None):\n"
        "    original(self, tickets, status)\n"
        "    print('paused', flush=True); time.sleep(600)\n"
        "store.TicketStore.append = append"
    )
    _killed_repair(run, stop_after_first_row)
    left = sltsearch.load(run)
    assert set(left.loc[left["trial"] == 1, "status"]) == {"running"}  # what a killed re-measurement leaves
    if finisher == "repair":
        result = runner.invoke(app, ["repair", str(run)])
        assert result.exit_code == 0 and "re-measured the tickets of trials 1" in result.output, result.output
    else:
        result = _cli_run(run, "--trials", "3")  # the budget is spent: it only finishes the records
        assert result.exit_code == 0, result.output
        assert "re-measured the tickets of finished trials 1" in result.stderr
        assert len(sltsearch.pareto(run)) >= 1
    after = sltsearch.load(run).sort_values("ticket_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after[_MEASURED], before.sort_values("ticket_id").reset_index(drop=True)[_MEASURED])
    assert runner.invoke(app, ["repair", str(run)]).output.strip().endswith("needed no repair")


def test_a_garbage_line_inside_the_journal_is_one_line_for_run_and_set_aside_by_repair(
    finished: Path, tmp_path: Path
) -> None:
    """Issue 32, item 7: one garbage line inside study.journal made `run` and `repair` die in a traceback."""
    run = _copy(finished, tmp_path)
    before = sltsearch.load(run)
    lines = (run / "study.journal").read_bytes().split(b"\n")
    (run / "study.journal").write_bytes(b"\n".join([*lines[:9], b"this is not json", *lines[9:]]))
    refused = _cli_run(run, "--trials", "3")
    assert refused.exit_code == 2 and "line 10 is damaged" in refused.stderr and "sltsearch repair" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    repaired = runner.invoke(app, ["repair", str(run)])
    assert repaired.exit_code == 0, repaired.output
    assert "set aside damaged file:" in repaired.output and "line 10 is damaged" in repaired.stderr
    kept = list((run / ".damaged").iterdir())
    assert len(kept) == 1 and b"this is not json" in kept[0].read_bytes()  # the damaged journal, kept whole
    assert [t.state.name for t in _trials(run)] == ["COMPLETE"] * 3  # read from the other lines
    assert _cli_run(run, "--trials", "3").exit_code == 0
    assert sltsearch.load(run)[_MEASURED].equals(before[_MEASURED])
