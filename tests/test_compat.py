"""What sltsearch relies on in its dependencies' private APIs (sltsearch/compat/): a new release that changes
any of it fails here, by name."""

from __future__ import annotations

import inspect

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sltsearch.compat import optuna as optuna_compat


@pytest.fixture
def study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=optuna.storages.InMemoryStorage())


def test_optuna_study_storage_and_trial_ids(study: optuna.Study) -> None:
    storage = optuna_compat.storage_of(study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    trial = study.ask({"x": FloatDistribution(0, 1)})
    assert optuna_compat.trial_storage(trial) is storage
    frozen = study.get_trials(deepcopy=False)[0]
    assert optuna_compat.trial_id(trial) == optuna_compat.trial_id(frozen)
    assert storage.get_trial(optuna_compat.trial_id(trial)).number == trial.number


def test_optuna_system_attrs_and_ending_another_process_trial(study: optuna.Study) -> None:
    storage = optuna_compat.storage_of(study)
    trial = study.ask({"x": FloatDistribution(0, 1)})
    optuna_compat.set_system_attr(storage, trial, "sltsearch:test", {"pid": 1})
    frozen = study.get_trials(deepcopy=False)[0]
    assert frozen.system_attrs["sltsearch:test"] == {"pid": 1}
    assert optuna_compat.fail_trial(storage, frozen) is True  # a RUNNING trial, ended from outside its Trial
    assert study.get_trials(deepcopy=False)[0].state == TrialState.FAIL
    assert optuna_compat.fail_trial(storage, frozen) is False  # already ended: no error, no change


def test_ray_init_takes_a_private_session_folder() -> None:
    ray = pytest.importorskip("ray")
    # ray.init pops its private arguments from **kwargs; the end-to-end check (a private Ray leaves no files
    # outside its folder) is tests/test_ray_cluster.py::test_a_private_ray_listens_on_loopback_only...
    assert 'kwargs.pop("_temp_dir"' in inspect.getsource(ray.init)
