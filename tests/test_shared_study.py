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
    assert not (tmp_path / "other" / "tickets").exists() or sltsearch.load(tmp_path / "other").empty
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
