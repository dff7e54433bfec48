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
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sltsearch.cache import sha256_file
from sltsearch.errors import UserError
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


def _usual_permissions(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder: give it and its files the permissions the umask gives new ones."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~mask)


def write_folder(
    out: Path,
    tensor_files: dict[str, dict[str, torch.Tensor]],
    manifest: dict[str, Any],
    extra_files: dict[str, Callable[[Path], None]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an export folder atomically; ``extra_files`` maps a file name to a writer of that path.

    An existing folder is kept unless ``overwrite``: then it is replaced only once the new one is complete.
    """
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not empty; pass another --out, or --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files: dict[str, dict[str, Any]] = {}
        for name, tensors in tensor_files.items():
            save_file(_plain_tensors(tensors), str(staging / name))
        for name, writer in (extra_files or {}).items():
            writer(staging / name)
        for name in [*tensor_files, *(extra_files or {})]:
            path = staging / name
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        (staging / MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=1, default=str) + "\n")
        _usual_permissions(staging)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """``ticket.json`` of an export folder, with a one-line error naming what is wrong."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise TicketFileError(f"{folder}: no such export folder; pass the folder `sltsearch export` wrote")
    if not path.is_file():
        raise TicketFileError(f"{path}: missing; {folder} is not a complete export (re-export the ticket)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TicketFileError(f"{path}: not valid JSON ({err}); the file is damaged, re-export the ticket") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TicketFileError(f"{path}: not an sltsearch ticket manifest (expected format {FORMAT})")
    for key in ("spec", "ticket", "model_io", "files"):
        if key not in manifest:
            raise TicketFileError(f"{path}: has no '{key}' entry; the file is damaged, re-export the ticket")
    io = manifest["model_io"]
    if not isinstance(io, dict) or not {"input_shape", "num_classes", "frames"} <= set(io):
        raise TicketFileError(f"{path}: 'model_io' lacks input_shape / num_classes / frames; re-export the ticket")
    if not isinstance(manifest["files"], dict) or not all(
        isinstance(v, dict) and "sha256" in v and "bytes" in v for v in manifest["files"].values()
    ):
        raise TicketFileError(f"{path}: 'files' must map each file to its sha256 and bytes; re-export the ticket")
    for name in (WEIGHTS, MASKS):
        if name not in manifest["files"]:
            raise TicketFileError(f"{path}: lists no {name}; the file is damaged, re-export the ticket")
    return manifest


def verify_files(folder: str | Path, manifest: dict[str, Any]) -> None:
    """Every file listed in the manifest exists with its recorded size and sha256."""
    folder = Path(folder)
    for name, expected in manifest["files"].items():
        path = folder / name
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
