"""spikingjelly models in multi-step mode behind one registry (`build_model`)."""

from sltsearch.models.base import SpikingClassifier
from sltsearch.models.registry import MODELS, build_model, register_model

__all__ = ["MODELS", "SpikingClassifier", "build_model", "register_model"]
