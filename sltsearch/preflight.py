"""Users' networks and data, checked before the first trial (and before the run folder is written).

`with_python_inputs` puts a callable and torch Datasets handed to `sltsearch.run` into the spec
(``model.name`` = the callable's ``module:qualname``, ``data.name: python`` with the datasets' content hash).
`check` loads the data (kept in the driver's data memo, so trials do not load it again), builds the network,
runs a 2-sample forward pass through `sltsearch.models.user.check_network` and takes the code fingerprint,
so a broken network, bad data or unreadable source is one error line before anything is trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from sltsearch.errors import SpecError
from sltsearch.spec import Spec


def with_python_inputs(spec: Spec, model: Callable[..., Any] | None, data: Sequence[Any] | None) -> Spec:
    """``spec`` naming a Python callable and / or Python datasets passed to `sltsearch.run`."""
    from sltsearch.data import torch_datasets
    from sltsearch.models.user import register_callable

    update: dict[str, Any] = {}
    if model is not None:
        update["model"] = spec.model.model_copy(update={"name": register_callable(model)})
    if data is not None:
        if isinstance(data, dict) or not isinstance(data, Sequence) or len(data) != 3:
            raise SpecError("data=: pass a tuple (train, val, test) of torch Datasets (val or test may be None)")
        given = spec.data.options.get("num_classes")
        options = torch_datasets.register(*data, num_classes=None if given is None else int(given))
        update["data"] = spec.data.model_copy(update={"name": torch_datasets.NAME, "options": options, "path": None})
    return spec.model_copy(update=update) if update else spec


def needs_check(spec: Spec) -> bool:
    """Users' code or data is involved: its network or its dataset is not one of sltsearch's own."""
    from sltsearch import provenance

    return bool(provenance.stage_inputs(spec)) or spec.data.name in {"arrays", "python"}


def check(spec: Spec, data_memo: dict[str, Any]) -> None:
    """Load the data and build and probe the network of ``spec``; raises one-line `UserError`s."""
    from sltsearch.cache import content_key
    from sltsearch.data import build_data
    from sltsearch.models import build_model
    from sltsearch.models.registry import ModelFamily, find_family
    from sltsearch.models.spikformer import PatchEmbed
    from sltsearch.models.user import check_network
    from sltsearch.tickets import multisp

    default_preset = type(spec.model).model_fields["preset"].default
    if spec.model.preset != default_preset and not isinstance(find_family(spec.model.name), ModelFamily):
        raise SpecError(
            f"model.preset: presets belong to sltsearch's families; {spec.model.name} takes its sizes from "
            f"model.options (passed to your builder as its third argument)"
        )
    key = content_key(spec.data.model_dump(mode="json"))  # the key `trial_context.prepare` memoises under
    if key not in data_memo:
        data_memo[key] = build_data(spec.data)
    data = data_memo[key]
    model = build_model(spec.model, data.input_shape, data.num_classes, frames=data.time_steps is not None)
    batch = [data.train[i][0] for i in range(min(2, len(data.train)))]
    check_network(model, torch.stack([torch.as_tensor(x) for x in batch]).float(), data.num_classes, spec.model.name)
    if spec.multisp.active and not isinstance(multisp.patch_embed(model), PatchEmbed):
        raise SpecError(
            f"model {spec.model.name}: multisp needs a ConvPEP: a `patch_embed` "
            f"(sltsearch.models.spikformer.PatchEmbed) on the network, as model.name: spikformer has"
        )
    from sltsearch import provenance

    provenance.stage_inputs(spec)  # takes the code fingerprint now: an unreadable source is an error here
