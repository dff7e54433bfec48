"""Bounds on a YAML document before it becomes Python objects: size, nodes after alias expansion, depth.

YAML aliases let a few hundred bytes stand for billions of values (9 levels of 9 aliases is 9**9 leaves):
the loader shares them, but anything that walks the data (pydantic's ``model_dump``, hashing a spec,
``json.dumps``) expands them. So the composed node graph is measured first, counting every alias as the
whole subtree it stands for, and a document past the bounds is refused before it is constructed. A spec
needs a few hundred nodes; the bounds leave room for long choice lists and large ``options`` mappings.
"""

from __future__ import annotations

import yaml

MAX_BYTES = 4 << 20  # a spec file larger than 4 MiB is not a spec
MAX_NODES = 20_000  # scalars, lists and mappings, every alias counted as what it stands for
MAX_DEPTH = 40  # nested lists / mappings
TOO_MANY = f"holds more than {MAX_NODES} values once its aliases are expanded; a spec needs a few hundred"
TOO_DEEP = f"nests lists / mappings more than {MAX_DEPTH} levels deep; a spec needs a few"


class YamlTooLarge(ValueError):
    """The document is past one of the bounds; the message says which and by how much."""


def check_bounds(root: yaml.Node | None) -> None:
    """Raise `YamlTooLarge` when ``root`` expands to more than MAX_NODES nodes, nests deeper than MAX_DEPTH,
    or holds an alias to a node that contains it (an infinite document)."""
    if root is None:
        return
    memo: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes in its expanded subtree, its height)
    on_path: set[int] = set()
    total = 0

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        nonlocal total
        if depth > MAX_DEPTH:
            raise YamlTooLarge(TOO_DEEP)
        key = id(node)
        if key in on_path:
            raise YamlTooLarge("holds an alias to a node that contains it (an endless document); write the values out")
        if key in memo:
            size, height = memo[key]
            if depth + height > MAX_DEPTH:
                raise YamlTooLarge(TOO_DEEP)
            total += size
            if total > MAX_NODES:
                raise YamlTooLarge(TOO_MANY)
            return size, height
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        before = total
        total += 1
        if total > MAX_NODES:
            raise YamlTooLarge(TOO_MANY)
        on_path.add(key)
        height = 0
        for child in children:
            _, child_height = measure(child, depth + 1)
            height = max(height, child_height + 1)
        on_path.discard(key)
        memo[key] = (total - before, height)
        return memo[key]

    measure(root, 0)
