# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Choose, export and deploy a ticket
#
# A search leaves many tickets; a deployment needs one. This tutorial searches a network that NIR consumers
# can import, chooses a ticket on validation metrics, exports it as a self-contained folder with a
# [NIR](https://neuroir.org) graph, checks the folder from scratch, and runs the graph in snnTorch.
# Executed on every build of this site (the `nir` extra: `pip install -e ".[nir]"`); the details:
# [how-to: export and deploy](../how-to/export.md).
#
# ## A search whose tickets export
#
# NIR consumers have no max-pooling of spikes, and snnTorch's LIF resets to zero: the CNN preset
# `deployable` (average pooling) with a reset-to-zero LIF is what snnTorch runs exactly (the bundled space
# `deployable` searches it at full size).

# %%
import tempfile
import warnings
from pathlib import Path

import pandas as pd

import sltsearch

warnings.filterwarnings("ignore", message="IProgress not found")  # optuna imports tqdm's notebook bar: not used here

work = Path(tempfile.mkdtemp(prefix="sltsearch-deploy-"))
spec_file = work / "deploy.yaml"
spec_file.write_text("""
name: deploy
data: {name: digits, batch_size: 64}
model: {name: spiking_cnn, preset: deployable, time_steps: 4,
        neuron: {type: lif, tau: 2.0, v_reset: 0.0}}
train: {epochs: 3}
tickets: {prune_rate: 0.6, rounds: 2, rewind_epoch: 1}
search: {n_trials: 3, population_size: 3}
space:
  prune_rate: {type: float, low: 0.5, high: 0.8, step: 0.1}
""")
run = sltsearch.run(spec_file, run_dir=work / "run", workers=1, threads=1).run_dir

# %% [markdown]
# ## Choose on validation metrics
#
# `select` never looks at test accuracy. `min_accuracy` drops tickets below a validation accuracy before
# the rule picks: here the cheapest ticket within 5 points of the best one.

# %%
tickets = sltsearch.load(run)
best = tickets["val_accuracy"].max()
for rule in ("max-accuracy", "knee", "min-energy"):
    row = sltsearch.select(tickets, rule, min_accuracy=best - 0.05)
    print(f"{rule:>12}: {row['ticket_id']}  sparsity {row['sparsity']:.2f}  "
          f"val {row['val_accuracy']:.3f}  energy {row['energy_uj']:.4f} µJ")

# %% [markdown]
# ## Export
#
# `export` writes the weights with the masks folded in (pruned weights are exact zeros), the masks,
# `ticket.json` (the full spec with the trial's values, the ticket's row, checksums of every file) and, with
# `format="nir"`, `ticket.nir` written for the consumer named by `target`. A model the target cannot express
# is refused before anything is written, in one line saying what would export.

# %%
exported = sltsearch.export(run, select="min-energy", min_accuracy=best - 0.05, format="nir", target="snntorch")
print(exported.path)
print(sorted(p.name for p in exported.path.iterdir()))
print(exported.manifest["model_io"])

# %% [markdown]
# ## Check the folder on its own
#
# `evaluate` needs only the folder (and the data): it verifies every checksum, rebuilds the model from
# `ticket.json`, re-runs the validation and test splits and the energy count, and compares them with the
# recorded values. On the machine that ran the search they match exactly.

# %%
check = sltsearch.evaluate(exported.path)
print("all equal:", check.matches)
pd.DataFrame(check.metrics)

# %% [markdown]
# With `target`, the folder's `ticket.nir` runs in that consumer instead, through its own public import API,
# and is compared with sltsearch's model sample by sample.

# %%
from dataclasses import asdict

in_snntorch = sltsearch.evaluate(exported.path, target="snntorch")
print("lowest agreement:", in_snntorch.agreement_min)
pd.DataFrame([asdict(split) for split in in_snntorch.splits]).set_index("split").T

# %% [markdown]
# ## Deploy: the graph in plain snnTorch
#
# What a snnTorch user writes: read the graph, import it, feed the sample once per time step (direct
# encoding) and average the readout over T, as sltsearch does. Any input shows whether the two compute the
# same: here a random batch.

# %%
import contextlib
import io

import nir
import torch
from snntorch import utils
from snntorch.import_nir import import_from_nir

graph = nir.read(exported.path / "ticket.nir")
with contextlib.redirect_stdout(io.StringIO()):  # snnTorch prints its import steps
    net = import_from_nir(graph)
model, info = sltsearch.load_ticket(exported.path)  # sltsearch's own model of the ticket, checksums verified
steps = info.spec.model.time_steps
x = torch.rand(8, *exported.manifest["model_io"]["input_shape"])

utils.reset(net)
with torch.no_grad():
    readout = sum(net(x)[0] for _ in range(steps)) / steps
    ours = model(x)
model.reset_state()
print("snnTorch :", readout.argmax(1).tolist())
print("sltsearch:", ours.argmax(1).tolist())
print("largest readout difference:", float((readout - ours).abs().max()))

# %% [markdown]
# For Sinabs, search with `model.neuron.type: lif_multi` (the bundled space `deployable_sinabs`) and export
# with `target="sinabs"`: Sinabs's LIF fires several spikes in a step, and only such tickets run exactly there.
