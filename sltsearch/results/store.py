"""The ticket table: one row per ticket of every trial, one Parquet part file per trial.

``tickets/trial-000003.parquet`` holds trial 3's tickets. A trial rewrites only its own part (atomically,
through a temp file + rename), so an append costs the same however large the table is, several workers
can write at once without a lock, and a damaged file costs one trial's rows, never the table. Older run
folders hold a single ``tickets.parquet``; it is read as one more part and never rewritten.

``status`` says whether a row may be used: ``ok`` (its trial finished), ``running`` (the trial is still
going: its tickets are real but kept off the front until it ends), ``interrupted`` or ``failed`` (the
trial never finished; its parameters are run again as a new trial). Every part carries page checksums,
so a damaged file is found when it is read, never silently used. A table may come from elsewhere, and paths are
built from its ticket ids (``exports/<ticket_id>``): every id is checked on reading against the one form
`sltsearch.results.record.Ticket.ticket_id` writes (`TICKET_ID`); a part holding another is damaged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sltsearch.errors import RunDirError
from sltsearch.results.record import Ticket
from sltsearch.system.files import atomic_write

TICKETS_DIR = "tickets"
LEGACY_FILE = "tickets.parquet"
OK, RUNNING, INTERRUPTED, FAILED = "ok", "running", "interrupted", "failed"
# `Ticket.ticket_id`: t<trial, 4+ digits>r<round, 2+ digits>, control and early-time rows add -<kind>
TICKET_ID = re.compile(r"t[0-9]{4,9}r[0-9]{2,4}(-[a-z][a-z0-9_]{0,31})?")


class TicketTableDamaged(RunDirError):
    """A part of the ticket table cannot be read; `sltsearch repair` rebuilds it."""


def part_path(run_dir: Path, trial: int) -> Path:
    return run_dir / TICKETS_DIR / f"trial-{trial:06d}.parquet"


def _run_dir_of(path: Path) -> Path:
    return path.parent.parent if path.parent.name == TICKETS_DIR else path.parent


def _damaged(path: Path, err: Exception) -> TicketTableDamaged:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return TicketTableDamaged(
        f"{path}: the ticket table file is damaged ({reason}); run `sltsearch repair {_run_dir_of(path)}` "
        "to rebuild it from the study and the stage cache"
    )


def is_ticket_id(value: object) -> bool:
    """True for an id of the form sltsearch writes (`TICKET_ID`): safe in a path, a terminal and a filter."""
    return isinstance(value, str) and TICKET_ID.fullmatch(value) is not None


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path, page_checksum_verification=True)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise _damaged(path, err) from None
    if frame.empty:
        return frame
    if "ticket_id" not in frame.columns:
        raise _damaged(path, ValueError("it has no ticket_id column"))
    bad = [value for value in frame["ticket_id"] if not is_ticket_id(value)]
    if bad:
        shown = ascii(bad[0])[:60]
        raise _damaged(path, ValueError(f"ticket id {shown} is not of the form t0000r01 that sltsearch writes"))
    return frame


def read_columns(path: Path, columns: Iterable[str]) -> dict[str, list]:
    """Only ``columns`` of one table file (those it has; page checksums verified), as column -> values: what a
    reader that needs a few columns pays instead of the whole file. FileNotFoundError when it has gone."""
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path, page_checksum_verification=True)
        present = set(handle.schema_arrow.names)
        return handle.read(columns=[c for c in columns if c in present]).to_pydict()
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise _damaged(path, err) from None


def _write(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False, write_page_checksum=True))


class TicketStore:
    """Writes tickets into per-trial part files of one run folder."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def append(self, tickets: Iterable[Ticket], status: str | None = None) -> None:
        """Add tickets (a ticket already stored under the same id is replaced); ``status`` overrides theirs."""
        rows = [t.row() for t in tickets]
        if status is not None:
            for row in rows:
                row["status"] = status
        by_trial: dict[int, list[dict]] = {}
        for row in rows:
            by_trial.setdefault(int(row["trial"]), []).append(row)
        for trial, new_rows in by_trial.items():
            path = part_path(self.run_dir, trial)
            new = pd.DataFrame(new_rows)
            if path.exists():
                old = _read(path)
                old = old[~old["ticket_id"].isin(new["ticket_id"])]
                new = pd.concat([old, new], ignore_index=True) if not old.empty else new
            _write(path, new)

    def set_status(self, trial: int, status: str) -> None:
        """Mark every stored ticket of ``trial`` (e.g. ``ok`` once the trial has finished)."""
        path = part_path(self.run_dir, trial)
        if path.exists():
            frame = _read(path)
            if not (frame["status"] == status).all():
                frame["status"] = status
                _write(path, frame)

    def replace_trial(self, trial: int, tickets: list[Ticket], status: str = OK) -> None:
        """Write ``trial``'s part anew from ``tickets`` (`sltsearch repair`)."""
        path = part_path(self.run_dir, trial)
        path.unlink(missing_ok=True)
        self.append(tickets, status=status)

    def load(self) -> pd.DataFrame:
        return load_tickets(self.run_dir)


