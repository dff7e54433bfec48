"""`evaluate_in_consumer`: re-run an export's ``ticket.nir`` in the consumer it was written for and compare.

A user checks a ticket before deploying it: the graph goes through the consumer's own import and simulation
(`sltsearch.ticket_io.nir_consumers`), on the ticket's validation and test samples, beside the ticket's
recorded accuracy and sltsearch's own model rebuilt from the folder (argmax agreement, readout difference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sltsearch.data import build_data, make_loader
from sltsearch.models.user import reading
from sltsearch.ticket_io.budget import Budget, memory_budget
from sltsearch.ticket_io.bundle import MANIFEST, NIR_FILE, TicketFileError
from sltsearch.ticket_io.export import with_data_root
from sltsearch.ticket_io.load import TicketInfo, load_ticket
from sltsearch.ticket_io.nir_consumers import import_graph
from sltsearch.ticket_io.nir_export import ticket_graph
from sltsearch.ticket_io.nir_guard import check_nir_file
from sltsearch.ticket_io.nir_targets import TARGETS


@dataclass
class SplitAgreement:
    """One split: the recorded accuracy, the consumer's, sltsearch's now, and how the two runs agree."""

    split: str
    samples: int
    recorded_accuracy: float | None
    consumer_accuracy: float
    sltsearch_accuracy: float
    argmax_agreement: float  # fraction of samples where the consumer predicts sltsearch's class
    max_readout_diff: float  # largest |consumer - sltsearch| over all samples and classes (mean over T)


@dataclass
class ConsumerEvaluation:
    """An export's graph as its consumer runs it, split by split."""

    info: TicketInfo
    target: str
    consumer: str
    splits: list[SplitAgreement]
    note: str  # where the consumer's arithmetic can differ from the ticket's

    @property
    def agreement_min(self) -> float:
        return min(s.argmax_agreement for s in self.splits)


def compare_runs(model: torch.nn.Module, run: Any, loader: Any, in_shape: tuple[int, ...]) -> dict[str, Any]:
    """Both models over ``loader``: accuracies, argmax agreement, max readout difference, sample count."""
    n = correct_ref = correct_got = same = 0
    diff = 0.0
    for x, y in loader:
        x = x.float()
        with torch.no_grad():
            ref = model(x)
        model.reset_state()
        got = run(x.reshape(x.shape[0], *in_shape))
        n += len(y)
        correct_ref += int((ref.argmax(1) == y).sum())
        correct_got += int((got.argmax(1) == y).sum())
        same += int((ref.argmax(1) == got.argmax(1)).sum())
        diff = max(diff, float((ref - got).abs().max()))
    return {
        "samples": n,
        "sltsearch_accuracy": correct_ref / n,
        "consumer_accuracy": correct_got / n,
        "argmax_agreement": same / n,
        "max_readout_diff": diff,
    }


def evaluate_in_consumer(
    folder: str | Path,
    target: str | None = None,
    data_root: str | Path | None = None,
    trust_code: bool = False,
    max_memory_gb: float | None = None,
    on_budget: Callable[[Budget], None] | None = None,
) -> ConsumerEvaluation:
    """Import ``folder/ticket.nir`` with ``target``'s public API (default: the target it was written for) and
    run it on the validation and test splits (on the CPU, as the consumers' simulators run); ``trust_code`` as
    for `sltsearch.load_ticket` (the ticket's own model is built to compare with), ``max_memory_gb`` and
    ``on_budget`` as for `sltsearch.ticket_io.load.evaluate_ticket`. The file is compared with the ticket's own
    graph before it is read (`sltsearch.ticket_io.nir_guard`)."""
    import nir

    folder = Path(folder)
    model, info = load_ticket(folder, "cpu", trust_code=trust_code)  # verifies every checksum, ticket.nir's too
    written = info.manifest.get("nir", {}).get("target")
    if NIR_FILE not in info.manifest.get("files", {}) or written is None:
        raise TicketFileError(f"{folder}: no ticket.nir; export it with --format nir --target {target or 'snntorch'}")
    chosen = written if target is None else target
    if chosen not in TARGETS:
        raise TicketFileError(f"--target: '{target}' is not one of {', '.join(TARGETS)}")
    if chosen != written:
        raise TicketFileError(
            f"{folder / NIR_FILE} was written for {written}, not {chosen}; export the ticket again with "
            f"--format nir --target {chosen} --out ANOTHER_FOLDER"
        )
    io = info.manifest["model_io"]
    with reading(folder, trust_code):
        budget = memory_budget(info.spec, io, max_memory_gb, str(folder / MANIFEST))
    if on_budget is not None:
        on_budget(budget)
    check_nir_file(folder / NIR_FILE, ticket_graph(model, io, chosen)[0])  # before nir.read allocates anything
    graph = nir.read(str(folder / NIR_FILE))
    in_shape = tuple(int(v) for v in np.asarray(graph.nodes["input"].input_type["input"]))
    run = import_graph(graph, chosen, int(info.manifest["model_io"]["time_steps"]))
    spec = info.spec
    data = build_data(with_data_root(spec, data_root).data)
    splits = []
    for split, dataset in (("val", data.val), ("test", data.test)):
        found = compare_runs(model, run, make_loader(dataset, spec.data.eval_batch_size, shuffle=False), in_shape)
        recorded = info.ticket.get(f"{split}_accuracy")
        splits.append(SplitAgreement(split=split, recorded_accuracy=recorded, **found))
    rules = TARGETS[chosen]
    return ConsumerEvaluation(info=info, target=chosen, consumer=rules.consumer, splits=splits, note=rules.exact)
