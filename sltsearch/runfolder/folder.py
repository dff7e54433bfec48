"""The run folder: frozen spec, study storage, ticket table, fronts, cache. Reruns resume, never clobber."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sltsearch.errors import RunDirError
from sltsearch.spec import Spec, load_spec
from sltsearch.spec.keys import run_identity
from sltsearch.system.files import atomic_write, save_json
from sltsearch.system.secrets import mask_url

SPEC_FILE = "spec.yaml"
RUN_FILE = "run.json"
RUN_ID = "run_id"  # run.json: this folder's id, made once; a shared study's trials name the folder they belong to

def default_run_dir(spec: Spec, root: str | Path = "results") -> Path:
    return Path(root) / spec.name


def check_writable(run_dir: Path, option: str = "--run-dir") -> None:
    """A one-line error, before anything is written, when ``run_dir`` cannot be a folder we write (a run folder,
    or an export folder: ``option`` names the command-line option the path came from)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: is a file, not a folder; pass {option} a folder path")
    existing = run_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != run_dir and not existing.is_dir():
        raise RunDirError(
            f"{run_dir}: {existing} is a file, so no folder can be made inside it; pass another {option}"
        )
    try:  # a real write, not os.access: root ignores mode bits, but not a read-only filesystem
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise RunDirError(
            f"{run_dir}: cannot write in {existing} ({err.strerror or err}); pass a writable {option}"
        ) from None


def prepare_run_dir(spec: Spec, run_dir: Path, storage_url: str | None) -> None:
    """Create the folder, or check that an existing one holds a run of the same spec; freeze the spec.

    Nothing holding a password is written: the frozen spec and run.json carry the storage URL masked."""
    check_writable(run_dir)
    frozen = run_dir / SPEC_FILE
    if frozen.exists():
        previous = load_spec(frozen)
        # fields declared NONE (budget, storage, backend: where, not what) may change between invocations
        if run_identity(previous) != run_identity(spec):
            raise RunDirError(
                f"{run_dir} already holds a run of a different spec; pass --run-dir to start a new run "
                f"there, or run the spec frozen in {frozen} to resume it"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = storage_url or spec.search.storage
    safe = spec
    if spec.search.storage is not None:
        safe = spec.model_copy(
            update={"search": spec.search.model_copy(update={"storage": mask_url(spec.search.storage)})}
        )
    atomic_write(frozen, lambda tmp: tmp.write_text(safe.to_yaml()))
    import torch

    from sltsearch import __version__

    info = {
        RUN_ID: run_folder_id(run_dir) or uuid.uuid4().hex,
        "name": spec.name,
        "storage": mask_url(storage) if storage else "journal:study.journal",
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sltsearch": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "pid": os.getpid(),
    }
    save_json(run_dir / RUN_FILE, info)


def read_run(run_dir: str | Path) -> tuple[Path, Spec]:
    """A finished or running run folder and its frozen spec, with a clear error when it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such folder; pass the run folder `sltsearch run` wrote")
    if not (run_dir / SPEC_FILE).is_file():
        raise RunDirError(
            f"{run_dir}: not a run folder (no {SPEC_FILE}); pass the folder `sltsearch run` wrote"
        )
    return run_dir, load_spec(run_dir / SPEC_FILE)


def run_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def run_folder_id(run_dir: Path) -> str | None:
    """The run folder's id (run.json's ``run_id``); None for a folder made before folders had one."""
    try:
        found = run_info(run_dir).get(RUN_ID)
    except (OSError, ValueError):  # unreadable run.json: the folder's trials are told apart by its table
        return None
    return str(found) if found else None


def record(run_dir: Path, **fields: Any) -> None:
    """Add fields to run.json (e.g. ``inputs``: the user code and data hashes, `sltsearch.spec.provenance`)."""
    save_json(run_dir / RUN_FILE, {**run_info(run_dir), **fields})
