"""Name -> model family; `build_model` turns a `ModelSpec` into a `SpikingClassifier`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from sltsearch.errors import SpecError
from sltsearch.models import cnn, resnet, spikformer, vgg
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


def resolved_options(spec: Any) -> dict[str, Any]:
    """The sizes a `ModelSpec` resolves to: its preset's values overridden by explicit ``options``.

    Stage-cache keys include these, not just the preset name, so a cache written before a preset changed
    is never loaded into a model of a different shape.
    """
    family = MODELS.get(spec.name)
    if family is None or spec.preset not in family.presets:
        return dict(spec.options)
    return {**family.presets[spec.preset], **spec.options}


def build_model(
    spec: Any, input_shape: tuple[int, ...], num_classes: int, frames: bool = False
) -> SpikingClassifier:
    """The model a `ModelSpec` names: preset sizes, overridden by explicit ``options``."""
    if spec.name not in MODELS:
        raise SpecError(f"model.name: unknown model '{spec.name}'; known: {', '.join(sorted(MODELS))}")
    family = MODELS[spec.name]
    if spec.preset not in family.presets:
        raise SpecError(
            f"model.preset: unknown preset '{spec.preset}' for {spec.name}; known: {', '.join(family.presets)}"
        )
    options = resolved_options(spec)
    encoder: nn.Module
    body_shape = tuple(input_shape)
    try:
        if not frames and spec.encoder == "learned":  # event frames are already spikes: frames encoder
            channels = getattr(spec, "encoder_channels", None) or LEARNED_CHANNELS
            encoder = LearnedEncoder(body_shape, channels, neuron_factory(spec.neuron))
            body_shape = encoder.out_shape
        else:
            encoder = ENCODERS["frames" if frames else spec.encoder]()
        body = family.build(body_shape, num_classes, neuron_factory(spec.neuron), options)
    except ValueError as err:
        raise SpecError(str(err)) from None
    return SpikingClassifier(encoder, body, spec.time_steps, spec.name)
