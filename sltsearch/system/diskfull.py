"""A full disk stops the work like Ctrl-C does, with one line that names the disk and what to free.

Every file sltsearch writes goes through a temp file and a rename (`sltsearch.system.files.atomic_write`, the
export folder's work folder), so a write that fails for lack of space leaves the earlier file intact and its
temp file removed. The failure is raised as `DiskFull`, a `KeyboardInterrupt`: every backend already treats
an interrupt as "stop now, mark the running trial interrupted, keep what is finished", and no
``except Exception`` on the way (a trial's failure handler, which would write a log to the same full disk)
turns it into a failed trial. The next run, once space is freed, resumes with the interrupted trial's
parameters. Writes sltsearch does not make itself (Optuna's journal) raise a plain ``OSError``; `describe`
turns such an error into the same line.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

_CODES = {errno.ENOSPC, errno.EDQUOT}
# how libraries that do not raise OSError (safetensors' Rust writer, pyarrow) word the same condition
_WORDS = ("no space left on device", "disk quota exceeded", "storagefull", "os error 28", "os error 122")


def is_disk_full(err: BaseException | None) -> bool:
    """True when ``err``, or an exception it was raised from or during, says the disk (or quota) is full."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFull):
            return True
        if isinstance(err, OSError) and err.errno in _CODES:
            return True
        if any(word in str(err).lower() for word in _WORDS):
            return True
        err = err.__cause__ or err.__context__
    return False


def mount_point(path: Path) -> Path:
    """The mount point that holds ``path`` (or would hold it: the nearest existing parent's)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def message(path: str | Path | None) -> str:
    """One line: which disk is full, how much is left, what to free, and that a rerun resumes."""
    where = Path(path) if path is not None else Path.cwd()
    mount = mount_point(where)
    try:
        free = f"{shutil.disk_usage(mount).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return (
        f"disk full: no space left on {mount} ({free}) while writing {where}; free space there (old run folders, "
        "their cache/ of trained stages, exports) or point --run-dir / --out at another disk, then rerun the same "
        "command: finished trials and stages are kept"
    )


class DiskFull(KeyboardInterrupt):
    """No space left for a file sltsearch writes; the search stops as on Ctrl-C (see the module docstring)."""

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(message(path))
        self.path = path


def describe(err: BaseException) -> str | None:
    """The one-line message of a disk-full ``err`` (raised as `DiskFull` or as a plain OSError), else None."""
    if isinstance(err, DiskFull):
        return str(err)
    if not is_disk_full(err):
        return None
    chain: BaseException | None = err
    while chain is not None:
        if isinstance(chain, DiskFull):
            return str(chain)
        if isinstance(chain, OSError) and chain.filename:
            return message(chain.filename)
        chain = chain.__cause__ or chain.__context__
    return message(None)
