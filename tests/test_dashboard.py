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


def _start(run: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = _free_loopback_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sltsearch", "dashboard", str(run), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stdout.read()
        try:
            _get(f"http://127.0.0.1:{port}/api/studies")
            return proc, port
        except OSError:
            assert time.monotonic() < deadline, "the dashboard did not answer within 120 s"
            time.sleep(0.5)


def _request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """A real HTTP request with the headers given (http.client sends Host as we set it)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _study_names(run: Path) -> list[str]:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.study.get_all_study_names(JournalStorage(JournalFileBackend(str(run / "study.journal"))))


@pytest.mark.parametrize("writes", [False, True])
def test_dashboard_refuses_foreign_hosts_and_is_read_only_by_default(tmp_path: Path, writes: bool) -> None:
    run = _run_with_study(tmp_path)
    proc, port = _start(run, *(["--allow-writes"] if writes else []))
    loopback = {"Host": f"127.0.0.1:{port}"}
    try:
        # a DNS-rebinding page (or any process) naming another host: refused, the study stays
        status, text = _request(port, "DELETE", "/api/studies/0", {"Host": "rebind.evil.example"})
        assert status == 403 and "127.0.0.1" in text
        status, _ = _request(port, "GET", "/api/studies", {"Host": f"rebind.evil.example:{port}"})
        assert status == 403
        # a cross-site form post to the loopback address carries the page's Origin: refused
        status, _ = _request(port, "PUT", "/api/studies/0/note", {**loopback, "Origin": "http://evil.example"})
        assert status == 403
        assert _study_names(run) == ["dash"]
        assert _request(port, "GET", "/api/studies", {"Host": f"localhost:{port}"})[0] == 200
        status, text = _request(port, "DELETE", "/api/studies/0", loopback)
        if writes:
            assert status == 204 and _study_names(run) == []  # the flag lets the user's own browser change it
        else:
            assert status == 405 and "--allow-writes" in text and _study_names(run) == ["dash"]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert ("read-write" if writes else "read-only") in proc.stdout.read()
