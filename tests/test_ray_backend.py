"""The Ray Tune backend on a tiny space (CPU, a private 2-CPU Ray started once for the module)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import tiny_spec_dict
from optuna.trial import TrialState

import sltsearch
from sltsearch.results.store import load_tickets
from sltsearch.search import optuna_backend
from sltsearch.search.events import Event, TrialEnd
from sltsearch.spec import parse_spec

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

COLUMNS = ["ticket_id", "kind", "sparsity", "val_accuracy", "test_accuracy", "energy_uj", "macs", "acs"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One small private Ray for every test here (the backend leaves a Ray it did not start running)."""
    from sltsearch.search.ray_backend import private_temp_dir

    tests = str(Path(__file__).resolve().parent)  # workers import the test's own user network (flaky_net)
    temp_dir = private_temp_dir()  # Ray's session files: removed afterwards, never left in /tmp/ray
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": tests}},
        _temp_dir=str(temp_dir),
    )
    yield
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def _spec(**search):
    return parse_spec(
        tiny_spec_dict(train={"epochs": 1}, search={"sampler": "random", "backend": "ray", **search})
    )


def _study(run_dir: Path, spec) -> optuna.Study:
    return optuna_backend.open_study(spec, run_dir)


def test_both_backends_give_the_same_tickets(tmp_path: Path) -> None:
    spec = _spec(n_trials=2)
    events: list[Event] = []
    lock = threading.Lock()  # a display holds locks and terminals: Tune must not need to pickle it

    def on_event(event: Event) -> None:
        with lock:
            events.append(event)

    by_ray = sltsearch.run(spec, run_dir=tmp_path / "ray", workers=2, threads=1, on_event=on_event).tickets
    assert [e.state for e in events if isinstance(e, TrialEnd)] == ["COMPLETE", "COMPLETE"]
    by_optuna = sltsearch.run(spec, run_dir=tmp_path / "optuna", backend="optuna", threads=1).tickets
    a = by_ray.sort_values("ticket_id").reset_index(drop=True)
    b = by_optuna.sort_values("ticket_id").reset_index(drop=True)
    assert list(a["param_prune_rate"]) == list(b["param_prune_rate"])  # same sampler, seed, distributions
    assert a[COLUMNS].equals(b[COLUMNS])
    assert a["node"].str.contains("/").all() and not b["node"].str.contains("/").any()  # host/Ray node id


def test_concurrent_trials_then_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    bound = {"objective": {"constraints": {"val_accuracy": {"min": 0.5}}}}
    spec3 = parse_spec({**tiny_spec_dict(train={"epochs": 1}, **bound),
                        "search": {"sampler": "random", "backend": "ray", "n_trials": 3}})
    first = sltsearch.run(spec3, run_dir=run_dir, workers=2)
    frame = first.tickets
    assert (frame["feasible"] == (frame["val_accuracy"] >= 0.5)).all()  # constraints marked per ticket
    assert set(first.front["ticket_id"]) <= set(frame[frame["feasible"]]["ticket_id"])
    assert sorted(frame["trial"].unique()) == [0, 1, 2]
    assert frame["ticket_id"].is_unique and len(frame) == 6 and (frame["status"] == "ok").all()
    study = _study(run_dir, first.spec)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert "final_ticket" in trial.user_attrs  # and the constraint values where Optuna's samplers read them
        assert trial.constraints == pytest.approx({"val_accuracy:min": 0.5 - trial.values[0]})
    assert list((run_dir / "ray").iterdir())  # Tune's files live under the run folder
    # rerun with a larger total: the three finished trials are kept, one more runs
    spec4 = spec3.model_copy(update={"search": spec3.search.model_copy(update={"n_trials": 4})})
    again = sltsearch.run(spec4, run_dir=run_dir, workers=2).tickets
    assert sorted(again["trial"].unique()) == [0, 1, 2, 3] and again["ticket_id"].is_unique
    kept = again[again["trial"] < 3].set_index("ticket_id")["wall_time_s"]
    assert kept.equals(frame.set_index("ticket_id")["wall_time_s"].loc[kept.index])  # not rerun


def test_a_failing_trial_does_not_stop_the_search(tmp_path: Path) -> None:
    # the pre-run checks pass (they probe explode: false); the trial that draws explode: true fails at run time
    # (the random sampler, seeded with 0 + the trial number, draws explode False, False, True, False, True, ...;
    # a failed trial runs once more, and max(3, n_trials) failures in a row would stop the search)
    spec = parse_spec(
        tiny_spec_dict(
            train={"epochs": 1},
            model={"name": "flaky_net:make_net", "options": {"explode": False}},
            search={"sampler": "random", "backend": "ray", "n_trials": 4},
            space={"model.options.explode": {"type": "categorical", "choices": [False, True]}},
        )
    )
    run_dir = tmp_path / "run"
    result = sltsearch.run(spec, run_dir=run_dir, workers=2)
    study = _study(run_dir, spec)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed and all(optuna_backend.ERROR in t.user_attrs for t in failed)
    assert all("flaky_net" in t.user_attrs[optuna_backend.ERROR] for t in failed)
    assert all((run_dir / "logs" / f"trial-{t.number:06d}.log").is_file() for t in failed)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4 and all(t.params["model.options.explode"] is False for t in done)
    assert set(result.tickets[result.tickets["status"] == "ok"]["trial"]) == {t.number for t in done}


