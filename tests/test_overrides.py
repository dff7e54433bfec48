"""`--set KEY=VALUE` on `run` and `validate` (and ``overrides=`` in the API): every field type round-trips, a
value is checked exactly as in the file, bad ones are one line naming the key, and a resumed run with other
overrides is refused."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import tiny_spec_dict, write_spec
from pydantic import BaseModel
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.errors import SpecError
from sltsearch.spec import Spec, load_spec
from sltsearch.spec.overrides import parse_overrides

runner = CliRunner()


def _leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every field of the spec that holds a value (not a section)."""
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        members = [a for a in typing.get_args(annotation) if a is not type(None)] if union else [annotation]
        section = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None)
        if section is not None and field.default is not None:
            out += _leaves(section, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def _flow(value: Any) -> str:
    """``value`` as one line of YAML, as a user would type it after ``--set key=``."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def test_every_field_is_addressable_and_its_value_reads_back(tmp_path: Path) -> None:
    """Each leaf of the spec, set to its own value written as YAML, gives back the same spec: every key
    reaches its field and every type (numbers, booleans, null, literals, lists, tuples, mappings) parses."""
    path = write_spec(tmp_path / "spec.yaml", tiny_spec_dict())
    spec = load_spec(path)
    data = spec.model_dump(mode="json")
    leaves = _leaves(Spec)
    assert {"seed", "train.lr", "model.neuron.detach_reset", "objective.energy.memory_breakpoints", "space"} <= set(
        leaves
    )
    for leaf in leaves:
        value: Any = data
        for part in leaf.split("."):
            value = value[part]
        assert load_spec(path, [f"{leaf}={_flow(value)}"]) == spec, leaf


NEW_VALUES = [  # (override, path into the spec, the value it must hold)
    ("seed=7", "seed", 7),
    ("train.lr=0.05", "train.lr", 0.05),
    ("train.lr=1e-3", "train.lr", 1e-3),  # PyYAML reads 1e-3 as text; the field reads it as the file would
    ("model.neuron.detach_reset=false", "model.neuron.detach_reset", False),
    ("train.optimizer=sgd", "train.optimizer", "sgd"),
    ("tickets.target_sparsity=0.9", "tickets.target_sparsity", 0.9),
    ("model.neuron.v_reset=null", "model.neuron.v_reset", None),
    ("tickets.keep_dense=[first, last]", "tickets.keep_dense", ["first", "last"]),
    ("objective.energy.memory_breakpoints=[[64, 1], [128, 2], [256, 3], [512, 4]]",
     "objective.energy.memory_breakpoints", [(64.0, 1.0), (128.0, 2.0), (256.0, 3.0), (512.0, 4.0)]),
    ("objective.metrics={val_accuracy: maximize, storage_bits: minimize}", "objective.metrics",
     {"val_accuracy": "maximize", "storage_bits": "minimize"}),
    ("objective.constraints.val_accuracy={min: 0.5}", "objective.constraints.val_accuracy.min", 0.5),
    ("search.early_stopping.eta=2", "search.early_stopping.eta", 2.0),  # a section that was null
    ("data.options.noise=0.1", "data.options", {"noise": 0.1}),  # a free mapping takes any key
    ("space.prune_rate.high=0.6", "space.prune_rate.high", 0.6),
    ("space.time_steps={type: categorical, choices: [2, 4]}", "space.time_steps.choices", [2, 4]),
    ("space.train.lr.type=float", "space.train.lr.type", "float"),  # a dotted parameter name (with the next two)
]


def _get(spec: Spec, path: str) -> Any:
    node: Any = spec
    for part in path.split(".") if not path.startswith("space.train.lr") else ["space", "train.lr", path[15:]]:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def test_new_values_of_every_kind_are_set_and_survive_the_frozen_spec(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec.yaml", tiny_spec_dict())
    extra = ["space.train.lr.low=0.001", "space.train.lr.high=0.1"]
    for given, where, expected in NEW_VALUES:
        more = extra if given.startswith("space.train.lr") else []
        spec = load_spec(path, [given, *more])
        assert _get(spec, where) == expected, given
        frozen = write_spec(tmp_path / "frozen.yaml", spec.to_yaml())  # what a run folder's spec.yaml holds
        assert load_spec(frozen) == spec, given
    assert load_spec(path, {"train.epochs": 3, "seed": 2}).train.epochs == 3  # the API's mapping form
    unsearched = load_spec(path, ["space.prune_rate=null", "tickets.prune_rate=0.4"])  # stop searching one
    assert unsearched.space == {} and unsearched.tickets.prune_rate == 0.4


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("train.epoch=5", "--set train.epoch=5: train.epoch: unknown key; allowed here: epochs,"),
        ("nosuch=1", "--set nosuch=1: nosuch: unknown key; allowed here: name, seed,"),
        ("train.epochs=five", "--set train.epochs=five: train.epochs: expected an integer"),
        ("train.epochs=true", "--set train.epochs=true: train.epochs: expected an integer, got true"),
        ("train.epochs=0", "--set train.epochs=0: train.epochs: Input should be greater than or equal to 1"),
        ("train.optimizer=lion", "--set train.optimizer=lion: train.optimizer: Input should be 'adam', 'adamw' or"),
        ("space.prune_rate.type=floaty", "--set space.prune_rate.type=floaty: space.prune_rate.type: Input should"),
        ("seed.x=1", "--set seed.x=1: seed holds 0, not a section of keys; set seed=VALUE itself"),
        ("train.epochs=[1", "--set train.epochs: not valid YAML at line 1, column 3"),
        ("seed", "--set seed: write KEY=VALUE with a dotted key into the spec, e.g. --set train.epochs=5"),
        ("train..lr=1", "--set train..lr=1: 'train..lr' is not a dotted key into the spec"),
        # a rule between fields: the file and every override are named, and the rule names the keys
        ("train.epochs=1", "with --set train.epochs=1: tickets.rewind_epoch (1) must be below train.epochs (1)"),
        ("space.prune_rate.high=1.5", "space.prune_rate: value 1.5 is out of range for tickets.prune_rate"),
    ],
)
def test_bad_overrides_are_one_line_naming_the_key(tiny_spec_file: Path, given: str, expected: str) -> None:
    data = tiny_spec_dict(tickets={"rewind_epoch": 1})
    write_spec(tiny_spec_file, data)
    result = runner.invoke(app, ["validate", str(tiny_spec_file), "--set", given])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output


def test_the_same_key_twice_is_refused() -> None:
    with pytest.raises(SpecError, match="--set seed: given twice"):
        parse_overrides(["seed=1", "seed=2"])


def test_validate_and_the_api_take_overrides(tiny_spec_file: Path) -> None:
    result = runner.invoke(app, ["validate", str(tiny_spec_file), "--set", "name=other", "--set", "seed=3"])
    assert result.exit_code == 0, result.output
    assert "tiny.yaml with --set name=other seed=3 (name other;" in " ".join(result.output.split())
    assert sltsearch.validate(tiny_spec_file, overrides=["train.epochs=3"]).train.epochs == 3
    spec = load_spec(tiny_spec_file)
    assert sltsearch.validate(spec, overrides={"seed": 4}).seed == 4  # a Spec object too
    with pytest.raises(SpecError, match="--set seed=-1: seed: Input should be greater than or equal to 0"):
        sltsearch.validate(spec, overrides={"seed": -1})


@pytest.mark.slow
def test_run_freezes_the_overridden_spec_and_a_resume_with_other_overrides_is_refused(
    tiny_spec_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sltsearch.cli.output import console

    monkeypatch.setattr(console, "width", 80)  # as in an 80-column terminal, a pipe or a CI log
    run_dir = tmp_path / "run"
    args = ["run", str(tiny_spec_file), "--run-dir", str(run_dir), "-q", "--trials", "1", "--workers", "1"]
    first = runner.invoke(app, [*args, "--set", "train.epochs=1", "--set", "space.prune_rate.high=0.5"])
    assert first.exit_code == 0, first.output
    table = first.stdout.split("tickets: ")[0]  # the front printed at the end (then the paths, printed whole)
    assert "Pareto front: " in table and max(len(line) for line in table.splitlines()) <= 80, table
    frozen = load_spec(run_dir / "spec.yaml")
    assert frozen.train.epochs == 1 and frozen.space["prune_rate"].high == 0.5
    other = runner.invoke(app, [*args, "--set", "train.epochs=1", "--set", "seed=1"])
    assert other.exit_code == 2 and "already holds a run of a different spec" in other.stderr
    same = runner.invoke(app, [*args, "--set", "space.prune_rate.high=0.5", "--set", "train.epochs=1"])
    assert same.exit_code == 0, same.output  # the same overrides, in another order: the same run, resumed
    assert len(sltsearch.load(run_dir)["trial"].unique()) == 1
