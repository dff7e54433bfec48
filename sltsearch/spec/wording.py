"""How a spec that does not validate is told: one line with the source, the first failing key and what is
allowed there (for an unknown key, the keys that are), and how many more problems there are.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


def format_validation_error(source: str, err: ValidationError, root: type[BaseModel]) -> str:
    """One line: the source, the first failing key, what is allowed (the keys of ``root``, the model that was
    validated, at that place), and how many more problems."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(root, first["loc"][:-1])
        msg = f"unknown key; allowed here: {', '.join(allowed)}" if allowed else "unknown key"
    more = len(err.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    where = f"{loc}: " if loc else ""
    return f"{source}: {where}{msg}{suffix}"


def _allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the mapping at ``loc``: walks fields, optional fields, dict values and list items."""
    annotation: Any = root
    for part in loc:
        model = _model_in(annotation)
        if model is not None and str(part) in model.model_fields:
            annotation = model.model_fields[str(part)].annotation
            continue
        origin = typing.get_origin(_unwrap_optional(annotation))
        args = typing.get_args(_unwrap_optional(annotation))
        if origin is dict and len(args) == 2:
            annotation = args[1]
        elif origin in (list, tuple) and args:
            annotation = args[0]
        else:
            return []
    model = _model_in(annotation)
    return list(model.model_fields) if model is not None else []


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _model_in(annotation: Any) -> type[BaseModel] | None:
    annotation = _unwrap_optional(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
