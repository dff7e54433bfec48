"""Spikformer (Zhou et al., ICLR 2023) with the hooks MultiSp needs (Cheng et al., arXiv 2309.13302).

Layout, [T, B, C, H, W] (2-D images) or [T, B, C, L] (1-D signals such as MNIST-1D) -> [T, B, classes]:

* ``patch_embed`` — Spiking Patch Splitting with a convolutional Patch Embedding Projection (ConvPEP):
  ``stages`` of conv-BN(-maxpool)-LIF (channels ``pep_channels``, the last one = ``embed_dim``; the last
  log2(patch_size) stages max-pool 3/2/1, as spikingjelly does for patch size 4), then a relative
  position embedding ``positional_encoding`` (conv-BN-LIF) added to its input. Convolutions, BatchNorm
  and pooling are 2-D for images and 1-D for signals (`PEPConv2d` / `PEPConv1d`); the patch grid is
  side / ``patch_size`` along every spatial axis (``patch_grid``, when given, fixes the grid instead:
  patch_size = side / patch_grid). The token map x + RPE(x) (spike counts in {0, 1, 2}) goes through
  ``out_act`` (a `BinaryActivation`, used only when the persistent switch ``binary_activation`` is on:
  MultiSp level 3), is flattened to L = product of the grid sides tokens (4 x 4 = 16 for 8x8 digits with
  the tiny preset, 20 for MNIST-1D's 40 positions) and the tokens whose ``patch_keep_mask`` entry is
  False are *dropped* (gathered away): every block runs on L' <= L tokens.
* ``blocks`` — spiking self-attention (fused 1x1 ``qkv_conv_bn`` -> LIF -> Q, K, V spikes;
  ``qk = Q·K^T`` and ``av = (QK^T)·V * scale`` as `SpikeMatmul` modules, no softmax; ``attn_lif`` with
  threshold 0.5; ``proj_conv_bn`` -> LIF) and an MLP (``fc1`` -> LIF -> ``fc2`` -> LIF), both residual.
* ``head`` — mean over the kept tokens, linear readout per time step.

Its ANN twin (``model.neuron.type: relu``, `sltsearch.models.twin`) keeps this structure with a ReLU for every
neuron and runs once: attention stays softmax-free (Q·K^T·V x 0.125 on real-valued Q, K, V) unless
``model.options.attention: softmax`` asks for ordinary attention; MultiSp's levels act on its ConvPEP alike.

Step mode: the body is a spikingjelly ``StepModule``. In multi-step mode ("m", what `SpikingClassifier`
sets) it takes [T, B, ...]; in single-step mode ("s") it takes one step [B, ...] and returns [B, classes]
(it runs as a sequence of length 1, so the same body built with ``nn.ReLU`` neurons is a plain ANN).

Parameter names follow ``spikingjelly.activation_based.model.spikformer`` (``patch_embed.stages.i.conv_bn
.block.0``, ``blocks.i.attn.qkv_conv_bn.0``, ``blocks.i.attn.proj_conv_bn.0``, ``blocks.i.mlp.fc1.0`` /
``fc2.0``, ``head``). sltsearch has its own module rather than wrapping spikingjelly's because MultiSp
needs things that one does not expose: a persistent patch mask that physically removes tokens between the
patch embedding and the blocks, ConvPEP convolutions that can be binarized in place (`PEPConv2d`, marked
``sltsearch_binary`` for the energy counter), a swappable ConvPEP output activation, hookable attention
products (`SpikeMatmul`), and any input size / patch grid / depth (spikingjelly's stem takes patch size 4
or 16 only and fixes the neuron parameters).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from spikingjelly.activation_based import base, layer
from torch import nn

from sltsearch.compat.torch import conv_forward
from sltsearch.models.layers import spatial_layers
from sltsearch.models.ops import SpikeMatmul

PRESETS: dict[str, dict[str, Any]] = {
    # 8x8 digits: 2x2 patches -> 4x4 = 16 tokens (MNIST-1D: 20 tokens), one block, ConvPEP 1-16-64 (+ RPE
    # 64-64): the first conv (144 weights) is 0.3 % of the ConvPEP, so it can stay real-valued or dense while
    # the ConvPEP as a whole is 90 % sparse and binarized (MultiSp; results/benchmarks/multisp.md). About
    # 1.6 s per epoch on digits (T = 4, batch 32, one CPU thread); 98-99 % test with the Spec defaults.
    "tiny": {"embed_dim": 64, "depth": 1, "heads": 4, "mlp_ratio": 2.0, "patch_size": 2, "pep_channels": [16, 64]},
    # Spikformer-4-384 (CIFAR layout): 32x32 input, 4x4 patches (8x8 grid), 384 dims, 12 heads, 4 blocks.
    "cifar": {
        "embed_dim": 384,
        "depth": 4,
        "heads": 12,
        "mlp_ratio": 4.0,
        "patch_size": 4,
        "pep_channels": [48, 96, 192, 384],
    },
}
OPTIONS = {"embed_dim", "depth", "heads", "mlp_ratio", "patch_size", "patch_grid", "pep_channels", "attention"}
# ``attention`` option: ssa = spiking self-attention (no softmax, Q·K^T·V x 0.125, the default and the spiking
# version's); softmax = ordinary scaled dot-product attention softmax(Q·K^T / sqrt(d_head))·V, for the ANN twin
ATTENTION = ("ssa", "softmax")


class _SignSTE(torch.autograd.Function):
    """sign(w) forward; straight-through backward, clipped to |w| <= 1 (BinaryConnect / XNOR-Net)."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return torch.sign(w)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """sign(w) x alpha_c, alpha_c = mean |w| over the non-zero weights of output channel c.

    Pruned (zero) weights stay zero (sign(0) = 0), so each output channel takes exactly two non-zero
    values, +alpha_c and -alpha_c. Gradients reach the latent real weights through the sign's STE and
    through alpha_c.
    """
    nz = (w != 0).to(w.dtype)
    dims = tuple(range(1, w.dim()))
    alpha = (w.abs() * nz).sum(dims, keepdim=True) / nz.sum(dims, keepdim=True).clamp_min(1.0)
    return _SignSTE.apply(w) * alpha


class _PEPConv:
    """A ConvPEP convolution. With ``sltsearch_binary = True`` it convolves with `binarize_weight`.

    The real-valued latent ``weight`` is what is trained, pruned and saved; the switch is the persistent
    buffer ``binary_weights`` (so a saved or rewound ticket carries it); the energy counter reads
    ``sltsearch_binary`` and counts the layer as accumulate-only (one scale per output channel).
    """

    sltsearch_group = "pep"
    weight: torch.Tensor
    bias: torch.Tensor | None
    binary_weights: torch.Tensor

    def _register_binary(self) -> None:
        self.register_buffer("binary_weights", torch.zeros((), dtype=torch.bool), persistent=True)  # type: ignore[attr-defined]

    @property
    def sltsearch_binary(self) -> bool:
        return bool(self.binary_weights)

    @sltsearch_binary.setter
    def sltsearch_binary(self, value: bool) -> None:
        self.binary_weights.fill_(bool(value))

    def effective_weight(self) -> torch.Tensor:
        return binarize_weight(self.weight) if self.sltsearch_binary else self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_forward(self, x, self.effective_weight())  # type: ignore[arg-type]


class PEPConv2d(_PEPConv, nn.Conv2d):
    """2-D ConvPEP convolution (images); see `_PEPConv`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._register_binary()


