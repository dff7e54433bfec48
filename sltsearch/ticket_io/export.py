"""`export_ticket`: write one ticket of a run as a self-contained folder (see `sltsearch.ticket_io.bundle`).

The ticket is named (``ticket``) or chosen by a rule on validation metrics (``select``: knee,
max-accuracy, min-energy, within ``min_accuracy`` / ``max_energy``). Its model is rebuilt from the run's
stage cache and measured once more, so ``ticket.json`` carries the recorded row, the export-time
measurement with its per-layer energy, and whether the two agree.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from sltsearch.data import DataSplits, build_data
from sltsearch.errors import UserError
from sltsearch.models.user import reading
from sltsearch.results import load_tickets
from sltsearch.results.select import RULES, select
from sltsearch.runfolder.folder import read_run
from sltsearch.spec import Spec
from sltsearch.system.device import resolve_device
from sltsearch.ticket_io import place
from sltsearch.ticket_io.bundle import FORMAT, MANIFEST, NIR_FILE, read_manifest, split_state, write_folder
from sltsearch.ticket_io.rebuild import compare, measure_ticket, model_io
from sltsearch.ticket_io.source import plain_row, ticket_source

FORMATS = ("safetensors", "nir")
EXPORTS_DIR = "exports"
_PACKAGES = (
    "sltsearch", "torch", "spikingjelly", "safetensors", "numpy", "pydantic", "optuna", "nir", "nirtorch",
    "snntorch", "sinabs", "rockpool",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def with_data_root(spec: Spec, data_root: str | Path | None) -> Spec:
    if data_root is None:
        return spec
    return spec.model_copy(update={"data": spec.data.model_copy(update={"root": str(data_root)})})


@dataclass
class ExportResult:
    """Where the ticket went, which one it is, and the export-time check against its recorded row."""

    path: Path
    ticket_id: str
    manifest: dict[str, Any]

    @property
    def reproduced(self) -> bool:
        return all(c["equal"] for c in self.manifest["export_check"]["metrics"])


def _choose(
    run_dir: Path,
    frame: Any,
    ticket: str | None,
    rule: str | None,
    min_accuracy: float | None,
    max_energy: float | None,
) -> tuple[str, dict[str, Any] | None]:
    if (ticket is None) == (rule is None):
        raise UserError(f"{run_dir}: pass either --ticket ID or --select {'|'.join(RULES)}")
    if ticket is not None:
        if min_accuracy is not None or max_energy is not None:
            raise UserError("--min-accuracy / --max-energy apply to --select, not to --ticket")
        return ticket, None
    if frame.empty:
        raise UserError(f"{run_dir}: no tickets yet; run the search first")
    row = select(frame, rule, min_accuracy=min_accuracy, max_energy=max_energy)
    how = {"rule": rule, "min_accuracy": min_accuracy, "max_energy": max_energy, "on": "validation metrics"}
    return str(row["ticket_id"]), how


def export_ticket(
    run_dir: str | Path,
    *,
    ticket: str | None = None,
    select_rule: str | None = None,
    min_accuracy: float | None = None,
    max_energy: float | None = None,
    out: str | Path | None = None,
    fmt: str = "safetensors",
    data_root: str | Path | None = None,
    device: str | None = None,
    overwrite: bool = False,
    target: str | None = None,
    trust_code: bool = False,
) -> ExportResult:
    """Export one ticket of ``run_dir`` to ``out`` (default ``run_dir/exports/<ticket_id>``); with
    ``fmt="nir"``, ``ticket.nir`` is written for the NIR consumer ``target`` (default snntorch). A spec naming a
    user's module (an import path) is refused unless ``trust_code`` (`sltsearch.models.user.reading`)."""
    with reading(run_dir, trust_code):
        return _export(
            run_dir, ticket=ticket, select_rule=select_rule, min_accuracy=min_accuracy, max_energy=max_energy,
            out=out, fmt=fmt, data_root=data_root, device=device, overwrite=overwrite, target=target,
        )


def _export(
    run_dir: str | Path,
    *,
    ticket: str | None,
    select_rule: str | None,
    min_accuracy: float | None,
    max_energy: float | None,
    out: str | Path | None,
    fmt: str,
    data_root: str | Path | None,
    device: str | None,
    overwrite: bool,
    target: str | None,
) -> ExportResult:
    if fmt not in FORMATS:
        raise UserError(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
    if target is not None and fmt != "nir":
        raise UserError("--target applies to --format nir only")
    run_dir, _ = read_run(run_dir)
    frame = load_tickets(run_dir)
    ticket_id, selected_by = _choose(run_dir, frame, ticket, select_rule, min_accuracy, max_energy)
    source = ticket_source(run_dir, ticket_id, frame)  # a ticket_id of the table from here on
    exports = run_dir.absolute() / EXPORTS_DIR
    folder = place.absolute(out) if out is not None else place.child(exports, ticket_id, f"{run_dir}: ticket id")
    place.check_target(folder, overwrite, MANIFEST, FORMAT)  # before the work, so a refusal costs nothing
    spec = source.spec
    data: DataSplits = build_data(with_data_root(spec, data_root).data)
    io = model_io(spec, data)
    dev = resolve_device(device or spec.train.device)
    model = source.model(io, dev)
    extra = {}
    nir_info = None
    if fmt == "nir":
        from sltsearch.ticket_io.nir_export import nir_writer
        from sltsearch.ticket_io.nir_targets import target_rules

        rules = target_rules(target)
        extra[NIR_FILE] = nir_writer(model, io, rules.name)  # checked before anything is written
        nir_info = {"target": rules.name, "consumer": rules.consumer, "agreement": rules.exact}
    measured = measure_ticket(model, spec, data, dev)
    row = plain_row(source.row)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": {
            "run_dir": str(run_dir.resolve()),
            "ticket_id": ticket_id,
            "stage_key": row.get("stage_key"),
            "stage": source.stage,
            "selected_by": selected_by,
        },
        "spec": spec.model_dump(mode="json"),
        "model_io": io,
        "ticket": row,
        "export_check": {
            "device": str(dev),
            "host": platform.node(),
            "metrics": compare(row, measured.values),
            "energy": measured.energy.totals(),
            "energy_layers": measured.energy.table(),
        },
        "versions": package_versions(),
        "formats": ["safetensors", *(["nir"] if fmt == "nir" else [])],
    }
    if nir_info is not None:
        manifest["nir"] = nir_info
    path = write_folder(folder, split_state(model.state_dict()), manifest, extra, overwrite=overwrite)
    return ExportResult(path=path, ticket_id=ticket_id, manifest=read_manifest(path))
