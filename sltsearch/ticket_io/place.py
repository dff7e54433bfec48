"""Put a finished export folder where the user asked, atomically, replacing nothing but an earlier export.

A folder is written in a hidden work folder beside its target (``.<name>.export-XXXXXXXX/new``) and renamed
into place once complete. ``--force`` may replace only an earlier export: a folder whose ``ticket.json`` is an
sltsearch ticket manifest and that holds nothing but the files it lists. A run folder, a folder of other
files, or a file is never replaced.

The work folder is locked (``flock``) while its export runs. An export killed half-way leaves it behind; the
next export into the same parent folder finds it unlocked and removes it, first putting back an earlier
export it had moved aside (a kill between the two renames of a replacement).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from sltsearch.errors import UserError
from sltsearch.runfolder.folder import check_writable
from sltsearch.system.diskfull import DiskFull, is_disk_full

WORK_TAG = ".export-"  # .<name>.export-XXXXXXXX: the hidden work folder of an export into <name>
NEW, OLD = "new", "old"


def child(parent: Path, name: str, what: str) -> Path:
    """``parent / name`` when that is a folder directly inside ``parent`` (``name`` read from a table or a file:
    no separators, no ``..``, no control characters); else a one-line error naming ``what`` it came from."""
    path = parent / name
    plain = name not in {"", ".", ".."} and Path(name).name == name and name.isprintable() and "\\" not in name
    if not plain or path.parent != parent:
        raise UserError(f"{what} {ascii(name)[:60]} is not a plain folder name; refusing to write outside {parent}")
    return path


def absolute(out: str | Path) -> Path:
    """``out`` as an absolute path without ``.`` / ``..`` parts (``--out .`` names the current folder)."""
    path = Path(os.path.abspath(out))
    if not path.name:
        raise UserError(f"--out {out}: the root folder cannot be an export folder; pass a folder path below it")
    return path


def earlier_export_problem(folder: Path, manifest_name: str, format_tag: str) -> str | None:
    """Why ``folder`` is not an earlier export that ``--force`` may replace; None when it is one."""
    manifest = folder / manifest_name
    if not manifest.is_file():
        return f"it holds no {manifest_name}, so it is not an export"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError, RecursionError):
        return f"its {manifest_name} cannot be read as an export's manifest"
    if not isinstance(data, dict) or data.get("format") != format_tag or not isinstance(data.get("files"), dict):
        return f"its {manifest_name} is not an sltsearch ticket manifest"
    listed = {manifest_name, *map(str, data["files"])}
    others = sorted(p.name for p in folder.iterdir() if p.name not in listed or not p.is_file() or p.is_symlink())
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        return f"it holds files no export writes ({shown})"
    return None


def check_target(out: Path, overwrite: bool, manifest_name: str, format_tag: str) -> None:
    """A one-line error unless ``out`` is new, an empty folder, or (with ``overwrite``) an earlier export."""
    check_writable(out, "--out")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(f"{out}: already exists and is not empty; pass another --out, or --force to replace an export")
    problem = earlier_export_problem(out, manifest_name, format_tag)
    if problem:
        raise UserError(
            f"{out}: --force replaces only an earlier export, and {problem}; pass another --out (nothing was changed)"
        )


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def _claim_if_abandoned(folder: Path) -> int | None:
    """An open, locked handle of ``folder`` when no live export holds it, else None."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        return None
    return handle


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the work folders that killed exports left in ``parent``; an export one had moved aside goes back."""
    removed = []
    if not parent.is_dir():
        return removed
    for work in parent.glob(f".*{WORK_TAG}*"):
        if not work.is_dir() or work.is_symlink():
            continue
        handle = _claim_if_abandoned(work)
        if handle is None:
            continue
        try:
            target = parent / work.name[1:].rpartition(WORK_TAG)[0]
            if (work / OLD).is_dir() and not target.exists() and target.name:
                os.replace(work / OLD, target)  # killed between the two renames: the earlier export returns
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
        finally:
            os.close(handle)
    return removed


@contextlib.contextmanager
def _disk_full_names(out: Path) -> Iterator[None]:
    """A full disk while the folder is written: `DiskFull` naming ``out`` (the work folder is removed after)."""
    try:
        yield
    except BaseException as err:
        if is_disk_full(err) and not isinstance(err, DiskFull):
            raise DiskFull(out) from None
        raise


def place_folder(out: Path, fill: Callable[[Path], None]) -> Path:
    """Write a new folder with ``fill(folder)`` beside ``out``, then rename it to ``out`` (an existing ``out``
    already checked by `check_target` is moved aside first and removed once the new folder is in place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(out.parent)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{out.name[:100]}{WORK_TAG}", dir=out.parent))
    except OSError as err:
        if is_disk_full(err):
            raise DiskFull(out) from None
        raise
    try:
        with _locked(work), _disk_full_names(out):
            staging = work / NEW
            staging.mkdir()  # mkdir honours the umask (mkdtemp's 0700 would make the export private)
            fill(staging)
            if out.exists():
                os.replace(out, work / OLD)
            try:
                os.replace(staging, out)
            except BaseException:
                if (work / OLD).exists() and not out.exists():
                    os.replace(work / OLD, out)  # the earlier export stays where it was
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
