"""The fused CPU LIF/IF path must reproduce spikingjelly's nodes exactly: spikes, state and gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate
from torch import nn

from sltsearch.models.fused_neurons import FusedIFNode, FusedLIFNode, FusedParametricLIFNode, _FusedMultiStep
from sltsearch.models.neurons import neuron_factory
from sltsearch.spec import NeuronSpec

CONFIGS = [
    (kind, v_reset, detach, decay_input, sg)
    for kind, v_reset, detach, decay_input, sg in itertools.product(
        ["lif", "if"], [0.0, None, -0.2], [True, False], [True, False], ["atan", "sigmoid", "pq"]
    )
    if kind == "lif" or decay_input
]
SURROGATES = {"atan": surrogate.ATan, "sigmoid": surrogate.Sigmoid, "pq": surrogate.PiecewiseQuadratic}


def _pair(kind: str, v_reset: float | None, detach: bool, decay_input: bool, sg: str):
    kw = {
        "v_reset": v_reset,
        "detach_reset": detach,
        "surrogate_function": SURROGATES[sg](),
        "step_mode": "m",
        "v_threshold": 0.7,
    }
    if kind == "lif":
        return (
            neuron.LIFNode(tau=2.5, decay_input=decay_input, **kw),
            FusedLIFNode(tau=2.5, decay_input=decay_input, **kw),
        )
    return neuron.IFNode(**kw), FusedIFNode(**kw)


def _run_both(ref: nn.Module, fused: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same float64 input through both nodes, backpropagated; returns (x_ref, x_fused, spikes_fused).

    Two calls in one graph, so the carried state (a tensor after the first call) gets a gradient too; the
    loss also reads the final state. The spikes must be identical.
    """
    x = torch.randn(6, 3, 5, dtype=torch.float64) * 1.5
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr = torch.cat([ref(xr[:2]), ref(xr[2:])])
    yf = torch.cat([fused(xf[:2]), fused(xf[2:])])
    w = torch.randn_like(yr)
    ((yr * w).sum() + 0.3 * ref.v.sum()).backward()
    ((yf * w).sum() + 0.3 * fused.v.sum()).backward()
    assert torch.equal(yr, yf)
    return xr, xf, yf


@pytest.mark.parametrize(("kind", "v_reset", "detach", "decay_input", "sg"), CONFIGS)
def test_matches_spikingjelly(kind: str, v_reset: float | None, detach: bool, decay_input: bool, sg: str) -> None:
    torch.manual_seed(0)
    ref, fused = _pair(kind, v_reset, detach, decay_input, sg)
    xr, xf, yf = _run_both(ref, fused)
    assert set(yf.unique().tolist()) <= {0.0, 1.0} and 0 < yf.sum() < yf.numel()
    torch.testing.assert_close(fused.v, ref.v, rtol=0, atol=1e-12)
    assert xf.grad.abs().sum() > 0
    torch.testing.assert_close(xf.grad, xr.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("v_reset", "detach", "decay_input"), list(itertools.product([0.0, None], [True, False], [True, False]))
)
def test_plif_matches_spikingjelly_including_the_tau_gradient(
    v_reset: float | None, detach: bool, decay_input: bool
) -> None:
    torch.manual_seed(0)
    kw = {
        "init_tau": 2.5,
        "decay_input": decay_input,
        "v_reset": v_reset,
        "detach_reset": detach,
        "surrogate_function": surrogate.ATan(),
        "step_mode": "m",
        "v_threshold": 0.7,
    }
    ref = neuron.ParametricLIFNode(**kw).double()
    fused = FusedParametricLIFNode(**kw).double()
    xr, xf, _ = _run_both(ref, fused)
    torch.testing.assert_close(xf.grad, xr.grad, rtol=0, atol=1e-12)
    assert ref.w.grad.abs() > 0
    torch.testing.assert_close(fused.w.grad, ref.w.grad, rtol=1e-10, atol=1e-12)


def test_gradcheck_of_the_fused_function() -> None:
    """Against finite differences, away from the threshold (the surrogate replaces the true derivative there,
    so gradcheck is run on the state path: spikes held fixed, the reset is soft and not detached)."""
    torch.manual_seed(1)
    x = (torch.rand(4, 3, dtype=torch.float64) * 0.5).requires_grad_()
    v0 = (torch.rand(3, dtype=torch.float64) * 0.2).requires_grad_()

    def final_v(x: torch.Tensor, v0: torch.Tensor) -> torch.Tensor:
        # threshold far above: no spike, v follows the linear leak, whose gradient is exact
        return _FusedMultiStep.apply(x, v0, 0.0, None, True, 0.6, 0.4, 0.05, 10.0, None, True, (1, 2.0))[1]

    assert torch.autograd.gradcheck(final_v, (x, v0))


def test_factory_builds_fused_nodes_and_resets_them() -> None:
    lif = neuron_factory(NeuronSpec(type="lif"))()
    if_node = neuron_factory(NeuronSpec(type="if"))()
    plif = neuron_factory(NeuronSpec(type="plif"))()
    assert isinstance(lif, FusedLIFNode) and isinstance(if_node, FusedIFNode)
    assert isinstance(plif, FusedParametricLIFNode)
    lif(torch.ones(2, 3) * 3)
    assert isinstance(lif.v, torch.Tensor)
    functional.reset_net(lif)
    assert lif.v == 0.0


def test_falls_back_where_not_fused() -> None:
    """store_v_seq needs spikingjelly's own path, which still gives the same spikes."""
    ref = neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m", store_v_seq=True)
    fused = FusedLIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m", store_v_seq=True)
    x = torch.randn(5, 4) * 2
    assert torch.equal(ref(x), fused(x))
    assert fused.v_seq is not None and fused.v_seq.shape == (5, 4)


@pytest.mark.parametrize("kind", ["lif", "if", "plif"])
def test_the_cuda_deferral_gives_the_fused_paths_spikes_and_gradients(kind: str) -> None:
    """On CUDA the nodes hand spikingjelly's fused kernels an FP32 potential (`_kernel`); the same call on the
    CPU (spikingjelly's CPU implementation) must give the fused path's spikes, state and input gradients."""
    spec = NeuronSpec(type=kind, v_threshold=0.7, detach_reset=True)
    node = neuron_factory(spec)()
    x = (torch.randn(4, 3, 5) * 1.5).requires_grad_()
    spikes = node(x)
    (spikes.sum() + node.v.sum()).backward()
    grad_fused, v_fused = x.grad.clone(), node.v.detach().clone()
    functional.reset_net(node)
    x.grad = None
    spikes_kernel, v_kernel = node._kernel(x, torch.zeros(3, 5))
    (spikes_kernel.sum() + v_kernel.sum()).backward()
    assert torch.equal(spikes, spikes_kernel)
    assert torch.allclose(v_fused, v_kernel.detach(), atol=1e-6)
    assert torch.allclose(grad_fused, x.grad, atol=1e-5)
