"""The memory-aware cost model (``objective.energy.model: memory``): compute energy plus SRAM traffic.

Built on spikingjelly's Lemaire et al. (2022) analytical model (`op_counter.analytical_energy`): its
SRAM cost per byte, interpolated from the memory's capacity (`LemaireEnergyCostConfig.memory_cost_pj`:
0 -> 0, 8 KiB -> 2.5 pJ/B, 32 KiB -> 5 pJ/B, 1 MiB -> 25 pJ/B by default), and its access pattern, but
fed with sltsearch's exact counts, which skip pruned weights (spikingjelly's own estimate charges every
weight of a spike's fan-out, pruned or not). Per layer, per sample, 32-bit words:

* weight reads: one per counted op (MAC, AC or binary op; a binarized weight is 1 bit), from a memory the
  size of the layer's stored weights (``storage_bits``);
* input reads: one per non-zero input for spike / integer inputs, from a FIFO of 1000 words (Lemaire's
  setting); one per input element for real inputs, from a memory the size of one step's input;
* membrane potential: one read and one write per AC / binary op (event-driven accumulation) and one
  write per output for MAC layers, from a memory the size of one step's output;
* neurons: one potential read and write per neuron per step, and one word written per output spike
  (FIFO). Neuron *compute* is only counted with ``count_neuron_updates``.

The compute part (MACs x E_MAC + ACs x E_AC) is the same as in the ``mac_ac`` model.
"""

from __future__ import annotations

from typing import Any

from spikingjelly.activation_based.neuron import BaseNode
from spikingjelly.activation_based.op_counter.analytical_energy import LemaireEnergyCostConfig
from torch import nn

WORD_BYTES = 4.0
FIFO_BYTES = 1000 * WORD_BYTES


def cost_config(breakpoints: Any = None) -> LemaireEnergyCostConfig:
    if breakpoints is None:
        return LemaireEnergyCostConfig()
    return LemaireEnergyCostConfig(memory_breakpoints=tuple((float(x), float(y)) for x, y in breakpoints))


def memory_cost(c: Any, module: nn.Module, breakpoints: Any, samples: int) -> float:
    """SRAM access energy (pJ per sample) of one counted layer ``c`` (a `LayerCount`)."""
    cost = cost_config(breakpoints)
    per_byte = cost.memory_cost_pj
    n = max(samples, 1)
    if isinstance(module, BaseNode):
        updates = c._in_total / n
        spikes = c._in_nonzero / n
        potential = 2 * updates * WORD_BYTES * per_byte(c._out_bytes_step)
        return potential + spikes * WORD_BYTES * per_byte(FIFO_BYTES)
    binary = bool(getattr(module, "sltsearch_binary", False))
    ops = c.macs + c.acs + c.binary_ops
    weight_bytes = WORD_BYTES / 32 if binary else WORD_BYTES
    capacity = c.storage_bits / 8 if c.storage_bits else c._in_bytes_step
    energy = ops * weight_bytes * per_byte(capacity)
    if c.input_kind == "real":
        energy += c._in_total / n * WORD_BYTES * per_byte(c._in_bytes_step)
    else:
        energy += c._in_nonzero / n * WORD_BYTES * per_byte(FIFO_BYTES)
    event_ops = c.acs + c.binary_ops
    energy += 2 * event_ops * WORD_BYTES * per_byte(c._out_bytes_step)
    if c.macs:
        energy += c._out_numel * WORD_BYTES * per_byte(c._out_bytes_step)
    return energy