class PEPConv1d(_PEPConv, nn.Conv1d):
    """1-D ConvPEP convolution (signals [C, L]); see `_PEPConv`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._register_binary()


# conv, BatchNorm, max-pool per number of spatial axes; plain torch layers inside SeqToANNContainer
_PEP_LAYERS: dict[int, tuple[type, type, type]] = {
    1: (PEPConv1d, nn.BatchNorm1d, nn.MaxPool1d),
    2: (PEPConv2d, nn.BatchNorm2d, nn.MaxPool2d),
}


class _HeavisideSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, threshold: float, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.threshold, ctx.width = threshold, width
        return (x >= threshold).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        inside = ((x - ctx.threshold).abs() <= ctx.width).to(grad.dtype)
        return grad * inside, None, None


class BinaryActivation(nn.Module):
    """MultiSp level 3: the ConvPEP output activation made binary.

    Forward: 1[x >= 0.5] — on the spike-count token map x + RPE(x) in {0, 1, 2} this is the logical OR of
    the two spike maps, so the first block's Q/K/V convolution receives {0, 1} spikes (accumulates only)
    instead of counts (multiply-accumulates). Backward: clipped straight-through estimator, the gradient
    passes unchanged where |x - 0.5| <= 1.5 (the whole range {0, 1, 2} of the input) and is zero outside.
    """

    def __init__(self, threshold: float = 0.5, width: float = 1.5) -> None:
        super().__init__()
        self.threshold, self.width = threshold, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _HeavisideSTE.apply(x, self.threshold, self.width)


class ConvBNLIF(nn.Module):
    """conv-BN(-maxpool 3/2/1)-LIF on [T, B, C, *spatial]; the conv is a `PEPConv2d` (or `PEPConv1d`)."""

    def __init__(
        self, cin: int, cout: int, make_neuron: Callable[[], nn.Module], pool: bool, ndim: int = 2
    ) -> None:
        super().__init__()
        conv, bn, max_pool = _PEP_LAYERS[ndim]
        mods: list[nn.Module] = [conv(cin, cout, 3, padding=1, bias=False), bn(cout)]
        if pool:
            mods.append(max_pool(3, stride=2, padding=1))
        self.conv_bn = nn.Module()
        self.conv_bn.block = layer.SeqToANNContainer(*mods)
        self.neuron = make_neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.conv_bn.block(x))


class PatchEmbed(nn.Module):
    """Spiking Patch Splitting with ConvPEP; returns kept tokens [T, B, D, L'] (see the module docstring)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        channels: list[int],
        patch_size: int,
        make_neuron: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        ndim = spatial_layers(tuple(input_shape), "spikformer").ndim
        cin, sides = input_shape[0], list(input_shape[1:])
        if patch_size < 1 or patch_size & (patch_size - 1) or any(s % patch_size for s in sides):
            raise ValueError(
                f"spikformer: patch_size must be a power of two dividing every spatial side, got {patch_size} "
                f"for input {'x'.join(map(str, sides))}"
            )
        pools = int(math.log2(patch_size))
        if pools > len(channels):
            raise ValueError(f"spikformer: {pools} poolings need at least {pools} pep_channels stages")
        stages = []
        for i, cout in enumerate(channels):
            stages.append(ConvBNLIF(cin, cout, make_neuron, pool=i >= len(channels) - pools, ndim=ndim))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.positional_encoding = ConvBNLIF(cin, cin, make_neuron, pool=False, ndim=ndim)
        # MultiSp level 3 switch (persistent, see `BinaryActivation`)
        self.out_act = BinaryActivation()
        self.register_buffer("binary_activation", torch.zeros((), dtype=torch.bool), persistent=True)
        self.ndim = ndim
        self.grid = tuple(s // patch_size for s in sides)
        self.num_patches = math.prod(self.grid)
        # MultiSp level 1: which tokens survive; saved with the ticket (persistent buffer)
        self.register_buffer("patch_keep_mask", torch.ones(self.num_patches, dtype=torch.bool), persistent=True)

    def token_map(self, x: torch.Tensor) -> torch.Tensor:
        """All L tokens [T, B, D, L] after the ConvPEP output activation (used to score patches).

        Patch index = row-major position in the grid (2-D: row * grid_w + column; 1-D: position along L).
        """
        x = self.stages(x)
        x = x + self.positional_encoding(x)
        if bool(self.binary_activation):
            x = self.out_act(x)
        return x.flatten(3)

    def kept_index(self) -> torch.Tensor:
        return self.patch_keep_mask.nonzero().squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.token_map(x)
        if bool(self.patch_keep_mask.all()):
            return tokens
        return tokens.index_select(3, self.kept_index())


class SpikingSelfAttention(nn.Module):
    """SSA on tokens [T, B, D, L]: Q, K, V spikes, no softmax, attention products as `SpikeMatmul`.

    ``attention: softmax`` puts softmax(Q·K^T / sqrt(d_head)) between the two products instead of the constant
    ``scale`` (ordinary attention, e.g. for the ANN twin); the neurons stay where they are.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        make_neuron: Callable[[], nn.Module],
        scale: float = 0.125,
        attention: str = "ssa",
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"spikformer: embed_dim {dim} is not divisible by heads {heads}")
        if attention not in ATTENTION:
            raise ValueError(f"model.options.attention: '{attention}' not allowed; allowed: {', '.join(ATTENTION)}")
        self.dim, self.num_heads = dim, heads
        self.softmax_scale = (dim // heads) ** -0.5 if attention == "softmax" else None
        self.qkv_conv_bn = layer.SeqToANNContainer(nn.Conv1d(dim, 3 * dim, 1, bias=False), nn.BatchNorm1d(3 * dim))
        self.qkv_lif = make_neuron()
        self.qk = SpikeMatmul()
        self.av = SpikeMatmul(scale if self.softmax_scale is None else 1.0)
        self.attn_lif = make_neuron()
        self.attn_lif.v_threshold = 0.5
        self.proj_conv_bn = layer.SeqToANNContainer(nn.Conv1d(dim, dim, 1, bias=False), nn.BatchNorm1d(dim))
        self.proj_lif = make_neuron()
        for conv in (self.qkv_conv_bn[0], self.proj_conv_bn[0]):
            conv.sltsearch_group = "attn"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, d, n = x.shape
        qkv = self.qkv_lif(self.qkv_conv_bn(x))  # [T, B, 3D, L]
        qkv = qkv.reshape(t, b, 3, self.num_heads, d // self.num_heads, n).transpose(-2, -1)
        q, k, v = qkv.unbind(2)  # [T, B, H, L, d]
        attn = self.qk(q, k.transpose(-2, -1))  # [T, B, H, L, L]
        if self.softmax_scale is not None:
            attn = torch.softmax(attn * self.softmax_scale, dim=-1)
        out = self.av(attn, v)  # [T, B, H, L, d]
        out = self.attn_lif(out.transpose(-2, -1).reshape(t, b, d, n))
        return self.proj_lif(self.proj_conv_bn(out))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, make_neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.fc1 = layer.SeqToANNContainer(nn.Conv1d(dim, hidden, 1, bias=False), nn.BatchNorm1d(hidden))
        self.neuron1 = make_neuron()
        self.fc2 = layer.SeqToANNContainer(nn.Conv1d(hidden, dim, 1, bias=False), nn.BatchNorm1d(dim))
        self.neuron2 = make_neuron()
        for conv in (self.fc1[0], self.fc2[0]):
            conv.sltsearch_group = "mlp"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron2(self.fc2(self.neuron1(self.fc1(x))))


class Block(nn.Module):
    def __init__(
        self, dim: int, heads: int, mlp_ratio: float, make_neuron: Callable[[], nn.Module], attention: str = "ssa"
    ) -> None:
        super().__init__()
        self.attn = SpikingSelfAttention(dim, heads, make_neuron, attention=attention)
        self.mlp = MLP(dim, int(dim * mlp_ratio), make_neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(nn.Module, base.StepModule):
    """Body [T, B, C, *spatial] -> [T, B, classes] (single-step: [B, ...] -> [B, classes]); module docstring."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        make_neuron: Callable[[], nn.Module],
        embed_dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        patch_size: int,
        pep_channels: list[int],
        attention: str = "ssa",
    ) -> None:
        super().__init__()
        self._step_mode = "m"
        channels = list(pep_channels)
        if not channels or channels[-1] != embed_dim:
            channels = [*channels, embed_dim]
        self.patch_embed = PatchEmbed(input_shape, channels, patch_size, make_neuron)
        self.blocks = nn.ModuleList(
            Block(embed_dim, heads, mlp_ratio, make_neuron, attention) for _ in range(depth)
        )
        self.head = layer.Linear(embed_dim, num_classes, step_mode="m")
        # PyTorch's default init for the convolutions: spikingjelly's trunc_normal(std=0.02) makes every
        # conv output tiny, so with BatchNorm's running variance starting at 1 nothing fires in eval mode
        # for the first epochs (short CPU recipes never recover); the head keeps trunc_normal(0.02)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "s":  # one step [B, ...]: a sequence of length 1
            return self.forward_sequence(x.unsqueeze(0)).squeeze(0)
        return self.forward_sequence(x)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(-1))


