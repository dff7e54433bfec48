"""What a measurement yields: per-layer counts (`LayerCount`), the model's `EnergyReport`, and the storage bits
of a layer's weights (`layer_storage`: dense, CSR-like sparse or 1-bit binarized, whichever is smaller).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

VALUE_BITS = 32  # fp32 weights
BINARY_VALUE_BITS = 1
ROW_POINTER_BITS = 32


@dataclass
class LayerCount:
    """Per-sample counts of one layer (Conv/Linear, SpikeMatmul or neuron), summed over time steps."""

    name: str
    type: str
    input_kind: str = "spike"  # spike | real | integer | AxB (matmul operands) | - (neurons)
    binary_weights: bool = False
    once: bool = False  # encoding layer counted once instead of T times (first_layer: once applied)
    firing_rate: float = 0.0  # synaptic layers: fraction of non-zero inputs; neurons: output spike rate
    # fraction of input positions that cost ops under the counting rule (1 for real inputs with real_inputs:
    # all, |x| mean for ac_weighted integers, else the non-zero fraction); neurons: output spike rate
    op_rate: float = 0.0
    dense_ops: float = 0.0  # every synapse / pair that exists (no padding taps), every step, no sparsity
    ops: float = 0.0  # counted exactly (= macs + acs + binary_ops, or neuron updates)
    approx_ops: float = 0.0  # dense ops x op rate x weight density (the usual approximation)
    macs: float = 0.0
    acs: float = 0.0
    binary_ops: float = 0.0
    neuron_updates: float = 0.0
    params: int = 0
    nonzero_params: int = 0
    storage_bits: int = 0
    compute_pj: float = 0.0
    memory_pj: float = 0.0
    energy_pj: float = 0.0
    _in_nonzero: float = field(default=0.0, repr=False)
    _in_abs: float = field(default=0.0, repr=False)
    _in_total: float = field(default=0.0, repr=False)
    # per-measurement accumulators: ops under each operand rule, and whether every batch was binary/integer
    _ops_nz: float = field(default=0.0, repr=False)  # operand 1[x!=0]
    _ops_abs: float = field(default=0.0, repr=False)  # operand |x|
    _ops_all: float = field(default=0.0, repr=False)  # operand 1 (every position)
    _ops_abs_b: float = field(default=0.0, repr=False)  # matmul: |b| for the second operand
    _binary: bool = field(default=True, repr=False)
    _integer: bool = field(default=True, repr=False)
    _binary_b: bool = field(default=True, repr=False)
    _integer_b: bool = field(default=True, repr=False)
    _repeated: bool = field(default=True, repr=False)  # identical at every time step in every batch
    _seen: bool = field(default=False, repr=False)
    _in_bytes_step: float = field(default=0.0, repr=False)
    _out_bytes_step: float = field(default=0.0, repr=False)
    _out_numel: float = field(default=0.0, repr=False)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


@dataclass
class EnergyReport:
    """Totals and per-layer counts for one model on ``samples`` evaluation samples (per-sample values)."""

    layers: list[LayerCount]
    macs: float
    acs: float
    binary_ops: float
    neuron_updates: float
    energy_uj: float
    compute_uj: float
    memory_uj: float
    firing_rate: float
    samples: int
    time_steps: int
    params: int
    nonzero_params: int
    storage_bits: int
    dense_storage_bits: int
    model: str
    e_mac_pj: float
    e_ac_pj: float
    e_neuron_pj: float
    # the encoding layer (first weighted layer to run): where direct encoding's real-valued MACs go
    encoding_layer: str | None = None
    encoding_energy_uj: float = 0.0
    first_layer_once: bool = False  # its count was divided by T (first_layer: once applied)
    encoder: str | None = None  # the model's encoder kind, when it names one
    real_inputs: str = "all"
    network: str = "snn"  # snn | ann (the ANN twin: every synaptic op a MAC, firing_rate = activation density)

    def table(self) -> list[dict[str, Any]]:
        total = sum(layer.energy_pj for layer in self.layers) or 1.0
        return [{**layer.public(), "energy_share": layer.energy_pj / total} for layer in self.layers]

    def totals(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "layers"}


def layer_storage(module: nn.Module) -> tuple[int, int, int, int]:
    """(weights, non-zero weights, storage bits, dense storage bits) of one Conv/Linear weight.

    Dense: 32 bits per weight (binarized: 1 bit, 2 bits when pruned: sign + keep bit). Sparse, CSR-like:
    per non-zero weight its value (32 bits, binarized 1) plus a column index of ceil(log2(fan_in)) bits,
    plus one 32-bit row pointer per output row and one more. Binarized layers add one 32-bit scale per
    output row. The cheaper of the two formats is stored.
    """
    w = module.weight.detach()
    rows, fan_in = w.shape[0], w[0].numel()
    n, nnz = w.numel(), int((w != 0).sum())
    binary = bool(getattr(module, "sltsearch_binary", False))
    value_bits = BINARY_VALUE_BITS if binary else VALUE_BITS
    dense = n * VALUE_BITS
    dense_fmt = n * (value_bits + (1 if binary and nnz < n else 0))
    index_bits = max(1, math.ceil(math.log2(fan_in))) if fan_in > 1 else 1
    sparse = nnz * (value_bits + index_bits) + (rows + 1) * ROW_POINTER_BITS
    scale = rows * VALUE_BITS if binary else 0
    return n, nnz, min(dense_fmt, sparse) + scale, dense
