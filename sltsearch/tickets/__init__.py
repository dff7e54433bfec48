"""Lottery-ticket machinery: masks, magnitude pruning, rewinding and IMP rounds.

Strategies (``tickets.strategy``, driven by `sltsearch.trial.run_trial`):

* ``imp``: iterative magnitude pruning, global or layerwise; per-round rate ``prune_rate`` for ``rounds``
  rounds, or rounds derived from ``target_sparsity`` (smallest R with 1-(1-p)^R >= target, last round
  trimmed to land on it), or explicit ``prune_rates``. ``keep_dense`` ([first, last] or layer names) are
  never pruned; BatchNorm and biases never are.
* ``one_shot``: one round straight to ``target_sparsity`` from the trained dense weights (cheap baseline).
* ``early_bird`` (You et al., ICLR 2020): after each dense epoch the magnitude mask at the target is
  drawn; the first epoch whose last ``eb_window`` consecutive (normalised Hamming) mask distances are all
  below ``eb_threshold`` gives the ticket (drawn from the dense run's per-epoch checkpoints).
* ``time_steps_search`` < T: early-time tickets (Kim et al., ECCV 2022): the dense run and all rounds use
  T_search, then the final mask is rewound and trained once at the full T.

Encoding layer (``encoding_sparsity``): the first layer, which multiplies real-valued pixels under direct
encoding, gets its own final sparsity on a geometric schedule and leaves the shared ranking
(`sltsearch.tickets.encoding`).

Rewinding: to epoch k (``rewind_epoch``) or optimizer step k (``rewind_iteration``); k = 0 is the
original LTH reset to init. After a rewind the optimizer is fresh (its moments are not rewound) and the LR
schedule is replayed by absolute epoch from k (from the epoch holding step k) to the end of the recipe.
Controls (``controls``): ``random_prune`` (same per-layer density, random positions, same rewind point)
and ``random_reinit`` (same mask, freshly initialised weights; biases/BatchNorm from the rewind point),
trained for the same epochs as the ticket they control.
"""

from sltsearch.tickets import encoding
from sltsearch.tickets.masks import (
    apply_masks,
    attach_masks,
    current_masks,
    load_masked_state,
    mask_stats,
    masks_in,
    prunable_layers,
)
from sltsearch.tickets.pruning import magnitude_prune, mask_distance, random_masks, resolve_layers
from sltsearch.tickets.rewind import reinit_state, rewind

__all__ = [
    "apply_masks",
    "attach_masks",
    "current_masks",
    "encoding",
    "load_masked_state",
    "magnitude_prune",
    "mask_distance",
    "mask_stats",
    "masks_in",
    "prunable_layers",
    "random_masks",
    "reinit_state",
    "resolve_layers",
    "rewind",
]
