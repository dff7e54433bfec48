"""Fused multi-step LIF/IF neurons for CPU training.

Why: on CPU, spikingjelly 2.0's multi-step LIF runs its per-time-step reference (about ten elementwise
ops per step forward and per step backward, plus stacking). For the small tensors of tiny models this
dominates the training step: measured 1.8x the time of the same network as a ReLU ANN on a T-times
larger batch. Here everything that does not depend on the recurrence is done once over the whole
sequence, and only the recurrence itself loops over T:

* forward, per step: ``h[t] += decay * v[t-1]`` (in place), ``v[t] = reset(h[t])`` (two ops);
  the input scaling before the loop and ``spike = h >= threshold`` after it are single ops over [T, ...].
* backward: the surrogate derivative, the reset derivative and ``gs * sg`` are computed over [T, ...] at
  once; the recurrence ``gh[t] = gs[t] * sg[t] + gh[t+1] * decay * dv[t]/dh[t]`` is one ``addcmul_``
  per step.

The dynamics and the gradient are exactly spikingjelly's (``LIFNode`` / ``IFNode``, hard or soft reset,
``decay_input`` both ways, ``detach_reset`` both ways); the surrogate derivative is spikingjelly's own
(its kernels' helper, through `sltsearch.compat.spikingjelly`) for its built-in surrogates. Only the charged
potential ``h`` is saved for backward. PLIF (`ParametricLIFNode`, learned 1/tau = sigmoid(w)) takes the same
path; the gradient of w rebuilds v[t-1] from h and the spikes in one vectorised pass. The nodes subclass
spikingjelly's, so ``functional.reset_net``, monitors and op counters treat them as the usual nodes.

Elsewhere (CUDA, other dtypes, ``store_v_seq``, a surrogate spikingjelly has no id for) they defer to
spikingjelly's own implementation. On CUDA they call its fused kernels (Triton) with the potential in FP32:
those kernels take FP16 inputs under autocast but only an FP32 potential, and spikingjelly's node casts the
potential to the input's dtype, so under autocast every step fell back to its per-step torch loop (a VGG-16
training step on an H200: 25.4 ms that way, 18.6 ms with the kernels; results/benchmarks/gpu.md).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import neuron

from sltsearch.compat.spikingjelly import ATAN_ID, reduced_precision, surrogate_gradient, surrogate_spec


class _FusedMultiStep(torch.autograd.Function):
    """Multi-step leaky integrate-and-fire over x_seq [T, ...] from the initial potential v0.

    Charge: ``h[t] = decay * v[t-1] + in_scale * x[t] + bias``; fire: ``s[t] = h[t] >= threshold``;
    reset: hard ``v[t] = v_reset`` where fired, soft ``v[t] = h[t] - threshold * s[t]``.
    Returns (spikes [T, ...], v[T-1]). For PLIF, ``w`` is the learned parameter with k = sigmoid(w) = 1/tau
    (decay = 1 - k, and in_scale = k when the input decays, bias = k * v_reset); it gets its gradient.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x_seq: torch.Tensor,
        v0: torch.Tensor | None,
        v0_const: float,
        w: torch.Tensor | None,
        decay_input: bool,
        decay: float,
        in_scale: float,
        bias: float,
        threshold: float,
        v_reset: float | None,
        detach_reset: bool,
        surrogate: tuple[int, float],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h_seq = x_seq.mul(in_scale) if in_scale != 1.0 else x_seq.clone(memory_format=torch.contiguous_format)
        if bias:
            h_seq.add_(bias)
        spikes = torch.empty_like(h_seq)
        v = v0
        for t in range(h_seq.shape[0]):
            h = h_seq[t]
            if v is not None:
                h.add_(v, alpha=decay)
            elif v0_const:
                h.add_(decay * v0_const)
            # comparisons straight into a float tensor: several times faster on CPU than bool results
            s = torch.ge(h, threshold, out=spikes[t])
            if v_reset is None:
                v = torch.add(h, s, alpha=-threshold)
            elif v_reset == 0.0:
                v = torch.addcmul(h, s, h, value=-1.0)
            else:
                v = torch.addcmul(h, s, h - v_reset, value=-1.0)
        ctx.save_for_backward(h_seq, v0, w)
        ctx.params = (v0_const, decay_input, decay, in_scale, threshold, v_reset, detach_reset, surrogate)
        return spikes, v

    @staticmethod
    def backward(ctx: Any, grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None) -> tuple[Any, ...]:
        h_seq, v0, w = ctx.saved_tensors
        v0_const, decay_input, decay, in_scale, threshold, v_reset, detach_reset, (sid, alpha) = ctx.params
        # sg = scale * sg_unit; the recurrence is linear, so `scale` is applied once at the end
        if sid == ATAN_ID:  # the default: (alpha / 2) / (1 + (pi / 2 * alpha * (h - threshold))^2)
            sg = torch.sub(h_seq, threshold).square_().mul_((math.pi / 2 * alpha) ** 2).add_(1.0).reciprocal_()
            scale = alpha / 2
        else:
            sg, scale = surrogate_gradient(h_seq - threshold, alpha, sid), 1.0
        # dv[t]/dh[t] through the reset: None means identically 1
        dv_dh: torch.Tensor | None
        if v_reset is not None:
            dv_dh = torch.lt(h_seq, threshold, out=torch.empty_like(h_seq))
            if not detach_reset:
                dv_dh.addcmul_(v_reset - h_seq, sg, value=scale)
        elif detach_reset:
            dv_dh = None
        else:
            dv_dh = torch.mul(sg, -threshold * scale).add_(1.0)
        gh = sg.mul_(grad_spikes) if grad_spikes is not None else torch.zeros_like(h_seq)
        if grad_v is not None:
            gh[-1].add_(grad_v * (dv_dh[-1] if dv_dh is not None else 1.0), alpha=1.0 / scale)
        if dv_dh is not None:
            carry = dv_dh.mul_(decay)
            for t in range(gh.shape[0] - 2, -1, -1):
                gh[t].addcmul_(gh[t + 1], carry[t])
        else:
            for t in range(gh.shape[0] - 2, -1, -1):
                gh[t].add_(gh[t + 1], alpha=decay)
        grad_w = None
        if ctx.needs_input_grad[3]:
            grad_w = _plif_grad_w(gh, scale, h_seq, v0, v0_const, w, decay_input, threshold, v_reset)
        grad_x = gh.mul_(scale * in_scale) if scale * in_scale != 1.0 else gh
        grad_v0 = grad_x[0] * (decay / in_scale) if ctx.needs_input_grad[1] else None
        return grad_x, grad_v0, None, grad_w, None, None, None, None, None, None, None, None


