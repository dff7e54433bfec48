"""What sltsearch relies on in spikingjelly's private API (`sltsearch.compat.spikingjelly`)."""

from __future__ import annotations

import math

import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from sltsearch.compat.spikingjelly import ATAN_ID, reduced_precision, surrogate_gradient, surrogate_spec

# the surrogates spikingjelly's kernels know, as sltsearch builds them (sltsearch.models.neurons)
KNOWN = [surrogate.ATan(), surrogate.ATan(alpha=3.0), surrogate.Sigmoid(), surrogate.PiecewiseQuadratic()]


def test_atan_has_the_id_the_fused_kernel_computes_inline() -> None:
    assert surrogate_spec(surrogate.ATan(alpha=3.0)) == (ATAN_ID, 3.0)
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    inline = (3.0 / 2) / (1 + (math.pi / 2 * 3.0 * x) ** 2)  # what fused_neurons computes for ATAN_ID
    torch.testing.assert_close(surrogate_gradient(x, 3.0, ATAN_ID), inline)


@pytest.mark.parametrize("function", KNOWN, ids=lambda f: f"{type(f).__name__}({f.alpha})")
def test_surrogate_gradient_is_the_derivative_of_the_surrogate(function: surrogate.SurrogateFunctionBase) -> None:
    spec = surrogate_spec(function)
    assert spec is not None and spec[1] == float(function.alpha)
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    function(x).sum().backward()
    torch.testing.assert_close(surrogate_gradient(x.detach(), spec[1], spec[0]), x.grad)


def test_a_surrogate_the_kernels_do_not_know_has_no_spec() -> None:
    class Custom(surrogate.ATan):  # not spikingjelly's own class: the fused path defers
        pass

    assert surrogate_spec(Custom()) is None


def test_reduced_precision_reads_the_attribute_spikingjelly_sets() -> None:
    node = neuron.LIFNode(step_mode="m")
    assert "_neuron_precision" in vars(node) and not reduced_precision(node)
    node._neuron_precision = (torch.float16,)  # what spikingjelly's precision converter does
    assert reduced_precision(node)


def test_setting_a_nodes_v_keeps_it_among_its_memories() -> None:
    """The fused path sets ``node.v`` after a multi-step call; a reset must still bring it back."""
    node = neuron.LIFNode(step_mode="m")
    v = torch.ones(3)
    node.v = v
    assert node.v is v and "v" not in vars(node)
    functional.reset_net(node)
    assert node.v == node.v_reset
