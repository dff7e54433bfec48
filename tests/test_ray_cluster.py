"""A real two-node Ray cluster on 127.0.0.1 (head + worker node, each with its own raylet and 1 CPU), joined
with `sltsearch run --backend ray --address`: trials run on both nodes, and killing the worker node mid-trial
retries its trial on the head node. The nodes are Ray's own processes, started and killed by pid through
`ray.cluster_utils.Cluster` in a helper process (tests/ray_cluster_nodes.py; never `ray stop`: other jobs
share the machine)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    env = {**os.environ, "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
    helper = Path(__file__).resolve().parent / "ray_cluster_nodes.py"
    process = subprocess.Popen(
        [sys.executable, str(helper)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        yield TwoNodes(info["address"], info["head"][:12], info["worker"][:12], env, process)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # end of input: the helper shuts its cluster down
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()


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