def _plif_grad_w(
    gh_unit: torch.Tensor,
    scale: float,
    h_seq: torch.Tensor,
    v0: torch.Tensor | None,
    v0_const: float,
    w: torch.Tensor,
    decay_input: bool,
    threshold: float,
    v_reset: float | None,
) -> torch.Tensor:
    """dL/dw for PLIF: sum_t dL/dh[t] * dh[t]/dk times dk/dw = k (1 - k), with v[t-1] rebuilt from h and s.

    decay_input: h = v + k (x - v + v_r), so dh/dk = (h - v_prev) / k; otherwise h = v - k (v - v_r) + x,
    so dh/dk = v_r - v_prev.
    """
    k = torch.sigmoid(w.detach()).item()
    fired = torch.ge(h_seq, threshold, out=torch.empty_like(h_seq))
    if v_reset is None:
        v_seq = torch.add(h_seq, fired, alpha=-threshold)
    else:
        v_seq = torch.addcmul(h_seq, fired, h_seq - v_reset, value=-1.0)
    v_prev = torch.empty_like(h_seq)
    v_prev[1:] = v_seq[:-1]
    if v0 is not None:
        v_prev[0] = v0
    else:
        v_prev[0] = v0_const
    reset_value = 0.0 if v_reset is None else v_reset
    dh_dk = h_seq.sub(v_prev).div_(k) if decay_input else v_prev.neg_().add_(reset_value)
    grad_k = torch.dot(gh_unit.reshape(-1), dh_dk.reshape(-1)) * scale
    return (grad_k * (k * (1.0 - k))).to(w.dtype).reshape(w.shape)


