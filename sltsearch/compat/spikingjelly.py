"""spikingjelly's private API that sltsearch relies on, in one place (pinned by tests/test_compat_spikingjelly.py).

The fused CPU neurons (`sltsearch.models.fused_neurons`) compute spikingjelly's own surrogate derivatives with
its kernel helpers, and defer to spikingjelly for a node its precision converter has set to reduced precision.
A spikingjelly release that moves or changes these fails here, at import, with one line naming what is missing.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import torch

try:
    from spikingjelly._ops.surrogate import _surrogate_gradient, _surrogate_spec
except ImportError as err:  # pragma: no cover - depends on the installed spikingjelly
    raise ImportError(
        f"sltsearch needs spikingjelly 2.0's spikingjelly._ops.surrogate (installed: spikingjelly "
        f"{metadata.version('spikingjelly')}): {err}; install 'spikingjelly==2.0.0' (README, Quick start)"
    ) from None

# the id `surrogate_spec` gives spikingjelly's ATan (the default surrogate), whose derivative the fused
# kernel computes inline
ATAN_ID = 1


def surrogate_spec(function: Any) -> tuple[int, float] | None:
    """(id, alpha) of a built-in surrogate spikingjelly's kernels know (None: a surrogate they do not)."""
    return _surrogate_spec(function)


def surrogate_gradient(x: torch.Tensor, alpha: float, surrogate_id: int) -> torch.Tensor:
    """The derivative of the surrogate ``surrogate_id`` (of `surrogate_spec`) at ``x`` = h - threshold."""
    return _surrogate_gradient(x, alpha, surrogate_id)


def reduced_precision(node: Any) -> bool:
    """Whether spikingjelly's precision converter set the node to a reduced precision (its own path then)."""
    return getattr(node, "_neuron_precision", None) is not None
