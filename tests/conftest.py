"""Shared fixtures: a tiny, fast spec (1 epoch, few samples) and helpers to write spec files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


def tiny_spec_dict(**overrides: Any) -> dict[str, Any]:
    """A spec that trains the digits CNN for 1 epoch: a whole trial takes a couple of seconds."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "spiking_cnn", "preset": "tiny", "time_steps": 2},
        "train": {"epochs": 2, "lr": 0.01},
        "tickets": {"rounds": 1, "prune_rate": 0.5},
        "objective": {"energy": {"samples": 64}},
        "search": {"n_trials": 2, "population_size": 2},
        "space": {"prune_rate": {"type": "float", "low": 0.3, "high": 0.7}},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def one_trial_run(root: Path, **overrides: Any) -> Path:
    """A finished run folder of one trial (the dense ticket and one IMP round, one epoch each) under ``root``:
    what tests that read, export or tamper with a run folder start from."""
    import sltsearch

    spec = tiny_spec_dict(train={"epochs": 1}, search={"n_trials": 1, "population_size": 2}, **overrides)
    return sltsearch.run(write_spec(root / "spec.yaml", spec), run_dir=root / "run").run_dir


def write_spec(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.fixture
def tiny_spec_file(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "tiny.yaml", tiny_spec_dict())
