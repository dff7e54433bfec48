"""Every public name of ``sltsearch`` works after a search in the same process, and a rebuilt ticket measures
what its trial measured (the energy of an early-time search ticket at the T it ran at)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import tiny_spec_dict, write_spec

import sltsearch
from sltsearch.errors import UserError


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """A 1-trial, 1-epoch digits search whose masks are searched at T=2 and the ticket trained at T=4."""
    root = tmp_path_factory.mktemp("public")
    spec = tiny_spec_dict(
        train={"epochs": 1},
        model={"name": "spiking_cnn", "preset": "tiny", "time_steps": 4},
        tickets={"rounds": 1, "prune_rate": 0.5, "time_steps_search": 2},
        search={"n_trials": 1, "population_size": 2},
    )
    path = write_spec(root / "spec.yaml", spec)
    result = sltsearch.run(path, run_dir=root / "run")
    return path, root / "run", result


def test_no_public_name_is_also_a_module_of_the_package() -> None:
    """Importing such a module would rebind the package attribute, hiding the function (issue 21)."""
    clashes = [name for name in sltsearch.__all__ if importlib.util.find_spec(f"sltsearch.{name}") is not None]
    assert clashes == []


def test_every_public_name_works_after_a_search_in_the_same_process(
    searched: tuple[Path, Path, Any], tmp_path: Path
) -> None:
    spec_path, run, result = searched
    ticket = "t0000r01"
    calls = {
        "run": lambda: result,  # the fixture's search, in this process
        "RunResult": lambda: isinstance(result, sltsearch.RunResult),
        "Spec": lambda: sltsearch.Spec(),
        "__version__": lambda: sltsearch.__version__.count("."),
        "load_spec": lambda: sltsearch.load_spec(spec_path),
        "validate": lambda: sltsearch.validate(spec_path),
        "load": lambda: sltsearch.load(run),
        "pareto": lambda: sltsearch.pareto(run),
        "hypervolume": lambda: sltsearch.hypervolume(run, {"val_accuracy": 0.0, "energy_uj": 100.0}),
        "compare": lambda: sltsearch.compare([run], reference={"val_accuracy": 0.0, "energy_uj": 100.0}),
        "Comparison": lambda: isinstance(sltsearch.compare([run]), sltsearch.Comparison),
        "select": lambda: sltsearch.select(run),
        "energy": lambda: sltsearch.energy(run, ticket=ticket),
        "export": lambda: sltsearch.export(run, ticket=ticket, out=tmp_path / "export", force=True),
        "load_ticket": lambda: sltsearch.load_ticket(tmp_path / "export"),
        "evaluate": lambda: sltsearch.evaluate(tmp_path / "export"),
        "repair": lambda: sltsearch.repair(run),
    }
    assert set(calls) | {"dashboard"} == set(sltsearch.__all__)
    for _ in range(2):  # a second round: a name a submodule's import rebinds fails only once it is imported
        out = {name: call() for name, call in calls.items()}
        with pytest.raises(UserError, match="--port"):  # the function, up to its first check (it serves forever)
            sltsearch.dashboard(run, port=70000)
    frame = out["load"]
    assert isinstance(frame, pd.DataFrame)
    assert set(frame["ticket_id"]) == {"t0000r00", "t0000r01", f"{ticket}-et_search"}
    assert out["RunResult"] and out["__version__"] == 2 and not out["repair"].changed and out["Comparison"]
    assert out["compare"].hypervolumes == {"run": out["hypervolume"]}
    assert out["evaluate"].matches and out["export"].reproduced
    final = frame[frame["ticket_id"] == ticket].iloc[-1]
    assert out["energy"].report.energy_uj == final["energy_uj"]


def test_energy_of_an_early_time_search_ticket_is_measured_at_its_search_t(searched: tuple[Path, Path, Any]) -> None:
    """An et_search ticket ran at tickets.time_steps_search: its report rebuilds it there (it used the full T)."""
    _, run, _ = searched
    frame = sltsearch.load(run)
    row = frame[frame["ticket_id"] == "t0000r01-et_search"].iloc[-1]
    assert row["time_steps"] == 2
    report = sltsearch.energy(run, ticket="t0000r01-et_search").report
    assert report.time_steps == 2
    assert report.energy_uj == row["energy_uj"]
