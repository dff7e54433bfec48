"""The CUDA path: training, IMP with rewinding, exact zeros, energy counts, MultiSp, export/evaluate, a search.

Every test here is marked ``cuda`` and runs on the device ``SLTSEARCH_TEST_DEVICE`` names (default ``cuda``;
skipped without a GPU). `python benchmarks/gpu.py` runs them on a GPU and writes their figures to
results/benchmarks/gpu.md; `python benchmarks/gpu.py --dry-run` runs the same tests on the CPU (CI does, so they
cannot rot between the times a GPU is at hand). The CPU/device comparisons state their tolerances below and
record what they measured (`record_property`), which gpu.md reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_spec_dict, write_spec
from torch import nn

import sltsearch
from sltsearch.data import build_data, make_loader
from sltsearch.energy_model import measure_energy
from sltsearch.models import build_model
from sltsearch.spec import Spec
from sltsearch.tickets import attach_masks, magnitude_prune, rewind
from sltsearch.tickets.masks import MASK, prunable_layers
from sltsearch.train import fit, make_optimizer, train_one_epoch
from sltsearch.trial import TrialContext, run_trial
from sltsearch.trial.cache import StageCache
from sltsearch.trial.stages import evaluate_ticket_model

pytestmark = [pytest.mark.cuda, pytest.mark.slow]

# CPU vs device, same ticket, measured in full FP32 on both (sltsearch.system.device.full_precision): the sums run in
# another order, so a membrane potential within rounding of the threshold can spike on one side only.
ACCURACY_TOLERANCE = 0.01  # absolute, on validation / test accuracy (1 % of the samples)
ENERGY_RTOL = 1e-3  # relative, on energy_uj, acs and firing_rate


@pytest.fixture(scope="module")
def device() -> torch.device:
    name = os.environ.get("SLTSEARCH_TEST_DEVICE", "cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("no CUDA device (`python benchmarks/gpu.py --dry-run` runs these tests on the CPU)")
    return torch.device(name)


def _spec(**overrides: Any) -> Spec:
    return Spec.model_validate(tiny_spec_dict(**overrides))


def _digits_loaders(spec: Spec) -> tuple[Any, Any]:
    data = build_data(spec.data)
    return make_loader(data.train, spec.data.batch_size, True, 0), make_loader(data.val, 128, False)


def test_dense_training_step(device: torch.device) -> None:
    spec = _spec()
    torch.manual_seed(0)
    model = build_model(spec.model, (1, 8, 8), 10).to(device)
    train, _ = _digits_loaders(spec)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = train_one_epoch(model, train, make_optimizer(model, spec.train), device)
    assert loss == loss and loss < 10.0  # finite (not NaN): the GradScaler path on CUDA did not overflow for good
    assert all(p.device.type == device.type for p in model.parameters())
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(changed) == len(before), "every parameter is trained"


def test_imp_round_with_rewinding_keeps_pruned_weights_exactly_zero(device: torch.device) -> None:
    spec = _spec(train={"epochs": 2, "lr": 0.01})
    torch.manual_seed(0)
    model = build_model(spec.model, (1, 8, 8), 10).to(device)
    train, val = _digits_loaders(spec)
    result = fit(model, train, val, spec.train, device, keep_checkpoints=True)
    masks = magnitude_prune(model, 0.7, "global")
    rewind(model, result.checkpoints[1], masks)  # the survivors back to their values at epoch 1
    fit(model, train, val, spec.train, device, start_epoch=1)  # retrain from the rewind point under AMP
    for name, layer in prunable_layers(model).items():
        mask, weight = getattr(layer, MASK), layer.weight.detach()
        assert mask.device.type == weight.device.type == device.type
        assert torch.count_nonzero(weight[~mask]) == 0, f"{name}: a pruned weight moved"
        assert torch.count_nonzero(weight[mask]) > 0


def test_masks_cached_on_the_cpu_follow_the_model_to_the_device(device: torch.device) -> None:
    """The masks' cached copies in the weight's dtype (`sltsearch.tickets.masks.mask_like_weight`) are made again on
    the device the model moved to, and in-place mask writes there reach them: pruned weights stay exactly zero."""
    spec = _spec()
    torch.manual_seed(0)
    model = build_model(spec.model, (1, 8, 8), 10)
    attach_masks(model, magnitude_prune(model, 0.5, "global"))
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    train_one_epoch(model, [(x, y)], make_optimizer(model, spec.train), torch.device("cpu"))  # cached on the CPU
    model.to(device)
    attach_masks(model, magnitude_prune(model, 0.8, "global"))  # written in place on the device
    train_one_epoch(model, [(x, y)] * 2, make_optimizer(model, spec.train), device)
    pruned = total = 0
    for name, layer in prunable_layers(model).items():
        mask, weight = getattr(layer, MASK), layer.weight.detach()
        assert mask.device.type == weight.device.type == device.type
        assert torch.count_nonzero(weight[~mask]) == 0, f"{name}: a pruned weight moved"
        pruned, total = pruned + int((~mask).sum()), total + mask.numel()
    assert pruned / total == pytest.approx(0.9, abs=0.01)  # the second masks (80 % of the remaining half)


def test_imp_trial_on_device(device: torch.device, tmp_path: Path) -> None:
    spec = _spec(tickets={"rounds": 2, "prune_rate": 0.5, "rewind_epoch": 1})
    ctx = TrialContext(cache=StageCache(tmp_path / "cache"), device=str(device))
    tickets = run_trial(spec, {}, ctx)
    assert [t.round for t in tickets] == [0, 1, 2]
    assert tickets[-1].sparsity == pytest.approx(0.75, abs=0.01)
    assert all(0.0 <= t.val_accuracy <= 1.0 and t.energy_uj > 0 for t in tickets)
    again = run_trial(spec, {}, TrialContext(cache=StageCache(tmp_path / "cache"), device=str(device)))
    assert all(t.cached for t in again) and [t.energy_uj for t in again] == [t.energy_uj for t in tickets]


def _dyadic_model(spec: Spec) -> nn.Module:
    """The tiny CNN with weights on a coarse dyadic grid (multiples of 1/16, |w| <= 1), biases and BatchNorm
    shifts likewise: with 0/1 spikes and 0..16/16 inputs every partial sum is exactly representable in FP32 (and
    TF32), so the spikes, and the operation counts, cannot depend on the order of summation."""
    torch.manual_seed(0)
    model = build_model(spec.model, (1, 8, 8), 10)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not name.endswith("running_var"):
                tensor.copy_(torch.round(tensor.clamp(-1, 1) * 16) / 16)
            elif name.endswith("running_var"):
                tensor.fill_(1.0 - 1e-5)  # BN divides by sqrt(var + eps) = 1 exactly
    masks = magnitude_prune(model, 0.5, "global")
    attach_masks(model, masks)
    return model.eval()


def test_energy_counts_are_exact_on_device(device: torch.device, record_property: Any) -> None:
    spec = _spec()
    data = build_data(spec.data)
    # inputs on the 1/16 grid too (digits are 0..16 scaled to [0, 1]: exact already; round to be sure)
    loader = make_loader(data.val, 64, False)
    counts = {}
    for dev in (torch.device("cpu"), device):
        model = _dyadic_model(spec).to(dev)
        report = measure_energy(model, loader, dev, spec.objective.energy, 64)
        counts[dev.type] = [(layer.name, layer.macs, layer.acs) for layer in report.layers] + [
            ("total", report.macs, report.acs),
            ("firing_rate", report.firing_rate, 0),
        ]
    record_property("energy_counts_equal", counts["cpu"] == counts[device.type])
    assert counts["cpu"] == counts[device.type]


def test_multisp_trial_on_device(device: torch.device, tmp_path: Path) -> None:
    spec = Spec.model_validate(
        tiny_spec_dict(
            model={"name": "spikformer", "preset": "tiny", "time_steps": 2},
            tickets={"rounds": 1, "prune_rate": 0.3},
            multisp={
                "patch_keep": 0.5,
                "pep_sparsity": 0.8,
                "pep_binary_weights": True,
                "pep_binary_activations": True,
                "patch_score_samples": 64,
            },
            train={"epochs": 1},
        )
    )
    tickets = run_trial(spec, {}, TrialContext(cache=StageCache(tmp_path / "cache"), device=str(device)))
    final = tickets[-1]
    assert final.round == 1
    assert final.patch_keep == pytest.approx(0.5)
    assert final.pep_sparsity == pytest.approx(0.8, abs=0.02)
    assert final.binary_ops > 0 and 0.0 <= final.val_accuracy <= 1.0


@pytest.fixture(scope="module")
def device_run(device: torch.device, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trial (dense + one IMP round) trained and measured on the device."""
    root = tmp_path_factory.mktemp("device_run")
    spec = tiny_spec_dict(search={"n_trials": 1, "population_size": 2})
    return sltsearch.run(write_spec(root / "spec.yaml", spec), run_dir=root / "run", device=str(device)).run_dir


