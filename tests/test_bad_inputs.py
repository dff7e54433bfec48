"""One clear line, exit 2, for every bad input issue 24 lists: pareto objectives and floors, energy samples,
an over-long spec name, YAML alias bombs (specs and a run's spec.yaml), ambiguous storage passwords."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_spec_dict, write_spec
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.errors import UserError
from sltsearch.system.secrets import check_url, mask_url

runner = CliRunner()


def _run_folder(path: Path) -> Path:
    """A hand-made run folder: its spec and a few finished tickets (no training)."""
    path.mkdir(parents=True)
    write_spec(path / "spec.yaml", tiny_spec_dict())
    rows = [("t0000r00", 0, 0, "dense", 0.95, 1.0, 0.0), ("t0000r01", 0, 1, "imp", 0.94, 0.6, 0.5),
            ("t0001r01", 1, 1, "imp", 0.90, 0.5, 0.7)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["ticket_id", "trial", "round", "kind", "val_accuracy", "energy_uj", "sparsity"])
    frame["test_accuracy"], frame["status"], frame["stage_key"] = frame["val_accuracy"] - 0.01, "ok", frame["ticket_id"]
    frame["pep_sparsity"] = None
    frame.to_parquet(path / "tickets.parquet", index=False)
    return path


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return _run_folder(tmp_path / "run")


def _one_line(argv: list[str], needle: str) -> str:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (argv, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("objectives", "needle"),
    [
        ("ticket_id:max,energy_uj:min", "ticket_id: not a numeric column"),
        ("status:min,energy_uj:min", "status: not a numeric column"),
        ("val_accuracy:max,energy_uj:min,val_accuracy:min", "val_accuracy is named twice"),
        ("test_accuracy:max,energy_uj:min", "test metric"),
        ("pep_sparsity:max,energy_uj:min", "no ticket has a value"),
    ],
)
def test_pareto_objectives_are_validated(run: Path, tmp_path: Path, objectives: str, needle: str) -> None:
    line = _one_line(["pareto", str(run), "--objectives", objectives, "--plot", str(tmp_path / "p.png")], needle)
    assert "test_accuracy" not in line.partition("numeric columns:")[2]  # never offered as an objective
    with pytest.raises(UserError, match=needle):
        sltsearch.pareto(run, objectives)
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("value", ["2", "nan", "-0.1", "inf"])
def test_pareto_min_accuracy_is_a_fraction(run: Path, value: str) -> None:
    _one_line(["pareto", str(run), "--min-accuracy", value], "--min-accuracy")
    with pytest.raises(UserError, match="--min-accuracy"):
        sltsearch.pareto(run, min_accuracy=float(value))
    assert runner.invoke(app, ["pareto", str(run), "--min-accuracy", "0.91"]).exit_code == 0


def test_pareto_outputs_under_a_file_are_one_line(run: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile.txt"
    afile.write_text("keep")
    _one_line(["pareto", str(run), "--plot", str(afile / "p.png")], "--plot")
    _one_line(["pareto", str(run), "--csv", str(afile / "p.csv")], "--csv")
    assert afile.read_text() == "keep"


@pytest.mark.parametrize("samples", ["-3", "0"])
def test_energy_samples_must_be_positive(run: Path, samples: str) -> None:
    _one_line(["energy", str(run), "--ticket", "t0000r01", "--samples", samples], "--samples")
    _one_line(["energy", "default", "--samples", samples], "--samples")


def test_an_over_long_spec_name_is_caught_by_validate(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "long.yaml", tiny_spec_dict(name="a" * 300))
    _one_line(["validate", str(spec)], "name: String should have at most 100 characters")
    _one_line(["run", str(spec), "--run-dir", str(tmp_path / "r")], "at most 100")
    assert not (tmp_path / "r").exists()


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["name: bomb", "model:", "  options:", f"    a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(_alias_bomb())
    start = time.monotonic()
    _one_line(["validate", str(spec)], "more than 20000 values once its aliases are expanded")
    assert time.monotonic() - start < 30  # bounded work (it took minutes and gigabytes before)
    (tmp_path / "loop.yaml").write_text("name: x\nmodel:\n  options: &o {a: *o}\n")
    _one_line(["validate", str(tmp_path / "loop.yaml")], "alias to a node that contains it")
    deep = "name: x\nmodel:\n  options:\n    a: " + "[" * 60 + "]" * 60 + "\n"
    (tmp_path / "deep.yaml").write_text(deep)
    _one_line(["validate", str(tmp_path / "deep.yaml")], "levels deep")


def test_an_alias_bomb_in_a_run_folders_spec_yaml_is_refused(run: Path) -> None:
    (run / "spec.yaml").write_text(_alias_bomb())
    _one_line(["pareto", str(run)], "spec.yaml: refused")
    _one_line(["export", str(run), "--ticket", "t0000r01"], "spec.yaml: refused")


def test_a_spec_with_large_but_honest_options_still_loads(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "big.yaml", tiny_spec_dict(data={"options": {"weights": list(range(5000))}}))
    assert len(sltsearch.load_spec(spec).data.options["weights"]) == 5000


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("postgresql://user:s3cr3t pw@127.0.0.1:1/db", ["s3cr3t", "pw@"]),
        ("postgresql://user:hun@ter2@127.0.0.1:1/db", ["hun", "ter2"]),
    ],
)
def test_ambiguous_passwords_are_never_shown_or_stored(tmp_path: Path, url: str, secrets: list[str]) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec_dict())
    result = runner.invoke(app, ["run", str(spec), "--run-dir", str(tmp_path / "r"), "--storage", url])
    assert result.exit_code == 2 and "percent-encode" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    shown = result.output + result.stderr
    assert not any(s in shown for s in secrets), shown
    assert json.loads((tmp_path / "r" / "run.json").read_text())["storage"] == "postgresql://user:***@127.0.0.1:1/db"
    assert not [p for p in (tmp_path / "r").rglob("*") if p.is_file() and any(s.encode() in p.read_bytes()
                                                                                for s in secrets)]  # fmt: skip
    # the same URL in a spec file: refused by validate, before anything is written
    in_spec = write_spec(tmp_path / "t.yaml", tiny_spec_dict(search={"storage": url}))
    line = _one_line(["validate", str(in_spec)], "search.storage")
    assert not any(s in line for s in secrets)


def test_mask_url_masks_up_to_the_host() -> None:
    assert mask_url("postgresql://u:a b@h:1/db") == "postgresql://u:***@h:1/db"
    assert mask_url("postgresql://u:a@b@h/db") == "postgresql://u:***@h/db"
    assert mask_url("cannot open 'postgresql://u:p@h/db': refused") == "cannot open 'postgresql://u:***@h/db': refused"
    assert mask_url("postgresql://u@h/db?password=x&a=1") == "postgresql://u@h/db?password=***&a=1"
    check_url("postgresql://u:p%40ss@h/db")  # encoded: fine
    check_url("postgresql://u@h/db?sslmode=require")
    with pytest.raises(UserError, match="percent-encode"):
        check_url("postgresql://u:p@ss@h/db")
