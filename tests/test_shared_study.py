"""A study shared by run folders (issue 32, item 2): a study carries its spec's identity, a spec with another
one is refused before any trial, and a run folder joining a shared study never redoes other folders' trials.

A SQLite URL stands in for the database here (the same RDB storage code as PostgreSQL, in-process and quick);
tests/test_postgres.py runs the same rules on a real PostgreSQL server through the CLI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import tiny_spec_dict, write_spec
from optuna.trial import TrialState

import sltsearch
from sltsearch.search import study as study_module
from sltsearch.search.study import IDENTITY, RUN_FOLDER, StudyOfAnotherSpec, open_study, spec_identity
from sltsearch.spec.keys import run_identity


def _spec(**train: object) -> sltsearch.Spec:
    return sltsearch.Spec.model_validate(tiny_spec_dict(train={"epochs": 1, "lr": 0.01, **train}))


def test_a_journal_study_refuses_another_spec_and_takes_a_new_budget(tmp_path: Path) -> None:
    first = open_study(_spec(), tmp_path)
    assert first.user_attrs[IDENTITY] == spec_identity(_spec())
    with pytest.raises(StudyOfAnotherSpec, match="belongs to another spec"):
        open_study(_spec(lr=0.02), tmp_path)
    budget = _spec().model_copy(update={"search": _spec().search.model_copy(update={"n_trials": 50})})
    open_study(budget, tmp_path)  # the budget is where, not what: the same study


def test_a_study_made_before_studies_carried_their_spec_is_adopted(tmp_path: Path) -> None:
    spec = _spec()
    storage = study_module.make_storage(spec, tmp_path, None)
    optuna.create_study(study_name=spec.name, storage=storage, directions=list(spec.objective.metrics.values()))
    assert open_study(spec, tmp_path).user_attrs[IDENTITY] == spec_identity(spec)
    with pytest.raises(StudyOfAnotherSpec):
        open_study(_spec(lr=0.5), tmp_path)


def test_a_study_made_by_an_older_sltsearch_is_compared_by_its_recorded_spec(tmp_path: Path) -> None:
    """An upgrade that adds a spec field changes the identity's hash, not the identity: still the same study."""
    spec = _spec()
    study = open_study(spec, tmp_path)
    study.set_user_attr(IDENTITY, "0123456789abcdef")  # the hash an older version computed
    open_study(spec, tmp_path)
    other = run_identity(_spec(lr=0.3))
    study.set_user_attr(study_module.IDENTITY_SPEC, other)
    with pytest.raises(StudyOfAnotherSpec):
        open_study(spec, tmp_path)


