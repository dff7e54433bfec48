"""The run folder's ``study.journal`` (Optuna's journal file storage), checked before Optuna reads it.

Optuna replays the journal line by line and tolerates only a damaged *last* line; anything else unreadable
inside it (a torn write glued to the next append, a garbage line, a line of another file) made every command
that opens the study die in a JSONDecodeError traceback. Here a half-written last line is dropped (a process
killed inside a write), a damaged line inside the journal stops `sltsearch run` with one line naming it, and
`sltsearch repair` sets the damaged journal aside (kept whole in ``.damaged/``) and keeps its readable lines.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock

from sltsearch.errors import RunDirError, warn
from sltsearch.system.files import atomic_write

DAMAGED_DIR = ".damaged"  # beside the journal: damaged journals, kept whole


def trim_torn_tail(path: Path, lock: JournalFileSymlinkLock) -> None:
    """Drop a half-written last journal line (a process killed inside a write): Optuna skips such a line
    while it is last, but the next append would glue onto it and make the whole journal unreadable."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    lock.acquire()
    try:
        data = path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
        warn(f"{path}: dropped a half-written last line ({len(data) - keep} bytes) left by a killed process")
    finally:
        lock.release()


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and "op_code" in record


def damaged_lines(data: bytes) -> list[int]:
    """Numbers (from 1) of the complete lines of a journal that are not journal records. The text after the
    last newline is not judged: another process may be writing it."""
    lines = data.split(b"\n")[:-1]
    return [number for number, line in enumerate(lines, start=1) if not _is_record(line)]


def _named(numbers: list[int]) -> str:
    """``line 7 is`` / ``lines 3, 9 are`` (at most five named)."""
    shown = ", ".join(map(str, numbers[:5]))
    more = f" and {len(numbers) - 5} more" if len(numbers) > 5 else ""
    return f"lines {shown}{more} are" if len(numbers) > 1 else f"line {shown} is"


def check_journal(path: Path) -> None:
    """Refuse a journal with damaged lines inside it, in one line naming them and `sltsearch repair`."""
    if not path.is_file():
        return
    bad = damaged_lines(path.read_bytes())
    if bad:
        raise RunDirError(
            f"{path}: {_named(bad)} damaged (not a study record); run `sltsearch repair "
            f"{path.parent}` to set the damaged lines aside (the whole file is kept in {DAMAGED_DIR}/)"
        )


def drop_damaged_lines(path: Path, lock: JournalFileSymlinkLock) -> Path | None:
    """Keep a copy of a journal with damaged lines in ``.damaged/`` and rewrite it without them (under the
    journal's lock); the copy's path, None when the journal had none. One line tells the user which lines."""
    if not path.is_file():
        return None
    lock.acquire()
    try:
        data = path.read_bytes()
        bad = damaged_lines(data)
        if not bad:
            return None
        copy = path.parent / DAMAGED_DIR / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(copy, lambda tmp: tmp.write_bytes(data))
        dropped = set(bad)
        lines = data.split(b"\n")
        kept = [line for number, line in enumerate(lines[:-1], start=1) if number not in dropped]
        atomic_write(path, lambda tmp: tmp.write_bytes(b"".join(line + b"\n" for line in kept) + lines[-1]))
    finally:
        lock.release()
    warn(
        f"{path}: set aside what was not a study record ({_named(bad)} damaged); the study is read from the "
        f"other lines, and the damaged file is kept whole as {copy}"
    )
    return copy
