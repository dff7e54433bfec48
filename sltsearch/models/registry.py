"""Name -> model family; `build_model` turns a `ModelSpec` into a `SpikingClassifier`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from sltsearch.errors import SpecError
from sltsearch.models import cnn, resnet, spikformer, twin, user, vgg
from sltsearch.models.base import SpikingClassifier
from sltsearch.models.encoders import ENCODERS, LEARNED_CHANNELS, LearnedEncoder
from sltsearch.models.neurons import neuron_factory


@dataclass(frozen=True)
class ModelFamily:
    """A body builder ``(input_shape, num_classes, make_neuron, options) -> nn.Module`` and its presets."""

    build: Callable[..., nn.Module]
    presets: dict[str, dict[str, Any]]


MODELS: dict[str, ModelFamily] = {"spiking_cnn": ModelFamily(cnn.build_spiking_cnn, cnn.PRESETS)}


def register_model(name: str, family: ModelFamily) -> None:
    MODELS[name] = family


register_model("spikformer", ModelFamily(spikformer.build_spikformer, spikformer.PRESETS))
register_model("spiking_vgg", ModelFamily(vgg.build_spiking_vgg, vgg.PRESETS))
register_model("spiking_resnet", ModelFamily(resnet.build_spiking_resnet, resnet.PRESETS))


# plugins' plain builders (entry point group sltsearch.models), loaded once per process
_PLUGGED_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def find_family(name: str) -> ModelFamily | Callable[..., nn.Module] | None:
    """A registered family, else a plugin's entry point, else the callable an import path names (None if
    ``name`` is none of these). Plugin families are registered on first use."""
    if name in MODELS:
        return MODELS[name]
    if user.is_import_path(name):
        return user.resolve(name)
    if name in _PLUGGED_BUILDERS:
        return _PLUGGED_BUILDERS[name]
    from sltsearch.spec import plugins
    found = plugins.load(plugins.MODEL_GROUP, name)
    if found is None:
        return None
    if not isinstance(found, ModelFamily) and not callable(found):
        raise SpecError(
            f"model.name: entry point '{name}' is a {type(found).__name__}; it must name a ModelFamily or a "
            f"callable (input_shape, num_classes, options) -> nn.Module"
        )
    if isinstance(found, ModelFamily):
        register_model(name, found)
    else:
        _PLUGGED_BUILDERS[name] = found
    return found


def require_family(name: str) -> ModelFamily | Callable[..., nn.Module]:
    """`find_family`, or a `SpecError` naming what ``model.name`` may be."""
    family = find_family(name)
    if family is None:
        raise SpecError(
            f"model.name: unknown model '{name}'; known: {', '.join(sorted(MODELS))}, an installed plugin "
            f"(`sltsearch models`) or your own builder as an import path 'pkg.module:make_net'"
        )
    return family


def model_code(spec: Any) -> str | None:
    """What the stage cache keys a user's network on (`user.code_fingerprint`); None for sltsearch's own
    families. Any family whose builder lives outside sltsearch (import path, Python callable, plugin,
    `register_model` from user code) is user code."""
    family = find_family(spec.name)
    fn = family.build if isinstance(family, ModelFamily) else family
    if fn is None or str(getattr(fn, "__module__", "")).startswith("sltsearch."):
        return None
    return user.code_fingerprint(fn, getattr(spec, "version", None), spec.name)


def resolved_options(spec: Any) -> dict[str, Any]:
    """The sizes a `ModelSpec` resolves to: its preset's values overridden by explicit ``options``.

    Stage-cache keys include these, not just the preset name, so a cache written before a preset changed
    is never loaded into a model of a different shape.
    """
    family = find_family(spec.name)
    if not isinstance(family, ModelFamily) or spec.preset not in family.presets:
        return dict(spec.options)
    return {**family.presets[spec.preset], **spec.options}


def _encoder(spec: Any, input_shape: tuple[int, ...], frames: bool) -> tuple[nn.Module, tuple[int, ...]]:
    """The encoder and the shape the body sees (a learned encoder changes it; event frames are already spikes)."""
    if frames or spec.encoder != "learned":
        return ENCODERS["frames" if frames else spec.encoder](), input_shape
    channels = getattr(spec, "encoder_channels", None) or LEARNED_CHANNELS
    try:
        encoder = LearnedEncoder(input_shape, channels, neuron_factory(spec.neuron))
    except ValueError as err:
        raise SpecError(str(err)) from None
    return encoder, encoder.out_shape


def build_model(
    spec: Any, input_shape: tuple[int, ...], num_classes: int, frames: bool = False
) -> SpikingClassifier:
    """The model a `ModelSpec` names: preset sizes, overridden by explicit ``options``.

    ``spec.name`` is a registered family, an installed plugin's entry point (group ``sltsearch.models``) or
    an import path ``pkg.module:make_net`` to a user's builder (`sltsearch.models.user`).
    """
    family = require_family(spec.name)
    network = getattr(spec, "network", "snn")
    if network == "ann" and frames:
        raise SpecError(
            f"model.neuron.type {spec.neuron.type}: event-frame data carry their own time axis, which the ANN twin "
            "(run once, no time steps) has no place for; use a spiking neuron (lif, plif, if) for this dataset"
        )
    encoder, body_shape = _encoder(spec, tuple(input_shape), frames)
    if not isinstance(family, ModelFamily):  # a user's builder (import path, Python callable or plugin)
        body = user.build_body(family, spec, body_shape, num_classes)
    else:
        if spec.preset not in family.presets:
            raise SpecError(
                f"model.preset: unknown preset '{spec.preset}' for {spec.name}; known: {', '.join(family.presets)}"
            )
        try:
            body = family.build(body_shape, num_classes, neuron_factory(spec.neuron), resolved_options(spec))
        except ValueError as err:
            raise SpecError(str(err)) from None
    if network == "ann":
        twin.replace_neurons(body)  # neurons a builder made on its own (`sltsearch.models.twin`)
    steps = getattr(spec, "inference_steps", spec.time_steps)
    return SpikingClassifier(encoder, body, steps, spec.name, network=network)
