"""A tiny search through the CLI, resuming, and bad input: one line, exit code 2, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import tiny_spec_dict, write_spec
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app

runner = CliRunner()


def _real_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a fresh process (what a user's shell runs)."""
    exe = shutil.which("sltsearch", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "sltsearch"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The same CLI in-process (fast); same exit code and stderr."""
    result = runner.invoke(app, list(args))
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 trials x (dense + 1 IMP round) x 2 epochs, run once for the module through the CLI."""
    root = tmp_path_factory.mktemp("run")
    spec = write_spec(root / "tiny.yaml", tiny_spec_dict())
    result = runner.invoke(app, ["run", str(spec), "--run-dir", str(root / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Pareto front" in result.output
    return root / "out"


def test_tiny_search_writes_a_run_folder(tiny_run: Path) -> None:
    for name in ["spec.yaml", "run.json", "study.journal", "pareto.csv", "pareto.png"]:
        assert (tiny_run / name).is_file(), name
    parts = sorted(p.name for p in (tiny_run / "tickets").iterdir())
    assert parts == ["trial-000000.parquet", "trial-000001.parquet"]  # one part file per trial
    frame = sltsearch.load(tiny_run)
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 4  # 2 trials x (dense round 0 + 1 IMP round)
    assert sorted(frame["round"].unique()) == [0, 1]
    expected = {"ticket_id", "trial", "round", "param_prune_rate", "val_accuracy", "test_accuracy", "energy_uj",
                "sparsity", "firing_rate", "wall_time_s", "status", "macs", "acs"}
    assert expected <= set(frame.columns)
    imp = frame[frame["round"] == 1]
    assert ((imp["sparsity"] - imp["param_prune_rate"]).abs() < 0.01).all()
    assert (frame["val_accuracy"].between(0, 1)).all() and (frame["energy_uj"] > 0).all()
    assert (frame[frame["round"] == 0]["sparsity"] == 0).all()


def test_dense_run_is_shared_between_trials(tiny_run: Path) -> None:
    frame = sltsearch.load(tiny_run)
    dense = frame[frame["round"] == 0]
    assert dense["stage_key"].nunique() == 1  # same T and seed: one dense run, cached
    assert dense["cached"].tolist() == [False, True]


def test_pareto_command_and_api_agree(tiny_run: Path, tmp_path: Path) -> None:
    csv = tmp_path / "front.csv"
    result = runner.invoke(app, ["pareto", str(tiny_run), "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(csv)
    assert set(written["ticket_id"]) == set(sltsearch.pareto(tiny_run)["ticket_id"])


def test_rerun_resumes_without_losing_tickets(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    before = sltsearch.load(copy)
    result = runner.invoke(app, ["run", str(copy / "spec.yaml"), "--run-dir", str(copy), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sltsearch.load(copy).equals(before)  # study already complete: nothing recomputed or lost
    result = runner.invoke(app, ["run", str(copy / "spec.yaml"), "--run-dir", str(copy), "--trials", "3", "-q"])
    assert result.exit_code == 0, result.output
    after = sltsearch.load(copy)
    assert len(after) == len(before) + 2 and after["trial"].nunique() == 3
    assert after.iloc[: len(before)].equals(before)


def test_rerun_with_a_different_spec_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    other = write_spec(tmp_path / "other.yaml", tiny_spec_dict(seed=1))
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    result = _cli("run", str(other), "--run-dir", str(copy))
    assert result.returncode == 2
    assert "already holds a run of a different spec" in result.stderr
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "spec file not found"),
        ("model: {time_steps: 0}\n", "model.time_steps"),
        ("tickets: {prune_rate: 1.0}\n", "tickets.prune_rate"),
        ("bogus: 1\n", "bogus: unknown key"),
        ("a: [1,\n", "not valid YAML"),
    ],
)
def test_bad_spec_one_line_exit_2_no_traceback(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    for command in (["validate", str(path)], ["run", str(path), "--run-dir", str(tmp_path / "r")]):
        result = _cli(*command)
        assert result.returncode == 2, result
        assert fragment in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "r").exists()


def test_real_entry_point_bad_input(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec.yaml", "tickets: {prune_rate: 1.5}\n")
    result = _real_cli("run", str(path), "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "tickets.prune_rate" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "r").exists()


def test_validate_and_spaces_commands() -> None:
    result = runner.invoke(app, ["validate", "default"])
    assert result.exit_code == 0 and "ok" in result.output
    result = runner.invoke(app, ["spaces"])
    assert result.exit_code == 0 and "default" in result.output


def test_spaces_fit_80_columns_without_cutting_a_name_or_path() -> None:
    """In a pipe or CI log (80 columns) the paths fold onto more lines; nothing is cut with an ellipsis."""
    from sltsearch.spec.spaces import bundled_spaces

    result = runner.invoke(app, ["spaces"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    cells = [line.split("│") for line in result.output.splitlines() if line.startswith("│")]
    paths = "".join(row[3].strip() for row in cells)  # the path column, its folded pieces in order
    for name, path in bundled_spaces().items():
        assert name in result.output and str(path) in paths


def test_bad_trials_flag_and_bad_run_dir(tmp_path: Path, tiny_spec_file: Path) -> None:
    result = _cli("run", str(tiny_spec_file), "--trials", "0", "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and "--trials" in result.stderr
    result = _cli("pareto", str(tmp_path))
    assert result.returncode == 2 and "not a run folder" in result.stderr


def test_threads_option_is_validated_and_applied(tiny_spec_file: Path, tmp_path: Path) -> None:
    """--threads 0 is a one-line error; a valid value sets torch's threads for the worker and the run works."""
    bad = _cli("run", str(tiny_spec_file), "--threads", "0", "--run-dir", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--threads" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()
    before = torch.get_num_threads()
    try:
        result = sltsearch.run(tiny_spec_file, run_dir=tmp_path / "ok", n_trials=1, threads=1)
        assert torch.get_num_threads() == 1 and not result.tickets.empty
    finally:
        torch.set_num_threads(before)
