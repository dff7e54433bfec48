"""MkDocs hook: the spec reference, generated from the pydantic models of `sltsearch.spec.schema` at build time.

A page holding ``<!-- spec-reference -->`` gets one table per spec section (``data``, ``model``,
``model.neuron``, ...): every field with its type, default, allowed values, description and the cached stages
its value decides (`sltsearch.spec.keys`); ``<!-- space-aliases -->`` gets the table of the short names a
``space:`` key may use. Nothing here restates a field: a field added to the schema appears on the next build.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

SPEC_MARKER = "<!-- spec-reference -->"
ALIASES_MARKER = "<!-- space-aliases -->"

# what a stage means to a user who changes the field (sltsearch.spec.keys.Stage)
STAGE_WORDS = {
    "dense": "dense run",
    "round": "IMP rounds",
    "measure": "measurement",
    "run": "the search",
    "none": "nothing cached",
}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The spec model a field holds (itself, optional, or as dict values), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_of(arg)
        if found is not None:
            return found
    return None


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return "str" if all(isinstance(a, str) for a in args) else " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, tuple, dict):
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{_anchor_of(annotation)})"
    return getattr(annotation, "__name__", str(annotation))


def _literals(annotation: Any) -> list[Any]:
    """Every Literal value inside ``annotation`` (an optional Literal, a list of Literals...)."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [value for arg in typing.get_args(annotation) for value in _literals(arg)]


_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", "≥"), (annotated_types.Lt, "lt", "<"),
           (annotated_types.Le, "le", "≤"))


def _allowed(info: FieldInfo) -> str:
    parts = []
    unit = "characters" if info.annotation is str else "entries"
    choices = _literals(info.annotation)
    if choices:
        parts.append(", ".join(f"`{c}`" for c in choices))
    for meta in info.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(meta, kind):
                parts.append(f"{sign} {getattr(meta, attr)}")
        if isinstance(meta, annotated_types.MinLen):
            parts.append(f"at least {meta.min_length} {unit}")
        if isinstance(meta, annotated_types.MaxLen):
            parts.append(f"at most {meta.max_length} {unit}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return "; ".join(parts)


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value, default=str)}`"


def _stages(info: FieldInfo, inherited: Any) -> Any:
    from sltsearch.spec.keys import Affects

    own = [m for m in info.metadata if isinstance(m, Affects)]
    return own[0] if own else inherited


def _stage_words(affects: Any) -> str:
    if affects is None:
        return ""
    names = sorted(stage.value for stage in affects.stages)
    return ", ".join(STAGE_WORDS.get(name, name) for name in names)


_ANCHORS: dict[type[BaseModel], str] = {}


def _anchor_of(model: type[BaseModel]) -> str:
    return _ANCHORS.get(model, model.__name__.lower())


def _holds_dict(annotation: Any) -> bool:
    """A ``dict[str, Model]`` field (optional or not): its section is one entry's model."""
    return typing.get_origin(annotation) is dict or any(_holds_dict(a) for a in typing.get_args(annotation))


def _sections(model: type[BaseModel], path: str, inherited: Any, out: list[tuple[str, type[BaseModel], Any]]) -> None:
    out.append((path, model, inherited))
    for name, info in model.model_fields.items():
        section = _section_of(info.annotation)
        if section is not None and section not in [m for _, m, _ in out]:
            child = f"{path}.{name}" if path else name
            if _holds_dict(info.annotation):
                child += ".<key>"
            _sections(section, child, _stages(info, inherited), out)


def render_spec() -> str:
    """Markdown: one section per spec model, fields in declaration order."""
    from sltsearch.spec.schema import Spec

    sections: list[tuple[str, type[BaseModel], Any]] = []
    _sections(Spec, "", None, sections)
    for path, model, _ in sections:
        _ANCHORS[model] = (path or "top-level").replace(".", "-").replace("<", "").replace(">", "").lower()
    lines: list[str] = []
    for path, model, inherited in sections:
        title = f"`{path}`" if path else "Top level"
        lines += [f"### {title} {{ #{_anchor_of(model)} }}", ""]
        doc = (model.__doc__ or "").strip()
        if doc:
            lines += [" ".join(doc.split("\n\n")[0].split()), ""]
        lines += [
            "| field | type | default | allowed | description | changing it redoes |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, info in model.model_fields.items():
            lines.append(
                f"| `{name}` | {_cell(_type_name(info.annotation))} | {_cell(_default(info))} "
                f"| {_cell(_allowed(info))} | {_cell(info.description or '')} "
                f"| {_cell(_stage_words(_stages(info, inherited)))} |"
            )
        lines.append("")
    return "\n".join(lines)


def render_aliases() -> str:
    from sltsearch.spec.space import PARAM_ALIASES

    rows = [f"| `{alias}` | `{path}` |" for alias, path in sorted(PARAM_ALIASES.items())]
    return "\n".join(["| `space:` key | spec field |", "| --- | --- |", *rows])


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 (MkDocs hook signature)
    if SPEC_MARKER in markdown:
        markdown = markdown.replace(SPEC_MARKER, render_spec())
    if ALIASES_MARKER in markdown:
        markdown = markdown.replace(ALIASES_MARKER, render_aliases())
    return markdown
