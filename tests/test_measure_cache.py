"""A cached stage is not measured again: its ticket's metrics are stored with it (sltsearch.trial.measurement)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_spec_dict

import sltsearch.trial.stages as stages
from sltsearch.results.record import Ticket
from sltsearch.spec import Spec, parse_spec
from sltsearch.trial import TrialContext, run_trial
from sltsearch.trial.cache import DAMAGED_DIR, MEASURED, StageCache
from sltsearch.trial.context import prepare
from sltsearch.trial.measurement import MEASURED_FIELDS, TRIAL_FIELDS


def _spec(**overrides: Any) -> Spec:
    data = tiny_spec_dict(**overrides)
    data.pop("space")
    return parse_spec(data)


class Evaluations:
    """Counts every model evaluation a ticket's measurement makes (accuracy and energy)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.accuracy = 0
        self.energy = 0
        real_evaluate, real_energy = stages.evaluate, stages.measure_energy

        def evaluate(*args: Any, **kwargs: Any) -> float:
            self.accuracy += 1
            return real_evaluate(*args, **kwargs)

        def energy(*args: Any, **kwargs: Any) -> Any:
            self.energy += 1
            return real_energy(*args, **kwargs)

        monkeypatch.setattr(stages, "evaluate", evaluate)
        monkeypatch.setattr(stages, "measure_energy", energy)

    @property
    def total(self) -> int:
        return self.accuracy + self.energy


def metrics(ticket: Ticket) -> dict[str, Any]:
    """Every column of the ticket's row except the two that describe this run of it (time, cached)."""
    row = ticket.row()
    return {k: v for k, v in row.items() if k not in ("wall_time_s", "cached")}


def measured_files(cache: StageCache) -> list[Path]:
    assert cache.root is not None
    return sorted(p for p in cache.root.glob("*/*/measured-*.json"))


def test_a_measurement_fills_every_measured_field_and_no_trial_field() -> None:
    """MEASURED_FIELDS is every Ticket field but TRIAL_FIELDS: a Ticket field the measurement never sets (it would
    be stored with a stage as its default), a trial field it sets, or a stale name in TRIAL_FIELDS fails here."""
    assert {f.name for f in fields(Ticket)} >= TRIAL_FIELDS
    assert "best_epoch" in TRIAL_FIELDS and "cached" in TRIAL_FIELDS  # from the stage's meta / the run
    measured = {}
    for model in ("spikformer", "spiking_cnn"):
        spec = _spec(model={"name": model, "preset": "tiny", "time_steps": 2}, objective={"energy": {"samples": 8}})
        setup = prepare(spec, TrialContext())
        measured[model] = set(stages.measured_values(setup, stages.new_model(setup)))
    assert measured["spikformer"] == set(MEASURED_FIELDS)
    multisp_columns = measured["spikformer"] - measured["spiking_cnn"]  # a CNN has none: they stay None
    assert {"patch_keep", "pep_sparsity"} <= multisp_columns
    assert all(Ticket.__dataclass_fields__[name].default is None for name in multisp_columns)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, Path, list[Ticket]]:
    spec = _spec(tickets={"rounds": 2, "prune_rate": 0.5, "controls": ["random_prune", "random_reinit"]})
    root = tmp_path_factory.mktemp("cache")
    tickets = run_trial(spec, {}, TrialContext(cache=StageCache(root)))
    return spec, root, tickets


def _copy(root: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(root, tmp_path / "cache"))


