"""Every spec field declares the stages it affects; every cache key and the run identity come from that.

Three guarantees: a field without a declaration fails (so none is forgotten by the keys), changing any declared
field changes exactly the keys of its stages (so the declarations are true), and the derived keys are the keys
written before the declarations existed, byte for byte (so the caches of existing run folders stay valid).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import pytest

from sltsearch.spec import ModelSpec, NeuronSpec, Spec, TicketSpec, parse_spec
from sltsearch.spec.keys import (
    CACHED,
    NONE,
    Declared,
    Stage,
    UndeclaredField,
    affects,
    content_key,
    declared_fields,
    run_identity,
    stage_parts,
)
from sltsearch.trial import stages

PINS = Path(__file__).parent / "data" / "stage_keys_3b09291.json"
# the round key's derived entries, each a stand-in value
ROUND_DERIVED = dict.fromkeys(["rates", "keep_dense", "early_bird", "encoding_sparsity", "multisp"], lambda: {})


# ---------------------------------------------------------------- every field declares its stages


def test_every_spec_field_declares_its_stages() -> None:
    names = [item.name for item in declared_fields()]
    assert len(names) == len(set(names)) > 50
    assert {"train.lr", "model.neuron.tau", "objective.energy", "search.n_trials", "space"} <= set(names)


def test_a_field_without_a_declaration_fails_at_any_depth() -> None:
    class TopLevel(Spec):
        comment: str = ""

    with pytest.raises(UndeclaredField, match=r"^comment \(str\) declares no stage"):
        declared_fields(TopLevel)

    class Neuron(NeuronSpec):
        leak: float = 0.0

    class Model(ModelSpec):
        neuron: Neuron = Neuron()

    class Nested(Spec):
        model: Model = Model()

    with pytest.raises(UndeclaredField, match=r"^model\.neuron\.leak \(float\) declares no stage"):
        declared_fields(Nested)


def test_a_via_no_key_derives_and_a_derived_entry_no_field_declares_both_fail() -> None:
    class Tickets(TicketSpec):
        warmup: Annotated[int, affects(Stage.ROUND, via="warmup")] = 0

    class WithWarmup(Spec):
        tickets: Tickets = Tickets()

    with pytest.raises(KeyError, match="tickets.warmup enters the round key through 'warmup'"):
        stages.round_key("d", WithWarmup(), [0.5])
    with pytest.raises(KeyError, match="derives \\['warmup'\\], which no spec field declares"):
        stage_parts(Spec(), Stage.ROUND, {**ROUND_DERIVED, "warmup": lambda: {}})


# ---------------------------------------------------------------- each field changes exactly its keys

# the value a field is changed to, where "another value of its type" is not enough or not valid
CHANGES: dict[str, Any] = {
    "name": "other",
    "data.name": "mnist1d",
    "data.root": "/data",
    "data.options": {"num_samples": 100},
    "data.path": "x.npz",
    "model.name": "spiking_vgg",
    "model.preset": "small",
    "model.options": {"channels": [8, 16]},
    "model.neuron.v_reset": None,
    "model.neuron.surrogate_alpha": 2.0,
    "model.version": "v1",
    "model.encoder_channels": 8,
    "train.device": "cpu",
    "tickets.strategy": "early_bird",
    "tickets.target_sparsity": 0.9,
    "tickets.prune_rates": [0.3],
    "tickets.keep_dense": ["first"],
    "tickets.rewind_iteration": 3,
    "tickets.controls": ["random_prune"],
    "tickets.time_steps_search": 2,
    "tickets.encoding_sparsity": 0.5,
    "multisp": {"patch_keep": 0.5},
    "objective.metrics": {"val_accuracy": "maximize"},
    "objective.energy": {"e_mac_pj": 3.0},
    "objective.constraints": {"val_accuracy": {"min": 0.5}},
    "search.early_stopping": {"rule": "mo_asha"},
    "search.storage": "sqlite:///x.db",
    "search.study_name": "s",
    "search.timeout_s": 60.0,
    "search.paths": {"max_sparsity": 0.9},
    "search.budget_epochs": 100.0,
    "search.startup_trials": 3,
    "space": {"prune_rate": {"type": "float", "low": 0.3, "high": 0.7}},
}
# the spec a field is changed in, where it matters only under some other setting
CONTEXTS: dict[str, dict[str, Any]] = {
    "tickets.eb_threshold": {"tickets.strategy": "early_bird"},
    "tickets.eb_window": {"tickets.strategy": "early_bird"},
    "multisp": {"model.name": "spikformer"},
}


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {**data, head: _set(data.get(head) or {}, rest, value) if rest else value}


def _get(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        data = data[part]
    return data


def _candidates(item: Declared, value: Any) -> list[Any]:
    """Other values of the field's type, in the order they are tried."""
    if item.name in CHANGES:
        return [CHANGES[item.name]]
    annotation = item.field.annotation
    if get_origin(annotation) is not None and str(get_origin(annotation)).endswith("Literal"):
        return [c for c in get_args(annotation) if c != value]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [c for c in (round(value * 0.8, 6), value + 0.05, value * 1.25) if c != value]
    return []