def fused_multi_step(
    x_seq: torch.Tensor,
    v0: torch.Tensor | float,
    *,
    tau: float | None,
    decay_input: bool,
    threshold: float,
    v_reset: float | None,
    detach_reset: bool,
    surrogate: tuple[int, float],
    w: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LIF (``tau``), IF (``tau=None``) or PLIF (``w``, 1/tau = sigmoid(w)) over [T, ...]; same equations as
    spikingjelly's nodes."""
    reset_value = 0.0 if v_reset is None else v_reset
    if w is not None:
        tau = 1.0 / torch.sigmoid(w.detach()).item()
    if tau is None:
        decay, in_scale, bias = 1.0, 1.0, 0.0
    elif decay_input:
        # h = v + (x - (v - v_r)) / tau
        decay, in_scale, bias = 1.0 - 1.0 / tau, 1.0 / tau, reset_value / tau
    else:
        # h = v - (v - v_r) / tau + x
        decay, in_scale, bias = 1.0 - 1.0 / tau, 1.0, reset_value / tau
    # a node's state starts as a Python float (spikingjelly's reset value): no tensor is materialised for it
    v0_tensor, v0_const = (v0, 0.0) if isinstance(v0, torch.Tensor) else (None, float(v0))
    return _FusedMultiStep.apply(
        x_seq, v0_tensor, v0_const, w, decay_input, decay, in_scale, bias, threshold, v_reset, detach_reset, surrogate
    )


def _fusable(node: neuron.BaseNode, x_seq: torch.Tensor) -> tuple[int, float] | None:
    """The surrogate (id, alpha) when the fused CPU path applies to this call, else None."""
    if x_seq.device.type != "cpu" or x_seq.dtype not in (torch.float32, torch.float64):
        return None
    if node.store_v_seq or reduced_precision(node):
        return None
    v = node.v
    if isinstance(v, torch.Tensor) and (v.shape != x_seq.shape[1:] or v.dtype != x_seq.dtype):
        return None
    return surrogate_spec(node.surrogate_function)


def _float32_state(node: Any, x_seq: torch.Tensor) -> torch.Tensor:
    """The node's membrane potential as an FP32 tensor of one time step's shape (its reset value at start)."""
    v = node.v
    if isinstance(v, torch.Tensor) and v.shape == x_seq.shape[1:]:
        return v.float()
    start = float(v) if not isinstance(v, torch.Tensor) else (node.v_reset if node.v_reset is not None else 0.0)
    return torch.full(x_seq.shape[1:], start, dtype=torch.float32, device=x_seq.device)


class _FusedMultiStepNode:
    """The fused multi-step forward shared by the nodes below; each names its dynamics in `_dynamics`."""

    def _dynamics(self) -> dict[str, Any]:
        """``tau`` (None for IF), ``decay_input`` and, for PLIF, ``w``: the node-specific arguments."""
        raise NotImplementedError

    def _kernel(self, x_seq: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """spikingjelly's own multi-step function for this neuron: (spikes, last potential)."""
        raise NotImplementedError

    def multi_step_forward(self, x_seq: torch.Tensor, *args: torch.Tensor, **kwargs: object) -> torch.Tensor:
        node: Any = self
        dynamics = self._dynamics()
        surrogate = _fusable(node, x_seq) if not args else None
        w = dynamics.get("w")
        if surrogate is None or (w is not None and w.dtype != x_seq.dtype):
            if x_seq.is_cuda and not args and not node.store_v_seq and not reduced_precision(node):
                # spikingjelly's fused CUDA kernels (Triton) take FP16 / BF16 inputs but only an FP32 potential;
                # its node casts the potential to the input's dtype, so under autocast every step fell back to its
                # per-step torch reference. The state is kept in FP32 here (more exact, too).
                spikes, node.v = self._kernel(x_seq, _float32_state(node, x_seq))
                return spikes
            return super().multi_step_forward(x_seq, *args, **kwargs)  # type: ignore[misc]
        spikes, v = fused_multi_step(
            x_seq,
            node.v,
            threshold=node.v_threshold,
            v_reset=node.v_reset,
            detach_reset=node.detach_reset,
            surrogate=surrogate,
            **dynamics,
        )
        node.v = v  # spikingjelly's MemoryModule keeps it among the node's memories
        return spikes


class FusedLIFNode(_FusedMultiStepNode, neuron.LIFNode):
    """spikingjelly's `LIFNode` with the fused CPU multi-step path (see the module docstring)."""

    def _dynamics(self) -> dict[str, Any]:
        return {"tau": self.tau, "decay_input": self.decay_input}

    def _kernel(self, x_seq: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes, v, _ = sj_functional.lif_multi_step(
            x_seq, v, self.tau, self.decay_input, self.v_threshold, self.v_reset, self.surrogate_function,
            self.detach_reset,
        )
        return spikes, v


class FusedIFNode(_FusedMultiStepNode, neuron.IFNode):
    """spikingjelly's `IFNode` with the fused CPU multi-step path (see the module docstring)."""

    def _dynamics(self) -> dict[str, Any]:
        return {"tau": None, "decay_input": True}

    def _kernel(self, x_seq: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes, v, _ = sj_functional.if_multi_step(
            x_seq, v, self.v_threshold, self.v_reset, self.surrogate_function, self.detach_reset
        )
        return spikes, v


class FusedParametricLIFNode(_FusedMultiStepNode, neuron.ParametricLIFNode):
    """spikingjelly's `ParametricLIFNode` (learned tau) with the fused CPU multi-step path."""

    def _dynamics(self) -> dict[str, Any]:
        return {"tau": None, "decay_input": self.decay_input, "w": self.w}

    def _kernel(self, x_seq: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes, v, _ = sj_functional.plif_multi_step(
            x_seq, v, self.w, self.decay_input, self.v_threshold, self.v_reset, self.surrogate_function,
            self.detach_reset,
        )
        return spikes, v