def test_the_cli_refuses_another_spec_in_one_line_before_any_trial(tmp_path: Path) -> None:
    """A folder whose frozen spec was removed (or a journal copied beside another spec) still knows its spec."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    open_study(_spec(), run_dir)  # the study of spec A, no spec.yaml beside it
    other = write_spec(tmp_path / "b.yaml", tiny_spec_dict(train={"epochs": 1, "lr": 0.02}))
    result = subprocess.run(
        [sys.executable, "-m", "sltsearch", "run", str(other), "--run-dir", str(run_dir), "-q", "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "belongs to another spec" in result.stderr
    assert not open_study(_spec(), run_dir).get_trials(deepcopy=False)
    assert not (run_dir / "spec.yaml").exists()  # nothing frozen that would block spec A's rerun here


@pytest.mark.slow
def test_run_folders_sharing_a_database_study(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Spec A runs 2 trials from folder a; spec B on the same study is refused before any trial; spec A from a
    new folder b (a machine without a shared filesystem) runs only the third trial and redoes none of a's."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    spec_a = _spec()
    sltsearch.run(spec_a, run_dir=tmp_path / "a", storage=url, n_trials=2, workers=1, threads=1)
    capfd.readouterr()
    with pytest.raises(StudyOfAnotherSpec):
        sltsearch.run(_spec(lr=0.02), run_dir=tmp_path / "other", storage=url, n_trials=4, workers=1, threads=1)
    assert not (tmp_path / "other").exists()  # refused before the folder was made
    trials = open_study(spec_a, tmp_path / "a", url).get_trials(deepcopy=False)
    assert len(trials) == 2  # nothing asked by the refused spec

    sltsearch.run(spec_a, run_dir=tmp_path / "b", storage=url, n_trials=3, workers=1, threads=1)
    assert "re-measured" not in capfd.readouterr().err
    trials = open_study(spec_a, tmp_path / "b", url).get_trials(deepcopy=False)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    held_b = set(sltsearch.load(tmp_path / "b")["trial"])
    assert held_b == {2}  # only its own trial: a's trials 0 and 1 stay a's
    assert {t.user_attrs[RUN_FOLDER] for t in trials if t.number < 2} != {trials[2].user_attrs[RUN_FOLDER]}
    assert set(sltsearch.load(tmp_path / "a")["trial"]) == {0, 1}


# -- hosts whose clocks disagree (issue 32, item 3)


def _remote_trial(spec: sltsearch.Spec, run_dir: Path) -> optuna.Trial:
    """A trial claimed as by a worker on another host (its owner's liveness only its heartbeat can tell)."""
    from sltsearch.compat import optuna as optuna_compat
    from sltsearch.search import liveness

    trial = study_module.SearchStudy(spec, open_study(spec, run_dir), run_dir).ask()
    assert trial is not None
    storage = optuna_compat.trial_storage(trial)
    optuna_compat.set_system_attr(storage, trial, liveness.OWNER, {"host": "host-a.invalid", "pid": 1, "start": "1"})
    return trial


def test_a_host_whose_clock_runs_ahead_never_fails_a_live_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host B's clock is 3 minutes ahead of host A's: A's fresh heartbeat looks 3 minutes old to B's clock, yet
    the trial is alive as long as its heartbeat changes; silent for the grace period of B's own clock, it is
    stale."""
    import time
    import types

    from sltsearch.compat import optuna as optuna_compat
    from sltsearch.search import liveness

    spec = _spec()
    trial = _remote_trial(spec, tmp_path)  # host A: heartbeat written by the real clock
    clock = [1000.0]
    skewed = types.SimpleNamespace(time=lambda: time.time() + 180.0, monotonic=lambda: clock[0])
    monkeypatch.setattr(liveness, "time", skewed)  # host B
    observer = study_module.SearchStudy(spec, open_study(spec, tmp_path), tmp_path)
    storage = optuna_compat.trial_storage(trial)
    for beat in range(5):  # A beats every 20 s (of anyone's clock); B looks every 100 s of its own
        assert observer.recover() == 0
        optuna_compat.set_system_attr(storage, trial, liveness.BEAT, time.time() + beat)
        clock[0] += 100.0
    assert observer.recover() == 0  # the last beat is new to B
    clock[0] += liveness.GRACE_S - 1
    assert observer.recover() == 0  # silent, but not yet for the grace period
    clock[0] += 2.0
    assert observer.recover() == 1  # silent for longer than the grace period of B's own clock: A is gone
    frozen = open_study(spec, tmp_path).trials[trial.number]
    assert frozen.state == TrialState.FAIL and frozen.system_attrs[liveness.END] == "stale"


def test_a_worker_whose_trial_was_taken_goes_on_in_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Another worker failed this worker's trial as stale while it ran (a heartbeat that really went silent):
    the worker ends the trial with one warning, its rows marked interrupted as the study holds it FAIL, and
    goes on; the trial's parameters run again as its retry."""
    from sltsearch.compat import optuna as optuna_compat
    from sltsearch.runfolder.folder import prepare_run_dir
    from sltsearch.search import liveness, optuna_backend
    from sltsearch.search.execute import TrialRunner

    spec = _spec().model_copy(update={"search": _spec().search.model_copy(update={"n_trials": 1})})
    prepare_run_dir(spec, tmp_path, None)
    runner = TrialRunner(spec, tmp_path)
    taken: list[int] = []

    def run_one(number: int, params: dict) -> list:
        tickets = runner(number, params)
        if not taken:  # meanwhile another host's worker found this one's heartbeat silent and failed the trial
            taken.append(number)
            other = open_study(spec, tmp_path)
            frozen = other.trials[number]
            storage = optuna_compat.storage_of(other)
            optuna_compat.set_system_attr(storage, frozen, liveness.END, "stale")
            assert optuna_compat.fail_trial(storage, frozen)
            study_module.enqueue_retries(other, 1)  # as its `recover` does
        return tickets

    ends: list = []
    optuna_backend.optimize(spec, open_study(spec, tmp_path), run_one, run_dir=tmp_path, on_trial_end=ends.append)
    err = capfd.readouterr().err
    assert "Traceback" not in err and sum("was ended by another worker" in line for line in err.splitlines()) == 1
    assert [e.state for e in ends] == ["FAIL", "COMPLETE"]
    trials = open_study(spec, tmp_path).trials
    assert trials[0].state == TrialState.FAIL and trials[1].user_attrs["retry_of"] == 0
    frame = sltsearch.load(tmp_path)
    assert set(frame.loc[frame["trial"] == 0, "status"]) == {"interrupted"}  # off the front, as the study says
    assert set(frame.loc[frame["trial"] == 1, "status"]) == {"ok"}


def test_a_folder_holds_its_own_trials_of_a_shared_study_and_every_trial_of_its_journal(tmp_path: Path) -> None:
    """Which finished trials a run folder re-measures when their rows are missing: in a database study, those
    tagged with its id, and untagged ones (older versions) that it has or had rows of; in its journal, all."""
    import json

    import pandas as pd
    from optuna.trial import create_trial

    from sltsearch.runfolder.repair import held_here

    spec = _spec()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "mine"}))
    database = open_study(spec, run_dir, f"sqlite:///{tmp_path / 'db.sqlite'}")
    journal = open_study(spec, run_dir)
    for study in (database, journal):
        for tag in ("mine", "other", None, None, None):
            attrs = {RUN_FOLDER: tag} if tag else {}
            study.add_trial(create_trial(values=[0.5, 1.0], user_attrs=attrs))
    frame = pd.DataFrame({"trial": [2], "status": ["running"]})  # rows of untagged trial 2 are here
    held = held_here(database, run_dir, frame, known=[3])  # trial 3's rows were in a file set aside
    assert [held(t) for t in database.trials] == [True, False, True, True, False]
    held = held_here(journal, run_dir, frame)
    assert all(held(t) for t in journal.trials)
