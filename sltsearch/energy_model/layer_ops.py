"""How many operations one Conv/Linear or attention product costs, by the rules `sltsearch.energy_model.counter`
states: the kind of a layer's input (spike, integer, real), fan-out maps that turn a convolution's count into one
multiply per input element, and the pair counts of ``a @ b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}
WEIGHTED = tuple(CONV) + (nn.Linear,)


def is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def is_integer(x: torch.Tensor) -> bool:
    return bool((x == torch.round(x)).all()) if x.is_floating_point() else True


def input_kind(x: torch.Tensor, is_input_layer: bool = False) -> str:
    """``spike`` (binary), ``integer`` (spike counts), ``real``; the encoding layer is never ``integer``.

    The kind of one tensor; `measure_energy` applies the same rule to all of a layer's inputs at once.
    """
    return kind_from(is_binary(x), is_integer(x), is_input_layer)


def kind_from(binary: bool, integer: bool, is_input_layer: bool) -> str:
    if binary:
        return "spike"
    if integer and not is_input_layer:
        return "integer"
    return "real"


def repeated_over_time(x: torch.Tensor, time_steps: int) -> bool:
    if time_steps <= 1 or x.dim() < 2 or x.shape[0] % time_steps:
        return False
    seq = x.reshape(time_steps, -1)
    return bool((seq == seq[:1]).all())


# encoders (``model.encoder.kind``) whose output makes the encoding layer's input real by role
REAL_ENCODERS = ("direct", "learned")


# ----------------------------------------------------------------------------------------------- counts


def _fanout(
    module: nn.Module, in_shape: tuple[int, ...], device: torch.device, all_weights: bool = False
) -> tuple[torch.Tensor, int]:
    """Per input element, the number of (output, surviving weight) pairs it takes part in; output size.

    ``conv(x, 1[w!=0]).sum() == (x * fanout).sum()`` for any x of that shape: the fan-out map is the
    gradient of the left side with respect to x (the transposed convolution of ones), computed once per
    layer and input shape, so counting costs one multiply per input element instead of a convolution.
    Zero-padding taps have no input element, so they are never counted. ``all_weights``: every weight,
    pruned or not (for the dense count).
    """
    conv = next(f for c, f in CONV.items() if isinstance(module, c))
    weight = module.weight.detach()
    w_nz = torch.ones_like(weight, dtype=torch.float32) if all_weights else (weight != 0).to(torch.float32)
    kw = {"stride": module.stride, "padding": module.padding, "dilation": module.dilation}
    x1 = torch.zeros(1, *in_shape, device=device, requires_grad=True)
    with torch.enable_grad():
        out = conv(x1, w_nz, groups=module.groups, **kw)
        (grad,) = torch.autograd.grad(out.sum(), x1)
    return grad[0].double(), out[0].numel()


@dataclass
class _Fanout:
    """A layer's fan-out maps for one input shape (see `_fanout`)."""

    surviving: torch.Tensor  # per input element: surviving weights it meets
    dense_per_row: float  # every existing synapse of one input row (no padding taps)
    out_numel: int  # outputs per input row


def _fanouts(module: nn.Module, x2: torch.Tensor, cache: dict[Any, Any] | None) -> _Fanout:
    key = (id(module), tuple(x2.shape[1:]))
    if cache is not None and key in cache:
        return cache[key]
    weight = module.weight.detach()
    if isinstance(module, nn.Linear):
        fan = _Fanout((weight != 0).sum(0).double(), float(weight.numel()), weight.shape[0])
    else:
        surviving, out_numel = _fanout(module, tuple(x2.shape[1:]), x2.device)
        dense, _ = _fanout(module, tuple(x2.shape[1:]), x2.device, all_weights=True)
        fan = _Fanout(surviving, float(dense.sum()), out_numel)
    if cache is not None:
        cache[key] = fan
    return fan


def _rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` as [rows, *one row's shape]: [N, in_features] for Linear, [N, C, *spatial] for Conv."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    spatial = module.weight.dim() - 2
    return x.reshape(-1, *x.shape[-(spatial + 1) :])


def layer_ops(
    module: nn.Module, x_op: torch.Tensor, cache: dict[Any, Any] | None = None
) -> tuple[float, float, float]:
    """(counted ops, dense ops, output elements) of a Conv/Linear for the operand tensor ``x_op``.

    counted = conv(x_op, 1[w!=0]).sum(); dense = conv(1, 1).sum() (every existing synapse, no padding taps).
    """
    x2 = _rows(module, x_op)
    fan = _fanouts(module, x2, cache)
    ops = float((x2.sum(0, dtype=torch.float64) * fan.surviving).sum())
    rows = x2.shape[0]
    return ops, fan.dense_per_row * rows, float(fan.out_numel * rows)


def layer_ops_all_rules(
    module: nn.Module, x: torch.Tensor, cache: dict[Any, Any] | None
) -> tuple[float, float, float, float, float]:
    """(ops with operand 1[x!=0], with |x|, with 1, dense ops, output elements) for one batch."""
    x2 = _rows(module, x)
    fan = _fanouts(module, x2, cache)
    rows = x2.shape[0]
    nz = float(((x2 != 0).sum(0, dtype=torch.float64) * fan.surviving).sum())
    absx = float((x2.abs().sum(0, dtype=torch.float64) * fan.surviving).sum()) if x2.is_floating_point() else nz
    every = float(fan.surviving.sum()) * rows
    return nz, absx, every, fan.dense_per_row * rows, float(fan.out_numel * rows)


def matmul_pairs(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float]:
    """Pairs of ``a @ b`` with operands (1[a!=0], 1[b!=0]), (|a|, 1[b!=0]) and (1[a!=0], |b|)."""
    ia, ib = (a != 0).double(), (b != 0).double()
    # sum_{i,j} sum_k ia[i,k] ib[k,j] = sum_k (sum_i ia[i,k]) (sum_j ib[k,j]), batched over leading dims
    col_a, row_b = ia.sum(-2), ib.sum(-1)
    return (
        float((col_a * row_b).sum()),
        float((a.abs().double().sum(-2) * row_b).sum()),
        float((col_a * b.abs().double().sum(-1)).sum()),
    )


def matmul_rule(ka: str, kb: str, nonbinary: str) -> tuple[str, str]:
    """(op type, which pair count) of ``a @ b`` for operand kinds ``ka``, ``kb`` (module docstring)."""
    if "spike" in (ka, kb):
        return "ac", "nz"
    if nonbinary == "ac_weighted" and "integer" in (ka, kb):
        return "ac", "abs_a" if ka == "integer" else "abs_b"
    return "mac", "nz"
