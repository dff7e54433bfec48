"""The bundled search spaces: where they are in a checkout and in an installed package, and by name.

In the repository they live in the top-level ``search_spaces/`` folder; a wheel or ``pip install .`` ships
that folder as the package ``sltsearch.search_spaces`` (see setup.py), found here through importlib.resources.
Kept free of torch so that ``sltsearch spaces`` and ``validate`` start fast.
"""

from __future__ import annotations

import contextlib
import importlib.resources
from pathlib import Path

from sltsearch.errors import SpecError

DEFAULT_SPACE = "default"
# the folder in a source checkout (this file is sltsearch/spec/spaces.py)
CHECKOUT_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def _folders() -> list:
    """Where bundled spaces may be: the installed package ``sltsearch.search_spaces``, then the checkout."""
    folders: list = []
    # a source checkout on PYTHONPATH has no such package: its folder is beside the code
    with contextlib.suppress(ModuleNotFoundError):
        folders.append(importlib.resources.files("sltsearch.search_spaces"))
    folders.append(CHECKOUT_SPACES)
    return folders


def bundled_spaces() -> dict[str, Path]:
    """Name -> path of every bundled search space (the first folder that holds any)."""
    for folder in _folders():
        if not folder.is_dir():
            continue
        found = {Path(str(entry)).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".yaml")}
        if found:
            return dict(sorted(found.items()))
    return {}


def resolve_spec_path(spec: str | Path | None) -> Path:
    """A spec file path; a bare name such as ``default`` means the bundled space of that name."""
    if spec is None:
        spec = DEFAULT_SPACE
    path = Path(spec)
    if path.suffix not in {".yaml", ".yml"} and not path.exists():
        bundled = bundled_spaces()
        if str(spec) in bundled:
            return bundled[str(spec)]
        raise SpecError(
            f"{spec}: no such spec file or bundled space; bundled: {', '.join(bundled) or 'none'}"
        )
    return path
