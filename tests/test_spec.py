"""Spec validation: good files pass, bad ones fail with file, key and allowed values named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import tiny_spec_dict, write_spec

from sltsearch.api import bundled_spaces
from sltsearch.errors import SpecError
from sltsearch.spec import SearchSpec, Spec, load_spec, parse_spec

FIDELITY_REPORT = Path(__file__).resolve().parent.parent / "results" / "benchmarks" / "fidelity.md"
STRATEGIES_REPORT = FIDELITY_REPORT.with_name("ticket_strategies.md")


def test_bundled_spaces_validate() -> None:
    spaces = bundled_spaces()
    assert "default" in spaces
    for path in spaces.values():
        spec = load_spec(path)
        assert spec.space, f"{path} searches nothing"


def test_default_searches_the_issue_parameters() -> None:
    """T, the rewind point and the pruning schedule stay searched (a search that fixed them would know the
    answer); the rounds are each path's own (`search.paths`), and the budget is compute."""
    spec = load_spec(bundled_spaces()["default"])
    assert {"prune_rate", "rewind_epoch", "time_steps"} <= set(spec.space)
    assert len(spec.space["time_steps"].choices or []) > 1
    assert spec.search.paths is not None and "rounds" not in spec.space
    assert spec.search.budget_epochs is not None
    assert spec.objective.metrics == {"val_accuracy": "maximize", "energy_uj": "minimize"}


def test_bundled_spaces_stop_early_only_where_a_rule_pays() -> None:
    """The early-stopping replays (`benchmarks/fidelity.py` -> results/benchmarks/fidelity.md) decide each task's
    default: where no rule pays, its bundled space runs every trial to its end (and so does a spec that says
    nothing, unless some task's rule pays); where one pays, its space stops early."""
    text = FIDELITY_REPORT.read_text()
    spaces = dict(re.findall(r"^## (\w+) \(`(\w+)` space", text, flags=re.M))  # task -> bundled space
    summary = text.strip().splitlines()[-1]
    assert summary.startswith("Summary: "), f"{FIDELITY_REPORT} does not end with its Summary line"
    verdicts = dict(part.split(" ", 1) for part in summary.removeprefix("Summary: ").split("; "))
    assert set(verdicts) == set(spaces) == {"digits", "mnist1d"}
    for task, verdict in verdicts.items():
        early = load_spec(bundled_spaces()[spaces[task]]).search.early_stopping
        assert (early is None) == (verdict == "none pays"), f"{task}: {verdict}, yet early_stopping {early}"
    if all(v == "none pays" for v in verdicts.values()):
        assert SearchSpec().early_stopping is None


def _searches_strategy(spec: Spec, variant: str) -> bool:
    """Whether a spec's tickets (fixed or searched) include the cheaper strategy ``variant`` of the report."""
    if variant == "early_time":
        searched = spec.space.get("time_steps_search")
        return spec.tickets.time_steps_search is not None or bool(searched and any(searched.choices or [1]))
    searched = spec.space.get("strategy")
    return spec.tickets.strategy == variant or bool(searched and variant in (searched.choices or []))


def test_bundled_spaces_use_a_cheaper_ticket_strategy_only_where_it_pays() -> None:
    """`benchmarks/ticket_strategies.py` -> results/benchmarks/ticket_strategies.md decides whether a bundled space
    adds early-time or early-bird tickets: only where the variant reached the front sooner, again on fresh seeds."""
    text = STRATEGIES_REPORT.read_text()
    spaces = dict(re.findall(r"^## (\w+) \(`sltsearch run (\w+)`\)", text, flags=re.M))  # task -> bundled space
    summary = text.strip().splitlines()[-1]
    assert summary.startswith("Summary: strategies "), f"{STRATEGIES_REPORT} does not end with its Summary line"
    parts = summary.removeprefix("Summary: strategies ").split(" | ")
    verdicts = {part.split(" ", 1)[0]: part.rsplit(": ", 1)[1] for part in parts}
    assert set(verdicts) == {"early_time", "early_bird"} and set(spaces) == {"digits", "mnist1d"}
    for variant, verdict in verdicts.items():
        paying = set(verdict.removeprefix("pays on ").split(", ")) if verdict.startswith("pays on ") else set()
        assert verdict == "does not pay" or paying <= set(spaces), verdict
        for task, space in spaces.items():
            spec = load_spec(bundled_spaces()[space])
            if spec.search.paths is not None:  # measured on fixed rounds; paths run plain IMP (the spec refuses both)
                assert not _searches_strategy(spec, variant)
                continue
            assert _searches_strategy(spec, variant) == (task in paying), f"{space}: {variant} {verdict}"


