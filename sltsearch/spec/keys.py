"""Which stage every spec field affects, and every cache key and the run identity derived from that.

Each spec field declares once, in its annotation (``tau: Annotated[float, DENSE] = ...``), which stages its
value decides:

- ``DENSE``: the dense run, and so every stage trained from it (`sltsearch.trial.stages.dense_key`);
- ``ROUND``: an IMP round's stage: its masks, rewind point and retraining (`sltsearch.trial.stages.round_key`);
- ``MEASURE``: how a stage is measured (`sltsearch.trial.measurement.measurement_key`);
- ``RUN``: the search itself (which trials, which tickets are kept and how they are judged): part of the run
  folder's identity (`run_identity`), of no cached stage;
- ``NONE``: the budget and where the study lives, which may change between invocations of one run.

A field may affect several stages (``data.eval_batch_size``: the dense run's validation and the measurement).
A field holding a model (``model.neuron``) is a *section*: its own fields declare. A field whose whole value is
one setting (``objective.energy``, ``multisp``, ``space``) declares once for everything inside it.

A key is built from the declared fields of its stage (`stage_parts`): a field enters under its own name with
its value, or, with ``via``, through a derived entry its key function computes (``tickets.prune_rate`` enters
the round key as the round's pruning ``rates``). ``when_set`` fields were added after keys were first written:
they enter only when not None, so the keys of stages stored before they existed stay valid. The layout of
each key (nested by section for the dense run, by field name for the others) is the one the hand-written
keys had, so every key stored before the declarations existed is still found (tests/test_keys.py pins them).
`Spec.content_hash` and `run_identity` come from the same declarations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo


class Stage(Enum):
    """What a spec field's value decides (see the module docstring)."""

    DENSE = "dense"
    ROUND = "round"
    MEASURE = "measure"
    RUN = "run"
    NONE = "none"


# the stages that are cached: a field of one of them changes what a trial computes
CACHED = frozenset({Stage.DENSE, Stage.ROUND, Stage.MEASURE})
# keys laid out by section (``{"model": {"neuron": {...}}}``); the others name a field by its own name
NESTED = frozenset({Stage.DENSE})


@dataclass(frozen=True)
class Affects:
    """A spec field's declaration: the stages it affects, how it enters their keys, whether only when set."""

    stages: frozenset[Stage]
    via: tuple[str, ...] = ()  # derived entries it enters through, instead of its own value
    when_set: bool = False  # enters only when not None (a field added after keys were first written)
    # the run identity too holds it only when not None (a field added after run identities were first written)
    identity_when_set: bool = False

    def __post_init__(self) -> None:
        if not self.stages or (len(self.stages) > 1 and not self.stages <= CACHED):
            raise ValueError(f"a field affects one or more cached stages, or only RUN, or only NONE: {self}")


def affects(
    *stages: Stage, via: str | tuple[str, ...] = (), when_set: bool = False, identity_when_set: bool = False
) -> Affects:
    """A declaration: ``Annotated[int, affects(Stage.DENSE, Stage.MEASURE)]``. ``identity_when_set`` implies
    ``when_set``: the field was added after keys and run identities were first written."""
    via = (via,) if isinstance(via, str) else tuple(via)
    return Affects(frozenset(stages), via, when_set or identity_when_set, identity_when_set)


DENSE = affects(Stage.DENSE)
ROUND = affects(Stage.ROUND)
MEASURE = affects(Stage.MEASURE)
RUN = affects(Stage.RUN)
NONE = affects(Stage.NONE)


class UndeclaredField(TypeError):
    """A spec field that declares no stage: every cache key would silently ignore it."""


@dataclass(frozen=True)
class Declared:
    """One declared field: its path in the spec, its declaration and its pydantic field."""

    path: tuple[str, ...]
    affects: Affects
    field: FieldInfo

    @property
    def name(self) -> str:
        return ".".join(self.path)


