"""The files of an exported ticket and their integrity: write them with checksums, refuse damaged ones.

An export folder holds ``weights.safetensors`` (the model's state with the masks folded in: pruned weights
are exactly zero; masks and MultiSp switches left out), ``masks.safetensors`` (layer name -> boolean
mask), ``multisp.safetensors`` (Spikformer tickets: patch mask and binarization flags, by state_dict name),
optionally ``ticket.nir`` (NIR graph), and ``ticket.json``: what the ticket is and how to rebuild it, with
the sha256 and size of every other file. ``ticket.json`` is written last, so a folder without it is not
an export; the whole folder is written beside the target and renamed into place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sltsearch.errors import UserError
from sltsearch.system.files import FILE_MODE, sha256_file
from sltsearch.ticket_io import place
from sltsearch.tickets.masks import MASK, masks_in

MANIFEST = "ticket.json"
WEIGHTS = "weights.safetensors"
MASKS = "masks.safetensors"
MULTISP = "multisp.safetensors"
NIR_FILE = "ticket.nir"
FORMAT = "sltsearch-ticket/1"
# state_dict entries that are switches rather than weights: MultiSp's patch mask and binarization flags
MULTISP_SUFFIXES = ("patch_keep_mask", "binary_weights", "binary_activation")


class TicketFileError(UserError):
    """An export folder's file is missing, truncated, altered or unreadable."""


