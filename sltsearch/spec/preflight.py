"""Every check a spec and a command line must pass before the first trial, in one place.

`sltsearch.api.validate` and the start of `sltsearch.api.run` both call `check`, so `validate` says ok
exactly when `run` would start. The spec itself (types, ranges, every combination of the searched
ranges) is checked when it is loaded (`sltsearch.spec`); here come the checks that need the registries
and the machine: the dataset (built, so a missing or wrong ``data.root`` shows now), the model family,
preset and options (built on torch's ``meta`` device: shapes, no memory, no compute) and the device.
Users' networks and data (a callable or torch Datasets handed to `sltsearch.run`, an import path, an
``arrays`` file) are built for real and probed with a 2-sample forward pass, and their code fingerprint is
taken (`check_user_inputs`). Anything a trial would otherwise find once per trial, as a traceback, is one
`UserError` line here.

The data built here goes into the caller's ``data_memo`` under the same key `sltsearch.trial.context.prepare`
uses, so a run never builds it twice.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sltsearch.errors import DataError, SpecError, UserError, one_line
from sltsearch.spec import Spec
from sltsearch.spec.schema import DEVICE_PATTERN
from sltsearch.spec.space import resolve_param_path

# searched parameters under these sections change the data or the model: their corners are built too
_DATA_MODEL = ("data.", "model.")
# at most this many data/model variants (corners of the searched data/model parameters) are built
MAX_VARIANTS = 16


@dataclass
class Checked:
    """What `check` found: the spec, the device, and one line per dataset and model it built."""

    spec: Spec
    device: str
    datasets: list[str] = field(default_factory=list)
    # "family/preset: N parameters" -> the time steps it was checked at
    models: dict[str, list[int]] = field(default_factory=dict)

    def summary(self) -> str:
        models = [f"{m} at T={', '.join(map(str, sorted(ts)))}" for m, ts in self.models.items()]
        return "; ".join([*self.datasets, *models, f"device {self.device}"])


def check(spec: Spec, *, device: str | None = None, data_memo: dict[str, Any] | None = None) -> Checked:
    """Raise a one-line `UserError` for anything that would make a trial of ``spec`` fail before training."""
    if not spec.space:
        raise SpecError("space: the spec searches nothing; add at least one parameter under 'space'")
    resolved = check_device(device, spec)
    checked = Checked(spec=spec, device=resolved)
    memo = data_memo if data_memo is not None else {}
    for variant in _variants(spec):
        data = _build_data(variant, memo, checked)
        _build_model(variant, data, checked)
    if needs_check(spec):  # users' networks and data: built for real and probed with a forward pass
        check_user_inputs(spec, memo)
    return checked


def check_device(override: str | None, spec: Spec) -> str:
    """The device every trial will use (``--device`` over ``train.device``, or each searched value)."""
    if override is not None:
        return _device(override, "--device")
    names = [spec.train.device]
    searched = [p for k, p in spec.space.items() if resolve_param_path(k) == "train.device"]
    for param in searched:
        names += [str(v) for v in param.probe_values()]
    return ", ".join(dict.fromkeys(_device(name, "train.device") for name in names))


def _device(name: str, where: str) -> str:
    if not re.match(DEVICE_PATTERN, name):
        raise SpecError(f"{where}: '{name}' is not a device; allowed: auto, cpu, cuda, cuda:N, mps")
    import torch

    from sltsearch.system.device import resolve_device

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"{where}: '{name}' asked for, but this machine has no CUDA device; use 'auto' or 'cpu'")
    device = resolve_device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SpecError(
            f"{where}: '{name}' asked for, but this machine has {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError(f"{where}: 'mps' asked for, but this machine has no MPS device; use 'auto' or 'cpu'")
    return str(device)


def _variants(spec: Spec) -> list[Spec]:
    """The spec with every corner of its searched data/model parameters applied (at most MAX_VARIANTS)."""
    probes = {k: p.probe_values() for k, p in spec.space.items() if resolve_param_path(k).startswith(_DATA_MODEL)}
    corners: list[dict[str, Any]] = [{}]
    total = 1
    for values in probes.values():
        total *= len(values)
    if probes and total <= MAX_VARIANTS:
        corners = [dict(zip(probes, c, strict=True)) for c in itertools.product(*probes.values())]
    elif probes:  # too many corners: every value of each parameter on its own
        corners = [{k: v} for k, values in probes.items() for v in values]
    variants: dict[str, Spec] = {}
    for corner in corners:
        variant = spec.with_params(corner)
        variants.setdefault(variant.content_hash("data", "model"), variant)
    return list(variants.values())


def _build_data(spec: Spec, memo: dict[str, Any], checked: Checked) -> Any:
    from sltsearch.data.registry import DATASETS, build_data_memo, find_dataset

    name = spec.data.name
    if find_dataset(name) is None:
        raise DataError(f"data.name: unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    try:
        data = build_data_memo(spec.data, memo)
    except UserError:
        raise
    except Exception as err:  # a builder's own failure on this input: one line that names the dataset
        where = f" from data.root {spec.data.root}" if spec.data.root else ""
        failed = one_line(err, bare=(ValueError,))
        raise DataError(f"data: dataset '{name}' could not be built{where}: {failed}") from None
    line = (
        f"data {name}: {len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test samples of shape "
        f"{tuple(data.input_shape)}, {data.num_classes} classes"
    )
    if line not in checked.datasets:
        checked.datasets.append(line)
    return data


def _build_model(spec: Spec, data: Any, checked: Checked) -> None:
    import torch

    from sltsearch.models import build_model
    from sltsearch.models.registry import ModelFamily, require_family

    model = spec.model
    family = require_family(model.name)
    if not isinstance(family, ModelFamily):  # a user's builder: built and probed for real (check_user_inputs)
        return
    presets = family.presets
    if model.preset not in presets:
        raise SpecError(
            f"model.preset: unknown preset '{model.preset}' for {model.name}; known: {', '.join(presets)}"
        )
    frames = getattr(data, "time_steps", None) is not None
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            net = build_model(model, data.input_shape, data.num_classes, frames=frames)
    except UserError:
        raise
    except Exception as err:  # options of the wrong type or shape: one line that names the model
        raise SpecError(
            f"model: {model.name} (preset {model.preset}, options {dict(model.options)}) cannot be built for "
            f"data {data.name} of shape {tuple(data.input_shape)}: {one_line(err, bare=(ValueError,))}"
        ) from None
    params = sum(p.numel() for p in net.parameters())
    twin = " (ANN twin)" if model.network == "ann" else ""
    steps = checked.models.setdefault(f"model {model.name}/{model.preset}{twin}: {params:,} parameters", [])
    if model.inference_steps not in steps:
        steps.append(model.inference_steps)


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
    from sltsearch.spec import provenance
    return bool(provenance.stage_inputs(spec)) or spec.data.name in {"arrays", "python"}


def check_user_inputs(spec: Spec, data_memo: dict[str, Any]) -> None:
    """Load the data and build and probe the network of ``spec``; raises one-line `UserError`s."""
    import torch

    from sltsearch.data.registry import build_data_memo
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
    data = build_data_memo(spec.data, data_memo)
    model = build_model(spec.model, data.input_shape, data.num_classes, frames=data.time_steps is not None)
    batch = [data.train[i][0] for i in range(min(2, len(data.train)))]
    check_network(model, torch.stack([torch.as_tensor(x) for x in batch]).float(), data.num_classes, spec.model.name)
    if spec.multisp.active and not isinstance(multisp.patch_embed(model), PatchEmbed):
        raise SpecError(
            f"model {spec.model.name}: multisp needs a ConvPEP: a `patch_embed` "
            f"(sltsearch.models.spikformer.PatchEmbed) on the network, as model.name: spikformer has"
        )
    from sltsearch.spec import provenance
    provenance.stage_inputs(spec)  # takes the code fingerprint now: an unreadable source is an error here