def test_export_then_evaluate_on_device(device: torch.device, device_run: Path, tmp_path: Path) -> None:
    result = sltsearch.export(device_run, ticket="t0000r01", out=tmp_path / "ticket", device=str(device))
    assert result.reproduced
    evaluation = sltsearch.evaluate(result.path, device=str(device))
    assert evaluation.matches, evaluation.metrics


def test_cpu_and_device_agree_on_a_ticket(device: torch.device, device_run: Path, record_property: Any) -> None:
    """A ticket trained on the device, re-measured on the CPU and on the device (full FP32 on both)."""
    model, info = sltsearch.load_ticket(_export(device_run, "t0000r01"), device="cpu")
    data = build_data(info.spec.data)
    loaders = (make_loader(data.val, 128, False), make_loader(data.test, 128, False))
    measured = {}
    for dev in (torch.device("cpu"), device):
        _, energy, val, test = evaluate_ticket_model(model.to(dev), info.spec, *loaders, dev)
        measured[dev.type] = {
            "val": val,
            "test": test,
            "energy": energy.energy_uj,
            "acs": energy.acs,
            "macs": energy.macs,
            "firing_rate": energy.firing_rate,
        }
    cpu, dev_values = measured["cpu"], measured[device.type]
    diffs = {
        "val_accuracy_abs_diff": abs(cpu["val"] - dev_values["val"]),
        "test_accuracy_abs_diff": abs(cpu["test"] - dev_values["test"]),
        "energy_rel_diff": abs(cpu["energy"] - dev_values["energy"]) / cpu["energy"],
        "acs_rel_diff": abs(cpu["acs"] - dev_values["acs"]) / max(cpu["acs"], 1.0),
        "firing_rate_rel_diff": abs(cpu["firing_rate"] - dev_values["firing_rate"]) / max(cpu["firing_rate"], 1e-12),
    }
    for key, value in diffs.items():
        record_property(key, value)
    assert cpu["macs"] == dev_values["macs"]  # the first layer's MACs on real pixels: no spikes involved
    assert diffs["val_accuracy_abs_diff"] <= ACCURACY_TOLERANCE
    assert diffs["test_accuracy_abs_diff"] <= ACCURACY_TOLERANCE
    assert max(diffs["energy_rel_diff"], diffs["acs_rel_diff"], diffs["firing_rate_rel_diff"]) <= ENERGY_RTOL


def _export(run_dir: Path, ticket: str) -> Path:
    out = run_dir.parent / f"export-{ticket}"
    if not out.exists():
        sltsearch.export(run_dir, ticket=ticket, out=out)
    return out


def test_search_of_two_trials_from_the_cli(device: torch.device, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec_dict(search={"n_trials": 2, "population_size": 2}))
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "sltsearch",
        "run",
        str(spec),
        "--run-dir",
        str(run_dir),
        "--device",
        str(device),
        "-q",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = sltsearch.load(run_dir)
    assert sorted(table.loc[table["status"] == "ok", "trial"].unique()) == [0, 1]
    assert json.loads((run_dir / "run.json").read_text())  # the run's record exists and parses
