"""Export -> evaluate round trips reproduce a ticket's numbers exactly; damaged exports are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_spec_dict, write_spec
from safetensors.torch import load_file
from typer.testing import CliRunner

import sltsearch
from sltsearch.cli import app
from sltsearch.errors import UserError
from sltsearch.ticket_io import TicketFileError
from sltsearch.trial.cache import StageCache

runner = CliRunner()


def _run(root: Path, spec: dict) -> Path:
    result = sltsearch.run(write_spec(root / "spec.yaml", spec), run_dir=root / "run")
    assert not result.tickets.empty
    return result.run_dir


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trial of the tiny spiking CNN: the dense ticket and one IMP round, one epoch each."""
    spec = tiny_spec_dict(train={"epochs": 1}, search={"n_trials": 1, "population_size": 2})
    return _run(tmp_path_factory.mktemp("cnn"), spec)


def _cached_state(run_dir: Path, ticket_id: str) -> dict[str, torch.Tensor]:
    row = sltsearch.load(run_dir).set_index("ticket_id").loc[ticket_id]
    cache = StageCache(run_dir / "cache")
    kind, folder = cache.locate(row["stage_key"])
    return load_file(str(folder / ("final.safetensors" if kind == "dense" else "state.safetensors")))


def test_cnn_ticket_round_trip_is_exact(cnn_run: Path, tmp_path: Path) -> None:
    run_copy = tmp_path / "run_copy"
    shutil.copytree(cnn_run, run_copy)
    result = sltsearch.export(run_copy, ticket="t0000r01", out=tmp_path / "ticket")
    folder = result.path
    assert sorted(p.name for p in folder.iterdir()) == ["masks.safetensors", "ticket.json", "weights.safetensors"]
    manifest = json.loads((folder / "ticket.json").read_text())
    assert manifest["ticket"]["ticket_id"] == "t0000r01" and manifest["ticket"]["kind"] == "imp"
    assert manifest["spec"]["tickets"]["prune_rate"] == manifest["ticket"]["param_prune_rate"]  # trial's value
    assert isinstance(manifest["ticket"]["layer_sparsity"], dict)
    assert {"torch", "spikingjelly", "safetensors", "sltsearch", "python"} <= set(manifest["versions"])
    assert set(manifest["files"]) == {"weights.safetensors", "masks.safetensors"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert result.reproduced

    # weights: the cached ticket's, masks folded in (pruned weights exactly zero), masks by layer name
    cached = _cached_state(run_copy, "t0000r01")
    weights = load_file(str(folder / "weights.safetensors"))
    masks = load_file(str(folder / "masks.safetensors"))
    assert set(masks) == {k.removesuffix(".weight_mask") for k in cached if k.endswith(".weight_mask")}
    for layer, mask in masks.items():
        assert mask.dtype == torch.bool and not mask.all()
        assert torch.equal(weights[f"{layer}.weight"], cached[f"{layer}.weight"])
        assert (weights[f"{layer}.weight"][~mask] == 0).all()

    # evaluate from a moved folder, with the run folder gone: every number matches exactly
    moved = tmp_path / "elsewhere"
    shutil.move(folder, moved)
    shutil.rmtree(run_copy)
    rng = torch.get_rng_state()
    evaluation = sltsearch.evaluate(moved)
    assert evaluation.matches, evaluation.metrics
    assert torch.equal(torch.get_rng_state(), rng)  # measuring seeds its own RNG, not the caller's
    assert {m["metric"] for m in evaluation.metrics} >= {"val_accuracy", "test_accuracy", "energy_uj", "macs"}

    model, info = sltsearch.load_ticket(moved)
    assert isinstance(model, torch.nn.Module) and not model.training
    assert info.ticket_id == "t0000r01" and info.spec.model.name == "spiking_cnn"
    x = torch.rand(3, *manifest["model_io"]["input_shape"])
    with torch.no_grad():
        logits = model(x)
    model.reset_state()
    assert logits.shape == (3, manifest["model_io"]["num_classes"])


def test_select_and_cli_agree_and_default_folder(cnn_run: Path, tmp_path: Path) -> None:
    run_copy = tmp_path / "run"
    shutil.copytree(cnn_run, run_copy)
    chosen = sltsearch.select(sltsearch.load(run_copy), "max-accuracy")
    result = runner.invoke(app, ["export", str(run_copy), "--select", "max-accuracy"])
    assert result.exit_code == 0, result.output
    folder = run_copy / "exports" / chosen["ticket_id"]
    manifest = json.loads((folder / "ticket.json").read_text())
    assert manifest["source"]["selected_by"]["rule"] == "max-accuracy"
    result = runner.invoke(app, ["evaluate", str(folder), "--strict"])
    assert result.exit_code == 0, result.output
    assert "match the recorded values exactly" in result.output
    # an existing export is never overwritten without --force, and stays intact
    before = (folder / "weights.safetensors").read_bytes()
    again = runner.invoke(app, ["export", str(run_copy), "--select", "max-accuracy"])
    assert again.exit_code == 2 and "--force" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert (folder / "weights.safetensors").read_bytes() == before
    forced = runner.invoke(app, ["export", str(run_copy), "--select", "max-accuracy", "--force"])
    assert forced.exit_code == 0, forced.output
    assert sltsearch.evaluate(folder).matches


def test_dense_ticket_exports_without_masks_pruned(cnn_run: Path, tmp_path: Path) -> None:
    result = sltsearch.export(cnn_run, ticket="t0000r00", out=tmp_path / "dense")
    masks = load_file(str(result.path / "masks.safetensors"))
    assert all(m.all() for m in masks.values())
    assert result.manifest["ticket"]["sparsity"] == 0.0
    assert sltsearch.evaluate(result.path).matches


@pytest.fixture
def exported(cnn_run: Path, tmp_path: Path) -> Path:
    return sltsearch.export(cnn_run, ticket="t0000r01", out=tmp_path / "ticket").path


@pytest.mark.parametrize("name", ["weights.safetensors", "masks.safetensors"])
def test_altered_tensor_file_is_refused(exported: Path, name: str) -> None:
    path = exported / name
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of one tensor value
    path.write_bytes(bytes(data))
    with pytest.raises(TicketFileError, match=f"{name}: sha256 does not match"):
        sltsearch.load_ticket(exported)
    result = runner.invoke(app, ["evaluate", str(exported)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in result.output


def test_truncated_or_missing_files_are_refused(exported: Path) -> None:
    weights = exported / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(TicketFileError, match="weights.safetensors: 100 bytes.*truncated"):
        sltsearch.evaluate(exported)
    (exported / "masks.safetensors").unlink()
    weights.unlink()
    with pytest.raises(TicketFileError, match="weights.safetensors: missing"):
        sltsearch.load_ticket(exported)
    manifest = exported / "ticket.json"
    manifest.write_text(manifest.read_text()[:50])
    with pytest.raises(TicketFileError, match="ticket.json: not valid JSON"):
        sltsearch.load_ticket(exported)
    manifest.unlink()
    with pytest.raises(TicketFileError, match="ticket.json: missing"):
        sltsearch.evaluate(exported)


def test_weights_that_ignore_their_mask_are_refused_even_with_matching_checksums(exported: Path) -> None:
    from safetensors.torch import save_file

    from sltsearch.system.files import sha256_file

    weights = load_file(str(exported / "weights.safetensors"))
    masks = load_file(str(exported / "masks.safetensors"))
    layer, mask = next(iter(masks.items()))
    weights[f"{layer}.weight"][~mask] = 0.5  # revive the pruned weights
    save_file(weights, str(exported / "weights.safetensors"))
    manifest = json.loads((exported / "ticket.json").read_text())
    path = exported / "weights.safetensors"
    manifest["files"]["weights.safetensors"] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    (exported / "ticket.json").write_text(json.dumps(manifest))
    with pytest.raises(TicketFileError, match=f"weights.safetensors: {layer} has non-zero pruned weights"):
        sltsearch.load_ticket(exported)


def test_export_input_errors(cnn_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="either --ticket ID or --select"):
        sltsearch.export(cnn_run, out=tmp_path / "x")
    with pytest.raises(UserError, match="either --ticket ID or --select"):
        sltsearch.export(cnn_run, ticket="t0000r01", select="knee", out=tmp_path / "x")
    with pytest.raises(UserError, match="no ticket 't9999r09'"):
        sltsearch.export(cnn_run, ticket="t9999r09", out=tmp_path / "x")
    with pytest.raises(UserError, match="no ticket meets val_accuracy >= 0.999"):
        sltsearch.export(cnn_run, select="knee", min_accuracy=0.999, out=tmp_path / "x")
    with pytest.raises(UserError, match="unknown rule 'best'"):
        sltsearch.export(cnn_run, select="best", out=tmp_path / "x")
    with pytest.raises(UserError, match="--format: 'onnx'"):
        sltsearch.export(cnn_run, ticket="t0000r01", format="onnx", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    result = runner.invoke(app, ["export", str(tmp_path), "--ticket", "t0000r01"])
    assert result.exit_code == 2 and "not a run folder" in result.stderr


@pytest.mark.slow
def test_multisp_spikformer_round_trip_is_exact(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    spec = tiny_spec_dict(
        name="tiny_msp",
        model={"name": "spikformer", "preset": "tiny", "time_steps": 1,
               "options": {"embed_dim": 16, "pep_channels": [8, 16]}},
        data={"name": "digits", "batch_size": 128},
        train={"epochs": 1},
        objective={"energy": {"samples": 32}},
        multisp={"patch_keep": 0.5, "pep_sparsity": 0.9, "pep_binary_weights": True,
                 "pep_binary_activations": True},
        search={"n_trials": 1, "population_size": 2},
        space={"prune_rate": {"type": "float", "low": 0.4, "high": 0.6}},
    )
    run_dir = _run(tmp_path_factory.mktemp("msp"), spec)
    result = sltsearch.export(run_dir, ticket="t0000r01", out=tmp_path / "msp")
    multisp = load_file(str(result.path / "multisp.safetensors"))
    assert multisp["body.patch_embed.patch_keep_mask"].sum() == 8  # half of the 16 patches
    assert bool(multisp["body.patch_embed.binary_activation"])
    assert any(k.endswith("binary_weights") and bool(v) for k, v in multisp.items())
    assert result.manifest["ticket"]["tokens_kept"] == 8
    evaluation = sltsearch.evaluate(result.path)
    assert evaluation.matches, evaluation.metrics
    model, _ = sltsearch.load_ticket(result.path)
    assert int(model.body.patch_embed.patch_keep_mask.sum()) == 8
    pe_convs = [m for m in model.body.patch_embed.modules() if hasattr(m, "binary_weights")]
    assert pe_convs and all(m.sltsearch_binary for m in pe_convs)
    with pytest.raises(UserError, match="spiking self-attention multiplies two spike tensors"):
        sltsearch.export(run_dir, ticket="t0000r01", format="nir", out=tmp_path / "msp_nir")
    assert not (tmp_path / "msp_nir").exists()


@pytest.mark.slow
def test_every_ticket_kind_of_an_early_time_run_round_trips(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Dense and search rounds ran at T_search, the early-time ticket and its control at the full T."""
    spec = tiny_spec_dict(
        name="tiny_et",
        model={"time_steps": 4},
        train={"epochs": 1},
        tickets={"rounds": 1, "prune_rate": 0.5, "time_steps_search": 2, "controls": ["random_prune"]},
        search={"n_trials": 1, "population_size": 2},
    )
    root = tmp_path_factory.mktemp("et")
    run_dir = _run(root, spec)
    frame = sltsearch.load(run_dir)
    assert set(frame["kind"]) == {"dense", "et_search", "early_time", "random_prune"}
    for _, row in frame.iterrows():
        result = sltsearch.export(run_dir, ticket=row["ticket_id"], out=root / row["ticket_id"])
        assert result.manifest["spec"]["model"]["time_steps"] == row["time_steps"]
        assert sltsearch.evaluate(result.path).matches, row["ticket_id"]