@pytest.mark.parametrize("backend", ["optuna", "ray"])
def test_mo_asha_stops_a_trial_after_its_rung(tmp_path: Path, backend: str) -> None:
    # one objective read straight off the parameters (sparsity = prune_rate after round 1), so the decisions
    # do not hang on training noise: the random sampler (seed 3 + the trial number) draws prune_rate 0.5203,
    # 0.6868, 0.3888; with eta = 100 only the best ticket so far at a rung continues, so trial 2 stops after
    # round 1
    spec = parse_spec(
        tiny_spec_dict(
            seed=3,
            train={"epochs": 1},
            tickets={"rounds": 3},
            objective={"metrics": {"sparsity": "maximize"}},
            search={"sampler": "random", "n_trials": 3, "early_stopping": {"eta": 100, "min_rungs": 1}},
        )
    )
    run_dir = tmp_path / backend
    frame = sltsearch.run(spec, run_dir=run_dir, backend=backend, workers=1, threads=1).tickets
    study = _study(run_dir, spec)
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.COMPLETE, 2: TrialState.PRUNED}
    rounds = frame[frame["kind"].isin(["dense", "imp"])].groupby("trial")["round"].apply(sorted).to_dict()
    assert rounds == {0: [0, 1, 2, 3], 1: [0, 1, 2, 3], 2: [0, 1]}  # the stopped trial ran no round 2
    assert (frame["status"] == "ok").all()  # its tickets stand, and may sit on the front
    assert study.trials[2].user_attrs["final_ticket"] == "t0002r01"
    imp_stages = [p for p in (run_dir / "cache" / "imp").iterdir() if p.is_dir()]
    assert len(imp_stages) == 7  # 3 + 3 + 1 rounds trained: nothing for the stopped trial's later rounds


def _trial_workers() -> list[int]:
    """Pids of the Ray trial workers among this test process's own descendants."""
    rows = [line.split(None, 2) for line in subprocess.run(
        ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True
    ).stdout.splitlines() if line.strip()]
    found, frontier = [], [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for row in rows:
            if int(row[1]) == parent:
                frontier.append(int(row[0]))
                if len(row) > 2 and row[2].startswith("ray::ImplicitFunc"):
                    found.append(int(row[0]))
    return found


def test_a_dead_worker_is_retried_and_reuses_the_cached_stages(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    spec = parse_spec(
        tiny_spec_dict(train={"epochs": 2}, tickets={"rounds": 4}, search={"n_trials": 1, "backend": "ray"})
    )
    killed: list[int] = []

    def kill_after_round_one() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            time.sleep(0.1)
            try:
                frame = load_tickets(run_dir)
            except Exception:  # noqa: BLE001 - the table is being created
                continue
            if not frame.empty and (frame["round"] == 1).any():
                for pid in _trial_workers():
                    os.kill(pid, signal.SIGKILL)  # this test's own Ray worker, by pid
                    killed.append(pid)

    killer = threading.Thread(target=kill_after_round_one, daemon=True)
    killer.start()
    frame = sltsearch.run(spec, run_dir=run_dir, workers=1).tickets
    killer.join(timeout=1)
    assert killed, "the trial finished before its worker could be killed"
    study = _study(run_dir, spec)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]  # retried by Tune, not a new trial
    by_round = frame.set_index("round")["cached"].to_dict()
    assert by_round[0] and by_round[1]  # the retry loaded the dense run and round 1 from the cache
    assert sorted(by_round) == [0, 1, 2, 3, 4] and (frame["status"] == "ok").all()


def test_paths_end_as_complete_trials_and_the_compute_budget_stops_ray_too(tmp_path: Path) -> None:
    """A path ends before its planned rounds (its value marked final, not a trial Tune cut short), and the compute
    each trial trained reaches the study, whose budget stops the search."""
    data = tiny_spec_dict(train={"epochs": 1}, search={"sampler": "random", "backend": "ray", "n_trials": 20,
                                                       "paths": {"max_sparsity": 0.95}, "budget_epochs": 8})
    data["tickets"] = {"prune_rate": 0.5, "scope": "layerwise"}
    data["space"] = {"prune_rate": {"type": "float", "low": 0.3, "high": 0.7, "step": 0.1}}
    spec = parse_spec(data)
    result = sltsearch.run(spec, run_dir=tmp_path / "ray", workers=1, threads=1)
    study = _study(tmp_path / "ray", spec)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and not [t for t in study.trials if t.state == TrialState.FAIL and "stopped by Tune" in
                         str(t.user_attrs.get("error", ""))]
    spent = sum(t.user_attrs.get("compute", 0.0) for t in study.trials)
    trained = result.tickets[~result.tickets["cached"].astype(bool)]
    assert spent == pytest.approx(float((trained["epochs_trained"] * trained["time_steps"]).sum()))
    assert spent >= 8 and len(done) < 20
