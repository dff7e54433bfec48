"""`Ticket`: one row of results — a sub-network found by one IMP round (round 0 = the dense network).

The measured record a trial reports; `sltsearch.tickets` holds the algorithms that find it (masks, pruning).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

# kinds whose ticket is a step of the trial itself (controls and early-time search rounds are extra rows)
MAIN_KINDS = ("dense", "imp", "one_shot", "early_bird", "early_time")


@dataclass
class Ticket:
    """Everything measured about one ticket. Accuracies in [0, 1]; energy per inference sample."""

    trial: int
    round: int
    kind: str  # dense | imp | one_shot | early_bird | early_time | et_search | random_prune | random_reinit
    params: dict[str, Any]
    seed: int
    time_steps: int  # the steps one inference ran (1 for the ANN twin)
    sparsity: float
    density: float
    nonzero_params: int
    prunable_params: int
    val_accuracy: float
    test_accuracy: float
    energy_uj: float
    macs: float
    acs: float
    firing_rate: float
    best_epoch: int
    epochs_trained: int
    wall_time_s: float
    stage_key: str
    cached: bool = False
    status: str = "ok"
    feasible: bool = True  # meets objective.constraints (set by the driver's runner); False: kept off the front
    node: str = ""  # where it ran: host name (Optuna backend) or host/Ray node id (Ray backend)
    network: str = "snn"  # snn: spiking; ann: the ANN twin (model.neuron.type: relu; sltsearch/models/twin.py)
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    # energy model extras (sltsearch.energy_model): per inference sample; storage of all parameters in bits
    binary_ops: float = 0.0  # accumulate-only ops of binarized-weight layers
    total_params: int = 0  # every parameter (weights, biases, BatchNorm)
    total_nonzero_params: int = 0
    storage_bits: int = 0  # sparse CSR-like / binarized format where cheaper, else dense fp32
    dense_storage_bits: int = 0  # every parameter as fp32
    # MultiSp levels (sltsearch.tickets.multisp), measured on the ticket; None for non-Spikformer models
    patch_keep: float | None = None  # fraction of patches (tokens) kept
    tokens_kept: int | None = None
    tokens_total: int | None = None
    pep_sparsity: float | None = None  # ConvPEP weight sparsity
    attn_sparsity: float | None = None  # attention (Q/K/V/O) weight sparsity
    mlp_sparsity: float | None = None  # MLP weight sparsity
    pep_binary_weights: bool | None = None  # the ConvPEP convs are binarized (a first conv may be exempt)
    pep_binary_activations: bool | None = None
    pep_first_sparsity: float | None = None  # the first ConvPEP conv (real-valued input): its own sparsity
    pep_first_binary: bool | None = None  # ... and whether it is binarized (False: exempt, pep_first_conv)
    # the encoding layer (sltsearch.energy_model: the first weighted layer to run) and the assumptions behind its count
    encoder: str | None = None  # direct | rate | learned | frames
    encoding_sparsity: float | None = None  # its measured weight sparsity
    encoding_energy_uj: float = 0.0  # its share of energy_uj
    first_layer_once: bool = False  # True: its count was divided by T (objective.energy.first_layer: once)
    measured_at: float = 0.0  # unix time the search stored it (0: an older run folder): fronts against time
    # the pruning rate of every round that led to it (empty: the dense network, or an older run folder): a
    # path's branch (`sltsearch.trial.paths.branch_point`) goes on from a ticket by these rates
    rates: list[float] = field(default_factory=list)

    @property
    def ticket_id(self) -> str:
        """``t<trial>r<round>``; control and early-time search rows add ``-<kind>`` (they share a round)."""
        main = self.kind in MAIN_KINDS
        return f"t{self.trial:04d}r{self.round:02d}" + ("" if main else f"-{self.kind}")

    def row(self) -> dict[str, Any]:
        """A flat record: params become ``param_<name>`` columns, per-layer sparsity a JSON string."""
        data = asdict(self)
        params = data.pop("params")
        data["layer_sparsity"] = json.dumps(data["layer_sparsity"], sort_keys=True)
        data["rates"] = json.dumps(data["rates"])
        row = {"ticket_id": self.ticket_id, **data}
        row.update({f"param_{k}": v for k, v in params.items()})
        return row


def row_params(row: Any) -> dict[str, Any]:
    """A ticket row's searched parameters (its ``param_<name>`` columns, the inverse of `Ticket.row`); a column
    that is NaN in this row belongs to another trial's space and is left out."""
    params = {}
    for col, value in row.items():
        if str(col).startswith("param_"):
            value = value.item() if hasattr(value, "item") else value
            if isinstance(value, float) and math.isnan(value):
                continue
            params[str(col).removeprefix("param_")] = value
    return params