def _changed(item: Declared, base: dict[str, Any]) -> Spec:
    for value in _candidates(item, _get(base, item.name)):
        try:
            return parse_spec(_set(base, item.name, value))
        except Exception:  # noqa: BLE001 - not valid for this field: the next candidate
            continue
    raise AssertionError(f"{item.name}: no valid other value; add one to CHANGES")


def observed(spec: Spec) -> dict[str, Any]:
    """The keys a trial of ``spec`` (without searched values) uses, the run identity and the content hash."""
    keys_ = stages.trial_keys(spec)
    return {
        "dense": keys_["dense"],
        "round": (keys_["rounds"], keys_.get("early_time"), keys_.get("rewind")),
        "measure": (keys_["measure"], keys_["measure_final"]),
        "identity": json.dumps(run_identity(spec), sort_keys=True),
        "content_hash": spec.content_hash(),
    }


def expected(item: Declared) -> dict[str, bool]:
    """Which of `observed` a change of the field must change, by the stages it declares."""
    declared = item.affects.stages
    return {
        "dense": Stage.DENSE in declared,
        "round": bool(declared & {Stage.DENSE, Stage.ROUND}),  # a round's key holds the dense run's
        "measure": Stage.MEASURE in declared,
        "identity": Stage.NONE not in declared,
        "content_hash": bool(declared & CACHED),
    }


def test_changes_and_contexts_name_declared_fields() -> None:
    names = {item.name for item in declared_fields()}
    assert set(CHANGES) <= names and set(CONTEXTS) <= names


@pytest.mark.parametrize("item", declared_fields(), ids=lambda item: item.name)
def test_changing_a_field_changes_exactly_the_keys_of_its_stages(item: Declared) -> None:
    base = Spec().model_dump(mode="json")
    for path, value in CONTEXTS.get(item.name, {}).items():
        base = _set(base, path, value)
    before, after = observed(parse_spec(base)), observed(_changed(item, base))
    changed = {name: before[name] != after[name] for name in before}
    assert changed == expected(item), f"{item.name} declares {sorted(s.value for s in item.affects.stages)}"


def test_none_fields_are_exactly_those_a_resumed_run_may_change() -> None:
    assert {i.name for i in declared_fields() if i.affects == NONE} == {
        "search.n_trials",
        "search.timeout_s",
        "search.budget_epochs",
        "search.storage",
        "search.backend",
    }


def test_early_time_dense_key_is_the_same_from_the_trial_spec_and_the_search_spec() -> None:
    spec = parse_spec({"tickets": {"time_steps_search": 2}, "model": {"time_steps": 4}})
    assert stages.dense_key(spec) == stages.dense_key(stages.search_spec(spec))
    at_two = parse_spec({"model": {"time_steps": 2}})
    assert stages.dense_key(spec) == stages.dense_key(at_two)  # the dense run trains at T_search


