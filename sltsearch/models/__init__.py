"""spikingjelly models in multi-step mode behind one registry (`build_model`)."""

try:
    import spikingjelly  # noqa: F401
except ImportError as err:  # pragma: no cover - an install problem, not a code path
    raise ImportError(
        "sltsearch needs spikingjelly 2.0, installed without its torchaudio pin: "
        "pip install --no-deps 'spikingjelly==2.0.0' (see README, Quick start)"
    ) from err

# isort: split

from sltsearch.models.base import SpikingClassifier
from sltsearch.models.registry import MODELS, build_model, register_model

__all__ = ["MODELS", "SpikingClassifier", "build_model", "register_model"]
