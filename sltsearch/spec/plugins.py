"""Third-party model families and datasets, found through entry points (as pytest and Optuna plugins are).

A package declares them in its pyproject.toml::

    [project.entry-points."sltsearch.models"]
    my_net = "mypkg.nets:make_net"     # a callable (input_shape, num_classes, options) -> nn.Module, as for
                                       # `model.name: "pkg.module:make_net"`, or a `ModelFamily` (with presets)
    [project.entry-points."sltsearch.datasets"]
    my_data = "mypkg.data:load"        # builder(val_fraction, test_fraction, seed, options) -> DataSplits;
                                       # with an attribute ``needs_root = True`` it takes data.root first

and the spec names them like built-in ones (``model.name: my_net``, ``data.name: my_data``). Entry points are
loaded only when a spec names them (or `sltsearch models` lists them); a built-in name always wins.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from sltsearch.errors import SpecError

MODEL_GROUP = "sltsearch.models"
DATASET_GROUP = "sltsearch.datasets"


def plugged_in(group: str) -> dict[str, EntryPoint]:
    """Entry-point name -> entry point of every installed distribution, for ``group``."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load(group: str, name: str) -> Any | None:
    """The object an entry point names, None when no installed package declares ``name`` in ``group``."""
    ep = plugged_in(group).get(name)
    if ep is None:
        return None
    try:
        return ep.load()
    except Exception as err:
        text = " ".join(str(err).split())[:300]
        raise SpecError(
            f"entry point '{name}' = '{ep.value}' (group {group}, package "
            f"{getattr(ep.dist, 'name', '?')}) failed to load: {type(err).__name__}: {text}"
        ) from None


def origin(ep: EntryPoint) -> str:
    """'package version' of the distribution that declares an entry point."""
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "?"
