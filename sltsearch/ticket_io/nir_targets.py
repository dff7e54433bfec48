"""What each NIR consumer reads: the conventions a ticket's graph is written in, one set per target.

Read from the consumers' own import code (snnTorch 1.0.0 ``snntorch/import_nir.py``, Sinabs 3.1.3
``sinabs/nir.py``, Rockpool 3.1.0 ``rockpool/nn/modules/torch/nir.py``, all over nir 1.0.4 and nirtorch 2.0.2),
not guessed. Where they disagree a graph is written per target; `sltsearch.ticket_io.nir_export` builds it.

* snnTorch: nodes Conv2d, AvgPool2d, Flatten, Affine, LIF (no SumPool, no Conv1d, no Scale, no Threshold).
  Its LIF is ``mem = beta * mem + input`` with ``beta = 1 - dt / tau`` (dt fixed at 1e-4 s) and reset to
  zero; an input gain ``r * dt / tau`` other than 1 is moved into its threshold, so the graph writes
  ``r = tau / dt`` and folds the gain into the weights instead (the threshold stays the ticket's). Neuron
  parameters per neuron, as the NIR reference types them. Its nir.IF import is a leaky neuron (beta 0.9).
* Sinabs: nodes Conv2d, SumPool2d, Flatten, Affine, LIF (no AvgPool2d). Its LIF is
  ``v = exp(-1 / tau) * v + input`` with tau counted in time steps, reset by subtraction, several spikes
  per step when v reaches a multiple of the threshold (MultiSpike), which sltsearch's neuron type
  ``lif_multi`` computes (`sltsearch.models.multispike`). The graph keeps the weights and writes
  the threshold times tau (the membrane scaled by tau, so the input needs no gain); parameters must be one value per
  channel (shape [C, 1, 1]): it tests them with Python's ``any()``, which fails on per-neuron arrays.
* Rockpool: Linear / Affine and neurons only. Its nir.LIF import reads ``tau_mem``, a field nir.LIF does
  not have, and its CubaLIF import is a current-based neuron with multi-spike subtractive reset, so no
  spiking neuron sltsearch trains imports; only networks without spiking neurons do.
* ResNet shortcuts run in none of them: snnTorch imports through nirtorch 2.0.2's ``nir_to_torch``, which
  passes a node's several inputs as several arguments instead of summing them; Sinabs and Rockpool import
  through ``nirtorch.load``, which sums them but runs the nodes depth-first, so a block's neuron runs before
  the conv on its shortcut (and reads that conv's output of the previous step).
"""

from __future__ import annotations

from dataclasses import dataclass

DT_S = 1e-4  # snnTorch's fixed step (seconds) when it reads nir.LIF; spikingjelly's NIR default too


@dataclass(frozen=True)
class Target:
    """One consumer's conventions (see the module docstring)."""

    name: str
    consumer: str
    pool: str | None  # the pooling node it reads: "avg" (AvgPool2d), "sum" (SumPool2d) or None
    conv: bool  # reads Conv2d (1-D convolutions are written as Conv2d over a [C, 1, L] map)
    reset: str | None  # what its LIF does on a spike: "zero" or "subtract"; None: it reads no spiking neuron
    multi_spike: bool  # its LIF fires floor(v / threshold) spikes in a step, not at most one
    no_neuron_reason: str = ""
    no_branch_reason: str = ""  # why a ResNet shortcut (two inputs into one neuron) does not run there
    exact: str = ""  # one line: where its simulation can differ from the ticket's


TARGETS: dict[str, Target] = {
    "snntorch": Target(
        "snntorch",
        "snnTorch 1.0.0",
        pool="avg",
        conv=True,
        reset="zero",
        multi_spike=False,
        no_branch_reason="nirtorch 2.0's nir_to_torch, through which it imports, passes a node's two inputs as two "
        "arguments instead of summing them",
        exact="same arithmetic up to float rounding (the BatchNorm and 1/tau folded into the weights)",
    ),
    "sinabs": Target(
        "sinabs",
        "Sinabs 3.1.3",
        pool="sum",
        conv=True,
        reset="subtract",
        multi_spike=True,
        no_branch_reason="nirtorch.load, through which it imports, runs the nodes depth-first, so a block's neuron "
        "runs before its shortcut's conv and reads that conv's output of the previous step",
        exact="same arithmetic up to float rounding (exp(-1/tau) for 1 - 1/tau, the threshold times tau)",
    ),
    "rockpool": Target(
        "rockpool",
        "Rockpool 3.1.0",
        pool=None,
        conv=False,
        reset=None,
        multi_spike=False,
        no_branch_reason="it imports no convolution",
        no_neuron_reason="its nir.LIF import reads a field nir.LIF does not have (tau_mem) and its CubaLIF is a "
        "current-based neuron with multi-spike subtractive reset, so no sltsearch neuron imports",
        exact="exact up to float rounding (no spiking neurons)",
    ),
}
DEFAULT_TARGET = "snntorch"  # the graph closest to the NIR reference: per-neuron parameters, time in seconds
# what each target needs from a ticket, said once for the refusals: the bundled space that trains such tickets
DEPLOYABLE_SPACE = {"snntorch": "deployable", "sinabs": "deployable_sinabs"}


def target_rules(name: str | None) -> Target:
    """The target named by ``--target`` (default `DEFAULT_TARGET`); a one-line error for another name."""
    from sltsearch.errors import UserError

    key = DEFAULT_TARGET if name is None else name
    if key not in TARGETS:
        raise UserError(f"--target: '{name}' is not one of {', '.join(TARGETS)}")
    return TARGETS[key]
