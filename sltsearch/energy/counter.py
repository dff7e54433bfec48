"""Forward hooks that count operations, spikes and storage per layer while a model runs on evaluation data.

Counting rules (per inference sample, summed over the T time steps; see ``sltsearch.energy`` and
docs/energy.md for the full statement):

* Conv / Linear, weight ``w`` and input ``x`` of kind

  - ``spike`` (every value in {0, 1}): ACs = conv(1[x!=0], 1[w!=0]).sum() — exact synaptic operations,
    the NeuroBench way; only surviving (non-zero) weights and non-zero spikes count.
  - ``real`` (the encoding layer under direct / real-valued input, or any non-integer input):
    MACs = conv(1, 1[w!=0]).sum() — every input position (dense hardware does not skip zeros) times
    the surviving weights.
  - ``integer`` (integer-valued but not binary: spike counts after residual adds, as in Spikformer):
    ``nonbinary: mac`` (default, strict) -> MACs = conv(1[x!=0], 1[w!=0]).sum();
    ``nonbinary: ac_weighted`` -> ACs = conv(|x|, 1[w!=0]).sum() (a value k costs k accumulates).

  A layer with ``sltsearch_binary = True`` (binarized weights) only accumulates: its ops, counted as above,
  go to the ``binary_ops`` column (energy E_AC each), never to MACs / ACs.
* `SpikeMatmul` (a @ b, a: [..., n, k], b: [..., k, m]; spiking self-attention's Q·K^T and (QK^T)·V):
  pairs = (1[a!=0] @ 1[b!=0]).sum() = sum_k (sum_i 1[a_ik!=0]) (sum_j 1[b_kj!=0]).
  If at least one operand is binary each pair is a selected add -> ACs = pairs (zero entries of the
  non-binary operand are skipped like zero weights). If neither is binary each pair needs a multiply ->
  MACs = pairs (``nonbinary: ac_weighted`` with an integer operand: ACs = sum of |integer| over pairs).
* Neuron updates (``count_neuron_updates``): one update per neuron per time step, E_NEURON each
  (default 4.6 pJ = one multiply-add for leak + integrate; threshold compare and reset not counted).
* First layer: with ``first_layer: once`` the encoding layer's ops are divided by T when its input is
  real and identical at every time step (direct encoding: the result can be computed once and reused).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn
from torch.utils.data import DataLoader

from sltsearch.models.ops import SpikeMatmul

_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}
_WEIGHTED = tuple(_CONV) + (nn.Linear,)
VALUE_BITS = 32  # fp32 weights
BINARY_VALUE_BITS = 1
ROW_POINTER_BITS = 32


@dataclass
class LayerCount:
    """Per-sample counts of one layer (Conv/Linear, SpikeMatmul or neuron), summed over time steps."""

    name: str
    type: str
    input_kind: str = "spike"  # spike | real | integer | mixed (changed between batches) | - (neurons)
    binary_weights: bool = False
    firing_rate: float = 0.0  # synaptic layers: fraction of non-zero inputs; neurons: output spike rate
    dense_ops: float = 0.0  # every synapse / pair, every step, no sparsity of any kind
    ops: float = 0.0  # counted exactly (= macs + acs + binary_ops, or neuron updates)
    approx_ops: float = 0.0  # dense ops x input rate x weight density (the usual approximation)
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
    _kinds: set = field(default_factory=set, repr=False)
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

    def table(self) -> list[dict[str, Any]]:
        total = sum(layer.energy_pj for layer in self.layers) or 1.0
        return [{**layer.public(), "energy_share": layer.energy_pj / total} for layer in self.layers]

    def totals(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "layers"}


# ----------------------------------------------------------------------------------------------- kinds


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _is_integer(x: torch.Tensor) -> bool:
    return bool((x == torch.round(x)).all())


def input_kind(x: torch.Tensor, is_input_layer: bool = False) -> str:
    """``spike`` (binary), ``integer`` (spike counts), ``real``; the encoding layer is never ``integer``."""
    if _is_binary(x):
        return "spike"
    if not is_input_layer and x.is_floating_point() and _is_integer(x):
        return "integer"
    if not x.is_floating_point():
        return "integer" if not is_input_layer else "real"
    return "real"


def _operand(x: torch.Tensor, kind: str, nonbinary: str) -> tuple[torch.Tensor, str]:
    """The tensor that multiplies 1[w!=0] in the count, and the op type (mac | ac)."""
    if kind == "spike":
        return (x != 0).to(torch.float32), "ac"
    if kind == "real":
        return torch.ones_like(x, dtype=torch.float32), "mac"
    if nonbinary == "ac_weighted":
        return x.abs().to(torch.float32), "ac"
    return (x != 0).to(torch.float32), "mac"


def _repeated_over_time(x: torch.Tensor, time_steps: int) -> bool:
    if time_steps <= 1 or x.dim() < 2 or x.shape[0] % time_steps:
        return False
    seq = x.reshape(time_steps, -1)
    return bool((seq == seq[:1]).all())


# ----------------------------------------------------------------------------------------------- counts


def _fanout(module: nn.Module, in_shape: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, int]:
    """Per input element, the number of (output, surviving weight) pairs it takes part in; output size.

    ``conv(x, 1[w!=0]).sum() == (x * fanout).sum()`` for any x of that shape: the fan-out map is the
    gradient of the left side with respect to x (the transposed convolution of ones), computed once per
    layer and input shape, so counting costs one multiply per input element instead of a convolution.
    """
    conv = next(f for c, f in _CONV.items() if isinstance(module, c))
    w_nz = (module.weight.detach() != 0).to(torch.float32)
    kw = {"stride": module.stride, "padding": module.padding, "dilation": module.dilation}
    x1 = torch.zeros(1, *in_shape, device=device, requires_grad=True)
    with torch.enable_grad():
        out = conv(x1, w_nz, groups=module.groups, **kw)
        (grad,) = torch.autograd.grad(out.sum(), x1)
    return grad[0].double(), out[0].numel()


def _layer_ops(
    module: nn.Module, x_op: torch.Tensor, cache: dict[Any, Any] | None = None
) -> tuple[float, float, float]:
    """(counted ops, dense ops, output elements) of a Conv/Linear for the operand tensor ``x_op``."""
    weight = module.weight.detach()
    if isinstance(module, nn.Linear):
        x2 = x_op.reshape(-1, x_op.shape[-1])
        ops = float(x2.sum(0, dtype=torch.float64) @ (weight != 0).sum(0).double())
        return ops, float(x2.shape[0] * weight.numel()), float(x2.shape[0] * weight.shape[0])
    spatial = weight.dim() - 2
    x2 = x_op.reshape(-1, *x_op.shape[-(spatial + 1) :])
    key = (id(module), tuple(x2.shape[1:]))
    if cache is None or key not in cache:
        fan = _fanout(module, tuple(x2.shape[1:]), x2.device)
        if cache is not None:
            cache[key] = fan
    else:
        fan = cache[key]
    fanout, out_numel = fan
    ops = float((x2.sum(0, dtype=torch.float64) * fanout).sum())
    rows = x2.shape[0]
    return ops, float(out_numel * weight[0].numel() * rows), float(out_numel * rows)


def _matmul_ops(a: torch.Tensor, b: torch.Tensor, nonbinary: str) -> tuple[float, str, str]:
    """(counted pairs, op type, operand kinds) of ``a @ b``; see the module docstring for the rule."""
    ka, kb = input_kind(a), input_kind(b)
    ia, ib = (a != 0).double(), (b != 0).double()
    if "spike" in (ka, kb):
        optype = "ac"
    elif nonbinary == "ac_weighted" and "integer" in (ka, kb):
        optype = "ac"
        if ka == "integer":
            ia = a.abs().double()
        else:
            ib = b.abs().double()
    else:
        optype = "mac"
    # sum_{i,j} sum_k ia[i,k] ib[k,j] = sum_k (sum_i ia[i,k]) (sum_j ib[k,j]), batched over leading dims
    pairs = float((ia.sum(-2) * ib.sum(-1)).sum())
    kind = ka if ka == kb else f"{ka}x{kb}"
    return pairs, optype, kind


# ----------------------------------------------------------------------------------------------- storage


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


# ----------------------------------------------------------------------------------------------- measure


@torch.no_grad()
def measure_energy(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    constants: Any,
    max_samples: int | None = None,
) -> EnergyReport:
    """Run ``model`` on up to ``max_samples`` samples of ``loader`` and count per-sample operations.

    ``constants`` is an `EnergySpec` (or any object with its fields; missing ones take the defaults).
    Results do not depend on batch size.
    """
    opts = _options(constants)
    model.eval()
    time_steps = int(getattr(model, "time_steps", 1))
    layers: dict[str, nn.Module] = {}
    counts: dict[str, LayerCount] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (*_WEIGHTED, SpikeMatmul, BaseNode)):
            if any(name.startswith(p + ".") for p in layers if isinstance(layers[p], BaseNode)):
                continue  # modules inside a neuron (surrogates) are not layers
            layers[name] = mod
            counts[name] = LayerCount(
                name=name,
                type=type(mod).__name__,
                binary_weights=bool(getattr(mod, "sltsearch_binary", False)),
            )
    first: list[str] = []  # the first weighted layer to run: the encoding layer
    fanouts: dict[Any, Any] = {}  # (layer, input shape) -> fan-out map; weights do not change here
    handles = []

    def add(c: LayerCount, optype: str, ops: float) -> None:
        if c.binary_weights:
            c.binary_ops += ops
        elif optype == "mac":
            c.macs += ops
        else:
            c.acs += ops

    def weighted_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].detach()
            if not first:
                first.append(name)
            is_input = first[0] == name
            kind = input_kind(x, is_input)
            x_op, optype = _operand(x, kind, opts["nonbinary"])
            ops, dense, out_numel = _layer_ops(module, x_op, fanouts)
            once = is_input and kind == "real" and opts["first_layer"] == "once"
            if once and _repeated_over_time(x, time_steps):
                ops, dense, out_numel = ops / time_steps, dense / time_steps, out_numel / time_steps
            c = counts[name]
            add(c, optype, ops)
            c.ops += ops
            c.dense_ops += dense
            c._kinds.add(kind)
            c._in_nonzero += float((x != 0).sum())
            c._in_abs += float(x.abs().sum())
            c._in_total += x.numel()
            c._in_bytes_step = 4.0 * x.numel() / max(len_batch[0], 1) / time_steps
            c._out_bytes_step = 4.0 * output.numel() / max(len_batch[0], 1) / time_steps
            c._out_numel += out_numel

        return hook

    def matmul_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            a, b = inputs[0].detach(), inputs[1].detach()
            pairs, optype, kind = _matmul_ops(a, b, opts["nonbinary"])
            c = counts[name]
            add(c, optype, pairs)
            c.ops += pairs
            c.dense_ops += float(output.numel() * a.shape[-1])
            c._kinds.add(kind)
            c._in_nonzero += float((a != 0).sum() + (b != 0).sum())
            c._in_total += a.numel() + b.numel()
            c._in_bytes_step = 4.0 * b.numel() / max(len_batch[0], 1) / time_steps
            c._out_bytes_step = 4.0 * output.numel() / max(len_batch[0], 1) / time_steps
            c._out_numel += output.numel()

        return hook

    def neuron_hook(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            c = counts[name]
            c._in_nonzero += float((out != 0).sum())
            c._in_total += out.numel()
            c.neuron_updates += out.numel()
            c._out_bytes_step = 4.0 * out.numel() / max(len_batch[0], 1) / time_steps
            c._kinds.add("-")

        return hook

    len_batch = [0]
    for name, mod in layers.items():
        if isinstance(mod, BaseNode):
            handles.append(mod.register_forward_hook(neuron_hook(name)))
        elif isinstance(mod, SpikeMatmul):
            handles.append(mod.register_forward_hook(matmul_hook(name)))
        else:
            handles.append(mod.register_forward_hook(weighted_hook(name)))
    samples = 0
    try:
        for x, _ in loader:
            if max_samples is not None and samples >= max_samples:
                break
            if max_samples is not None:
                x = x[: max_samples - samples]
            len_batch[0] = len(x)
            functional.reset_net(model)  # every batch starts from a resting membrane
            model(x.to(device))
            functional.reset_net(model)
            samples += len(x)
    finally:
        for h in handles:
            h.remove()
    return _finish(model, layers, counts, samples, time_steps, opts)


_DEFAULTS = {
    "e_mac_pj": 4.6,
    "e_ac_pj": 0.9,
    "e_neuron_pj": 4.6,
    "first_layer": "per_step",
    "nonbinary": "mac",
    "count_neuron_updates": False,
    "model": "mac_ac",
    "memory_breakpoints": None,
}


def _options(constants: Any) -> dict[str, Any]:
    return {k: getattr(constants, k, d) if constants is not None else d for k, d in _DEFAULTS.items()}


def _finish(
    model: nn.Module,
    layers: dict[str, nn.Module],
    counts: dict[str, LayerCount],
    samples: int,
    time_steps: int,
    opts: dict[str, Any],
) -> EnergyReport:
    from sltsearch.energy.memory import memory_cost

    n = max(samples, 1)
    e_mac, e_ac, e_neuron = opts["e_mac_pj"], opts["e_ac_pj"], opts["e_neuron_pj"]
    spikes = neurons = 0.0
    out: list[LayerCount] = []
    for name, c in counts.items():
        mod = layers[name]
        if isinstance(mod, BaseNode) and c._in_total == 0:
            continue
        if not isinstance(mod, BaseNode) and c._in_total == 0 and not isinstance(mod, _WEIGHTED):
            continue
        for attr in ("ops", "dense_ops", "macs", "acs", "binary_ops", "neuron_updates", "_out_numel"):
            setattr(c, attr, getattr(c, attr) / n)
        c.firing_rate = c._in_nonzero / c._in_total if c._in_total else 0.0
        c.input_kind = c._kinds.pop() if len(c._kinds) == 1 else ("mixed" if c._kinds else "-")
        if isinstance(mod, BaseNode):
            spikes += c._in_nonzero
            neurons += c._in_total
            if not opts["count_neuron_updates"]:
                c.neuron_updates = 0.0
            c.ops = c.neuron_updates
            c.compute_pj = c.neuron_updates * e_neuron
        else:
            if isinstance(mod, _WEIGHTED):
                c.params, c.nonzero_params, c.storage_bits, _ = layer_storage(mod)
                density = c.nonzero_params / c.params if c.params else 0.0
            else:
                density = 1.0
            if c.input_kind == "real":
                rate = 1.0
            elif c.input_kind == "integer" and opts["nonbinary"] == "ac_weighted" and c._in_total:
                rate = c._in_abs / c._in_total
            else:
                rate = c.firing_rate
            c.approx_ops = c.dense_ops * rate * density
            c.compute_pj = c.macs * e_mac + (c.acs + c.binary_ops) * e_ac
        if opts["model"] == "memory":
            c.memory_pj = memory_cost(c, mod, opts["memory_breakpoints"], n)
        c.energy_pj = c.compute_pj + c.memory_pj
        out.append(c)

    params = nonzero = storage = dense_storage = 0
    for mod in model.modules():
        if isinstance(mod, _WEIGHTED):
            p, nz, bits, dense_bits = layer_storage(mod)
            params, nonzero, storage, dense_storage = (
                params + p,
                nonzero + nz,
                storage + bits,
                dense_storage + dense_bits,
            )
    weight_ids = {id(m.weight) for m in model.modules() if isinstance(m, _WEIGHTED)}
    for p in model.parameters():  # biases, BatchNorm affine, embeddings...: dense 32-bit
        if id(p) not in weight_ids:
            params += p.numel()
            nonzero += int((p != 0).sum())
            storage += p.numel() * VALUE_BITS
            dense_storage += p.numel() * VALUE_BITS

    compute = sum(c.compute_pj for c in out)
    memory = sum(c.memory_pj for c in out)
    return EnergyReport(
        layers=out,
        macs=sum(c.macs for c in out),
        acs=sum(c.acs for c in out),
        binary_ops=sum(c.binary_ops for c in out),
        neuron_updates=sum(c.neuron_updates for c in out),
        energy_uj=(compute + memory) * 1e-6,
        compute_uj=compute * 1e-6,
        memory_uj=memory * 1e-6,
        firing_rate=spikes / neurons if neurons else 0.0,
        samples=samples,
        time_steps=time_steps,
        params=params,
        nonzero_params=nonzero,
        storage_bits=storage,
        dense_storage_bits=dense_storage,
        model=opts["model"],
        e_mac_pj=e_mac,
        e_ac_pj=e_ac,
        e_neuron_pj=e_neuron,
    )
