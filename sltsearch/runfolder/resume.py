"""Whether a run folder may take more trials, checked before the first new one: a damaged ticket table or a
study that lacks trials the table has tickets of stops the run with one line naming the fix; finished trials
whose recording was cut short are measured again from the stage cache first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sltsearch.errors import RunDirError, warn
from sltsearch.results import load_tickets
from sltsearch.results.store import TicketTableDamaged, check_tickets, highest_trial
from sltsearch.search.study import JOURNAL_FILE
from sltsearch.spec import Spec


def check_tickets_readable(run_dir: Path) -> None:
    """Refuse to start on a damaged ticket table (one line naming the file and `sltsearch repair`)."""
    problems = check_tickets(run_dir)
    if problems:
        more = f" (and {len(problems) - 1} more damaged files)" if len(problems) > 1 else ""
        raise TicketTableDamaged(problems[0][1] + more)


def check_study_matches_table(run_dir: Path, study: Any) -> None:
    """Refuse to start a study that lacks trials the ticket table has tickets of: its next trials would reuse
    their ticket ids (an empty study beside an old table, or a rebuild by `sltsearch repair` cut short)."""
    highest = highest_trial(run_dir)
    if highest is None:
        return
    held = len(study.get_trials(deepcopy=False))
    if not held:
        raise RunDirError(
            f"{run_dir}: holds tickets but its study is empty (was {JOURNAL_FILE} deleted, or "
            f"--storage changed?); restore the study, run `sltsearch repair {run_dir}` to rebuild it from the "
            "ticket table, or pass a new --run-dir"
        )
    if held <= highest:
        raise RunDirError(
            f"{run_dir}: its study holds {held} trials but the ticket table has tickets of trial {highest} (a "
            f"repair was interrupted while rebuilding the study?); run `sltsearch repair {run_dir}` to finish it"
        )


def finish_interrupted_records(
    spec: Spec, run_dir: Path, study: Any, device: str | None, data_memo: dict[str, Any]
) -> None:
    """Finished trials whose ticket rows are missing or not ``ok`` (a repair killed while re-measuring) are
    measured again from the stage cache before the first new trial, so the front never silently lacks them."""
    from sltsearch.runfolder.repair import finish_records  # loads torch and the trial code: only when resuming

    redone = finish_records(spec, run_dir, study, load_tickets(run_dir), device=device, data_memo=data_memo)
    if redone:
        trials = ", ".join(map(str, redone))
        warn(f"re-measured the tickets of finished trials {trials} from the stage cache (their recording was cut"
             " short)")
