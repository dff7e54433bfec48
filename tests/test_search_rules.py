"""Driver rules on fake trials (no training): constraints, MO-ASHA stops ending PRUNED, no trial spent twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from conftest import tiny_spec_dict
from optuna.trial import TrialState
from typer.testing import CliRunner

from sltsearch.cli import app
from sltsearch.errors import SpecError
from sltsearch.results.pareto import pareto_front
from sltsearch.results.record import Ticket
from sltsearch.search import optuna_backend
from sltsearch.search.constraints import constraint_values, is_feasible
from sltsearch.search.early_stop import StoppedEarly
from sltsearch.spec import parse_spec


def _ticket(trial: int, round_: int, val: float, energy: float) -> Ticket:
    return Ticket(
        trial=trial, round=round_, kind="imp" if round_ else "dense", params={}, seed=0, time_steps=2,
        sparsity=0.5, density=0.5, nonzero_params=1, prunable_params=2, val_accuracy=val, test_accuracy=val,
        energy_uj=energy, macs=0.0, acs=0.0, firing_rate=0.0, best_epoch=0, epochs_trained=0, wall_time_s=0.0,
        stage_key="k",
    )


def _study(spec: Any) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        directions=list(spec.objective.metrics.values()), sampler=optuna_backend.make_sampler(spec)
    )


def test_constraint_values_and_feasibility() -> None:
    spec = parse_spec(tiny_spec_dict(objective={"constraints": {"val_accuracy": {"min": 0.97},
                                                                "energy_uj": {"max": 0.1}}}))
    ok, low, costly = _ticket(0, 1, 0.98, 0.05), _ticket(0, 1, 0.9, 0.05), _ticket(0, 1, 0.99, 0.3)
    assert constraint_values(spec, low) == pytest.approx({"val_accuracy:min": 0.07, "energy_uj:max": -0.05})
    assert is_feasible(spec, ok) and not is_feasible(spec, low) and not is_feasible(spec, costly)
    assert is_feasible(parse_spec(tiny_spec_dict()), low)  # no constraints: everything is feasible


def test_bad_constraints_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="test metric"):
        parse_spec(tiny_spec_dict(objective={"constraints": {"test_accuracy": {"min": 0.9}}}))
    with pytest.raises(SpecError, match="min.*max"):
        parse_spec(tiny_spec_dict(objective={"constraints": {"val_accuracy": {}}}))
    with pytest.raises(SpecError, match="unknown constraint metric"):
        parse_spec(tiny_spec_dict(objective={"constraints": {"speed": {"max": 1}}}))


def test_infeasible_tickets_stay_off_the_front() -> None:
    frame = pd.DataFrame(
        {"ticket_id": ["a", "b", "c"], "val_accuracy": [0.99, 0.9, 0.98], "energy_uj": [0.5, 0.01, 0.2],
         "status": ["ok"] * 3, "feasible": [True, False, True]}
    )
    front = pareto_front(frame, {"val_accuracy": "maximize", "energy_uj": "minimize"})
    assert set(front["ticket_id"]) == {"a", "c"}  # b would dominate on energy, but violates a constraint


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_trials_carry_constraints_where_the_samplers_read_them(sampler: str) -> None:
    spec = parse_spec(
        tiny_spec_dict(
            objective={"constraints": {"val_accuracy": {"min": 0.5}}},
            search={"n_trials": 4, "sampler": sampler, "population_size": 2},
        )
    )
    study = _study(spec)

    def run_one(number: int, params: dict[str, Any]) -> list[Ticket]:
        return [_ticket(number, 1, params["prune_rate"], 1.0 - params["prune_rate"])]

    optuna_backend.optimize(spec, study, run_one)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 4
    for trial in trials:  # FrozenTrial.constraints is what NSGA-II's constrained domination and TPE use
        assert trial.constraints == pytest.approx({"val_accuracy:min": 0.5 - trial.params["prune_rate"]})


def test_a_stopped_trial_ends_pruned_with_its_last_ticket() -> None:
    spec = parse_spec(tiny_spec_dict(search={"n_trials": 2, "sampler": "random"},
                                     objective={"constraints": {"val_accuracy": {"min": 0.5}}}))
    study = _study(spec)

    def run_one(number: int, params: dict[str, Any]) -> list[Ticket]:
        if number == 0:
            raise StoppedEarly(_ticket(number, 1, 0.2, 0.1))
        return [_ticket(number, 0, 0.9, 1.0), _ticket(number, 2, 0.8, 0.5)]

    optuna_backend.optimize(spec, study, run_one)
    first, second = study.get_trials()
    assert first.state == TrialState.PRUNED and second.state == TrialState.COMPLETE  # both use the budget
    assert first.user_attrs["final_ticket"] == "t0000r01"
    assert first.constraints == pytest.approx({"val_accuracy:min": 0.3})  # infeasible: the samplers know
    assert second.values == [0.8, 0.5]


def test_no_trial_is_spent_twice() -> None:
    # two possible parameter values, four trials asked for: only two trials can ever be new
    spec = parse_spec(
        tiny_spec_dict(
            search={"n_trials": 4, "sampler": "random"},
            space={"prune_rate": {"type": "categorical", "choices": [0.3, 0.5]}},
        )
    )
    study = _study(spec)
    ran: list[dict[str, Any]] = []

    def run_one(number: int, params: dict[str, Any]) -> list[Ticket]:
        ran.append(params)
        return [_ticket(number, 1, params["prune_rate"], 0.1)]

    optuna_backend.optimize(spec, study, run_one)
    assert sorted(p["prune_rate"] for p in ran) == [0.3, 0.5]  # each point ran once, then the space ran out
    repeats = [t for t in study.get_trials() if optuna_backend.DUPLICATE_OF in t.user_attrs]
    last = study.get_trials()[-optuna_backend.MAX_REPEATS_IN_ROW:]  # the search stopped after that many in a row
    assert all(optuna_backend.DUPLICATE_OF in t.user_attrs for t in last)
    assert len(study.get_trials()) == 2 + len(repeats)
    assert all(t.state == TrialState.FAIL for t in repeats)  # never used the budget
    assert optuna_backend.enqueue_retries(study, limit=10) == []  # and never queued to run again


def test_parameters_that_compute_the_same_stages_are_not_run_twice() -> None:
    # early-time tickets searched at the full T are plain IMP at T (the default space draws both): of the four
    # draws (T, time_steps_search) only three compute something new, and the fourth is never run
    spec = parse_spec(
        tiny_spec_dict(
            search={"n_trials": 4, "sampler": "random"},
            space={
                "prune_rate": {"type": "categorical", "choices": [0.5]},
                "time_steps": {"type": "categorical", "choices": [2, 4]},
                "time_steps_search": {"type": "categorical", "choices": [None, 2]},
            },
        )
    )
    study = _study(spec)
    ran: list[tuple[int, int | None]] = []

    def run_one(number: int, params: dict[str, Any]) -> list[Ticket]:
        ran.append((params["time_steps"], params["time_steps_search"]))
        return [_ticket(number, 1, 0.5, 0.1)]

    optuna_backend.optimize(spec, study, run_one)
    assert len(ran) == 3 and len(set(ran)) == 3
    assert {(4, None), (4, 2)} <= set(ran) and len({(2, None), (2, 2)} & set(ran)) == 1
    repeats = [t for t in study.get_trials() if optuna_backend.DUPLICATE_OF in t.user_attrs]
    assert repeats and all(t.state == TrialState.FAIL for t in repeats)  # never used the budget


def test_cli_and_optuna_backend_never_import_ray() -> None:
    code = (
        "import sys, sltsearch.cli, sltsearch.api, sltsearch.search.optuna_backend, sltsearch.search.early_stop; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ray_options_need_the_ray_backend(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec_dict()))
    for flag in ("--cpus-per-trial", "--gpus-per-trial"):
        result = CliRunner().invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "out"), flag, "1"])
        assert result.exit_code == 2 and "need --backend ray" in result.output
    assert not (tmp_path / "out").exists()  # found before anything was written
    bad = CliRunner().invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "out"), "--backend", "dask"])
    assert bad.exit_code == 2 and "optuna or ray" in bad.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "--workers: must be at least 1, got 0"),
        (["--threads", "-1"], "--threads: must be at least 1, got -1"),
        (["--backend", "ray", "--cpus-per-trial", "0"], "--cpus-per-trial: must be above 0, got 0.0"),
        (["--backend", "ray", "--gpus-per-trial", "-1"], "--gpus-per-trial: must not be negative, got -1.0"),
    ],
)
def test_bad_worker_counts_are_one_line_before_anything_is_written(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec_dict()))
    result = CliRunner().invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "out"), *flags])
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_process_that_died_is_no_owner_even_before_its_parent_collects_it() -> None:
    """A killed `sltsearch run` stays a zombie until its parent (a shell, a test) collects it: its workers and
    the stale-trial check must see it dead meanwhile, or they wait for it (and hold its pipes open)."""
    import socket
    import time

    from sltsearch.search import liveness

    child = subprocess.Popen(["sleep", "30"])
    owner = {"host": socket.gethostname(), "pid": child.pid, "start": liveness._process_start(child.pid)}  # noqa: SLF001
    assert liveness.owner_alive(owner) is True
    child.kill()
    time.sleep(0.3)  # dead, not yet collected
    assert liveness.owner_alive(owner) is False
    child.wait()
    assert liveness.owner_alive(owner) is False