def test_rerun_reads_every_measurement_back_without_evaluating(
    first_run: tuple[Spec, Path, list[Ticket]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, root, first = first_run
    assert not any(t.cached for t in first)
    cache = StageCache(_copy(root, tmp_path))
    assert len(measured_files(cache)) == len(first)  # dense, 2 rounds, 2 controls per round: one each
    evaluations = Evaluations(monkeypatch)
    again = run_trial(spec, {}, TrialContext(trial_number=7, cache=cache))
    assert evaluations.total == 0
    assert cache.misses == 0 and cache.measured_hits == len(first)
    assert all(t.cached for t in again)
    assert [t.trial for t in again] == [7] * len(first)  # the trial's own fields are this run's
    assert [{**metrics(t), "trial": 0, "ticket_id": None} for t in again] == [
        {**metrics(t), "ticket_id": None} for t in first
    ]


def test_another_energy_setting_measures_once_and_keeps_both(
    first_run: tuple[Spec, Path, list[Ticket]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, root, first = first_run
    cache = StageCache(_copy(root, tmp_path))
    evaluations = Evaluations(monkeypatch)
    fewer = spec.model_copy(update={"objective": spec.objective.model_copy(
        update={"energy": spec.objective.energy.model_copy(update={"samples": 16})})})
    other = run_trial(fewer, {}, TrialContext(cache=cache))
    assert cache.misses == 0  # no stage trained again ...
    assert evaluations.energy == len(first) and evaluations.accuracy == 2 * len(first)  # ... every one measured
    assert all(t.cached for t in other)
    assert [t.val_accuracy for t in other] == [t.val_accuracy for t in first]
    assert [t.sparsity for t in other] == [t.sparsity for t in first]
    assert len(measured_files(cache)) == 2 * len(first)
    before = evaluations.total
    for again_spec, expected in ((spec, first), (fewer, other)):  # both settings now read back
        again = run_trial(again_spec, {}, TrialContext(cache=cache))
        assert [metrics(t) for t in again] == [metrics(t) for t in expected]
    assert evaluations.total == before


def test_old_stage_without_a_measurement_is_measured_and_upgraded(
    first_run: tuple[Spec, Path, list[Ticket]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, root, first = first_run
    cache = StageCache(_copy(root, tmp_path))
    assert cache.root is not None
    for meta_path in cache.root.glob("*/*/meta.json"):  # the format before measurements were stored
        meta = json.loads(meta_path.read_text())
        meta.pop(MEASURED, None)
        meta_path.write_text(json.dumps(meta))
    for path in measured_files(cache):
        path.unlink()
    evaluations = Evaluations(monkeypatch)
    upgraded = run_trial(spec, {}, TrialContext(cache=cache))
    assert cache.misses == 0 and evaluations.energy == len(first)
    assert [metrics(t) for t in upgraded] == [metrics(t) for t in first]
    assert len(measured_files(cache)) == len(first)
    before = evaluations.total
    run_trial(spec, {}, TrialContext(cache=cache))
    assert evaluations.total == before


def test_damaged_measurement_is_set_aside_and_measured_again(
    first_run: tuple[Spec, Path, list[Ticket]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    spec, root, first = first_run
    cache = StageCache(_copy(root, tmp_path))
    assert cache.root is not None
    imp_key = first[-1].stage_key
    [damaged] = [p for p in measured_files(cache) if p.parent.name == imp_key]
    values = json.loads(damaged.read_text())
    values["val_accuracy"] = 1.0  # a number that was never measured
    damaged.write_text(json.dumps(values))
    evaluations = Evaluations(monkeypatch)
    again = run_trial(spec, {}, TrialContext(cache=cache))
    assert "is damaged (checksum mismatch" in capfd.readouterr().err
    assert cache.misses == 0  # the stage's weights are intact: only its measurement is taken again
    assert evaluations.energy == 1
    assert [metrics(t) for t in again] == [metrics(t) for t in first]
    [aside] = cache.set_aside
    assert aside.parent == cache.root / DAMAGED_DIR and aside.name.endswith(damaged.name)
    assert json.loads(aside.read_text())["val_accuracy"] == 1.0
    before = evaluations.total
    run_trial(spec, {}, TrialContext(cache=cache))  # the new measurement carries a valid checksum
    assert evaluations.total == before and len(cache.set_aside) == 1


def test_no_cache_measures_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tickets={"rounds": 1, "prune_rate": 0.5})
    evaluations = Evaluations(monkeypatch)
    cache = StageCache(None)
    run_trial(spec, {}, TrialContext(cache=cache))
    run_trial(spec, {}, TrialContext(cache=cache))
    assert evaluations.energy == 4


@pytest.mark.parametrize(
    "tickets",
    [
        pytest.param({"rounds": 1, "time_steps_search": 1, "controls": ["random_reinit"]}, id="early_time"),
        pytest.param({"strategy": "early_bird", "target_sparsity": 0.5, "eb_threshold": 0.9}, id="early_bird"),
        pytest.param({"strategy": "one_shot", "target_sparsity": 0.7, "encoding_sparsity": 0.3}, id="one_shot"),
    ],
)
def test_every_strategy_reads_its_measurements_back(
    tickets: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tickets=tickets, train={"epochs": 2})
    cache = StageCache(tmp_path)
    first = run_trial(spec, {}, TrialContext(cache=cache))
    evaluations = Evaluations(monkeypatch)
    again = run_trial(spec, {}, TrialContext(cache=cache))
    assert evaluations.total == 0 and all(t.cached for t in again)
    assert [metrics(t) for t in again] == [metrics(t) for t in first]


def test_multisp_tickets_read_their_measurements_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_spec(
        {
            "model": {"name": "spikformer", "preset": "tiny", "time_steps": 1,
                      "options": {"embed_dim": 16, "pep_channels": [8, 16]}},
            "data": {"batch_size": 128},
            "train": {"epochs": 1},
            "tickets": {"rounds": 1, "prune_rate": 0.5, "controls": ["random_prune"]},
            "objective": {"energy": {"samples": 32}},
            "multisp": {"patch_keep": 0.5, "pep_sparsity": 0.9, "pep_binary_weights": True},
        }
    )
    cache = StageCache(tmp_path)
    first = run_trial(spec, {}, TrialContext(cache=cache))
    assert first[-1].tokens_kept == 8 and first[-1].pep_binary_weights
    evaluations = Evaluations(monkeypatch)
    again = run_trial(spec, {}, TrialContext(cache=cache))
    assert evaluations.total == 0
    assert [metrics(t) for t in again] == [metrics(t) for t in first]


def test_a_trial_sharing_a_stage_gets_its_own_trial_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_spec(tiny_spec_dict())  # prune_rate is searched; both trials share the dense run
    cache = StageCache(tmp_path)
    first = run_trial(spec, {"prune_rate": 0.5}, TrialContext(trial_number=0, cache=cache))
    evaluations = Evaluations(monkeypatch)
    dense, ticket = run_trial(spec, {"prune_rate": 0.3}, TrialContext(trial_number=1, cache=cache))
    assert evaluations.energy == 1  # the new round only: the dense row is read back
    assert dense.cached and not ticket.cached
    assert (dense.trial, dense.params, dense.ticket_id) == (1, {"prune_rate": 0.3}, "t0001r00")
    assert dense.val_accuracy == first[0].val_accuracy and dense.energy_uj == first[0].energy_uj
    assert ticket.sparsity == pytest.approx(0.3, abs=1e-3)
