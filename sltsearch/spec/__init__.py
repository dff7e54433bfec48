"""The spec layer: what a search is, read and checked before anything runs.

- `schema`: the `Spec` model and its sections; every field declares which cached stages it decides;
- `scalars`, `space`, `wording`, `loading`, `yaml_bounds`: strict scalars, the searched space and its corners,
  one-line error wording, reading a YAML file safely;
- `keys`: every cache key and the run identity, derived from the fields' declarations; `provenance`: what of
  users' own code and data enters them;
- `spaces`: the bundled search spaces by name; `plugins`: model families and datasets from entry points;
- `preflight`: every check a spec and a command line must pass before the first trial.

`Spec`, its section models, `load_spec` and `parse_spec` are importable from here.
"""

from sltsearch.spec.loading import load_spec, parse_spec
from sltsearch.spec.schema import (
    DataSpec,
    EarlyStoppingSpec,
    EnergySpec,
    ModelSpec,
    MultiSpSpec,
    NeuronSpec,
    ObjectiveSpec,
    SearchSpec,
    Spec,
    TicketSpec,
    TrainSpec,
)
from sltsearch.spec.space import ParamSpec

__all__ = [
    "DataSpec",
    "EarlyStoppingSpec",
    "EnergySpec",
    "ModelSpec",
    "MultiSpSpec",
    "NeuronSpec",
    "ObjectiveSpec",
    "ParamSpec",
    "SearchSpec",
    "Spec",
    "TicketSpec",
    "TrainSpec",
    "load_spec",
    "parse_spec",
]
