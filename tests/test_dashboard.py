"""`sltsearch dashboard`: serves the run's study on a free loopback port; a client reads it back over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import tiny_spec_dict, write_spec
from typer.testing import CliRunner

from sltsearch.cli import app

pytest.importorskip("optuna_dashboard")


def _run_with_study(root: Path) -> Path:
    """A run folder whose study.journal holds three finished two-objective trials (no training needed)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    run = root / "run"
    run.mkdir()
    write_spec(run / "spec.yaml", tiny_spec_dict(name="dash"))
    storage = JournalStorage(JournalFileBackend(str(run / "study.journal")))
    study = optuna.create_study(study_name="dash", storage=storage, directions=["maximize", "minimize"])
    for i in range(3):
        trial = study.ask({"prune_rate": optuna.distributions.FloatDistribution(0.3, 0.7)})
        study.tell(trial, [0.9 - 0.1 * i, 1.0 - 0.2 * i])
    return run


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a loopback URL we built)
        return json.loads(response.read())


def test_dashboard_serves_the_study_on_loopback(tmp_path: Path) -> None:
    run = _run_with_study(tmp_path)
    port = _free_loopback_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sltsearch", "dashboard", str(run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        studies = None
        while studies is None:
            assert proc.poll() is None, proc.stdout.read()
            try:
                studies = _get(f"{base}/api/studies")
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not answer within 120 s"
                time.sleep(0.5)
        (summary,) = studies["study_summaries"]
        assert summary["study_name"] == "dash" and summary["directions"] == ["maximize", "minimize"]
        detail = _get(f"{base}/api/studies/{summary['study_id']}")
        assert len(detail["trials"]) == 3
        assert [t["values"] for t in detail["trials"]][0] == [0.9, 1.0]
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # the process this test started, by its pid
        proc.wait(timeout=30)
    assert f"http://127.0.0.1:{port}/dashboard" in proc.stdout.read()


def test_dashboard_without_a_study_is_a_one_line_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_spec(run / "spec.yaml", tiny_spec_dict())
    result = CliRunner().invoke(app, ["dashboard", str(run)])
    assert result.exit_code == 2
    assert "no study.journal" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["dashboard", str(run), "--port", "70000"])
    assert result.exit_code == 2
