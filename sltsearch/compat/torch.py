"""torch's private API that sltsearch relies on, in one place (pinned by tests/test_compat_torch.py).

MultiSp's ConvPEP convolutions (`sltsearch.models.spikformer`) run with binarized weights by calling the
convolution of their own class with another weight tensor, which torch's Conv1d/Conv2d expose only as the
private ``_conv_forward``. A torch release that renames it fails here with one line.
"""

from __future__ import annotations

import torch
from torch import nn

if not all(hasattr(cls, "_conv_forward") for cls in (nn.Conv1d, nn.Conv2d)):  # pragma: no cover
    raise ImportError(
        f"sltsearch needs torch's Conv1d/Conv2d._conv_forward(input, weight, bias), gone in torch {torch.__version__}"
    )


def conv_forward(conv: nn.Conv1d | nn.Conv2d, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv`` applied to ``x`` with ``weight`` in place of its own (its bias, stride, padding, groups)."""
    return conv._conv_forward(x, weight, conv.bias)  # noqa: SLF001 - the one place (module docstring)