def split_state(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """A model state -> the tensors of each file: weights (masks folded in), masks by layer, MultiSp."""
    masks = {layer: mask.bool() for layer, mask in masks_in(state).items()}
    weights: dict[str, torch.Tensor] = {}
    multisp: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("." + MASK):
            continue
        if key.endswith(MULTISP_SUFFIXES):
            multisp[key] = value
            continue
        layer = key.removesuffix(".weight")
        if key.endswith(".weight") and layer in masks:
            value = value * masks[layer].to(value.device)  # already zero where pruned; folding it in is a no-op
        weights[key] = value
    files = {WEIGHTS: weights, MASKS: masks}
    if multisp:
        files[MULTISP] = multisp
    return files


def join_state(files: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The inverse of `split_state`: one state_dict with ``<layer>.weight_mask`` buffers again."""
    state = dict(files.get(WEIGHTS, {}))
    state.update({f"{layer}.{MASK}": mask for layer, mask in files.get(MASKS, {}).items()})
    state.update(files.get(MULTISP, {}))
    return state


def _plain_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def write_folder(
    out: Path,
    tensor_files: dict[str, dict[str, torch.Tensor]],
    manifest: dict[str, Any],
    extra_files: dict[str, Callable[[Path], None]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an export folder atomically; ``extra_files`` maps a file name to a writer of that path.

    An existing non-empty folder is kept unless ``overwrite`` and it is an earlier export (`place.check_target`):
    then it is replaced only once the new one is complete.
    """
    out = place.absolute(out)
    place.check_target(out, overwrite, MANIFEST, FORMAT)

    def fill(staging: Path) -> None:
        files: dict[str, dict[str, Any]] = {}
        for name, tensors in tensor_files.items():
            save_file(_plain_tensors(tensors), str(staging / name))
        for name, writer in (extra_files or {}).items():
            writer(staging / name)
        for name in [*tensor_files, *(extra_files or {})]:
            path = staging / name
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        (staging / MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=1, default=str) + "\n")
        for path in staging.iterdir():  # safetensors writes 0600: give the files the mode the umask gives others
            path.chmod(FILE_MODE)

    return place.place_folder(out, fill)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """``ticket.json`` of an export folder, with a one-line error naming what is wrong.

    Nothing in it is trusted: every field a reader uses is checked here (type, range, size), and ``files``
    may name only plain files of the folder itself.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise TicketFileError(f"{folder}: no such export folder; pass the folder `sltsearch export` wrote")
    if not path.is_file():
        raise TicketFileError(f"{path}: missing; {folder} is not a complete export (re-export the ticket)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise TicketFileError(
            f"{path}: {path.stat().st_size} bytes, more than an export writes ({MAX_MANIFEST_BYTES}); refusing it"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TicketFileError(f"{path}: not valid JSON ({err}); the file is damaged, re-export the ticket") from None
    except RecursionError:
        raise TicketFileError(f"{path}: nested too deeply to be an export's manifest; refusing it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TicketFileError(f"{path}: not an sltsearch ticket manifest (expected format {FORMAT})")
    for key in ("spec", "ticket", "model_io", "files", "source"):
        if key not in manifest:
            raise TicketFileError(f"{path}: has no '{key}' entry; the file is damaged, re-export the ticket")
    for key in ("spec", "ticket", "source"):
        if not isinstance(manifest[key], dict):
            raise TicketFileError(f"{path}: '{key}' must be a mapping; the file is damaged, re-export the ticket")
    if not isinstance(manifest["source"].get("ticket_id"), str):
        raise TicketFileError(f"{path}: 'source' names no ticket_id; the file is damaged, re-export the ticket")
    if not isinstance(manifest.get("export_check", {}), dict):
        raise TicketFileError(f"{path}: 'export_check' must be a mapping; the file is damaged, re-export the ticket")
    _check_recorded(path, manifest["ticket"])
    check_model_io(path, manifest["model_io"])
    _check_files(path, manifest["files"])
    return manifest


# a ticket.json larger than this is not one an export wrote (the per-layer energy table of a big model is ~1 MB)
MAX_MANIFEST_BYTES = 64 << 20
# model_io bounds: an input of more values per sample than this is refused before any model is built
MAX_INPUT_VALUES = 1 << 24
MAX_CLASSES = 1 << 20
MAX_TIME_STEPS = 1 << 16
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_model_io(path: Path, io: Any) -> None:
    """``model_io`` says what shape of model to build: whole numbers in range, so that a bad or hostile value is
    one line instead of a traceback or a 1 TB allocation."""
    if not isinstance(io, dict) or not {"input_shape", "num_classes", "frames"} <= set(io):
        raise TicketFileError(f"{path}: 'model_io' lacks input_shape / num_classes / frames; re-export the ticket")
    shape = io["input_shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= 4 or not all(_is_int(d) and d >= 1 for d in shape):
        raise TicketFileError(
            f"{path}: model_io.input_shape must be a list of 1 to 4 positive whole numbers, got {shape!r:.80}"
        )
    values = 1
    for dim in shape:
        values *= dim
    if values > MAX_INPUT_VALUES:
        raise TicketFileError(
            f"{path}: model_io.input_shape {shape} has {values} values per sample, more than {MAX_INPUT_VALUES}; "
            "refusing to build a model that large"
        )
    classes = io["num_classes"]
    if not _is_int(classes) or not 1 <= classes <= MAX_CLASSES:
        raise TicketFileError(
            f"{path}: model_io.num_classes must be a whole number 1-{MAX_CLASSES}, got {classes!r:.80}"
        )
    if not isinstance(io["frames"], bool):
        raise TicketFileError(f"{path}: model_io.frames must be true or false, got {io['frames']!r:.80}")
    steps = io.get("time_steps", 1)
    if not _is_int(steps) or not 1 <= steps <= MAX_TIME_STEPS:
        raise TicketFileError(
            f"{path}: model_io.time_steps must be a whole number 1-{MAX_TIME_STEPS}, got {steps!r:.80}"
        )


def _check_recorded(path: Path, row: dict[str, Any]) -> None:
    """The recorded metrics evaluate compares with: numbers (or null where a metric does not apply)."""
    from sltsearch.ticket_io.rebuild import COMPARED

    for name in COMPARED:
        value = row.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TicketFileError(f"{path}: ticket.{name} must be a number, got {value!r:.80}; re-export the ticket")


def _check_files(path: Path, files: Any) -> None:
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and "sha256" in v and "bytes" in v for v in files.values()
    ):
        raise TicketFileError(f"{path}: 'files' must map each file to its sha256 and bytes; re-export the ticket")
    for name, entry in files.items():
        if not _PLAIN_NAME.match(name) or name == MANIFEST:
            raise TicketFileError(
                f"{path}: 'files' names {name!r:.80}; an export lists only plain file names of its own folder "
                "(no folders, no paths): refusing it"
            )
        if not isinstance(entry["sha256"], str) or not _SHA256.match(entry["sha256"]):
            raise TicketFileError(f"{path}: files.{name}.sha256 is not a sha256 hex digest; re-export the ticket")
        if not _is_int(entry["bytes"]) or entry["bytes"] < 0:
            raise TicketFileError(f"{path}: files.{name}.bytes is not a file size; re-export the ticket")
    for name in (WEIGHTS, MASKS):
        if name not in files:
            raise TicketFileError(f"{path}: lists no {name}; the file is damaged, re-export the ticket")


def verify_files(folder: str | Path, manifest: dict[str, Any]) -> None:
    """Every file listed in the manifest exists with its recorded size and sha256."""
    folder = Path(folder)
    for name, expected in manifest["files"].items():
        path = folder / name
        if path.is_symlink():
            raise TicketFileError(f"{path}: a link, not a file of the export folder; refusing it")
        if not path.is_file():
            raise TicketFileError(f"{path}: missing; the export is incomplete, re-export the ticket")
        size = path.stat().st_size
        if size != expected.get("bytes"):
            raise TicketFileError(
                f"{path}: {size} bytes, ticket.json records {expected.get('bytes')}: truncated or altered; refusing it"
            )
        if sha256_file(path) != expected.get("sha256"):
            raise TicketFileError(f"{path}: sha256 does not match ticket.json: the file was altered; refusing it")


def read_tensors(folder: str | Path, manifest: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """The verified tensor files of an export folder (file name -> tensors)."""
    folder = Path(folder)
    verify_files(folder, manifest)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name in manifest["files"]:
        if not name.endswith(".safetensors"):
            continue
        try:
            out[name] = load_file(str(folder / name))
        except (SafetensorError, OSError) as err:
            raise TicketFileError(f"{folder / name}: unreadable safetensors file ({err})") from None
    return out
