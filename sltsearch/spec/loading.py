"""Reading a spec: a YAML file read strictly (UTF-8 text, bounded in size and alias expansion, a key given
twice is an error), fields overridden from the command line (`sltsearch.spec.overrides`), and validated into a
`Spec`; every way it can fail is one `SpecError` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from sltsearch.errors import SpecError
from sltsearch.spec.schema import Spec
from sltsearch.spec.wording import format_validation_error
from sltsearch.spec.yaml_bounds import MAX_BYTES, YamlTooLarge, check_bounds

if TYPE_CHECKING:
    from sltsearch.spec.overrides import Overrides


def parse_spec(data: Any, source: str = "<spec>") -> Spec:
    """Validate a spec given as a dict; errors name the source, the key and what is allowed."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(source, err, Spec)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error, not "the last wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; the base class reports it
                break
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; every way a file can be unreadable is one `SpecError` line."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SpecError(f"{path}: {size} bytes, more than a spec file may hold ({MAX_BYTES}); pass the spec file")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            f"{path}: not a UTF-8 text file (byte {err.start} is {err.object[err.start]:#04x}); a spec is YAML text"
        ) from None
    except OSError as err:
        raise SpecError(f"{path}: cannot be read ({err.strerror or err})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text`` (a file's content, or a value given on the command line), read as a spec
    file is: safe, bounded, a key given twice refused; every way it can fail is one `SpecError` naming ``source``."""
    try:
        loader = _UniqueKeyLoader(text)  # a SafeLoader subclass
        try:
            node = loader.get_single_node()
            check_bounds(node)  # before constructing: an alias bomb never becomes Python objects
            return loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except YamlTooLarge as err:
        raise SpecError(f"{source}: refused: the YAML document {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        if isinstance(err, yaml.reader.ReaderError):
            where, problem = f" at character {err.position}", f"unacceptable character #x{err.character:04x}"
        problem = " ".join(str(problem).split())
        raise SpecError(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise SpecError(f"{source}: not valid YAML: nested too deeply") from None


def load_spec(path: str | Path, overrides: Overrides = None) -> Spec:
    """Read and validate a YAML spec file; ``overrides`` (``["train.epochs=5", ...]`` or
    ``{"train.epochs": 5}``, `sltsearch.spec.overrides`) set fields by dotted key before it is validated."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found; list the bundled ones with `sltsearch spaces`")
    data = read_yaml(path)
    if overrides:
        from sltsearch.spec.overrides import apply_overrides  # it reads values with `parse_yaml`, from here

        return apply_overrides(data, overrides, str(path))
    return parse_spec(data, str(path))
