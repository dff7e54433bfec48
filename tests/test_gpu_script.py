"""`benchmarks/gpu.py --dry-run`: the GPU script's code paths on the CPU, so it cannot rot between GPU sessions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu  # noqa: E402


def test_a_dry_run_never_writes_the_committed_gpu_report(capsys: pytest.CaptureFixture[str]) -> None:
    """The dry run's CPU toy figures must not replace results/benchmarks/gpu.md (the one GPU measurement)."""
    assert gpu.report_path(dry_run=False, out=None) == gpu.OUT
    scratch = gpu.report_path(dry_run=True, out=None)
    assert scratch != gpu.OUT and not scratch.resolve().is_relative_to(ROOT)
    before = gpu.OUT.read_bytes() if gpu.OUT.exists() else None
    for out in (str(gpu.OUT), str(gpu.OUT.relative_to(Path.cwd())) if gpu.OUT.is_relative_to(Path.cwd()) else None):
        if out is None:
            continue
        assert gpu.main(["--dry-run", "--out", out]) == 2  # refused before anything runs
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--dry-run" in err[0] and "--out" in err[0], err
    assert (gpu.OUT.read_bytes() if gpu.OUT.exists() else None) == before


@pytest.mark.slow
def test_gpu_script_dry_run_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry-run", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    summary = report.strip().splitlines()[-1]
    tests = summary.split("cuda tests ", 1)[1].split(";", 1)[0]
    passed, total = (int(n) for n in tests.split("/"))
    assert total >= 8 and passed == total, report
    for model in ("vgg16", "resnet19", "spikformer"):
        assert f"{model} n/ax" not in summary, report  # every model's SNN and ANN step was timed
    assert "trials per gpu" in summary and "(workers)" in summary and "not measured" not in summary, report
    assert "| 2 | 2 |" in report  # two trials at once, both finished and timed
    assert "## 4. Trials sharing one GPU: ray" in report and "Not measured" not in report, report  # Ray's path too
    assert "gpu-hours" in summary, report  # the paper spaces' searches were projected
    for space in ("paper_vgg16_cifar10", "paper_resnet19_cifar10", "paper_spikformer_multisp_cifar10"):
        assert f"| {space} | " in report.split("## 3.", 1)[1], report
    assert "torch.profiler, 3 steps" in report and "## 5. Variant: compile" in report, report


def test_the_paper_search_projection_counts_each_cached_stage_once() -> None:
    """`project_search` from given step times: the dense run once with the cache and once per trial without, nested
    IMP rounds shared, and the epoch made of the dataset's training split in steps plus its validation split."""
    row = {
        "space": "paper_vgg16_cifar10",
        "time_steps": 4,
        "batch": 128,
        "train_step_s": 0.04,
        "eval_step_s": 0.01,
        "measure_step_s": 0.02,
    }
    proj = gpu.project_search(row)
    scale = 5 / 4  # the space runs at T = 5, timed at T = 4
    epoch = scale * (352 * 0.04 + 40 * 0.01)  # 45,000 training images in batches of 128, 5,000 validation images
    assert abs(proj["epoch_s"] - epoch) < 1e-9
    assert abs(proj["dense_s"] - 300 * epoch) < 1e-6
    assert proj["trials"] == 8 and proj["dense_runs"] == 1
    assert proj["distinct_rounds"] < proj["rounds"]  # 8 draws of 9 (rewind, target) pairs: nested rounds repeat
    assert proj["cached_epochs"] < proj["uncached_epochs"] and proj["cached_h"] < proj["uncached_h"]
    # without the cache every trial trains its own dense run
    assert proj["uncached_epochs"] >= 8 * 300 + proj["rounds"] * (300 - 20)
    assert proj["cached_h_4gpu"] >= proj["cached_h"] / 4 and proj["cached_h_4gpu"] >= proj["dense_s"] / 3600
