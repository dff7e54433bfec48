"""The spec's JSON Schema: generated from the pydantic models, shipped beside the bundled spaces (equal to what
`sltsearch schema` prints), named by each space's first line, accepting every bundled space and rejecting
broken specs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from sltsearch.cli import app
from sltsearch.spec.json_schema import HEADER, SCHEMA_FILE, spec_json_schema, spec_json_schema_text
from sltsearch.spec.loading import read_yaml
from sltsearch.spec.spaces import CHECKOUT_SPACES, bundled_spaces

SHIPPED = CHECKOUT_SPACES / SCHEMA_FILE


def _validator() -> jsonschema.protocols.Validator:
    schema = spec_json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_shipped_schema_is_the_generated_one() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert result.stdout == spec_json_schema_text()
    assert SHIPPED.read_text() == result.stdout, "regenerate it: sltsearch schema > search_spaces/spec.schema.json"


def test_every_bundled_space_names_the_schema_and_is_valid_under_it() -> None:
    validator = _validator()
    spaces = bundled_spaces()
    assert len(spaces) >= 10
    for name, path in spaces.items():
        assert path.read_text().splitlines()[0] == HEADER, name
        assert (path.parent / SCHEMA_FILE).is_file()  # the header's relative path resolves
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(read_yaml(path))]
        assert errors == [], name


def _default() -> dict[str, Any]:
    return read_yaml(bundled_spaces()["default"])


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        (("train", "epoch"), 5, "$.train"),  # unknown key
        (("train", "epochs"), "ten", "$.train.epochs"),  # wrong type
        (("train", "epochs"), True, "$.train.epochs"),  # a boolean is not a number
        (("train", "epochs"), 0, "$.train.epochs"),  # out of range
        (("train", "optimizer"), "lion", "$.train.optimizer"),  # not an allowed value
        (("space", "prune_rate", "type"), "floaty", "$.space.prune_rate.type"),
        (("objective", "constraints", "val_accuracy"), {"min": "high"}, "$.objective.constraints.val_accuracy.min"),
    ],
)
def test_a_broken_spec_is_rejected_at_its_key(where: tuple[str, ...], value: Any, path: str) -> None:
    data = _default()
    node = data
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    errors = list(_validator().iter_errors(data))
    assert errors, where
    assert any(e.json_path == path for e in errors), [(e.json_path, e.message) for e in errors]


def test_the_schema_documents_fields_with_defaults_ranges_and_choices() -> None:
    schema = json.loads(SHIPPED.read_text())
    train = schema["$defs"]["TrainSpec"]["properties"]
    assert train["epochs"]["default"] == 10 and train["epochs"]["minimum"] == 1
    assert train["optimizer"]["enum"] == ["adam", "adamw", "sgd"]
    assert "validation only" in train["select"]["description"]
    assert schema["$defs"]["TrainSpec"]["additionalProperties"] is False
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert not Path(SCHEMA_FILE).is_absolute()
