"""benchmarks/harness.py: every report states its command, machine, load at start and end, seeds and commit one way."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
# scripts that write their own header for now: the GPU script is being rewritten, recipe.py is new
NOT_YET = {"harness.py"}


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import harness

    return harness


def test_provenance_names_command_machine_loads_seeds_and_commit(harness) -> None:
    bench = harness.Bench([str(BENCHMARKS / "energy.py"), "--seeds", "3", "--out", "a b.md"])
    lines = bench.header("Energy levers", seeds=3, threads=1, notes=["Versions: pandas 3"])
    assert lines[0] == "# Energy levers" and lines[-1] == ""
    command, machine, seeds, note = lines[2:6]
    assert command.startswith("Command: `python benchmarks/energy.py --seeds 3 --out 'a b.md'` (")
    assert re.search(r"load average \(1/5/15 min\) [\d.]+ / [\d.]+ / [\d.]+ at start, [\d.]+ / [\d.]+ / [\d.]+ at end",
                     machine)
    assert "usable cores" in machine and "1 torch thread per process" in machine
    assert seeds.startswith("Seeds: 0, 1, 2; git ")
    assert note == "Versions: pandas 3"
    # a Markdown line break after every line of the block but its last
    assert all(line.endswith("  ") for line in (command, machine, seeds)) and not note.endswith(" ")


def test_seeds_given_as_a_range_and_no_seeds(harness) -> None:
    bench = harness.Bench(["benchmarks/x.py"])
    assert bench.provenance(seeds=range(3, 6))[2].startswith("Seeds: 3, 4, 5; git ")
    assert bench.provenance()[2].startswith("git ")


def test_summary_and_atomic_write(harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness.Bench.summary(["cache 1.20x", "workers 1.41x"]) == "Summary: cache 1.20x; workers 1.41x"
    out = tmp_path / "sub" / "report.md"
    harness.Bench.write(out, ["# T", "", "body"], echo=False)
    assert out.read_text() == "# T\n\nbody\n"
    assert [p.name for p in out.parent.iterdir()] == ["report.md"]  # no temp file left
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in NOT_YET))
def test_scripts_use_the_harness_for_machine_and_load(script: str) -> None:
    """No script reads the load or the host itself: the harness words it (issue 33: a dozen copies before)."""
    text = (BENCHMARKS / script).read_text()
    for own in ("os.getloadavg", "platform.node", "platform.machine", "git\", \"rev-parse"):
        assert own not in text, f"{script} reads {own} itself; use benchmarks/harness.py"


def test_a_script_runs_with_the_harness(tmp_path: Path) -> None:
    """rung_decision.py at a toy size: the report starts with the harness's block and ends its Summary-free body."""
    import subprocess

    out = tmp_path / "rung.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "rung_decision.py"), "--sizes", "50", "100", "--repeats", "1", "--out",
         str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text().splitlines()
    assert text[0] == "# MO-ASHA: cost of one rung decision"
    assert text[2].startswith("Command: `python benchmarks/rung_decision.py --sizes 50 100")
    assert text[3].startswith("Machine: ") and " at end" in text[3]
