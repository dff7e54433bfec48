"""Bad input is one line, found by `validate` and before the first trial of `run`, never inside a trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_spec_dict, write_spec
from typer.testing import CliRunner

import sltsearch
from sltsearch import api
from sltsearch.cli import app
from sltsearch.cli.output import write_csv
from sltsearch.data import registry
from sltsearch.errors import DataError, SpecError, UserError
from sltsearch.runfolder.folder import prepare_run_dir
from sltsearch.spec import load_spec, parse_spec

runner = CliRunner()


def _refused_before_any_trial(spec: dict, tmp_path: Path, fragment: str, **run_kwargs) -> None:
    """validate and run give the same one-line error, and run writes nothing."""
    path = write_spec(tmp_path / "bad.yaml", spec)
    with pytest.raises(UserError) as by_validate:
        sltsearch.validate(path, device=run_kwargs.get("device"))
    with pytest.raises(UserError) as by_run:
        sltsearch.run(path, run_dir=tmp_path / "run", **run_kwargs)
    for err in (by_validate, by_run):
        assert fragment in str(err.value) and "\n" not in str(err.value)
    assert str(by_validate.value) == str(by_run.value)
    assert not (tmp_path / "run").exists(), "a refused run must not create its run folder"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"data": {"name": "imagenet"}}, "data.name: unknown dataset 'imagenet'; known: "),
        ({"model": {"name": "transformer"}}, "model.name: unknown model 'transformer'; known: "),
        ({"model": {"preset": "huge"}}, "model.preset: unknown preset 'huge' for spiking_cnn; known: tiny"),
        ({"model": {"options": {"widths": [8]}}}, "model.options: unknown key(s) ['widths']"),
        ({"model": {"options": {"channels": "wide"}}}, "model: spiking_cnn (preset tiny"),
        ({"data": {"name": "cifar10"}}, "data.root: dataset 'cifar10' is read from a local folder"),
        ({"data": {"options": {"augment": True}}}, "data.options: digits takes no options"),
    ],
)
def test_registry_and_data_errors_before_the_first_trial(overrides: dict, fragment: str, tmp_path: Path) -> None:
    _refused_before_any_trial(tiny_spec_dict(**overrides), tmp_path, fragment)


def test_a_wrong_data_root_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = tiny_spec_dict(data={"name": "cifar10", "root": str(empty)})
    _refused_before_any_trial(spec, tmp_path, "data")
    with pytest.raises(DataError, match=str(empty)):
        sltsearch.validate(write_spec(tmp_path / "s.yaml", spec))


def test_searched_model_values_are_built_too(tmp_path: Path) -> None:
    """A model option that only some trials draw is found now, not in the trial that draws it."""
    spec = tiny_spec_dict(space={"model.preset": {"type": "categorical", "choices": ["tiny", "giant"]}})
    _refused_before_any_trial(spec, tmp_path, "unknown preset 'giant'")


@pytest.mark.parametrize(
    ("device", "fragment"),
    [("tpu", "--device: 'tpu' is not a device; allowed: auto, cpu, cuda"), ("cuda:7", "--device: 'cuda:7'")],
)
def test_bad_devices(device: str, fragment: str, tmp_path: Path) -> None:
    _refused_before_any_trial(tiny_spec_dict(), tmp_path, fragment, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(tmp_path: Path) -> None:
    _refused_before_any_trial(tiny_spec_dict(), tmp_path, "no CUDA device", device="cuda")
    spec = tiny_spec_dict(train={"device": "cuda"})
    _refused_before_any_trial(spec, tmp_path, "train.device: 'cuda' asked for")


def test_tpu_in_the_spec_is_a_load_error() -> None:
    with pytest.raises(SpecError, match="train.device: 'tpu' is not a device"):
        parse_spec(tiny_spec_dict(train={"device": "tpu"}), "s.yaml")


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        (
            {"rewind_epoch": {"type": "int", "low": 0, "high": 3}, "epochs": {"type": "int", "low": 2, "high": 6}},
            "space: rewind_epoch=3 with epochs=2 can be drawn together, but then tickets.rewind_epoch (3) must be",
        ),
        (
            {
                "time_steps_search": {"type": "categorical", "choices": [2, 4]},
                "time_steps": {"type": "categorical", "choices": [2, 4]},
            },
            "space: time_steps_search=4 with time_steps=2 can be drawn together",
        ),
        (
            {"rounds": {"type": "int", "low": 1, "high": 3, "step": 1}, "prune_rate": {"type": "float", "low": 0.1,
             "high": 0.5, "log": True, "step": 0.1}},
            "either log-scaled or stepped",
        ),
        ({"rounds": {"type": "int", "low": 1, "high": 3, "step": 0.5}}, "an integer 'step'"),
        ({"time_steps": {"type": "categorical", "choices": [[2], [4]]}}, "choices must be numbers, strings"),
        (
            {"prune_rate": {"type": "float", "low": 0.1, "high": 0.5}, "tickets.prune_rate": {"type": "float",
             "low": 0.1, "high": 0.5}},
            "already searched as space.prune_rate",
        ),
    ],
)
def test_searched_ranges_no_trial_can_fail_on(space: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(tiny_spec_dict(train={"epochs": 8}, model={"time_steps": 4}, space=space), "s.yaml")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_stepped_upper_bound_is_the_highest_drawable_value() -> None:
    """rewind_epoch 0..3 in steps of 2 only draws 0 and 2: valid with 3 epochs."""
    space = {"rewind_epoch": {"type": "int", "low": 0, "high": 3, "step": 2}}
    spec = parse_spec(tiny_spec_dict(train={"epochs": 3}, space=space), "s.yaml")
    assert spec.space["rewind_epoch"].probe_values() == [0, 2]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("model:\n  time_steps: true\n", "model.time_steps: expected an integer, got true"),
        ("train:\n  epochs: 2.0\n", "train.epochs: expected an integer, got 2.0"),
        ("train:\n  lr: true\n", "train.lr: expected a number, got true"),
        ("model:\n  neuron: {detach_reset: 1}\n", "model.neuron.detach_reset: expected true or false, got 1"),
        ("tickets:\n  prune_rates: [0.5, false]\n", "expected a number at position 1, got [0.5, false]"),
        ("name: a\nseed: 1\nname: b\n", "duplicate key 'name' (first at line 1)"),
        ("model: {time_steps: 2, time_steps: 4}\n", "duplicate key 'time_steps'"),
        ("space: {prune_rate: {type: float, low: 0.2, high: 0.5, lo: 1}}\n", "allowed here: type, low, high"),
        ("a: \"\x01\"\n", "unacceptable character #x0001"),
    ],
)
def test_spec_file_problems_are_one_line(text: str, fragment: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_binary_and_non_utf8_files(tmp_path: Path) -> None:
    binary = tmp_path / "b.yaml"
    binary.write_bytes(bytes(range(256)))
    latin1 = tmp_path / "l.yaml"
    latin1.write_bytes("name: caf\xe9\n".encode("latin-1"))
    for path in (binary, latin1):
        with pytest.raises(SpecError, match=r"not a UTF-8 text file \(byte \d+ is 0x[0-9a-f]{2}\)"):
            load_spec(path)


def test_lenient_yaml_floats_still_read() -> None:
    """YAML 1.1 reads 1e-3 (no dot) as a string; a float field still takes it."""
    assert parse_spec(tiny_spec_dict(train={"lr": "1e-3"}), "s.yaml").train.lr == 0.001


def test_validate_and_run_agree_on_an_empty_spec(tmp_path: Path) -> None:
    nothing_searched = tiny_spec_dict()
    nothing_searched["space"] = {}
    _refused_before_any_trial(nothing_searched, tmp_path, "space: the spec searches nothing")
    empty = write_spec(tmp_path / "empty.yaml", "")
    result = runner.invoke(app, ["validate", str(empty)])
    assert result.exit_code == 2 and "space: the spec searches nothing" in result.stderr
    result = runner.invoke(app, ["run", str(empty), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "space: the spec searches nothing" in result.stderr


def test_validate_reports_what_it_built(tiny_spec_file: Path) -> None:
    result = runner.invoke(app, ["validate", str(tiny_spec_file)])
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "data digits:" in out and "10 classes" in out and "model spiking_cnn/tiny:" in out and "device cpu" in out


def test_the_run_builds_its_data_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-run check builds the data; the trials reuse it."""
    calls: list[str] = []
    original = registry.build_data

    def counting(spec):
        calls.append(spec.name)
        return original(spec)

    monkeypatch.setattr(registry, "build_data", counting)
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec_dict(train={"epochs": 1}))
    result = sltsearch.run(spec, run_dir=tmp_path / "run", n_trials=1, threads=1)
    assert not result.tickets.empty
    assert calls == ["digits"]


def test_pareto_of_a_run_without_tickets(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec_dict(), "tiny")
    prepare_run_dir(spec, tmp_path / "run", None)
    assert api.pareto(tmp_path / "run").empty  # from Python: an empty front; the CLI says why, in one line
    result = runner.invoke(app, ["pareto", str(tmp_path / "run")])
    assert result.exit_code == 2 and "no tickets yet" in result.stderr and "Traceback" not in result.stderr


def test_csv_into_a_missing_folder_is_created_and_an_impossible_one_is_one_line(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2]})
    target = tmp_path / "new" / "deeper" / "front.csv"
    write_csv(frame, target)
    assert pd.read_csv(target)["a"].tolist() == [1, 2]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="--csv .*: cannot write there"):
        write_csv(frame, blocker / "front.csv")


def test_energy_on_a_missing_run_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["energy", str(tmp_path / "nowhere"), "--ticket", "t0000r01"])
    assert result.exit_code == 2
    assert "no such run folder" in result.stderr and "not a spec" not in result.stderr
