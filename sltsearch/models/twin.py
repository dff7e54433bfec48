"""The ANN twin of a spiking network (``model.neuron.type: relu``): the same layers, ReLU for every neuron.

Why: the paper's two "sparse rewards" compare spiking lottery tickets with the lottery tickets of the same
network as an ordinary ANN. The twin is built by the same family builder with `ReLUActivation` where the
spiking network has a neuron (built-in families and users' builders that take ``make_neuron=``), and any
spikingjelly neuron a builder makes on its own is swapped for one afterwards (`replace_neurons`), so a user's
network has a twin whenever its neurons are registered submodules. The twin runs once per sample: the
encoder hands the body a sequence of length 1 (direct input), so the multi-step layers and the mean over
time are the identity, and ``model.time_steps`` neither multiplies its cost nor enters its stage keys.
"""

from __future__ import annotations

from spikingjelly.activation_based.neuron import BaseNode
from torch import nn


class ReLUActivation(nn.ReLU):
    """The twin's activation in place of a spiking neuron.

    Its own class so that the energy counter finds it (its output density is the twin's ``firing_rate``) and
    never charges it as a neuron update, and so that a twin is recognisable in any module tree.
    """

    def __init__(self) -> None:
        super().__init__(inplace=False)


def replace_neurons(module: nn.Module) -> int:
    """Swap every spikingjelly neuron under ``module`` (registered submodules) for a `ReLUActivation`, in place.

    Returns how many were swapped. ``module`` itself is never replaced (a bare neuron is no network).
    """
    swapped = 0
    for name, child in list(module.named_children()):
        if isinstance(child, BaseNode):
            setattr(module, name, ReLUActivation())
            swapped += 1
        else:
            swapped += replace_neurons(child)
    return swapped


def has_activations(module: nn.Module) -> bool:
    """True when ``module`` holds at least one `ReLUActivation` (a twin has some, or nothing was replaced)."""
    return any(isinstance(m, ReLUActivation) for m in module.modules())


__all__ = ["ReLUActivation", "has_activations", "replace_neurons"]
