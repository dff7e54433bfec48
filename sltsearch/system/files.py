"""Writing files so a crash or a full disk never leaves one half written, and their checksums.

Every file sltsearch writes (ticket parts, the stage cache, run.json, fronts, plots, exports) goes through
`atomic_write`: a temp file in the same folder, renamed into place. Free of torch, so the commands that only
read or write tables stay light.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sltsearch.system.diskfull import DiskFull, is_disk_full


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_current_umask()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temp file in the same folder and rename it into place.

    The file gets the mode any other new file gets (0666 less the umask), not mkstemp's private 0600, so a
    run folder shared by a group stays readable by it. A full disk raises `DiskFull` (the old file intact).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        if is_disk_full(err):
            raise DiskFull(path) from None
        raise
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)  # frees what the failed write took, so marking the trial can succeed
        if is_disk_full(err) and not isinstance(err, DiskFull):
            raise DiskFull(path) from None
        raise


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in blocks (the checksum every artefact carries)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON with sorted keys, written atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str)))