def test_early_time_search_rounds_are_imps_rounds_at_the_search_t() -> None:
    """Why the default space's early-time trials share work with its T = 2 trials (and their ``et_search`` tickets
    are the T = 2 IMP tickets, results/benchmarks/ticket_strategies.md): the same dense and round keys."""
    early = stages.search_spec(parse_spec({"tickets": {"time_steps_search": 2}, "model": {"time_steps": 6}}))
    at_two = stages.search_spec(parse_spec({"model": {"time_steps": 2}}))
    dense = stages.dense_key(early)
    assert dense == stages.dense_key(at_two)
    for rates in ([0.5], [0.5, 0.5]):
        assert stages.round_key(dense, early, rates) == stages.round_key(dense, at_two, rates)


@pytest.mark.parametrize("rate", [0.3, 0.8])
def test_one_shot_at_a_rate_is_imps_first_round_at_it(rate: float) -> None:
    """Why no bundled space searches ``strategy: one_shot`` (benchmarks/ticket_strategies.py): at rate p it is the
    stage IMP's first round at p already computes, so a search with IMP rounds 1..R lacks no one-shot ticket."""
    one_shot = parse_spec({"tickets": {"strategy": "one_shot", "prune_rate": rate}})
    imp = parse_spec({"tickets": {"strategy": "imp", "prune_rate": rate, "rounds": 3}})
    dense = stages.dense_key(imp)
    assert stages.dense_key(one_shot) == dense
    assert one_shot.tickets.round_rates() == [rate]
    assert stages.round_key(dense, one_shot, [rate]) == stages.round_key(dense, imp, [rate])
    assert stages.round_key(dense, imp, [rate]) != stages.round_key(dense, imp, [rate, rate])
    early_bird = parse_spec({"tickets": {"strategy": "early_bird", "prune_rate": rate}})
    assert stages.round_key(dense, early_bird, [rate]) != stages.round_key(dense, imp, [rate])  # its own mask


# ---------------------------------------------------------------- the keys of existing run folders stay valid


def pinned_keys(spec: Spec, params: dict[str, Any]) -> dict[str, Any]:
    """Every key of a trial (`stages.trial_keys`, what a search compares trials by), in the shape
    tests/data/stage_keys_3b09291.json was written in at commit 3b09291 (where each key picked its spec fields
    by hand)."""
    return {"params": params, **stages.trial_keys(spec.with_params(params))}


PINNED = json.loads(PINS.read_text())


@pytest.mark.parametrize("label", sorted(PINNED))
def test_derived_keys_are_the_keys_pinned_before_the_declarations(label: str) -> None:
    pins = PINNED[label]
    spec = parse_spec(pins["spec"], label)
    assert content_key(run_identity(spec)) == pins["identity"]
    assert spec.content_hash("data", "model") == pins["data_model_hash"]
    for point in pins["points"]:
        assert pinned_keys(spec, point["params"]) == point, point["params"]


def test_pins_cover_every_conditional_entry() -> None:
    """The pinned specs exercise each key entry that is present only under some setting."""
    specs = [parse_spec(p["spec"]) for p in PINNED.values()]
    t = [s.tickets for s in specs]
    assert any(x.rewind_iteration is not None for x in t) and any(x.time_steps_search for x in t)
    assert any(x.strategy == "early_bird" for x in t) and any(x.encoding_sparsity is not None for x in t)
    assert any(x.keep_dense for x in t) and any(x.controls for x in t) and any(x.prune_rates for x in t)
    assert any(s.multisp.active for s in specs) and any(s.data.path for s in specs)
    assert any(s.model.version for s in specs) and any(s.model.encoder_channels for s in specs)
