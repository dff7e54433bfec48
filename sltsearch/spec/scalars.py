"""Strict scalars: a spec is read as written, so `time_steps: true` is not 1 and `detach_reset: 1` is not true.

`Strict` is the base of every spec model: unknown keys are errors, the model is frozen, and booleans given for
numbers (or numbers for booleans) are refused with what was expected, where pydantic's lax mode would coerce.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Strict(BaseModel):
    """Unknown keys are errors, and so are booleans given for numbers and numbers given for booleans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `time_steps: true` as 1 and `detach_reset: 1` as true; a spec is strict
        field = cls.model_fields.get(info.field_name or "")
        expected = scalar_mismatch(value, field.annotation) if field is not None else None
        if expected:
            raise ValueError(f"expected {expected}, got {json.dumps(value, default=str)}")
        return value


def scalar_mismatch(value: Any, annotation: Any) -> str | None:
    """What ``annotation`` expects when ``value`` is a scalar of the wrong kind for it (else None).

    Only int, float and bool are judged (and lists/tuples of them); every other type is left to pydantic.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        found = [scalar_mismatch(value, member) for member in typing.get_args(annotation)]
        return None if any(f is None for f in found) else next(f for f in found if f)
    if annotation is type(None):
        return None if value is None else "null"
    if annotation is bool:
        return None if isinstance(value, bool) or not isinstance(value, int | float | str) else "true or false"
    if annotation is int:
        return None if not isinstance(value, bool | float | str) else "an integer"
    if annotation is float:
        return "a number" if isinstance(value, bool) else None
    if origin in (list, tuple) and isinstance(value, list | tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        for i, item in enumerate(value):
            item_type = args[0] if origin is list or len(args) == 1 else args[min(i, len(args) - 1)]
            inner = scalar_mismatch(item, item_type)
            if inner:
                return f"{inner} at position {i}"
    return None
