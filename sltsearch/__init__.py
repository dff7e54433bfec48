"""sltsearch: search for sparse, energy-efficient spiking lottery tickets.

The public names (`run`, `load`, `pareto`, `validate`, `Spec`, ...) are imported on first use, so that
``import sltsearch`` and the CLI's ``--help``, ``spaces`` and ``validate`` never load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sltsearch.system.threads import set_default_wait_policy

# before any sltsearch module imports torch: libgomp reads the wait policy once, when torch loads it
set_default_wait_policy()

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    **dict.fromkeys(
        [
            "Comparison", "RunResult", "compare", "dashboard", "energy", "evaluate", "export", "hypervolume", "load",
            "load_ticket", "pareto", "repair", "run", "select", "validate",
        ],
        "sltsearch.api",
    ),
    "Spec": "sltsearch.spec",
    "load_spec": "sltsearch.spec",
}

__all__ = [
    "Comparison",
    "RunResult",
    "Spec",
    "__version__",
    "compare",
    "dashboard",
    "energy",
    "evaluate",
    "export",
    "hypervolume",
    "load",
    "load_spec",
    "load_ticket",
    "pareto",
    "repair",
    "run",
    "select",
    "validate",
]

if TYPE_CHECKING:
    from sltsearch.api import (
        Comparison,
        RunResult,
        compare,
        dashboard,
        energy,
        evaluate,
        export,
        hypervolume,
        load,
        load_ticket,
        pareto,
        repair,
        run,
        select,
        validate,
    )
    from sltsearch.spec import Spec, load_spec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sltsearch' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