def build_spikformer(
    input_shape: tuple[int, ...],
    num_classes: int,
    make_neuron: Callable[[], nn.Module],
    options: dict[str, Any],
) -> nn.Module:
    """Body builder for the registry (signature of `sltsearch.models.cnn.build_spiking_cnn`)."""
    unknown = set(options) - OPTIONS
    if unknown:
        raise ValueError(f"model.options: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(OPTIONS))}")
    spatial_layers(tuple(input_shape), "spikformer")  # [C, L] or [C, H, W], else a one-line error
    return Spikformer(
        tuple(input_shape),
        num_classes,
        make_neuron,
        embed_dim=int(options["embed_dim"]),
        depth=int(options["depth"]),
        heads=int(options["heads"]),
        mlp_ratio=float(options["mlp_ratio"]),
        patch_size=_patch_size(input_shape, options),
        pep_channels=[int(c) for c in options["pep_channels"]],
        attention=str(options.get("attention", "ssa")),
    )


def _patch_size(input_shape: tuple[int, ...], options: dict[str, Any]) -> int:
    """``patch_size``, or side / ``patch_grid`` when a grid is given (it overrides the preset's patch size)."""
    if "patch_grid" not in options:
        return int(options.get("patch_size", 1))
    grid = int(options["patch_grid"])
    sides = input_shape[1:]
    sizes = {s // grid for s in sides}
    if grid < 1 or any(s % grid for s in sides) or len(sizes) != 1:
        raise ValueError(
            f"spikformer: patch_grid {grid} must divide every spatial side of {'x'.join(map(str, sides))} "
            "into the same power-of-two patch size"
        )
    return sizes.pop()


__all__ = [
    "PRESETS",
    "BinaryActivation",
    "PEPConv1d",
    "PEPConv2d",
    "Spikformer",
    "binarize_weight",
    "build_spikformer",
]
