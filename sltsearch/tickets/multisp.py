"""MultiSp: multi-level sparsity for Spikformer tickets (Cheng et al., arXiv 2309.13302, issue #5).

Levels, all applied from the first IMP round on (round 0, the dense network, is untouched) and all held in
persistent buffers of the model, so a saved, cached or rewound ticket reproduces them:

1. **Patch-number sparsity** (``patch_keep``). Rule: when the ticket search starts (after dense training,
   before the first pruning round) every patch position gets a score = its total spike activity at the
   ConvPEP output — the token map x + RPE(x), summed over time steps, channels and the first
   ``patch_score_samples`` training samples (never validation or test data), measured on the trained
   dense network. The ``ceil(patch_keep * L)`` highest-scoring positions are kept (ties: lower index
   first). The result is written to ``patch_embed.patch_keep_mask`` and fixed for every round and at export;
   the other tokens are gathered away right after the patch embedding, so attention and MLP run on fewer
   tokens (their tensors are physically smaller: ops fall linearly in the projections / MLP and
   quadratically in Q·K^T).
2. **ConvPEP weights**: own final sparsity ``pep_sparsity`` (see below) and optional binarization
   ``pep_binary_weights`` (sign x per-output-channel mean |w|, straight-through estimator; the layers are
   marked ``sltsearch_binary`` so the energy counter counts them as accumulate-only). The scale is not a
   separate learned parameter: every ConvPEP conv is followed by BatchNorm, whose per-channel affine
   already learns it. ``pep_first_conv`` exempts the first ConvPEP conv, the one that sees the real-valued
   input (LTH work keeps the first layer dense, BinaryConnect / XNOR-Net keep it real-valued): ``real``
   = it is pruned with the group but never binarized; ``dense`` = neither pruned nor binarized, and
   ``pep_sparsity`` still counts the *whole* ConvPEP, so the other ConvPEP convs are pruned further to
   reach it (an unreachable target — above 1 - the first conv's share of ConvPEP weights — is an error).
   Measured on digits with the tiny preset, binarizing the first conv is what costs most accuracy.
3. **ConvPEP activation binarization** ``pep_binary_activations``: the ConvPEP output activation
   (x + RPE(x), spike counts in {0, 1, 2}) becomes 1[x >= 0.5] in {0, 1}; clipped STE backward
   (`sltsearch.models.spikformer.BinaryActivation`).

Per-group weight sparsity: ``pep_sparsity``, ``attn_sparsity`` (Q/K/V and output projections) and
``mlp_sparsity`` (fc1, fc2) are final sparsities of those groups. Round r of R reaches
1 - (1 - target)^(r / R) inside the group (a geometric schedule, like IMP's constant rate), pruning the
group's smallest-|w| surviving weights ranked across the group. Groups without a target, and every other
prunable layer (the head), follow ``tickets.prune_rate`` / ``scope`` as in plain IMP.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sltsearch.errors import SpecError
from sltsearch.tickets.masks import MASK, prunable_layers
from sltsearch.tickets.pruning import _prune_lowest, magnitude_prune

GROUPS = ("pep", "attn", "mlp")


def _body(model: nn.Module) -> nn.Module:
    return getattr(model, "body", model)


def patch_embed(model: nn.Module) -> nn.Module | None:
    """The Spikformer patch embedding (ConvPEP) of a model, or None for other families."""
    return getattr(_body(model), "patch_embed", None)


def layer_groups(model: nn.Module) -> dict[str, str]:
    """Prunable layer name -> group (``pep``, ``attn``, ``mlp`` or ``other``)."""
    return {n: getattr(m, "sltsearch_group", "other") for n, m in prunable_layers(model).items()}


def first_pep_conv(model: nn.Module) -> str | None:
    """Name of the first ConvPEP convolution (the one that sees the encoded input), None without a ConvPEP."""
    pe = patch_embed(model)
    if pe is None:
        return None
    first = pe.stages[0].conv_bn.block[0]
    return next((n for n, m in prunable_layers(model).items() if m is first), None)


def _exempt(model: nn.Module, msp: Any) -> tuple[str, ...]:
    """Layers that ``pep_first_conv: dense`` keeps out of pruning."""
    first = first_pep_conv(model) if getattr(msp, "pep_first_conv", "same") == "dense" else None
    return (first,) if first else ()


def check_reachable(model: nn.Module, msp: Any) -> None:
    """With ``pep_first_conv: dense`` the ConvPEP target must be reachable by the other ConvPEP convs."""
    exempt = _exempt(model, msp)
    if not exempt or msp.pep_sparsity is None:
        return
    layers, groups = prunable_layers(model), layer_groups(model)
    total = sum(layers[n].weight.numel() for n, g in groups.items() if g == "pep")
    most = 1.0 - layers[exempt[0]].weight.numel() / total
    if msp.pep_sparsity > most + 1e-9:
        raise SpecError(
            f"multisp.pep_sparsity {msp.pep_sparsity} cannot be reached with pep_first_conv: dense: the first "
            f"ConvPEP conv holds {100 * (1 - most):.2f} % of the ConvPEP weights, so at most {most:.4f}"
        )


def group_targets(msp: Any) -> dict[str, float]:
    """The groups that have their own sparsity target."""
    targets = {"pep": msp.pep_sparsity, "attn": msp.attn_sparsity, "mlp": msp.mlp_sparsity}
    return {g: float(v) for g, v in targets.items() if v is not None}


@torch.no_grad()
def patch_scores(model: nn.Module, loader: Any, max_samples: int, device: torch.device | None = None) -> torch.Tensor:
    """Spike activity per patch position [L] at the ConvPEP output (see the module docstring)."""
    pe = patch_embed(model)
    if pe is None:
        raise ValueError("patch scores need a Spikformer (model.name: spikformer)")
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    total = torch.zeros(pe.num_patches, dtype=torch.float64)
    seen = 0
    for x, _ in loader:
        if seen >= max_samples:
            break
        x = x[: max_samples - seen].to(device)
        seq = model.encoder(x, model.time_steps)
        tokens = pe.token_map(seq)  # [T, B, D, L]
        total += tokens.double().sum((0, 1, 2)).cpu()
        model.reset_state()
        seen += len(x)
    model.train(was_training)
    return total


@torch.no_grad()
def keep_top_patches(model: nn.Module, scores: torch.Tensor, keep: float) -> torch.Tensor:
    """Set ``patch_keep_mask`` to the ``ceil(keep * L)`` highest scores (ties: lower index); returns it."""
    pe = patch_embed(model)
    n = pe.num_patches
    n_keep = max(1, min(n, math.ceil(keep * n - 1e-9)))
    order = torch.sort(-scores.double(), stable=True).indices
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[:n_keep]] = True
    pe.patch_keep_mask.copy_(mask.to(pe.patch_keep_mask.device))
    return mask


@torch.no_grad()
def set_binary(model: nn.Module, weights: bool, activations: bool, first_real: bool = False) -> None:
    """Switch ConvPEP weight binarization (every ConvPEP conv, but the first one when ``first_real``) and
    activation binarization."""
    pe = patch_embed(model)
    first = pe.stages[0].conv_bn.block[0]
    for mod in pe.modules():
        if hasattr(mod, "binary_weights"):
            mod.sltsearch_binary = weights and not (first_real and mod is first)
    pe.binary_activation.fill_(bool(activations))


@torch.no_grad()
def prune_groups(
    model: nn.Module,
    msp: Any,
    rate: float,
    scope: str,
    round_: int,
    total_rounds: int,
    exclude: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """The masks of IMP round ``round_`` of ``total_rounds`` with per-group targets (module docstring)."""
    groups = layer_groups(model)
    targets = group_targets(msp)
    layers = prunable_layers(model)
    exempt = _exempt(model, msp)  # pep_first_conv: dense -- never pruned, but counted in the ConvPEP target
    exclude = tuple(exclude) + exempt
    targeted = tuple(n for n, g in groups.items() if g in targets)
    masks = magnitude_prune(model, rate, scope, exclude + targeted)
    frac = min(1.0, round_ / max(total_rounds, 1))

    def alive_of(n: str) -> torch.Tensor:
        mask = getattr(layers[n], MASK, None)
        ones = torch.ones_like(layers[n].weight, dtype=torch.bool, device="cpu")
        return (mask.detach().cpu() if mask is not None else ones).flatten()

    for group, target in targets.items():
        names = [n for n in targeted if groups[n] == group and n not in exclude]
        if not names:
            continue
        scores = torch.cat([layers[n].weight.detach().abs().float().cpu().flatten() for n in names])
        alive = torch.cat([alive_of(n) for n in names])
        held = [n for n in exempt if groups.get(n) == group]  # exempt layers count in the group's size
        total = alive.numel() + sum(layers[n].weight.numel() for n in held)
        pruned = (alive.numel() - int(alive.sum())) + sum(int((~alive_of(n)).sum()) for n in held)
        goal = 1.0 - (1.0 - target) ** frac
        count = max(0, round(goal * total) - pruned)
        if count > int(alive.sum()):
            check_reachable(model, msp)
        keep = _prune_lowest(scores, alive, min(count, int(alive.sum())))
        start = 0
        for n in names:
            size = layers[n].weight.numel()
            masks[n] = keep[start : start + size].view_as(layers[n].weight.detach().cpu())
            start += size
    return masks


class MultiSp:
    """The trial hook: created once the dense network is trained, used by every IMP round.

    ``start`` scores and fixes the patches and switches binarization on in ``model``; ``ticket_state``
    writes those buffers into the rewind state (rewinding loads every buffer, so the ticket keeps them);
    ``prune`` replaces `magnitude_prune` for the round.
    """

    def __init__(self, msp: Any, state: dict[str, torch.Tensor]) -> None:
        self.msp = msp
        self.state = state

    @classmethod
    def start(
        cls, spec: Any, model: nn.Module, score_loader: Any, device: torch.device | None = None
    ) -> MultiSp | None:
        msp = getattr(spec, "multisp", None)
        if msp is None or not msp.active or patch_embed(model) is None:
            return None
        check_reachable(model, msp)
        if msp.patch_keep < 1.0:
            keep_top_patches(model, patch_scores(model, score_loader, msp.patch_score_samples, device), msp.patch_keep)
        set_binary(model, msp.pep_binary_weights, msp.pep_binary_activations, first_real=msp.pep_first_conv != "same")
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if _is_multisp_buffer(k)}
        return cls(msp, state)

    def ticket_state(self, start_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**start_state, **self.state}

    def prune(self, model: nn.Module, rate: float, scope: str, round_: int, total_rounds: int,
              exclude: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        return prune_groups(model, self.msp, rate, scope, round_, total_rounds, exclude)


def _is_multisp_buffer(key: str) -> bool:
    return key.endswith(("patch_keep_mask", "binary_weights", "binary_activation"))


def ticket_fields(model: nn.Module) -> dict[str, Any]:
    """The MultiSp columns of a ticket row, as measured on ``model`` ({} for non-Spikformer models)."""
    pe = patch_embed(model)
    if pe is None:
        return {}
    layers = prunable_layers(model)
    groups = layer_groups(model)
    out: dict[str, Any] = {}
    for group in GROUPS:
        ws = [layers[n].weight.detach() for n, g in groups.items() if g == group]
        total = sum(w.numel() for w in ws)
        out[f"{group}_sparsity"] = 1.0 - sum(int((w != 0).sum()) for w in ws) / total if total else 0.0
    kept = int(pe.patch_keep_mask.sum())
    first = pe.stages[0].conv_bn.block[0]
    convs = [m for m in pe.modules() if hasattr(m, "binary_weights")]
    rest = [m for m in convs if m is not first] or convs
    out.update(
        patch_keep=kept / pe.num_patches,
        tokens_kept=kept,
        tokens_total=pe.num_patches,
        # binarized ConvPEP: every conv after the first (the first is reported on its own: it may be exempt)
        pep_binary_weights=bool(rest) and all(m.sltsearch_binary for m in rest),
        pep_binary_activations=bool(pe.binary_activation),
        pep_first_sparsity=float((first.weight.detach() == 0).float().mean()),
        pep_first_binary=bool(first.sltsearch_binary),
    )
    return out


__all__ = [
    "GROUPS",
    "MultiSp",
    "check_reachable",
    "first_pep_conv",
    "group_targets",
    "keep_top_patches",
    "layer_groups",
    "patch_embed",
    "patch_scores",
    "prune_groups",
    "set_binary",
    "ticket_fields",
]
