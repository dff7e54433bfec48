"""Forward hooks that count operations, spikes and storage per layer while a model runs on evaluation data.

Counting rules (per inference sample, summed over the T time steps; see ``sltsearch.energy_model`` and
docs/energy.md for the full statement):

* Conv / Linear, weight ``w`` and input ``x`` of kind

  - ``spike`` (every value in {0, 1}): ACs = conv(1[x!=0], 1[w!=0]).sum() — exact synaptic operations,
    the NeuroBench way; only surviving (non-zero) weights and non-zero spikes count.
  - ``real`` (the encoding layer under direct / learned encoding, or any non-integer input):
    ``real_inputs: all`` (default) -> MACs = conv(1, 1[w!=0]).sum() — every input position (dense
    hardware does not skip zeros) times the surviving weights, zero-padding taps excluded;
    ``real_inputs: nonzero`` -> MACs = conv(1[x!=0], 1[w!=0]).sum() (NeuroBench's effective MACs).
  - ``integer`` (integer-valued but not binary: spike counts after residual adds, as in Spikformer):
    ``nonbinary: mac`` (default, strict) -> MACs = conv(1[x!=0], 1[w!=0]).sum();
    ``nonbinary: ac_weighted`` -> ACs = conv(|x|, 1[w!=0]).sum() (a value k costs k accumulates).

  A layer's kind is decided once per measurement, from all its inputs over every measured batch (a layer
  is ``spike`` only if every batch was binary, ``integer`` only if every batch was integer-valued), and
  the encoding layer's kind from its role when the model names its encoder (``direct`` / ``learned``:
  real), so per-sample counts never depend on how the samples are batched.
  ``dense_ops`` = conv(1, 1): every synapse that exists (zero-padding taps excluded), every step.
  A layer with ``sltsearch_binary = True`` (binarized weights) only accumulates: its ops, counted as above,
  go to the ``binary_ops`` column (energy E_AC each), never to MACs / ACs.
* `SpikeMatmul` (a @ b, a: [..., n, k], b: [..., k, m]; spiking self-attention's Q·K^T and (QK^T)·V):
  pairs = (1[a!=0] @ 1[b!=0]).sum() = sum_k (sum_i 1[a_ik!=0]) (sum_j 1[b_kj!=0]).
  If at least one operand is binary each pair is a selected add -> ACs = pairs (zero entries of the
  non-binary operand are skipped like zero weights). If neither is binary each pair needs a multiply ->
  MACs = pairs (``nonbinary: ac_weighted`` with an integer operand: ACs = sum of |integer| over pairs).
* Neuron updates (``count_neuron_updates``): one update per neuron per time step, E_NEURON each
  (default 4.6 pJ = one multiply-add for leak + integrate; threshold compare and reset not counted).
* ANN twin (``model.network == "ann"``, `sltsearch.models.twin`; T = 1): every synaptic operation is a MAC.
  A Conv/Linear input is ``real`` whatever its values (ReLU outputs), except when every measured input is
  binary and some are non-zero (MultiSp's binary ConvPEP activations: ACs, as in the SNN); binarized weights
  go to ``binary_ops`` as above. Real inputs follow ``real_inputs``: ``all`` (default) = dense MACs, every
  input position times the surviving weights (the usual ANN energy: FLOPs x E_MAC, lowered by pruning only);
  ``nonzero`` = MACs at non-zero activations only (the activation-sparsity variant). An attention product of
  two real operands is MACs at every pair (``all``) or at the non-zero pairs (``nonzero``); softmax is not
  counted. The ReLUs cost nothing (like a threshold compare, never a neuron update) and their output density
  (non-zero outputs / outputs) is the twin's ``firing_rate``.
* First layer: with ``first_layer: once`` the encoding layer's ops are divided by T when its input is
  real and identical at every time step in every batch (direct encoding: the result can be computed once
  and reused). A learned encoder (``model.encoder: learned``) runs its conv once per sample by construction
  (the layer carries ``sltsearch_once = True``), so it is counted once without that assumption.
"""