def table_files(run_dir: str | Path) -> list[Path]:
    """Every file of a run's ticket table: the legacy single file first, then the parts by trial."""
    run_dir = Path(run_dir)
    legacy = run_dir / LEGACY_FILE
    parts = sorted((run_dir / TICKETS_DIR).glob("trial-*.parquet"))
    return ([legacy] if legacy.is_file() else []) + parts


def highest_trial(run_dir: str | Path) -> int | None:
    """The highest trial number the table holds tickets of (part names, and the legacy file's ``trial`` column);
    None for an empty table. A study must hold at least this many trials + 1, or a new trial would reuse a
    ticket id."""
    numbers = []
    for path in table_files(run_dir):
        if path.name == LEGACY_FILE:
            numbers += [int(t) for t in read_columns(path, ["trial"]).get("trial", []) if t is not None]
        elif path.stem.removeprefix("trial-").isdigit():
            numbers.append(int(path.stem.removeprefix("trial-")))
    return max(numbers, default=None)


def check_tickets(run_dir: str | Path) -> list[tuple[Path, str]]:
    """(file, problem) for every part of the ticket table that cannot be read; empty when all are fine."""
    problems = []
    for path in table_files(run_dir):
        try:
            _read(path)
        except TicketTableDamaged as err:
            problems.append((path, str(err)))
    return problems


def load_tickets(run_dir: str | Path) -> pd.DataFrame:
    """The ticket table of a run folder (empty with no rows yet); a damaged part is a one-line error."""
    frames = [_read(path) for path in table_files(run_dir)]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0]
    frame = pd.concat(frames, ignore_index=True)
    # a legacy table and parts never share a ticket id (parts are written only for newer trials)
    return frame.drop_duplicates("ticket_id", keep="last").reset_index(drop=True)


def ticket_points(
    run_dir: str | Path, metrics: Iterable[str], extra: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """The objective values of every usable ticket of a run so far (finished or still running, feasible): what a
    path's stop rule compares against (`sltsearch.trial.paths`), with the ``extra`` columns a file has (a path's
    branch reads where each ticket came from). Only the needed columns are read; a part that vanished or is
    damaged is skipped, since a stop rule must not fail a trial (`sltsearch repair` reports it)."""
    metrics, extra = list(metrics), [c for c in extra if c not in metrics]
    points: list[dict[str, Any]] = []
    for path in table_files(run_dir):
        try:
            cols = read_columns(path, [*metrics, "status", "feasible", *extra])
        except (FileNotFoundError, TicketTableDamaged):
            continue
        if any(m not in cols for m in metrics):
            continue
        n = len(cols[metrics[0]])
        for i in range(n):
            if cols.get("status", [OK] * n)[i] not in (OK, RUNNING) or cols.get("feasible", [True] * n)[i] is False:
                continue
            values = {m: cols[m][i] for m in metrics}
            if all(v is not None for v in values.values()):
                point = {c: cols[c][i] for c in extra if c in cols}
                points.append({**point, **{m: float(v) for m, v in values.items()}})
    return points


def stage_compute(ticket: Ticket | Mapping[str, Any]) -> float:
    """What computing ``ticket``'s stage cost in epochs x T (0 for a cached stage): the unit of
    ``search.budget_epochs``, machine-independent, and what GPU-hours scale with. A `Ticket`, or a row of the
    ticket table (``sltsearch.load``): the benchmarks count a run's compute from its table the same way."""
    row = ticket if isinstance(ticket, Mapping) else vars(ticket)
    return 0.0 if bool(row["cached"]) else float(row["epochs_trained"]) * float(row["time_steps"])
