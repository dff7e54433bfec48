"""`Ticket`: one row of results — a sub-network found by one IMP round (round 0 = the dense network)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Ticket:
    """Everything measured about one ticket. Accuracies in [0, 1]; energy per inference sample."""

    trial: int
    round: int
    kind: str  # "dense" or "imp"
    params: dict[str, Any]
    seed: int
    time_steps: int
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
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    # energy model extras (sltsearch.energy): per inference sample; storage of all parameters in bits
    binary_ops: float = 0.0  # accumulate-only ops of binarized-weight layers
    total_params: int = 0  # every parameter (weights, biases, BatchNorm)
    total_nonzero_params: int = 0
    storage_bits: int = 0  # sparse CSR-like / binarized format where cheaper, else dense fp32
    dense_storage_bits: int = 0  # every parameter as fp32

    @property
    def ticket_id(self) -> str:
        return f"t{self.trial:04d}r{self.round:02d}"

    def row(self) -> dict[str, Any]:
        """A flat record: params become ``param_<name>`` columns, per-layer sparsity a JSON string."""
        data = asdict(self)
        params = data.pop("params")
        data["layer_sparsity"] = json.dumps(data["layer_sparsity"], sort_keys=True)
        row = {"ticket_id": self.ticket_id, **data}
        row.update({f"param_{k}": v for k, v in params.items()})
        return row