from __future__ import annotations

from typing import Any

import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.neuron import BaseNode
from torch import nn
from torch.utils.data import DataLoader

from sltsearch.energy_model.counts import VALUE_BITS, EnergyReport, LayerCount, layer_storage
from sltsearch.energy_model.layer_ops import (
    REAL_ENCODERS,
    WEIGHTED,
    is_binary,
    is_integer,
    kind_from,
    layer_ops_all_rules,
    matmul_pairs,
    matmul_rule,
    repeated_over_time,
)
from sltsearch.models.ops import SpikeMatmul
from sltsearch.models.twin import ReLUActivation

# what the counter treats as a network's neurons: spiking nodes, and the ANN twin's ReLUs (density only)
_NEURONS = (BaseNode, ReLUActivation)


# ----------------------------------------------------------------------------------------------- measure


def encoder_kind(model: nn.Module) -> str | None:
    """The model's encoder (``direct``, ``rate``, ``learned``, ``frames``), None when it names none."""
    kind = getattr(getattr(model, "encoder", None), "kind", None)
    return kind if isinstance(kind, str) else None


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
    Per-sample results do not depend on the batch size: every layer's input kind is decided once, over all
    measured batches (the counts under each kind's rule are accumulated side by side and the right one is
    kept at the end), and the encoding layer's from its role when the model names its encoder.
    """
    opts = _options(constants)
    model.eval()
    time_steps = int(getattr(model, "time_steps", 1))
    layers: dict[str, nn.Module] = {}
    counts: dict[str, LayerCount] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (*WEIGHTED, SpikeMatmul, *_NEURONS)):
            if any(name.startswith(p + ".") for p in layers if isinstance(layers[p], _NEURONS)):
                continue  # modules inside a neuron (surrogates) are not layers
            layers[name] = mod
            counts[name] = LayerCount(
                name=name,
                type=type(mod).__name__,
                binary_weights=bool(getattr(mod, "sltsearch_binary", False)),
            )
    first: list[str] = []  # the first weighted layer to run: the encoding layer
    fanouts: dict[Any, Any] = {}  # (layer, input shape) -> fan-out maps; weights do not change here
    handles = []
    len_batch = [0]

    def steps_in(module: nn.Module) -> int:
        # a layer marked sltsearch_once (a learned encoder's conv) runs once per sample, not per step
        return 1 if getattr(module, "sltsearch_once", False) else time_steps

    def weighted_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].detach()
            if not first:
                first.append(name)
            nz, absx, every, dense, out_numel = layer_ops_all_rules(module, x, fanouts)
            c = counts[name]
            c._seen = True
            c._ops_nz += nz
            c._ops_abs += absx
            c._ops_all += every
            c.dense_ops += dense
            c._out_numel += out_numel
            c._binary = c._binary and is_binary(x)
            c._integer = c._integer and is_integer(x)
            if first[0] == name and c._repeated:
                c._repeated = steps_in(module) > 1 and repeated_over_time(x, time_steps)
            c._in_nonzero += float((x != 0).sum())
            c._in_abs += float(x.abs().sum())
            c._in_total += x.numel()
            steps = steps_in(module)
            c._in_bytes_step = 4.0 * x.numel() / max(len_batch[0], 1) / steps
            c._out_bytes_step = 4.0 * output.numel() / max(len_batch[0], 1) / steps

        return hook

    def matmul_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            a, b = inputs[0].detach(), inputs[1].detach()
            nz, abs_a, abs_b = matmul_pairs(a, b)
            c = counts[name]
            c._seen = True
            c._ops_nz += nz
            c._ops_abs += abs_a
            c._ops_abs_b += abs_b
            c._binary = c._binary and is_binary(a)
            c._integer = c._integer and is_integer(a)
            c._binary_b = c._binary_b and is_binary(b)
            c._integer_b = c._integer_b and is_integer(b)
            c.dense_ops += float(output.numel() * a.shape[-1])
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
            c._seen = True
            c._in_nonzero += float((out != 0).sum())
            c._in_total += out.numel()
            c.neuron_updates += out.numel()
            c._out_bytes_step = 4.0 * out.numel() / max(len_batch[0], 1) / time_steps

        return hook

    for name, mod in layers.items():
        if isinstance(mod, _NEURONS):
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
    encoding = first[0] if first else None
    return _finish(model, layers, counts, samples, time_steps, opts, encoding)


_DEFAULTS = {
    "e_mac_pj": 4.6,
    "e_ac_pj": 0.9,
    "e_neuron_pj": 4.6,
    "first_layer": "per_step",
    "nonbinary": "mac",
    "real_inputs": "all",
    "count_neuron_updates": False,
    "model": "mac_ac",
    "memory_breakpoints": None,
}


def _options(constants: Any) -> dict[str, Any]:
    return {k: getattr(constants, k, d) if constants is not None else d for k, d in _DEFAULTS.items()}


def _settle_weighted(
    c: LayerCount, is_encoding: bool, encoder: str | None, opts: dict[str, Any], steps: int, ann: bool = False
) -> str:
    """Decide a Conv/Linear layer's kind from all its inputs, keep that rule's count; returns the op type."""
    # by role: direct / learned encoding feeds real values, whatever a batch happens to hold
    real_by_role = is_encoding and encoder in REAL_ENCODERS
    if ann:  # the ANN twin: real (MACs) unless binary by construction (MultiSp's binary activations)
        kind = "spike" if c._binary and c._in_nonzero > 0 and not real_by_role else "real"
    else:
        kind = "real" if real_by_role else kind_from(c._binary, c._integer, is_encoding)
    c.input_kind = kind
    if kind == "spike":
        ops, optype = c._ops_nz, "ac"
    elif kind == "real":
        ops, optype = (c._ops_all if opts["real_inputs"] == "all" else c._ops_nz), "mac"
    elif opts["nonbinary"] == "ac_weighted":
        ops, optype = c._ops_abs, "ac"
    else:
        ops, optype = c._ops_nz, "mac"
    c.once = is_encoding and kind == "real" and opts["first_layer"] == "once" and c._repeated and steps > 1
    if c.once:
        ops, c.dense_ops, c._out_numel = ops / steps, c.dense_ops / steps, c._out_numel / steps
    if c._in_total:
        if kind == "real" and opts["real_inputs"] == "all":
            c.op_rate = 1.0
        elif kind == "integer" and opts["nonbinary"] == "ac_weighted":
            c.op_rate = c._in_abs / c._in_total
        else:
            c.op_rate = c._in_nonzero / c._in_total
    c.ops = ops
    return optype


def _settle_matmul(c: LayerCount, opts: dict[str, Any], ann: bool = False) -> str:
    # the ANN twin's operands are real unless binary (never "integer"); see the module docstring
    ka = kind_from(c._binary, c._integer and not ann, False)
    kb = kind_from(c._binary_b, c._integer_b and not ann, False)
    optype, which = matmul_rule(ka, kb, opts["nonbinary"])
    c.ops = {"nz": c._ops_nz, "abs_a": c._ops_abs, "abs_b": c._ops_abs_b}[which]
    if ann and optype == "mac" and opts["real_inputs"] == "all":
        c.ops = c.dense_ops  # dense hardware multiplies every pair
    c.input_kind = ka if ka == kb else f"{ka}x{kb}"
    c.op_rate = c._in_nonzero / c._in_total if c._in_total else 0.0
    return optype


def _finish(
    model: nn.Module,
    layers: dict[str, nn.Module],
    counts: dict[str, LayerCount],
    samples: int,
    time_steps: int,
    opts: dict[str, Any],
    encoding: str | None = None,
) -> EnergyReport:
    from sltsearch.energy_model.memory import memory_cost

    n = max(samples, 1)
    e_mac, e_ac, e_neuron = opts["e_mac_pj"], opts["e_ac_pj"], opts["e_neuron_pj"]
    encoder = encoder_kind(model)
    ann = getattr(model, "network", "snn") == "ann"
    spikes = neurons = 0.0
    out: list[LayerCount] = []
    for name, c in counts.items():
        mod = layers[name]
        neuron = isinstance(mod, _NEURONS)
        if neuron and c._in_total == 0:
            continue
        if not neuron and c._in_total == 0 and not isinstance(mod, WEIGHTED):
            continue
        c.firing_rate = c._in_nonzero / c._in_total if c._in_total else 0.0
        if neuron:
            c.input_kind = "-"
            c.op_rate = c.firing_rate
        elif isinstance(mod, SpikeMatmul):
            optype = _settle_matmul(c, opts, ann)
        elif c._seen:
            optype = _settle_weighted(c, name == encoding, encoder, opts, time_steps, ann)
        else:
            c.input_kind = "-"  # never ran (e.g. a branch not taken): storage only
            optype = "mac"
        if not neuron:
            if c.binary_weights:
                c.binary_ops = c.ops
            elif optype == "mac":
                c.macs = c.ops
            else:
                c.acs = c.ops
        for attr in ("ops", "dense_ops", "macs", "acs", "binary_ops", "neuron_updates", "_out_numel"):
            setattr(c, attr, getattr(c, attr) / n)
        if neuron:
            spikes += c._in_nonzero
            neurons += c._in_total
            if not opts["count_neuron_updates"] or isinstance(mod, ReLUActivation):
                c.neuron_updates = 0.0  # a ReLU is a compare, never a neuron update
            c.ops = c.neuron_updates
            c.compute_pj = c.neuron_updates * e_neuron
        else:
            if isinstance(mod, WEIGHTED):
                c.params, c.nonzero_params, c.storage_bits, _ = layer_storage(mod)
                density = c.nonzero_params / c.params if c.params else 0.0
            else:
                density = 1.0
            c.approx_ops = c.dense_ops * c.op_rate * density
            c.compute_pj = c.macs * e_mac + (c.acs + c.binary_ops) * e_ac
        if opts["model"] == "memory" and not isinstance(mod, ReLUActivation):  # a MAC layer writes its outputs
            c.memory_pj = memory_cost(c, mod, opts["memory_breakpoints"], n)
        c.energy_pj = c.compute_pj + c.memory_pj
        out.append(c)

    params = nonzero = storage = dense_storage = 0
    for mod in model.modules():
        if isinstance(mod, WEIGHTED):
            p, nz, bits, dense_bits = layer_storage(mod)
            params, nonzero, storage, dense_storage = (
                params + p,
                nonzero + nz,
                storage + bits,
                dense_storage + dense_bits,
            )
    weight_ids = {id(m.weight) for m in model.modules() if isinstance(m, WEIGHTED)}
    for p in model.parameters():  # biases, BatchNorm affine, embeddings...: dense 32-bit
        if id(p) not in weight_ids:
            params += p.numel()
            nonzero += int((p != 0).sum())
            storage += p.numel() * VALUE_BITS
            dense_storage += p.numel() * VALUE_BITS

    compute = sum(c.compute_pj for c in out)
    enc = next((c for c in out if c.name == encoding), None)
    memory = sum(c.memory_pj for c in out)
    return EnergyReport(
        layers=out,
        macs=sum(c.macs for c in out),
        acs=sum(c.acs for c in out),
        binary_ops=sum(c.binary_ops for c in out),
        neuron_updates=sum(c.neuron_updates for c in out),
        energy_uj=(compute + memory) * 1e-6,
        encoding_layer=encoding,
        encoding_energy_uj=enc.energy_pj * 1e-6 if enc else 0.0,
        first_layer_once=bool(enc and enc.once),
        encoder=encoder,
        real_inputs=opts["real_inputs"],
        network="ann" if ann else "snn",
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