def test_tiny_spec_roundtrips_through_yaml(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "s.yaml", tiny_spec_dict()))
    again = load_spec(write_spec(tmp_path / "again.yaml", spec.to_yaml()))
    assert again == spec
    assert again.content_hash() == spec.content_hash()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"tickets": {"prune_rate": 1.0}}, "tickets.prune_rate: Input should be less than 1"),
        ({"tickets": {"prune_rate": 0.0}}, "tickets.prune_rate"),
        ({"model": {"time_steps": 0}}, "model.time_steps: Input should be greater than or equal to 1"),
        ({"tickets": {"prunerate": 0.5}}, "tickets.prunerate: unknown key; allowed here: strategy, scope"),
        ({"modle": {}}, "modle: unknown key; allowed here: name, seed, data, model"),
        ({"tickets": {"strategy": "magic"}}, "tickets.strategy"),
        ({"space": {"prune_rate": {"type": "float", "low": 0.2, "high": 1.0}}}, "space.prune_rate: value 1.0"),
        ({"space": {"time_steps": {"type": "categorical", "choices": [0, 4]}}}, "space.time_steps: value 0"),
        ({"space": {"nonsense": {"type": "int", "low": 1, "high": 2}}}, "space.nonsense: not a spec field"),
        ({"space": {"prune_rate": {"type": "float", "low": 0.8, "high": 0.2}}}, "must not exceed high"),
        ({"objective": {"metrics": {"test_accuracy": "maximize"}}}, "test metric"),
        ({"train": {"epochs": 3}, "tickets": {"rewind_epoch": 3}}, "rewind_epoch (3) must be below train.epochs"),
    ],
)
def test_bad_values_name_key_and_allowed(overrides: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(tiny_spec_dict(**overrides), "bad.yaml")
    message = str(info.value)
    assert message.startswith("bad.yaml: ")
    assert fragment in message
    assert "\n" not in message


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = write_spec(tmp_path / "bad.yaml", "data: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml: not valid YAML at line \d+"):
        load_spec(bad)
    scalar = write_spec(tmp_path / "scalar.yaml", "just a string\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(scalar)


def test_with_params_applies_aliases_and_revalidates() -> None:
    spec = parse_spec(tiny_spec_dict())
    trial = spec.with_params({"prune_rate": 0.25, "time_steps": 6, "train.lr": 0.001})
    assert trial.tickets.prune_rate == 0.25
    assert trial.model.time_steps == 6
    assert trial.train.lr == 0.001
    assert trial.space == {}
    assert spec.tickets.prune_rate == 0.5  # the original is untouched
    with pytest.raises(ValueError):
        spec.with_params({"prune_rate": 1.5})


def test_spec_is_frozen() -> None:
    spec = Spec()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its own ValidationError subclass
        spec.seed = 3  # type: ignore[misc]


RECIPE_REPORT = FIDELITY_REPORT.with_name("recipe.md")


def test_bundled_spaces_search_paths_where_they_beat_the_recipe() -> None:
    """`benchmarks/recipe.py` -> results/benchmarks/recipe.md decides whether a task's bundled space runs its trials
    as paths under a compute budget: only where that search reached the paper's recipe's front with less compute
    and its hypervolume at the recipe's compute is not below the recipe's."""
    text = RECIPE_REPORT.read_text()
    spaces = dict(re.findall(r"^## (\w+) \(`sltsearch run (\w+)`", text, flags=re.M))  # task -> bundled space
    summary = text.strip().splitlines()[-1]
    assert summary.startswith("Summary: recipe "), f"{RECIPE_REPORT} does not end with its Summary line"
    parts = [p for p in summary.removeprefix("Summary: recipe ").split("; ") if not p.startswith("default run")]
    verdicts = {}
    for part in parts:
        task, ratio, _, _, hv, *_ = part.replace(",", "").split()
        verdicts[task] = float(ratio.rstrip("x")) > 1.0 and hv != "below"
    assert set(verdicts) == set(spaces) == {"digits", "mnist1d"}
    for task, pays in verdicts.items():
        spec = load_spec(bundled_spaces()[spaces[task]])
        assert (spec.search.paths is not None) == pays, f"{task}: {parts}"
        assert (spec.search.budget_epochs is not None) == pays
