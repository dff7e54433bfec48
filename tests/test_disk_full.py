"""A full disk mid-run: one line naming the disk, nothing written half, the trial interrupted and resumed
(issue 24, item 10). Simulated everywhere (the writers raise ENOSPC); on a real 30 MB tmpfs where this
process may mount one (root), skipped elsewhere."""

from __future__ import annotations

import errno
import shutil
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
from sltsearch.system.diskfull import DiskFull, describe, is_disk_full, mount_point
from sltsearch.trial import cache

runner = CliRunner()


def _no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def one_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full")
    spec = write_spec(root / "tiny.yaml", tiny_spec_dict(train={"epochs": 1}, search={"n_trials": 1}))
    sltsearch.run(spec, run_dir=root / "run")
    return root / "run"


def _study(run: Path) -> list:
    return optuna_backend.open_study(sltsearch.load_spec(run / "spec.yaml"), run).get_trials(deepcopy=False)


def _check_stopped_cleanly(run: Path, result: object, pareto_before: bytes) -> None:
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: disk full: no space left on "), result.stderr
    assert str(mount_point(run)) in lines[0] and "free space there" in lines[0] and "rerun" in lines[0]
    assert "Traceback" not in result.output
    assert (run / "pareto.csv").read_bytes() == pareto_before  # never truncated
    assert not [p for p in run.rglob(".*") if p.is_file() and not p.name.endswith(".lock")]  # no temp files
    trials = _study(run)
    assert trials[1].state.name == "FAIL" and trials[1].system_attrs["sltsearch:end"] == "interrupted"
    rows = sltsearch.load(run)
    # its rows say interrupted, or, where not even that fitted on the disk, still running: the next run settles them
    assert set(rows.loc[rows["trial"] == 1, "status"]) <= {"interrupted", "running"}


def _check_resumed(run: Path) -> None:
    trials = _study(run)
    assert [t.state.name for t in trials].count("COMPLETE") == 3
    assert trials[2].params == trials[1].params  # the interrupted trial's parameters ran first
    rows = sltsearch.load(run)
    assert set(rows.loc[rows["trial"] == 1, "status"]) <= {"interrupted"}
    assert set(rows.loc[rows["trial"] != 1, "status"]) == {"ok"}


def test_a_full_disk_mid_run_stops_with_one_line_and_resumes(
    one_trial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Path(shutil.copytree(one_trial, tmp_path / "run"))
    pareto_before = (run / "pareto.csv").read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(cache, "save_file", _no_space)  # every new stage's tensors: the disk is full
        patch.setattr(pd.DataFrame, "to_csv", _no_space)  # and the front
        result = runner.invoke(app, ["run", str(run / "spec.yaml"), "--run-dir", str(run), "-q", "--trials", "3",
                                    "--workers", "1"])  # the patched writers work in this process
    _check_stopped_cleanly(run, result, pareto_before)
    again = runner.invoke(
        app, ["run", str(run / "spec.yaml"), "--run-dir", str(run), "-q", "--trials", "3", "--workers", "1"]
    )  # one worker: the interrupted trial's parameters run first
    assert again.exit_code == 0, again.output
    _check_resumed(run)


def test_pareto_csv_and_plots_are_written_atomically(one_trial: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {name: (one_trial / name).read_bytes() for name in ("pareto.csv", "pareto.png")}

    def half_then_full(self: pd.DataFrame, path: object, *args: object, **kwargs: object) -> None:
        Path(path).write_text("ticket_id,val_acc")  # a truncated file, as a full disk leaves it
        _no_space()

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full)
    spec = sltsearch.load_spec(one_trial / "spec.yaml")
    with pytest.raises(DiskFull, match="disk full"):
        sltsearch.api.write_front(one_trial, spec, sltsearch.load(one_trial))
    assert {name: (one_trial / name).read_bytes() for name in before} == before
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_full)
    result = runner.invoke(app, ["pareto", str(one_trial), "--plot", str(one_trial / "pareto.png")])
    assert result.exit_code == 2 and "disk full" in result.stderr
    assert (one_trial / "pareto.png").read_bytes() == before["pareto.png"]


def test_an_export_on_a_full_disk_is_one_line_and_leaves_nothing(
    one_trial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sltsearch.ticket_io import bundle

    monkeypatch.setattr(bundle, "save_file", _no_space)
    result = runner.invoke(app, ["export", str(one_trial), "--ticket", "t0000r01", "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and result.stderr.startswith("error: disk full") and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [tmp_path / "run"] or not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert not (tmp_path / "t").exists()


def test_disk_full_is_recognised_however_a_library_words_it() -> None:
    from safetensors import SafetensorError

    assert is_disk_full(OSError(errno.ENOSPC, "x"))
    assert is_disk_full(OSError(errno.EDQUOT, "x"))
    rust = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
    assert is_disk_full(SafetensorError(rust))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("while writing the journal") from None
    except RuntimeError as err:
        assert is_disk_full(err)  # found through __context__
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("bad"))
    text = describe(OSError(errno.ENOSPC, "No space left on device", "/proc/x"))
    assert text is not None and text.startswith("disk full: no space left on /proc") and "\n" not in text


def _mount_tmpfs(where: Path) -> bool:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
def test_a_real_30_mb_tmpfs_filled_mid_run(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if shutil.which("mount") is None or not _mount_tmpfs(disk):
        pytest.skip("cannot mount a tmpfs here (needs root); the simulated tests cover the same paths")
    try:
        spec = write_spec(disk / "tiny.yaml", tiny_spec_dict(train={"epochs": 1}, search={"n_trials": 1}))
        run = disk / "run"
        cli = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(run), "-q"]
        cli += ["--workers", "1", "--threads", "1"]  # one trial at a time: the trial the disk stops is trial 1
        assert subprocess.run(cli, capture_output=True).returncode == 0
        pareto_before = (run / "pareto.csv").read_bytes()
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * (free - 150_000))  # room for part of one more trial
        result = subprocess.run([*cli, "--trials", "3"], capture_output=True, text=True)
        result.exit_code, result.output = result.returncode, result.stdout + result.stderr
        _check_stopped_cleanly(run, result, pareto_before)
        (disk / "filler").unlink()
        assert subprocess.run([*cli, "--trials", "3"], capture_output=True).returncode == 0
        _check_resumed(run)
    finally:
        subprocess.run(["umount", str(disk)], check=False)  # the mount this test made