def content_key(parts: Any) -> str:
    """A 16-hex-digit hash of any JSON-serialisable description of a stage (or of a spec's part)."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@cache
def declared_fields(model: type[BaseModel] | None = None) -> tuple[Declared, ...]:
    """Every declared field of ``model`` (the whole `Spec` by default), sections walked into.

    Raises `UndeclaredField` naming the first field that neither declares a stage nor is a section."""
    if model is None:
        from sltsearch.spec import Spec

        model = Spec
    return tuple(_walk(model, ()))


def _walk(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[Declared]:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        found = [m for m in info.metadata if isinstance(m, Affects)]
        if len(found) > 1:
            raise UndeclaredField(f"{'.'.join(path)} declares its stages {len(found)} times; declare once")
        section = info.annotation if isinstance(info.annotation, type) else None
        if found:
            if found[0].when_set and info.default is not None:
                raise UndeclaredField(f"{'.'.join(path)}: a when_set field needs the default None")
            yield Declared(path, found[0], info)
        elif section is not None and issubclass(section, BaseModel):
            yield from _walk(section, path)
        else:
            raise UndeclaredField(
                f"{'.'.join(path)} ({_type_name(info.annotation)}) declares no stage: annotate it with one of "
                "DENSE, ROUND, MEASURE, RUN, NONE from sltsearch.spec.keys (see its docstring)"
            )


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


Derived = Mapping[str, Callable[[], Mapping[str, Any]]]


def stage_parts(spec: BaseModel, stage: Stage, derived: Derived | None = None) -> dict[str, Any]:
    """What the fields declared for ``stage`` put into its key: their values, or the entries ``derived``
    computes for their ``via`` names (an entry name with dots nests: ``model.time_steps``).

    Every ``via`` name of the stage's fields must be in ``derived`` and every derived name must be used, so a
    key function and the declarations cannot drift apart silently."""
    derived = derived or {}
    data = spec.model_dump(mode="json")
    parts: dict[str, Any] = {}
    used: set[str] = set()
    for item in declared_fields(type(spec)):
        decl = item.affects
        if stage not in decl.stages:
            continue
        for name in decl.via:
            if name not in derived:
                raise KeyError(f"{item.name} enters the {stage.value} key through '{name}', which is not derived")
            if name not in used:
                used.add(name)
                for entry, value in derived[name]().items():
                    _place(parts, tuple(entry.split(".")), value)
        if decl.via:
            continue
        value = _get(data, item.path)
        if decl.when_set and value is None:
            continue
        _place(parts, item.path if stage in NESTED else item.path[-1:], value)
    unused = set(derived) - used
    if unused:
        raise KeyError(f"the {stage.value} key derives {sorted(unused)}, which no spec field declares as its via")
    return parts


def content_hash(spec: BaseModel, sections: tuple[str, ...] = ()) -> str:
    """A hash of every field that a cached stage depends on (all sections, or the named top-level fields)."""
    data = spec.model_dump(mode="json")
    parts: dict[str, Any] = {}
    for item in declared_fields(type(spec)):
        if item.affects.stages & CACHED and (not sections or item.path[0] in sections):
            _place(parts, item.path, _get(data, item.path))
    return content_key(parts)


def run_identity(spec: BaseModel) -> dict[str, Any]:
    """The spec as a run folder compares it on resuming: everything but the fields declared ``NONE`` (and the
    ``identity_when_set`` ones while unset, so identities written before they existed stay valid)."""
    data = spec.model_dump(mode="json")
    for item in declared_fields(type(spec)):
        *head, last = item.path
        if Stage.NONE in item.affects.stages or (item.affects.identity_when_set and _get(data, item.path) is None):
            _get(data, tuple(head)).pop(last, None)
    return data


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _place(parts: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = parts
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise KeyError(f"key entry {'.'.join(path)} is placed inside a value")
    if path[-1] in node:
        raise KeyError(f"two spec fields enter one key under the same name '{'.'.join(path)}'")
    node[path[-1]] = value

