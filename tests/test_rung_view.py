"""MO-ASHA's rung tables read incrementally (`RungView`): the same decisions as reading the whole ticket table,
reading only the files that changed."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import tiny_spec_dict

from sltsearch.results.record import Ticket
from sltsearch.results.store import TicketStore, TicketTableDamaged, load_tickets, part_path
from sltsearch.search.early_stop import RungStopper
from sltsearch.search.mo_asha import rung_rows
from sltsearch.search.rung_view import RungView
from sltsearch.spec import parse_spec

PARAMS = {"rounds": 3}
STATUSES = ["ok", "running", "failed", "interrupted"]


def _spec(constraints: dict[str, Any] | None = None) -> Any:
    objective = {"constraints": constraints} if constraints else {}
    return parse_spec(tiny_spec_dict(
        objective=objective,
        tickets={"rounds": 3, "prune_rate": 0.5},
        search={"early_stopping": {"rule": "mo_asha", "eta": 3, "min_rungs": 1, "rungs": "every_round"}},
        space={"rounds": {"type": "int", "low": 1, "high": 3}},
    ))


def _ticket(trial: int, round_: int, rng: random.Random, kind: str | None = None) -> Ticket:
    val = rng.choice([0.3, 0.5, 0.6, 0.7, 0.8, 0.9, float("nan")]) if rng.random() < 0.2 else rng.random()
    return Ticket(
        trial=trial, round=round_, kind=kind or ("imp" if round_ else "dense"), params=PARAMS, seed=0,
        time_steps=2, sparsity=0.5, density=0.5, nonzero_params=1, prunable_params=2, val_accuracy=val,
        test_accuracy=val, energy_uj=rng.choice([0.1, 0.5, rng.random()]), macs=0.0, acs=0.0, firing_rate=0.0,
        best_epoch=0, epochs_trained=0, wall_time_s=0.0, stage_key="k",
    )


def _trial_tickets(trial: int, rng: random.Random) -> list[Ticket]:
    tickets = [_ticket(trial, r, rng) for r in range(rng.randint(1, 4))]
    if rng.random() < 0.3:
        tickets.append(_ticket(trial, 1, rng, kind="random_prune"))  # a control: never a rung entry
    return tickets


def _whole_table_decision(stopper: RungStopper, table: pd.DataFrame, number: int, ticket: Ticket, rung: int) -> bool:
    """The decision as it was taken before: from the whole ticket table (``load_tickets``)."""
    rows = rung_rows(table, rung, exclude_trial=number).to_dict("records")
    others = [{k: float(row[k]) for k in stopper.rule.objectives} for row in rows]
    metrics = {k: float(getattr(ticket, k)) for k in stopper.rule.objectives}
    violations = None
    if stopper.spec.objective.constraints:
        violations = [stopper.violation(ticket), *(stopper.violation(row) for row in rows)]
    return stopper.rule.should_stop(rung, metrics, others, violations)


@pytest.mark.parametrize("constraints", [None, {"val_accuracy": {"min": 0.6}, "energy_uj": {"max": 0.5}}])
def test_decisions_equal_reading_the_whole_table(tmp_path: Path, constraints: dict | None) -> None:
    rng = random.Random(7)
    store = TicketStore(tmp_path)
    # an older run folder's single file (trials 0-4), then one part per trial (5-24)
    legacy = [t.row() | {"status": rng.choice(STATUSES)} for n in range(5) for t in _trial_tickets(n, rng)]
    pd.DataFrame(legacy).to_parquet(tmp_path / "tickets.parquet", index=False)
    for n in range(5, 25):
        store.append(_trial_tickets(n, rng), status=rng.choice(STATUSES))
    stopper = RungStopper(_spec(constraints), tmp_path)  # one view for the whole test: it is kept up to date
    outcomes = []
    for step in range(5):
        table = load_tickets(tmp_path)  # what every decision of this step read before
        for _ in range(12):
            number, rung = rng.randrange(40), rng.randint(1, 2)
            ticket = _ticket(number, rung, rng)
            expected = _whole_table_decision(stopper, table, number, ticket, rung)
            assert stopper.should_stop(number, PARAMS, ticket, rung) == expected, (step, number, rung)
            outcomes.append(expected)
        # the search goes on: rounds appended, statuses changed, a trial replaced, a part removed, new trials
        for n in rng.sample(range(5, 25), 4):
            store.append([_ticket(n, rng.randint(1, 3), rng)], status="running")
        store.set_status(rng.randrange(5, 25), rng.choice(STATUSES))
        replaced = rng.randrange(5, 25)
        store.replace_trial(replaced, [_ticket(replaced, 1, rng)], status="ok")
        part_path(tmp_path, rng.randrange(5, 25)).unlink(missing_ok=True)
        store.append(_trial_tickets(30 + step, rng), status="running")
        if step % 2:  # every other step as if written long ago, so the view trusts what it has not seen change
            for path in (tmp_path / "tickets").glob("*.parquet"):
                _age(path, 600.0 - step)
    assert True in outcomes and False in outcomes  # both decisions were compared


def _age(path: Path, seconds: float = 600.0) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_decision_reads_only_the_files_that_changed(tmp_path: Path) -> None:
    rng = random.Random(3)
    store = TicketStore(tmp_path)
    for n in range(20):
        store.append([_ticket(n, 0, rng), _ticket(n, 1, rng)], status="ok")
        _age(part_path(tmp_path, n))  # written long ago
    view = RungView(tmp_path, ["val_accuracy", "energy_uj"])
    assert len(view.rows(1)) == 20 and view.reads == 20  # a new process (a resume) reads the run folder
    assert len(view.rows(1)) == 20 and view.reads == 20  # nothing changed: nothing read
    assert view.rows(2) == [] and view.reads == 20  # another rung: answered from memory
    store.append([_ticket(5, 2, rng)], status="running")  # trial 5 measures its next round
    assert [r["trial"] for r in view.rows(2)] == [5] and view.reads == 21  # only its part is read
    store.set_status(7, "failed")
    assert 7 not in [r["trial"] for r in view.rows(1)] and view.reads == 23  # trial 7's part, and 5's again:
    # a file written less than RACY_S ago is read at every decision (a rewrite in the same mtime tick
    # cannot hide); once old, it is trusted until its identity changes
    _age(part_path(tmp_path, 5))
    _age(part_path(tmp_path, 7))
    view.rows(1)
    reads = view.reads
    view.rows(1)
    assert view.reads == reads
    part_path(tmp_path, 3).unlink()  # a part removed (e.g. set aside by `sltsearch repair`)
    assert sorted(r["trial"] for r in view.rows(1)) == [n for n in range(20) if n not in (3, 7)]
    assert len(view.rows(1, exclude_trial=0)) == 17


def test_a_damaged_part_is_the_same_one_line_error(tmp_path: Path) -> None:
    store = TicketStore(tmp_path)
    store.append([_ticket(0, 1, random.Random(0))], status="ok")
    part = part_path(tmp_path, 0)
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    with pytest.raises(TicketTableDamaged, match="sltsearch repair"):
        RungView(tmp_path, ["val_accuracy"]).rows(1)


def test_a_pickled_view_reads_the_run_folder_afresh(tmp_path: Path) -> None:
    import pickle

    TicketStore(tmp_path).append([_ticket(0, 1, random.Random(1))], status="ok")
    view = RungView(tmp_path, ["val_accuracy"])
    assert len(view.rows(1)) == 1
    copy = pickle.loads(pickle.dumps(view))
    assert copy.files == {} and len(copy.rows(1)) == 1
