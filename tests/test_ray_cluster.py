"""A real two-node Ray cluster on 127.0.0.1 (head + worker node, each with its own raylet and 1 CPU), joined
with `sltsearch run --backend ray --address`: trials run on both nodes, and killing the worker node mid-trial
retries its trial on the head node. The nodes are Ray's own processes, started and killed by pid through
`ray.cluster_utils.Cluster` in a helper process (tests/ray_cluster_nodes.py; never `ray stop`: other jobs
share the machine)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import tiny_spec_dict, write_spec
from optuna.trial import TrialState

import sltsearch
from sltsearch.search import optuna_backend

pytestmark = pytest.mark.slow


@dataclass
class TwoNodes:
    address: str
    head: str  # node ids, as ticket rows end their `node` with (first 12 characters)
    worker: str
    env: dict[str, str]
    process: subprocess.Popen[str]

    def kill_worker(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("kill-worker\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"


@pytest.fixture
def cluster() -> Iterator[TwoNodes]:
    # the nodes and the CLI share one auth token, held in the environment only (no ~/.ray file)
    # and every node, the CLI driver included, takes 127.0.0.1 as its address (loopback only; see the helper)
    env = {**os.environ, "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    helper = Path(__file__).resolve().parent / "ray_cluster_nodes.py"
    # a short private folder: Ray's unix sockets live under it (path length limit), and /tmp/ray stays untouched
    temp_dir = tempfile.mkdtemp(prefix="slt-ray-", dir="/tmp")
    process = subprocess.Popen(
        [sys.executable, str(helper), temp_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["ips"] == ["127.0.0.1"], info  # both nodes on loopback
        assert info["address"].startswith("127.0.0.1:"), info
        # every server socket of both nodes is bound to loopback (127.0.0.1, or its IPv4-mapped IPv6 form)
        assert info["listening"] and all(ip.endswith("127.0.0.1") for ip in info["listening"]), info
        yield TwoNodes(info["address"], info["head"][:12], info["worker"][:12], env, process)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # end of input: the helper shuts its cluster down
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _run(spec: Path, run_dir: Path, address: str, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(run_dir), "-q"]
    command += ["--backend", "ray", "--address", address, "--workers", "2", "--cpus-per-trial", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _complete(run_dir: Path) -> list[int]:
    spec = sltsearch.load_spec(run_dir / "spec.yaml")
    trials = optuna_backend.open_study(spec, run_dir).get_trials(deepcopy=False)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return [t.number for t in trials if t.state == TrialState.COMPLETE]


def test_trials_run_on_both_nodes(cluster: TwoNodes, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(search={"n_trials": 4, "population_size": 2}))
    worker = _run(spec, tmp_path / "run", cluster.address, cluster.env)
    _, err = worker.communicate(timeout=900)
    assert worker.returncode == 0, err
    assert len(_complete(tmp_path / "run")) == 4
    frame = sltsearch.load(tmp_path / "run")
    assert frame["ticket_id"].is_unique
    node_ids = {cluster.head, cluster.worker}
    used = {str(node).rsplit("/", 1)[-1] for node in frame["node"]}
    assert used == node_ids  # every ticket row names its node; both nodes ran trials


def test_killed_worker_node_trial_is_retried_on_the_head(cluster: TwoNodes, tmp_path: Path) -> None:
    # 3 IMP rounds: a trial spends seconds after its dense ticket, so the kill lands inside it
    spec = write_spec(
        tmp_path / "s.yaml", tiny_spec_dict(tickets={"rounds": 3}, search={"n_trials": 4, "population_size": 2})
    )
    run_dir = tmp_path / "run"
    victim = cluster.worker
    process = _run(spec, run_dir, cluster.address, cluster.env)
    deadline = time.monotonic() + 600
    before = None
    while time.monotonic() < deadline:  # wait until the worker node is inside a trial
        frame = sltsearch.load(run_dir) if (run_dir / "tickets").exists() else None
        if frame is not None and not frame.empty:
            mine = frame[
                frame["node"].astype(str).str.endswith(victim) & (frame["status"] == "running") & (frame["round"] < 2)
            ]
            if not mine.empty:
                before, victim_trial = frame, int(mine.iloc[0]["trial"])
                break
        time.sleep(0.3)
    else:
        pytest.fail("no trial ever ran on the worker node")
    cluster.kill_worker()
    _, err = process.communicate(timeout=900)
    assert process.returncode == 0, err
    assert len(_complete(run_dir)) == 4
    after = sltsearch.load(run_dir)
    assert after["ticket_id"].is_unique
    finished = before[before["status"] == "ok"]
    kept = after.set_index("ticket_id").loc[finished["ticket_id"]]
    assert (kept["val_accuracy"].to_numpy() == finished["val_accuracy"].to_numpy()).all()  # nothing lost
    spec_ = sltsearch.load_spec(run_dir / "spec.yaml")
    trials = optuna_backend.open_study(spec_, run_dir).get_trials(deepcopy=False)
    redone = [  # Tune retried the trial (same number) or the study re-ran its parameters (retry_of)
        t for t in trials
        if t.state == TrialState.COMPLETE and victim_trial in (t.number, t.user_attrs.get("retry_of"))
    ]
    assert len(redone) == 1
    rows = after[(after["trial"] == redone[0].number) & (after["status"] == "ok")]
    assert rows["node"].astype(str).str.endswith(cluster.head).all()  # on the surviving node


def _listening(pid: int) -> set[str]:
    """Local addresses the process ``pid`` and its descendants listen on over TCP."""
    found: set[str] = set()
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return found
    for process in processes:
        try:
            found |= {c.laddr.ip for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
    return found


def test_a_private_ray_listens_on_loopback_only_and_leaves_no_files(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(train={"epochs": 1}, search={"n_trials": 2}))
    temp = Path(tempfile.mkdtemp(prefix="slt-", dir="/tmp"))  # TMPDIR: Ray's session folder goes here
    env = {**os.environ, "TMPDIR": str(temp)}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # sltsearch sets it itself for a private Ray
    command = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(tmp_path / "run"), "-q",
               "--backend", "ray", "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen: set[str] = set()
    while process.poll() is None:  # sample the servers while the search runs
        seen |= _listening(process.pid)
        time.sleep(0.2)
    _, err = process.communicate()
    assert process.returncode == 0, err
    assert seen, "no listening socket was ever seen"  # Ray's GCS and raylet listen while the search runs
    assert all(ip.endswith("127.0.0.1") for ip in seen), seen
    assert len(_complete(tmp_path / "run")) == 2
    # the private Ray's session folder is removed with it (torch may leave its own compile cache there)
    assert not [p.name for p in temp.iterdir() if p.name.startswith(("sltsearch-ray-", "ray", "session"))]
    shutil.rmtree(temp)


def test_a_long_temp_folder_falls_back_to_a_short_one(tmp_path: Path) -> None:
    from sltsearch.search.ray_backend import MAX_TEMP_BASE, private_temp_dir

    long_base = tmp_path / ("x" * MAX_TEMP_BASE)
    long_base.mkdir()
    folder = private_temp_dir(str(long_base))
    try:
        assert folder.parent == Path("/tmp") and folder.name.startswith("sltsearch-ray-")
    finally:
        folder.rmdir()
    short = Path(tempfile.mkdtemp(prefix="s-", dir="/tmp"))
    folder = private_temp_dir(str(short))
    assert folder.parent == short
    shutil.rmtree(short)


def test_sigterm_under_ray_interrupts_the_trial_in_one_line(tmp_path: Path) -> None:
    """Issue 24, item 11: SIGTERM under --backend ray made Ray's own handler dump a stack and abort (exit 134)."""
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict(tickets={"rounds": 3}, search={"n_trials": 2}))
    run_dir, temp = tmp_path / "run", Path(tempfile.mkdtemp(prefix="slt-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(temp)}
    command = [sys.executable, "-m", "sltsearch", "run", str(spec), "--run-dir", str(run_dir), "-q",
               "--backend", "ray", "--workers", "1", "--threads", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # until the trial has measured its dense ticket
        if (run_dir / "tickets").exists() and not sltsearch.load(run_dir).empty:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the trial never started")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    lines = err.strip().splitlines()
    assert process.returncode == 143, err
    assert len(lines) == 1 and lines[0].startswith("terminated:") and "Traceback" not in err, err
    trials = optuna_backend.open_study(sltsearch.load_spec(run_dir / "spec.yaml"), run_dir).get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].system_attrs["sltsearch:end"] == "interrupted"
    assert set(sltsearch.load(run_dir)["status"]) == {"interrupted"}
    assert not [p.name for p in temp.iterdir() if p.name.startswith(("sltsearch-ray-", "ray", "session"))]
    shutil.rmtree(temp)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    assert len(_complete(run_dir)) == 2
