"""sltsearch: search for sparse, energy-efficient spiking lottery tickets."""

__version__ = "0.1.0"

try:
    import spikingjelly  # noqa: F401
except ImportError as err:  # pragma: no cover - an install problem, not a code path
    raise ImportError(
        "sltsearch needs spikingjelly 2.0, installed without its torchaudio pin: "
        "pip install --no-deps 'spikingjelly==2.0.0' (see README, Quick start)"
    ) from err

from sltsearch.api import (  # noqa: E402
    RunResult,
    dashboard,
    evaluate,
    export,
    hypervolume,
    load,
    load_ticket,
    pareto,
    run,
    select,
    validate,
)
from sltsearch.spec import Spec, load_spec  # noqa: E402

__all__ = [
    "RunResult",
    "Spec",
    "__version__",
    "dashboard",
    "evaluate",
    "export",
    "hypervolume",
    "load",
    "load_spec",
    "load_ticket",
    "pareto",
    "run",
    "select",
    "validate",
]
