"""`sltsearch pareto` options, plots and comparing runs, on hand-made run folders (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_spec_dict, write_spec
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.results.plots import accuracy_window, plot_front

runner = CliRunner()


def _table(shift: float = 0.0) -> pd.DataFrame:
    """Two trials sharing a dense network at T=2, one at T=4, pruned tickets down to a near-chance one."""
    rows = [
        # ticket, trial, round, kind, T, stage, cached, acc, energy, sparsity, storage, prune rate
        ("t0000r00", 0, 0, "dense", 2, "d2", False, 0.95, 1.0, 0.0, 1000, 0.5),
        ("t0000r01", 0, 1, "imp", 2, "a1", False, 0.94, 0.6, 0.5, 600, 0.5),
        ("t0000r02", 0, 2, "imp", 2, "a2", False, 0.12, 0.2, 0.99, 100, 0.5),
        ("t0001r00", 1, 0, "dense", 2, "d2", True, 0.95, 1.0, 0.0, 1000, 0.7),
        ("t0001r01", 1, 1, "imp", 2, "b1", False, 0.90, 0.5, 0.7, 400, 0.7),
        ("t0002r00", 2, 0, "dense", 4, "d4", False, 0.97, 2.0, 0.0, 1000, 0.3),
        ("t0002r01", 2, 1, "imp", 4, "c1", False, 0.96, 1.5, 0.3, 800, 0.3),
        ("t0003r01", 3, 1, "imp", 4, "e1", False, 0.99, 0.1, 0.3, 800, 0.3),
    ]
    frame = pd.DataFrame(rows, columns=["ticket_id", "trial", "round", "kind", "time_steps", "stage_key", "cached",
                                        "val_accuracy", "energy_uj", "sparsity", "storage_bits", "param_prune_rate"])
    frame["test_accuracy"] = frame["val_accuracy"] - 0.01
    frame["val_accuracy"] += shift
    frame["status"] = ["ok"] * 7 + ["failed"]  # the failed row would dominate everything
    return frame


def _run_folder(path: Path, shift: float = 0.0) -> Path:
    path.mkdir(parents=True)
    write_spec(path / "spec.yaml", tiny_spec_dict())
    _table(shift).to_parquet(path / "tickets.parquet", index=False)
    return path


def test_pareto_objectives_csv_floor_and_dense_reference(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run")
    csv = tmp_path / "front.csv"
    two = "val_accuracy:max,energy_uj:min"
    result = runner.invoke(app, ["pareto", str(run), "--objectives", two, "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    front = pd.read_csv(csv)
    assert list(front["ticket_id"]) == ["t0002r00", "t0002r01", "t0000r00", "t0000r01", "t0001r01", "t0000r02"]
    assert front["ticket_id"].is_unique and "t0003r01" not in set(front["ticket_id"])  # failed: never on the front
    assert pd.isna(front.set_index("ticket_id").loc["t0000r00", "param_prune_rate"])  # dense: no pruning params
    assert "dense networks (reference, one per T)" in result.output
    floored = runner.invoke(app, ["pareto", str(run), "--min-accuracy", "0.5", "--csv", str(csv)])
    assert floored.exit_code == 0, floored.output
    assert "t0000r02" not in set(pd.read_csv(csv)["ticket_id"])
    three = runner.invoke(
        app, ["pareto", str(run), "--objectives", "val_accuracy:max,energy_uj:min,storage_bits:min", "--csv", str(csv)]
    )
    assert three.exit_code == 0, three.output
    assert "storage_bits" in three.output
    bad = runner.invoke(app, ["pareto", str(run), "--objectives", "val_accuracy:up"])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1
    bad = runner.invoke(app, ["pareto", str(run), "--plot", str(tmp_path / "front.pdf")])
    assert bad.exit_code == 2 and ".png or .html" in bad.stderr
    (run / "tickets.parquet").unlink()
    empty = runner.invoke(app, ["pareto", str(run)])
    assert empty.exit_code == 2 and "no tickets yet" in empty.stderr
    assert sltsearch.pareto(run).empty


def test_png_and_interactive_html_plots(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run")
    png, html = tmp_path / "front.png", tmp_path / "front.html"
    assert runner.invoke(app, ["pareto", str(run), "--plot", str(png)]).exit_code == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    result = runner.invoke(app, ["pareto", str(run), "--plot", str(html)])
    assert result.exit_code == 0, result.output
    page = html.read_text()
    assert "dense T=2" in page and "dense T=4" in page and "Pareto front" in page
    assert "validation accuracy [%]" in page
    # µ as it is (plotly >= 7) or JSON-escaped (plotly 5-6)
    assert "energy per inference [µJ]" in page or "energy per inference [\\u00b5J]" in page
    assert "cdn.plot.ly" not in page.split("<script", 2)[1][:200]  # plotly.js embedded: the page works offline


@pytest.mark.filterwarnings("error")
def test_a_table_without_finished_tickets_draws_no_plot(tmp_path: Path) -> None:
    """A run interrupted before its first finished ticket: no plot and no warning on stderr (the interrupt's
    message stays the only line)."""
    frame = _table()
    frame["status"] = "interrupted"
    objectives = {"val_accuracy": "maximize", "energy_uj": "minimize"}
    assert plot_front(frame, frame.iloc[0:0], objectives, tmp_path / "front.png", "title") is None
    assert not (tmp_path / "front.png").exists()
    frame["status"] = ["ok"] + ["interrupted"] * (len(frame) - 1)  # one finished ticket: plotted
    assert plot_front(frame, frame.iloc[0:1], objectives, tmp_path / "front.png", "title") is not None


def test_accuracy_axis_spans_the_useful_region() -> None:
    frame = _table()
    front = sltsearch.pareto(frame)
    dense = frame[frame["kind"] == "dense"]
    low, below = accuracy_window("val_accuracy", frame, pd.concat([front, dense]), None)
    assert low == pytest.approx(0.97 - 0.10)  # the near-chance front end does not stretch the axis
    assert below == 1
    low, below = accuracy_window("val_accuracy", frame, pd.concat([front, dense]), 0.93)
    assert low == 0.93 and below == 2  # 0.12 and 0.90
    assert accuracy_window("energy_uj", frame, front, None) == (None, 0)


def test_load_several_runs_adds_a_run_column(tmp_path: Path) -> None:
    a = _run_folder(tmp_path / "a")
    b = _run_folder(tmp_path / "b", shift=0.001)
    both = sltsearch.load([a, b])
    assert list(both.columns[:1]) == ["run"] and set(both["run"]) == {"a", "b"}
    assert len(both) == 2 * len(_table())
    same_name = sltsearch.load([a, _run_folder(tmp_path / "x" / "a")])
    assert set(same_name["run"]) == {str(a), str(tmp_path / "x" / "a")}
    # the same stage key in two runs is two tickets
    front = sltsearch.pareto(both)
    assert set(front["run"]) == {"b"}  # b's accuracies are all a little higher
    hv_a = sltsearch.hypervolume(a, {"val_accuracy": 0.0, "energy_uj": 2.5})
    hv_b = sltsearch.hypervolume(b, {"val_accuracy": 0.0, "energy_uj": 2.5})
    assert hv_b > hv_a > 0


def test_export_manifest_is_json_serialisable_for_hand_made_rows() -> None:
    from sltsearch.ticket_io.source import plain_row

    row = plain_row(_table().iloc[0].copy())
    json.dumps(row)
    assert row["param_prune_rate"] == 0.5
