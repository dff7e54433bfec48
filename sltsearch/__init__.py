"""sltsearch: search for sparse, energy-efficient spiking lottery tickets."""

__version__ = "0.1.0"

from sltsearch.api import RunResult, load, pareto, run, validate  # noqa: E402
from sltsearch.spec import Spec, load_spec  # noqa: E402

__all__ = ["RunResult", "Spec", "__version__", "load", "load_spec", "pareto", "run", "validate"]
