"""Spec fields set on the command line: ``sltsearch run SPEC --set seed=1 --set train.epochs=5``.

An override is a dotted key into the spec and a value read as YAML, as the file's own values are (a scalar,
a flow list ``[2, 4]``, a flow mapping ``{min: 0.9}``). Overrides are applied to the spec's data *before* it
is validated, so a value set here passes exactly the checks the same value written in the file would, and
the frozen ``spec.yaml`` of a run folder holds the result. A bad override is one `SpecError` line that
names it (``--set train.epochs=0: train.epochs: Input should be greater than or equal to 1``).

``space.NAME=null`` stops searching a parameter (the field keeps its value from the file). The Python API
takes the same list of ``KEY=VALUE`` strings, or a mapping ``{"train.epochs": 5}`` whose values are used as
they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import ValidationError

from sltsearch.errors import SpecError
from sltsearch.spec.loading import parse_spec, parse_yaml
from sltsearch.spec.schema import Spec
from sltsearch.spec.space import ParamSpec
from sltsearch.spec.wording import format_validation_error

Overrides: TypeAlias = Sequence[str] | Mapping[str, Any] | None
EXAMPLE = "--set train.epochs=5"


@dataclass(frozen=True)
class Override:
    """One field to set: its dotted key, its value, and how it was given (for messages)."""

    key: str
    value: Any
    given: str


def parse_overrides(overrides: Overrides) -> list[Override]:
    """``["seed=1", "train.epochs=5"]`` (values read as YAML) or ``{"seed": 1}`` -> overrides; bad syntax, a
    malformed key or a key given twice is one `SpecError` line."""
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        parsed = [Override(str(k), v, f"{k}={json.dumps(v, default=str)}") for k, v in overrides.items()]
    else:
        parsed = [_parse_one(text) for text in ([overrides] if isinstance(overrides, str) else overrides)]
    seen: dict[str, Override] = {}
    for item in parsed:
        parts = item.key.split(".")
        if not all(parts) or any(not p.isprintable() or p.strip() != p for p in parts):
            raise SpecError(
                f"--set {item.given}: '{item.key}' is not a dotted key into the spec (e.g. {EXAMPLE.split()[1]})"
            )
        if item.key in seen:
            raise SpecError(
                f"--set {item.key}: given twice ({seen[item.key].given}, {item.given}); give each key once"
            )
        seen[item.key] = item
    return parsed


def _parse_one(text: Any) -> Override:
    if not isinstance(text, str):
        raise SpecError(f"--set {text!r}: an override is a string KEY=VALUE, e.g. {EXAMPLE}")
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        shown = json.dumps(text) if not text.isprintable() else text
        raise SpecError(f"--set {shown}: write KEY=VALUE with a dotted key into the spec, e.g. {EXAMPLE}")
    return Override(key, parse_yaml(raw, f"--set {key}"), f"{key}={raw}")


def apply_overrides(data: Any, overrides: Overrides, source: str) -> Spec:
    """The spec ``data`` (as read from ``source``) with ``overrides`` set, validated; an invalid result is one
    `SpecError` line naming the override it comes from (or, for a rule between fields, all of them)."""
    items = parse_overrides(overrides)
    if not items:
        return parse_spec(data, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return parse_spec(data, source)  # the file's own error
    paths: list[tuple[tuple[str, ...], Override]] = []
    for item in items:
        data, path = _set(data, item.key.split("."), item.value, (), item)
        paths.append((path, item))
        if len(path) == 2 and path[0] == "space" and item.value is None:  # `space.time_steps=null`: not searched
            data = {**data, "space": {k: v for k, v in data["space"].items() if k != path[1]}}
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        loc = tuple(str(p) for p in err.errors()[0]["loc"])
        named = next((o for path, o in reversed(paths) if loc and _overlap(loc, path)), None)
        where = f"--set {named.given}" if named else f"{source} with --set {' '.join(o.given for o in items)}"
        raise SpecError(format_validation_error(where, err, Spec)) from None


def _overlap(loc: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """The failing place ``loc`` is inside the overridden ``path``, or holds it."""
    n = min(len(loc), len(path))
    return loc[:n] == path[:n]


def _set(node: Any, parts: list[str], value: Any, done: tuple[str, ...], item: Override) -> tuple[Any, tuple[str, ...]]:
    """A copy of ``node`` with the dotted ``parts`` set to ``value``, and the keys the parts named.

    At each mapping the longest run of parts that is one of its keys is one key (a searched parameter may be
    named by a dotted path: ``space.train.lr.high``); otherwise one part, except that a new parameter of
    ``space`` is named by every part up to a field of it (``space.train.lr={type: float, ...}``,
    ``space.train.lr.choices=[...]``). Missing sections are created."""
    if not parts:
        return value, ()
    if node is None:
        node = {}
    if not isinstance(node, dict):
        held = ".".join(done)
        raise SpecError(
            f"--set {item.given}: {held} holds {json.dumps(node, default=str)}, not a section of keys; "
            f"set {held}=VALUE itself"
        )
    n = next((i for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in node), 0)
    if not n and done == ("space",):  # a new searched parameter: its whole name, then maybe one of its fields
        n = len(parts) - 1 if len(parts) > 1 and parts[-1] in ParamSpec.model_fields else len(parts)
    n = n or 1
    key = ".".join(parts[:n])
    child, rest = _set(node.get(key), parts[n:], value, (*done, key), item)
    return {**node, key: child}, (key, *rest)


def overridden(spec: Spec, overrides: Overrides) -> Spec:
    """A spec object with ``overrides`` set (the API's ``run(spec_object, overrides=...)``)."""
    if not overrides:
        return spec
    return apply_overrides(spec.model_dump(mode="json"), overrides, f"spec {spec.name}")
