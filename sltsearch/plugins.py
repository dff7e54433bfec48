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


def catalog() -> dict[str, list[dict[str, str]]]:
    """Every model family and dataset a spec can name: built-in, registered and plugged in (not loaded)."""
    from sltsearch.data.registry import DATASETS, PATHED, ROOTED
    from sltsearch.models.registry import MODELS

    models = [
        {"name": name, "presets": ", ".join(family.presets), "source": _source(family.build)}
        for name, family in sorted(MODELS.items())
    ]
    models += [
        {"name": name, "presets": "", "source": f"plugin: {origin(ep)} ({ep.value})"}
        for name, ep in sorted(plugged_in(MODEL_GROUP).items())
        if name not in MODELS
    ]
    models.append({"name": "pkg.module:make_net", "presets": "", "source": "your own builder (import path)"})
    datasets = [
        {
            "name": name,
            "reads": "data.root" if name in ROOTED else "data.path" if name in PATHED else _READS.get(name, "-"),
            "source": _source(builder),
        }
        for name, builder in sorted(DATASETS.items())
    ]
    datasets += [
        {"name": name, "reads": "?", "source": f"plugin: {origin(ep)} ({ep.value})"}
        for name, ep in sorted(plugged_in(DATASET_GROUP).items())
        if name not in DATASETS
    ]
    return {"models": models, "datasets": datasets}


_READS = {"python": "sltsearch.run(data=...)"}


def _source(obj: Any) -> str:
    module = str(getattr(obj, "__module__", ""))
    return "built-in" if module.startswith("sltsearch.") else f"registered: {module}"
