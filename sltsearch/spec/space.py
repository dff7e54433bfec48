"""The searched space: one parameter's range, the spec path it overrides, and the rule that every value and
every combination of values a sampler can draw makes a valid spec (checked at the corners of the box).
"""

from __future__ import annotations

import itertools
import json
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from sltsearch.spec.scalars import Strict


class ParamSpec(Strict):
    """One searched parameter: a float/int range or a list of choices."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0.0)
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None:
                raise ValueError("a categorical parameter takes 'choices', not 'low'/'high'")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scaled parameter needs low > 0")
            if self.choices is not None:
                raise ValueError(f"a {self.type} parameter takes 'low'/'high', not 'choices'")
            if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
                raise ValueError("an int parameter needs integer 'low' and 'high'")
            if self.log and self.step is not None:
                raise ValueError("a parameter is either log-scaled or stepped, not both; drop 'log' or 'step'")
            if self.type == "int" and self.step is not None and self.step != int(self.step):
                raise ValueError(f"an int parameter needs an integer 'step', got {self.step}")
            if not all(map(_finite, (self.low, self.high, self.step or 1.0))):
                raise ValueError("'low', 'high' and 'step' must be finite numbers")
        if self.type == "categorical":
            odd = [c for c in self.choices or [] if c is not None and not isinstance(c, bool | int | float | str)]
            if odd:
                raise ValueError(
                    f"choices must be numbers, strings, true/false or null (the values a study can store), "
                    f"got {json.dumps(odd[0], default=str)}"
                )
        return self

    def probe_values(self) -> list[Any]:
        """Values that must all be valid for the range to be valid (the bounds, or every choice).

        The upper bound is the highest value a sampler can draw: ``low`` plus whole steps.
        """
        if self.type == "categorical":
            return list(self.choices or [])
        low, high = float(self.low), float(self.high)
        if self.step:
            high = low + ((high - low) // self.step) * self.step
        cast = int if self.type == "int" else float
        return list(dict.fromkeys([cast(low), cast(high)]))


def _finite(value: float | None) -> bool:
    return value is None or abs(value) != float("inf") and value == value


# Short names for the parameters people search most; any dotted path into the spec works too.
PARAM_ALIASES: dict[str, str] = {
    "prune_rate": "tickets.prune_rate",
    "rounds": "tickets.rounds",
    "rewind_epoch": "tickets.rewind_epoch",
    "rewind_iteration": "tickets.rewind_iteration",
    "target_sparsity": "tickets.target_sparsity",
    "strategy": "tickets.strategy",
    "time_steps_search": "tickets.time_steps_search",
    "eb_threshold": "tickets.eb_threshold",
    "scope": "tickets.scope",
    "patch_keep": "multisp.patch_keep",
    "pep_sparsity": "multisp.pep_sparsity",
    "pep_binary_weights": "multisp.pep_binary_weights",
    "pep_binary_activations": "multisp.pep_binary_activations",
    "attn_sparsity": "multisp.attn_sparsity",
    "mlp_sparsity": "multisp.mlp_sparsity",
    "pep_first_conv": "multisp.pep_first_conv",
    "time_steps": "model.time_steps",
    "encoder": "model.encoder",
    "encoder_channels": "model.encoder_channels",
    "encoding_sparsity": "tickets.encoding_sparsity",
    "lr": "train.lr",
    "epochs": "train.epochs",
    "weight_decay": "train.weight_decay",
}


def resolve_param_path(key: str) -> str:
    """The dotted spec path a searched parameter overrides."""
    return PARAM_ALIASES.get(key, key)


class _Missing:
    """The value of a path the spec does not have (None is a value)."""


MISSING = _Missing()


def get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``path`` set; intermediate dicts are copied, never mutated."""
    head, _, rest = path.partition(".")
    out = dict(data)
    if rest:
        child = out.get(head)
        out[head] = set_path(child if isinstance(child, dict) else {}, rest, value)
    else:
        out[head] = value
    return out


def drop_paths(data: dict[str, Any], paths: typing.Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` without the dotted ``paths`` (absent ones are ignored); ``data`` is not mutated."""
    out = dict(data)
    for path in paths:
        head, _, rest = path.partition(".")
        if head not in out:
            continue
        if not rest:
            del out[head]
        elif isinstance(out[head], dict):
            out[head] = drop_paths(out[head], [rest])
    return out


def _invalid_with(model: type[BaseModel], base: dict[str, Any], values: dict[str, Any]) -> str | None:
    """The first problem of ``base`` with ``values`` (dotted path -> value) set, or None when valid."""
    data = base
    for path, value in values.items():
        data = set_path(data, path, value)
    try:
        model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        return str(first["msg"]).removeprefix("Value error, ")
    return None


# the whole box of corners is checked up to this many combinations; beyond it, every pair of corners
MAX_COMBINATIONS = 1024


def _check_combinations(
    model: type[BaseModel], base: dict[str, Any], probes: dict[str, tuple[str, list[Any]]]
) -> None:
    """Every combination of the searched parameters' bounds (or choices) a sampler can draw must be valid.

    Cross-field rules (``rewind_epoch < epochs``, ``time_steps_search <= time_steps``, MultiSp needs a
    Spikformer) are monotone in each value, so a box is valid exactly when its corners are. Pairs are
    checked first, so a message names the two parameters that clash.
    """
    keys = list(probes)
    groups = [list(pair) for pair in itertools.combinations(keys, 2)]
    total = 1
    for _, values in probes.values():
        total *= len(values)
    if len(keys) > 2 and total <= MAX_COMBINATIONS:
        groups.append(keys)
    for group in groups:
        for corner in itertools.product(*(probes[k][1] for k in group)):
            problem = _invalid_with(model, base, {probes[k][0]: v for k, v in zip(group, corner, strict=True)})
            if problem:
                drawn = " with ".join(f"{k}={v!r}" for k, v in zip(group, corner, strict=True))
                raise ValueError(
                    f"space: {drawn} can be drawn together, but then {problem}; narrow the ranges so that every "
                    "combination is valid"
                )


def check_space(model: type[BaseModel], base: dict[str, Any], space: dict[str, ParamSpec]) -> None:
    """Every searched parameter names a field of ``model`` once, and every value (and every combination of
    values) a sampler can draw validates with ``base``, the rest of the spec; else one `ValueError`."""
    probes: dict[str, tuple[str, list[Any]]] = {}
    owners: dict[str, str] = {}
    for key, param in space.items():
        path = resolve_param_path(key)
        if get_path(base, path) is MISSING:
            allowed = ", ".join(sorted(PARAM_ALIASES))
            raise ValueError(
                f"space.{key}: not a spec field; use an alias ({allowed}) or a dotted path such as train.lr"
            )
        if path in owners:
            raise ValueError(f"space.{key}: {path} is already searched as space.{owners[path]}; keep one")
        owners[path] = key
        for value in param.probe_values():
            problem = _invalid_with(model, base, {path: value})
            if problem:
                raise ValueError(f"space.{key}: value {value!r} is out of range for {path} ({problem})")
        probes[key] = (path, param.probe_values())
    _check_combinations(model, base, probes)
