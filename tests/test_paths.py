"""Trials as IMP paths (`search.paths`, sltsearch/trial/paths.py) and the compute budget (`search.budget_epochs`).

The stop rule is checked as a pure function on hand-made tickets; a real search checks that paths stop where
the rule says, that the budget stops the search and counts only trained stages, that a rerun with a larger budget
resumes, that a path's rounds are the cache keys of fixed-round trials at its rate, and that the first trial runs
at the smallest T.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from conftest import tiny_spec_dict, write_spec

from sltsearch import api
from sltsearch.errors import UserError
from sltsearch.results.store import load_tickets
from sltsearch.search.execute import TrialRunner
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


def test_the_hope_after_a_change_of_rate_shrinks_as_the_last_round_did_per_weight_removed() -> None:
    spec = _spec()
    path = [{**_t(0.95, 1.0), "sparsity": 0.0}, {**_t(0.95, 0.6), "sparsity": 0.5}]  # half the weights: x 0.6
    assert paths.projected_next(path, spec, 0.5)["energy_uj"] == pytest.approx(0.36)  # the same rate: x 0.6 again
    # a quarter of them: 0.75 ** (log 0.6 / log 0.5), about x 0.82
    assert paths.projected_next(path, spec, 0.25)["energy_uj"] == pytest.approx(0.6 * 0.75 ** 0.7369655941662062)


def _row(trial: int, round_: int, rates: list[float], acc: float, energy: float, **params: object) -> dict:
    sparsity = 1.0
    for r in rates:
        sparsity *= 1.0 - r
    return {**_t(acc, energy), "trial": trial, "round": round_, "kind": "imp" if rates else "dense",
            "sparsity": 1.0 - sparsity, "rates": str(rates), "param_prune_rate": 0.5, **params}


def test_a_path_branches_from_the_sparsest_ticket_of_its_settings_that_can_still_reach_the_front() -> None:
    data = tiny_spec_dict(search={"paths": {"max_sparsity": 0.95}})
    data["space"] = {"prune_rate": {"type": "float", "low": 0.2, "high": 0.6, "step": 0.1},
                     "time_steps": {"type": "categorical", "choices": [2, 4]}}
    spec = Spec.model_validate(data)
    params = {"prune_rate": 0.2, "time_steps": 2}
    tspec = spec.with_params(params)
    parent = [_row(0, 0, [], 0.97, 1.0, param_time_steps=2), _row(0, 1, [0.5], 0.97, 0.5, param_time_steps=2),
              _row(0, 2, [0.5, 0.5], 0.965, 0.25, param_time_steps=2),
              _row(0, 3, [0.5, 0.5, 0.5], 0.80, 0.12, param_time_steps=2)]  # fell out of the region
    # the 75 % ticket: its next round at 0.2 hopes for (0.97, 0.25 * 0.8) and nothing dominates that (the 87.5 %
    # one is where the parent ended: a branch refines between a path's tickets, never past its end)
    assert paths.branch_point(tspec, params, parent) == [0.5, 0.5]
    # a rate no finer than the parent's does not branch: it would only step past the parent's next ticket
    coarse = {"prune_rate": 0.5, "time_steps": 2}
    assert paths.branch_point(spec.with_params(coarse), coarse, parent) == []
    assert paths.plan(tspec, [0.5, 0.5]) == pytest.approx([0.5, 0.5, *[0.2] * 7, 0.0463257], abs=1e-6)
    # another T is another path: nothing to branch from
    assert paths.branch_point(tspec, params, [{**r, "param_time_steps": 4} for r in parent]) == []
    # a ticket of another path at (0.972, 0.19) dominates the 75 % ticket's hope (0.97, 0.2), not the 50 % one's
    # (0.975, 0.4): the path branches there instead
    other = _row(1, 3, [0.6, 0.6, 0.6], 0.972, 0.19, param_time_steps=4)
    assert paths.branch_point(tspec, params, [*parent, other]) == [0.5]
    # when every ticket's next round is dominated, the path starts at the dense network (and stops there)
    assert paths.branch_point(tspec, params, [*parent, _row(2, 1, [0.9], 0.99, 0.01, param_time_steps=4)]) == []
    # off, or without a searched rate, a path always starts at the dense network
    off = Spec.model_validate({**data, "search": {"paths": {"max_sparsity": 0.95, "branch": False}}})
    assert paths.branch_point(off.with_params(params), params, parent) == []
    fixed = Spec.model_validate({**data, "space": {"time_steps": data["space"]["time_steps"]}})
    assert paths.branch_point(fixed.with_params({"time_steps": 2}), {"time_steps": 2}, parent) == []


def test_a_paths_value_is_its_ticket_inside_the_region_that_adds_most_to_the_rest_of_the_run() -> None:
    spec = _spec(accuracy_drop=0.05)
    path = [_t(0.96, 1.0), _t(0.95, 0.6), _t(0.92, 0.4), _t(0.85, 0.2)]  # below 0.96 - 0.05: out of the region
    # against (0.96, 0.9), reference (0.91, 1.1): (0.95, 0.6) adds 0.04 x 0.3 = 0.012, (0.92, 0.4) 0.01 x 0.5
    assert paths.final_ticket(spec, path, [_t(0.96, 0.9)]) is path[1]
    # a run that holds better tickets everywhere: none adds any, the sparsest inside the region stands
    assert paths.final_ticket(spec, path, [_t(0.97, 0.1)]) is path[2]
    # the path's own tickets in the run's table (its trial number) are not "the rest of the run"
    mine = [{**t, "trial": 5} for t in path]
    assert paths.final_ticket(spec, mine, [*mine, {**_t(0.96, 0.9), "trial": 1}]) is mine[1]


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
        start = TrialRunner(spec, tmp_path / "run").recorded_branch(int(trial))
        rates = paths.plan(spec.with_params({"prune_rate": float(path[-1]["param_prune_rate"])}), start)
        assert json.loads(path[-1]["rates"]) == pytest.approx(rates[: len(path) - 1])
        next_rate = rates[len(path) - 1] if len(path) - 1 < len(rates) else None
        assert paths.stop_reason(spec, path, before, next_rate) is not None, f"trial {trial} stopped early"
        for i in range(len(start) + 1, len(path)):  # and it went on wherever the rule said to (after its branch)
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


@pytest.mark.slow
def test_a_branch_starts_from_its_parents_cached_ticket_and_its_replay_starts_there_too(tmp_path: Path) -> None:
    """With the front's rule off (stop: region) a coarse path's tickets are branch points for a finer rate: the
    second path goes on from the first one's cached rounds and pays only for its own; a replay of it (its rows
    lost, as `sltsearch repair` runs it) starts from the recorded branch point, not from the dense network."""
    data = tiny_spec_dict(search={"paths": {"max_sparsity": 0.9, "accuracy_drop": 1.0, "stop": "region"}})
    data["tickets"] = {"prune_rate": 0.5, "scope": "layerwise"}
    data["space"] = {"prune_rate": {"type": "float", "low": 0.2, "high": 0.6, "step": 0.1}}
    spec = Spec.model_validate(data)
    run_dir = tmp_path / "run"
    runner = TrialRunner(spec, run_dir)
    runner(0, {"prune_rate": 0.6})
    runner(1, {"prune_rate": 0.2})
    before = load_tickets(run_dir)
    assert runner.recorded_branch(0) == []
    start = runner.recorded_branch(1)
    parent = before[before["trial"] == 0].sort_values("round")
    assert start == pytest.approx(json.loads(parent["rates"].iloc[-2]))  # the last one before the parent ended
    branch = before[before["trial"] == 1].sort_values("round")
    assert branch["cached"].iloc[: len(start) + 1].all()  # the dense run and the parent's rounds: free
    assert not branch["cached"].iloc[len(start) + 1 :].any() and len(branch) > len(start) + 1
    assert json.loads(branch["rates"].iloc[len(start) + 1]) == pytest.approx([*start, 0.2])
    (run_dir / "tickets" / "trial-000001.parquet").unlink()
    TrialRunner(spec, run_dir, follow_front=False)(1, {"prune_rate": 0.2})
    after = load_tickets(run_dir)
    columns = ["ticket_id", "sparsity", "val_accuracy", "energy_uj", "rates"]
    a = after.sort_values("ticket_id")[columns].reset_index(drop=True)
    b = before.sort_values("ticket_id")[columns].reset_index(drop=True)
    assert a.equals(b)
