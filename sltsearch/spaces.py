"""The search spaces shipped in ``search_spaces/`` and how a spec argument (a path or a bare name) resolves.

Kept apart from `sltsearch.api` so that modules below the API (e.g. `sltsearch.energy.report`) can
resolve a spec name without importing the API (which imports them).
"""

from __future__ import annotations

from pathlib import Path

from sltsearch.errors import SpecError

BUNDLED_SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
DEFAULT_SPACE = "default"


def bundled_spaces() -> dict[str, Path]:
    """Name -> path of every search space shipped in ``search_spaces/``."""
    return {p.stem: p for p in sorted(BUNDLED_SPACES.glob("*.yaml"))}


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
