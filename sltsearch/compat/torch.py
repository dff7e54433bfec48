"""torch's private API that sltsearch relies on, in one place (pinned by tests/test_compat_torch.py).

MultiSp's ConvPEP convolutions (`sltsearch.models.spikformer`) run with binarized weights by calling the
convolution of their own class with another weight tensor, which torch's Conv1d/Conv2d expose only as the
private ``_conv_forward``. A torch release that renames it fails here with one line.

Masks (`sltsearch.tickets.masks`) multiply all layers' weights in one ``torch._foreach_mul_`` (the multi-tensor
kernel torch's own optimizers use) and cache each mask in the weight's dtype until the mask's version counter
(``Tensor._version``, bumped by every in-place write) moves.
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


def foreach_mul_(tensors: list[torch.Tensor], others: list[torch.Tensor]) -> None:
    """``t.mul_(o)`` for every pair, in one call (one kernel per dtype and device on CUDA)."""
    torch._foreach_mul_(tensors, others)  # noqa: SLF001 - the one place (module docstring)


def version(tensor: torch.Tensor) -> int:
    """``tensor``'s version counter: it changes with every in-place write to the tensor."""
    return tensor._version  # noqa: SLF001 - the one place (module docstring)
