"""Trials as IMP paths (`search.paths`, sltsearch/trial/paths.py) and the compute budget (`search.budget_epochs`).

The stop rule is checked as a pure function on hand-made tickets; a real search checks that paths stop where
the rule says, that the budget stops the search and counts only trained stages, that a rerun with a larger budget
resumes, that a path's rounds are the cache keys of fixed-round trials at its rate, and that the first trial runs
at the smallest T.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import tiny_spec_dict, write_spec

from sltsearch import api
from sltsearch.errors import UserError
from sltsearch.results.store import load_tickets
from sltsearch.search.space import to_distributions
from sltsearch.search.study import COMPUTE, cheapest_start, open_study
from sltsearch.spec import Spec
from sltsearch.trial import paths, stages

OBJ = {"val_accuracy": "maximize", "energy_uj": "minimize"}


def _spec(**search: object) -> Spec:
    data = tiny_spec_dict(search={"n_trials": 4, "paths": {"max_sparsity": 0.9, **search}})
    data["space"] = {"prune_rate": {"type": "float", "low": 0.3, "high": 0.6, "step": 0.1}}
    data["tickets"] = {"prune_rate": 0.5}
    return Spec.model_validate(data)


def _t(acc: float, energy: float) -> dict[str, float]:
    return {"val_accuracy": acc, "energy_uj": energy}


def test_a_path_goes_on_while_nothing_of_the_run_dominates_its_next_round() -> None:
    spec = _spec()
    path = [_t(0.95, 1.0), _t(0.95, 0.8)]
    # the next round, optimistically: accuracy 0.955, energy 0.8 * 0.8 = 0.64; a ticket at (0.96, 0.7) does not
    # dominate that, so the path goes on
    assert paths.stop_reason(spec, path, [_t(0.96, 0.7)], 0.5) is None
    # (0.96, 0.6) does: better accuracy at less energy than the path can hope for
    assert "cannot reach the front" in paths.stop_reason(spec, path, [_t(0.96, 0.6)], 0.5)
    # after the dense ticket the hope is the density the next round keeps: 1.0 * (1 - 0.5)
    assert paths.stop_reason(spec, path[:1], [_t(0.96, 0.55)], 0.5) is None
    assert paths.stop_reason(spec, path[:1], [_t(0.96, 0.45)], 0.5) is not None


def test_a_path_stops_below_the_region_of_interest_and_at_the_budget() -> None:
    spec = _spec(accuracy_drop=0.1)
    front = [_t(0.97, 0.5)]
    assert paths.stop_reason(spec, [_t(0.9, 1.0), _t(0.88, 0.5)], front, 0.5) is None
    assert "below the run's best" in paths.stop_reason(spec, [_t(0.9, 1.0), _t(0.86, 0.4)], front, 0.5)
    assert paths.stop_reason(spec, [_t(0.9, 1.0)], [], 0.5, budget_left=0.0) == "the compute budget is spent"
    assert paths.stop_reason(spec, [_t(0.9, 1.0)], [], 0.5, budget_left=3.0) is None
    assert "max_sparsity" in paths.stop_reason(spec, [_t(0.9, 1.0)], [], None)
    never = _spec(stop="never")
    assert paths.stop_reason(never, [_t(0.1, 1.0), _t(0.1, 0.9)], [_t(0.99, 0.01)], 0.5) is None


def test_a_paths_value_is_its_sparsest_ticket_inside_the_region() -> None:
    spec = _spec(accuracy_drop=0.05)
    path = [_t(0.96, 1.0), _t(0.95, 0.6), _t(0.92, 0.4), _t(0.85, 0.2)]
    assert paths.final_ticket(spec, path, [_t(0.96, 0.9)]) is path[2]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"space": {"rounds": {"type": "int", "low": 1, "high": 3}}}, "remove rounds from the space"),
        ({"tickets": {"strategy": "one_shot", "target_sparsity": 0.5}}, "unset"),
        ({"tickets": {"strategy": "early_bird"}}, "tickets.strategy: imp"),
        ({"tickets": {"time_steps_search": 2}, "model": {"time_steps": 4}}, "early-time"),
    ],
)
def test_paths_refuse_what_would_fix_their_rounds(change: dict, words: str) -> None:
    data = tiny_spec_dict(search={"paths": {}})
    for key, value in change.items():
        data[key] = {**data.get(key, {}), **value} if key != "space" else value
    with pytest.raises(ValueError, match=words):
        Spec.model_validate(data)


def test_a_paths_rounds_are_the_cached_rounds_of_fixed_round_trials_at_its_rate() -> None:
    path = _spec().with_params({"prune_rate": 0.5})
    fixed = Spec.model_validate(tiny_spec_dict(tickets={"prune_rate": 0.5, "rounds": 2}))
    assert path.round_rates() == pytest.approx([0.5, 0.5, 0.5, 0.2])  # to 90 %: the last rate trimmed
    assert stages.trial_keys(path)["rounds"][:2] == stages.trial_keys(fixed)["rounds"]


def test_the_search_starts_at_the_smallest_time_steps(tmp_path: Path) -> None:
    data = tiny_spec_dict(search={"paths": {}, "n_trials": 3})
    data["space"] = {"time_steps": {"type": "categorical", "choices": [4, 2, 6]}}
    spec = Spec.model_validate(data)
    assert cheapest_start(spec) == {"time_steps": 2}
    study = open_study(spec, tmp_path)
    assert study.ask(to_distributions(spec.space)).params == {"time_steps": 2}
    assert cheapest_start(Spec.model_validate(tiny_spec_dict())) == {}


def _compute(run_dir: Path) -> float:
    frame = load_tickets(run_dir)
    trained = frame[~frame["cached"].astype(bool)]
    return float((trained["epochs_trained"] * trained["time_steps"]).sum())


def _study(run_dir: Path, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_a_compute_budget_stops_the_search_and_a_larger_one_resumes_it(tmp_path: Path) -> None:
    data = tiny_spec_dict(search={"n_trials": 20, "paths": {"max_sparsity": 0.9}, "budget_epochs": 6})
    data["tickets"] = {"prune_rate": 0.5, "scope": "layerwise"}
    data["space"] = {"prune_rate": {"type": "float", "low": 0.3, "high": 0.7, "step": 0.1}}
    spec_file = write_spec(tmp_path / "s.yaml", data)
    run_dir = tmp_path / "run"
    api.run(spec_file, run_dir=run_dir, workers=1, threads=1)
    study = _study(run_dir, "tiny")
    spent = sum(t.user_attrs.get(COMPUTE, 0.0) for t in study.trials)
    # every trained stage counted once (the shared dense run too), cached ones free; the last path stopped
    # at the round that spent the budget
    assert spent == pytest.approx(_compute(run_dir))
    assert 6 <= spent < 6 + 2 * 2 * 2  # at most the stage in flight (2 epochs x T=2) past it
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 1 <= len(finished) < 20
    api.run(spec_file, run_dir=run_dir, workers=1, threads=1, budget_epochs=20)
    study = _study(run_dir, "tiny")
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) > len(finished)
    assert sum(t.user_attrs.get(COMPUTE, 0.0) for t in study.trials) == pytest.approx(_compute(run_dir))


@pytest.mark.slow
def test_paths_stop_where_the_rule_says(tmp_path: Path) -> None:
    """Every path of a real search ends at max_sparsity, below the region, or where its next round could not
    reach the front of the tickets stored before it ended."""
    data = tiny_spec_dict(search={"n_trials": 3, "paths": {"max_sparsity": 0.95, "accuracy_drop": 0.05}})
    data["tickets"] = {"prune_rate": 0.5, "scope": "layerwise"}
    data["space"] = {"prune_rate": {"type": "float", "low": 0.4, "high": 0.6, "step": 0.1}}
    spec_file = write_spec(tmp_path / "s.yaml", data)
    result = api.run(spec_file, run_dir=tmp_path / "run", workers=1, threads=1)
    frame = result.tickets.sort_values("measured_at")
    spec = result.spec
    for trial, rows in frame.groupby("trial"):
        rows = rows.sort_values("round")
        path = [dict(r) for _, r in rows.iterrows()]
        before = [dict(r) for _, r in frame[frame["measured_at"] <= rows["measured_at"].max()].iterrows()]
        rates = spec.with_params({"prune_rate": float(path[-1]["param_prune_rate"])}).round_rates()
        next_rate = rates[len(path) - 1] if len(path) - 1 < len(rates) else None
        assert paths.stop_reason(spec, path, before, next_rate) is not None, f"trial {trial} stopped early"
        for i in range(1, len(path)):  # and it went on wherever the rule said to
            seen = [p for p in before if p["measured_at"] <= path[i - 1]["measured_at"]]
            assert paths.stop_reason(spec, path[:i], seen, rates[i - 1]) is None, f"trial {trial} ran round {i}"


def test_a_budget_of_zero_or_below_is_refused_in_one_line(tiny_spec_file: Path) -> None:
    with pytest.raises(UserError, match="--budget-epochs: must be above 0"):
        api.run(tiny_spec_file, budget_epochs=0)


@pytest.mark.slow
def test_repair_rebuilds_a_paths_tickets_where_it_stopped(tmp_path: Path) -> None:
    """A replay does not judge a path against today's front (which holds later tickets): it stops where the
    recorded trial stopped, so the rebuilt rows are the lost ones."""
    data = tiny_spec_dict(search={"n_trials": 2, "paths": {"max_sparsity": 0.95, "accuracy_drop": 0.05}})
    data["tickets"] = {"prune_rate": 0.5, "scope": "layerwise"}
    data["space"] = {"prune_rate": {"type": "float", "low": 0.4, "high": 0.6, "step": 0.1}}
    spec_file = write_spec(tmp_path / "s.yaml", data)
    run_dir = tmp_path / "run"
    before = api.run(spec_file, run_dir=run_dir, workers=1, threads=1).tickets
    (run_dir / "tickets" / "trial-000000.parquet").unlink()
    report = api.repair(run_dir)
    assert report.trials_remeasured == [0]
    after = load_tickets(run_dir)
    columns = ["ticket_id", "sparsity", "val_accuracy", "energy_uj"]
    assert sorted(after["ticket_id"]) == sorted(before["ticket_id"])
    a = after.sort_values("ticket_id")[columns].reset_index(drop=True)
    b = before.sort_values("ticket_id")[columns].reset_index(drop=True)
    assert a.equals(b)
