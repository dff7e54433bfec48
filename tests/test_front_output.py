"""What `pareto` and `run` print and draw, on hand-made run folders (no training): front tables that fit an
80-column terminal without cutting a name, complete --csv / --json, values from files printed as themselves,
titles that count finished trials, two runs compared, and plot labels clear of points, lines and each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_spec_dict, write_spec
from rich.console import Console
from typer.testing import CliRunner

import sltsearch
from sltsearch.api import front_title
from sltsearch.cli import app
from sltsearch.cli.tables import front_view
from sltsearch.results.labels import Box, place, step_vertices
from sltsearch.results.pareto import shared_reference
from sltsearch.results.plots import _front_figure, _png_figure
from sltsearch.results.run_plots import plot_runs
from sltsearch.spec import parse_spec

runner = CliRunner()
OBJECTIVES = {"val_accuracy": "maximize", "energy_uj": "minimize"}
# searched parameters as a wide space has them: MultiSp levels, early-time T, dotted paths with long names
PARAMS = {
    "param_prune_rate": 0.5, "param_rounds": 3, "param_rewind_epoch": 1, "param_time_steps_search": 2,
    "param_train.weight_decay": 0.0001, "param_model.neuron.v_threshold": 0.75, "param_encoding_sparsity": 0.3,
    "param_data.options.noise_level": 0.25,
}


def _table(ids: list[str] | None = None, statuses: list[str] | None = None, shift: float = 0.0) -> pd.DataFrame:
    """A dense network at T=2 and one at T=4, pruned tickets from four trials (one of them early-time)."""
    rows = [
        # ticket, trial, round, kind, T, stage, accuracy, energy, sparsity
        ("t0000r00", 0, 0, "dense", 2, "d2", 0.95, 1.0, 0.0),
        ("t0000r01", 0, 1, "imp", 2, "a1", 0.94, 0.6, 0.5),
        ("t0000r02-et_search", 0, 2, "et_search", 2, "a2", 0.93, 0.4, 0.75),
        ("t0001r01", 1, 1, "imp", 2, "b1", 0.90, 0.5, 0.7),
        ("t0002r00", 2, 0, "dense", 4, "d4", 0.97, 2.0, 0.0),
        ("t0002r01", 2, 1, "imp", 4, "c1", 0.96, 1.5, 0.3),
        ("t0003r01", 3, 1, "imp", 4, "e1", 0.99, 0.1, 0.3),
        ("t0004r01", 4, 1, "imp", 4, "f1", 0.955, 1.12, 0.2),  # where the old "dense T=2" label was drawn
    ]
    frame = pd.DataFrame(rows, columns=["ticket_id", "trial", "round", "kind", "time_steps", "stage_key",
                                        "val_accuracy", "energy_uj", "sparsity"])
    frame["val_accuracy"] += shift
    frame["test_accuracy"] = frame["val_accuracy"] - 0.01
    frame["storage_bits"] = 1000
    frame["firing_rate"] = 0.0732
    frame["cached"] = False
    for name, value in PARAMS.items():
        frame[name] = value
    frame["status"] = statuses or ["ok"] * 6 + ["failed", "ok"]  # trial 3 failed: its ticket is on no front
    if ids is not None:
        frame["ticket_id"] = ids
    return frame


def _run_folder(path: Path, frame: pd.DataFrame | None = None) -> Path:
    path.mkdir(parents=True)
    write_spec(path / "spec.yaml", tiny_spec_dict())
    (frame if frame is not None else _table()).to_parquet(path / "tickets.parquet", index=False)
    return path


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_pareto_fits_80_columns_without_cutting_a_name(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run")
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run(
        [sys.executable, "-m", "sltsearch", "pareto", str(run)], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert max(len(line) for line in _lines(out)) <= 80, out
    for ticket in ("t0000r00", "t0000r02-et_search", "t0002r01"):
        assert ticket in out  # ids whole
    flat = " ".join(out.split())
    for name in PARAMS:  # every searched parameter named whole (a header, or the legend of short ones)
        assert name.removeprefix("param_") in flat, name


FOUR = {**OBJECTIVES, "storage_bits": "minimize", "firing_rate": "minimize"}


@pytest.mark.parametrize("objectives", [OBJECTIVES, FOUR], ids=["two", "four"])
@pytest.mark.parametrize("width", [60, 80, 100, 250])
def test_the_front_view_never_exceeds_the_terminal_nor_drops_a_value(width: int, objectives: dict) -> None:
    front = sltsearch.pareto(_table(), objectives)
    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(front_view(front, objectives, "Pareto front of a run with a long name", width=width))
    text = console.export_text()
    assert max(len(line) for line in _lines(text)) <= width, text
    words = {w.rpartition("=")[2] for w in text.split()}  # a value in a cell, or listed below as name=value
    shown = ["0.0001", "0.75", "t0000r02-et_search"] + (["0.0732", "1000"] if objectives is FOUR else [])
    assert set(shown) <= words, text
    header = next(line for line in _lines(text) if "ticket" in line)
    assert ("weight_decay" in header) == (width >= 250)  # full names as headers only where they fit


def test_csv_and_json_stay_complete(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run")
    csv, js = tmp_path / "front.csv", tmp_path / "front.json"
    result = runner.invoke(app, ["pareto", str(run), "--csv", str(csv), "--json", str(js)])
    assert result.exit_code == 0, result.output
    columns = set(_table().columns)
    assert set(pd.read_csv(csv).columns) == columns
    rows = json.loads(js.read_text())
    assert {r["ticket_id"] for r in rows} == set(pd.read_csv(csv)["ticket_id"]) and set(rows[0]) == columns
    assert any(r["param_time_steps_search"] == 2 for r in rows)


def test_values_from_a_file_are_printed_as_themselves(tmp_path: Path) -> None:
    """Values holding terminal escapes (clear screen, set title) or rich markup: shown, never obeyed. Ticket ids
    of another form than sltsearch writes are refused as a damaged table, in one line that obeys nothing either."""
    frame = _table()
    frame["param_encoder"] = "[blink]rate\x1b[5m"
    frame["param_scope"] = "\x1b[2J\x1b]0;pwned\x07[bold red]global[/]\r\x08"
    run = _run_folder(tmp_path / "run", frame)
    result = runner.invoke(app, ["pareto", str(run)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\x08" not in out
    flat = "".join(out.split())
    assert "[blink]rate\\x1b[5m" in flat and "\\x1b[2J\\x1b]0;pwned\\x07[boldred]global[/]" in flat
    ids = ["\x1b[2J\x1b]0;pwned\x07t0", "[bold red]t1[/]", "t2", "t3", "t4", "t5", "t6", "t7"]
    bad = _run_folder(tmp_path / "bad", _table(ids=ids))
    result = runner.invoke(app, ["pareto", str(bad)])
    assert result.exit_code == 2 and "\x1b" not in result.output and "\x07" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "is not of the form" in result.output


def test_titles_count_finished_trials_only(tmp_path: Path) -> None:
    """Trial 4 is still running: 4 finished trials (0, 1, 2, 3-failed-is-unfinished...), not 5."""
    statuses = ["ok"] * 6 + ["ok", "running"]  # trials 0-3 finished, trial 4 running
    frame = _table(statuses=statuses)
    spec = parse_spec(tiny_spec_dict())
    title = front_title(spec, frame)
    assert "7 tickets from 4 finished trials, 1 unfinished" in title, title
    run = _run_folder(tmp_path / "run", frame)
    result = runner.invoke(app, ["pareto", str(run)])
    assert "from 4 finished trials, 1 unfinished" in " ".join(result.stdout.split())


def test_two_runs_compared_against_one_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sltsearch.cli.output import console

    monkeypatch.setattr(console, "width", 80)
    a = _run_folder(tmp_path / "a")
    b = _run_folder(tmp_path / "b", _table(shift=0.005))
    csv, js = tmp_path / "fronts.csv", tmp_path / "fronts.json"
    result = runner.invoke(app, ["pareto", str(a), str(b), "--csv", str(csv), "--json", str(js)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    reference = shared_reference([_table(), _table(shift=0.005)], OBJECTIVES)
    # finished tickets only: the worst energy, 10 % of the range (0.4 to 2.0; 0.9 to 0.975) beyond
    assert reference == pytest.approx({"val_accuracy": 0.9 - 0.1 * 0.075, "energy_uj": 2.0 + 0.1 * 1.6})
    hv_a, hv_b = (sltsearch.hypervolume(run, reference) for run in (a, b))
    assert 0 < hv_a < hv_b
    assert f"a: 6 on the front of 7 tickets from 4 finished trials, 1 unfinished; hypervolume {hv_a:.6g}" in out
    assert f"hypervolume {hv_b:.6g}" in out and f"energy_uj {reference['energy_uj']:.6g}" in out
    assert out.count("Ts: time_steps_search") == 2  # each run's table names its short headers
    fronts = pd.read_csv(csv)
    assert set(fronts["run"]) == {"a", "b"} and len(json.loads(js.read_text())) == len(fronts)
    fixed = runner.invoke(app, ["pareto", str(a), str(b), "--reference", "val_accuracy=0,energy_uj=3"])
    hv = sltsearch.hypervolume(a, {"val_accuracy": 0.0, "energy_uj": 3.0})
    assert fixed.exit_code == 0 and f"hypervolume {hv:.6g}" in " ".join(fixed.stdout.split())
    for bad, message in [
        ([str(a), "--reference", "val_accuracy=0"], "--reference: compares the hypervolumes of several runs"),
        ([str(a), str(a)], "given twice"),
        ([str(a), str(b), "--reference", "val_accuracy=x"], "--reference: 'val_accuracy=x' is not COLUMN=NUMBER"),
    ]:
        refused = runner.invoke(app, ["pareto", *bad])
        assert refused.exit_code == 2 and message in refused.stderr and len(refused.stderr.splitlines()) == 1
    write_spec(b / "spec.yaml", tiny_spec_dict(objective={"metrics": {"val_accuracy": "maximize"}}))
    differ = runner.invoke(app, ["pareto", str(a), str(b)])
    assert differ.exit_code == 2 and "choose them with --objectives" in differ.stderr


def test_two_runs_on_one_plot_each_its_colour_and_legend_entry(tmp_path: Path) -> None:
    a = _run_folder(tmp_path / "a")
    b = _run_folder(tmp_path / "b", _table(shift=0.005))
    png, html = tmp_path / "runs.png", tmp_path / "runs.html"
    for path in (png, html):
        result = runner.invoke(app, ["pareto", str(a), str(b), "--plot", str(path)])
        assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(b"\x89PNG")
    page = html.read_text()
    assert '"name":"a: front (6 tickets)"' in page and '"name":"b: front (6 tickets)"' in page
    assert '"color":"#1f77b4"' in page and '"color":"#ff7f0e"' in page
    tickets = {"a": _table(), "b": _table(shift=0.005)}
    fronts = {k: sltsearch.pareto(v, OBJECTIVES) for k, v in tickets.items()}
    assert plot_runs(tickets, fronts, {"val_accuracy": "maximize"}, png, "t") is None  # one objective: no plot


def _marker_boxes(figure, ax) -> list[Box]:  # noqa: ANN001
    boxes = []
    for collection in ax.collections:
        sizes = collection.get_sizes()
        for i, (px, py) in enumerate(ax.transData.transform(collection.get_offsets())):
            radius = (sizes[i % len(sizes)] ** 0.5) / 2 * figure.dpi / 72
            boxes.append(Box(px - radius, py - radius, px + radius, py + radius))
    return boxes


def test_plot_labels_clear_points_lines_and_each_other_and_the_note_stays_off_the_axes(tmp_path: Path) -> None:
    frame = _table()
    front = sltsearch.pareto(frame, OBJECTIVES)
    figure_spec = _front_figure(frame, front, OBJECTIVES, tmp_path / "f.png", "title", floor=0.93)
    assert figure_spec is not None and "below" in figure_spec.note
    figure = _png_figure(figure_spec)
    ax = figure.axes[0]
    renderer = figure.canvas.get_renderer()
    area = ax.get_window_extent(renderer)
    labels = [t for t in ax.texts if t.get_text().startswith("dense")]
    assert sorted(t.get_text() for t in labels) == ["dense T=2", "dense T=4"]
    boxes = [Box(*t.get_window_extent(renderer).extents) for t in labels]
    markers = _marker_boxes(figure, ax)
    legend = Box(*ax.get_legend().get_window_extent(renderer).extents)
    for box in boxes:
        assert box.within(Box(*area.extents)), box
        assert not any(box.overlaps(m) for m in markers), box
        assert not box.overlaps(legend)
        for line in ax.lines:
            points = ax.transData.transform(line.get_xydata())
            assert not any(box.crosses((tuple(p), tuple(q))) for p, q in zip(points, points[1:], strict=False))
    assert not boxes[0].overlaps(boxes[1])
    notes = [t for t in figure.texts if "below" in t.get_text()]
    assert len(notes) == 1 and not Box(*notes[0].get_window_extent(renderer).extents).overlaps(Box(*area.extents))
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_place_finds_a_free_spot_and_never_drops_a_label() -> None:
    area = Box(0, 0, 100, 100)
    crowd = [Box(52, 52, 70, 60)]  # right above the point: the first choice is taken
    spots = place([(50, 50), (50, 50)], [(20, 8), (20, 8)], area, crowd)
    assert spots[0].touching == 0 and not spots[0].box.overlaps(crowd[0])
    assert spots[1].touching == 0 and not spots[1].box.overlaps(spots[0].box)
    full = place([(50, 50)], [(20, 8)], area, [Box(0, 0, 100, 100)])  # nowhere free: placed anyway
    assert len(full) == 1 and full[0].touching > 0
    assert step_vertices([0, 1, 2], [3, 2, 1], post=True) == ([0, 1, 1, 2, 2], [3, 3, 2, 2, 1])
    assert Box(0, 0, 10, 10).crosses(((-5, 5), (15, 5))) and not Box(0, 0, 10, 10).crosses(((-5, 20), (15, 20)))
