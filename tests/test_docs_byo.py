"""docs/how-to/own-network.md: the example's files, taken verbatim from the page, run end to end."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "own-network.md"


def example_files() -> dict[str, str]:
    """File name -> content of every fenced block the page marks with ``<!-- byo:NAME -->``."""
    text = DOC.read_text()
    blocks = re.findall(r"<!-- byo:(\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return dict(blocks)


def test_page_marks_the_three_example_files() -> None:
    assert set(example_files()) == {"mynets.py", "make_data.py", "my_search.yaml"}


@pytest.mark.slow
def test_page_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from sltsearch.cli import app

    for name, content in example_files().items():
        (tmp_path / name).write_text(content)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    runpy.run_path("make_data.py")
    import torch

    args = ["run", "my_search.yaml", "--run-dir", "run", "--trials", "2", "--threads", "1", "-q"]  # half the budget
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert "Pareto front" in result.output
    import sltsearch

    frame = sltsearch.load(tmp_path / "run")
    assert frame["trial"].nunique() == 2 and len(frame) == 6
    best = frame["val_accuracy"].max()
    assert best > 0.6, f"the example's network learns nothing (best val accuracy {best:.2f})"
    sys.modules.pop("mynets", None)
