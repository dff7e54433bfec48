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
# # Your own spiking network and your own data
#
# sltsearch searches any spikingjelly network on any labelled dataset. This tutorial writes a small 1-D
# spiking network in its own module, makes a dataset as NumPy arrays, searches it from a spec file, and then
# hands the same network and torch `Dataset`s to `sltsearch.run` directly. Executed on every build of this
# site; the rules and error messages: [how-to: your own network and data](../how-to/own-network.md).
#
# ## The network
#
# A *builder* takes `(input_shape, num_classes, options)` and returns a multi-step network mapping
# `[T, B, *input_shape]` to `[T, B, num_classes]`. Taking a `make_neuron` parameter lets the spec choose the
# neuron (`model.neuron`: LIF, PLIF, IF, ... or `relu` for the ANN twin) instead of hard-coding one.
# sltsearch wraps it like its own families: input encoder, T time steps, state reset between batches, a mask
# on every Conv/Linear weight, the energy counters.

# %%
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # optuna imports tqdm's notebook bar: not used here

work = Path(tempfile.mkdtemp(prefix="sltsearch-own-"))
(work / "tutorial_nets.py").write_text('''
import torch
from spikingjelly.activation_based import layer


def make_net(input_shape, num_classes, options, make_neuron):
    channels, length = input_shape          # 1-D samples of length L arrive as (1, L)
    hidden = int(options.get("hidden", 32))
    return torch.nn.Sequential(
        layer.Conv1d(channels, 8, kernel_size=5, padding=2),
        layer.BatchNorm1d(8),
        make_neuron(),
        layer.Flatten(),
        layer.Linear(8 * length, hidden),
        make_neuron(),
        layer.Linear(hidden, num_classes),
    )
''')
sys.path.insert(0, str(work))  # `sltsearch run` also finds modules in the current folder

# %% [markdown]
# ## The data
#
# A `.npz` file with `x_train` and `y_train` (and optionally `x_val`/`y_val`, `x_test`/`y_test`; missing
# splits are carved from train, stratified and fixed by `data.split_seed`). Here: 3 classes told apart by
# where a bump sits in 32 noisy values.

# %%
rng = np.random.default_rng(0)
y = np.arange(600) % 3
x = rng.normal(size=(600, 32)).astype("float32")
x[np.arange(600), 4 + 8 * y] += 3.0
np.savez(work / "data.npz", x_train=x, y_train=y)
print(x.shape, np.bincount(y))

# %% [markdown]
# ## The search
#
# `model.name` is the builder's import path, `data: {name: arrays, path: ...}` the file. The space searches
# the pruning rate and the neuron's time constant `tau` by its dotted path.

# %%
import sltsearch

spec_file = work / "my_search.yaml"
spec_file.write_text(f"""
name: my-net
data: {{name: arrays, path: {work / 'data.npz'}, batch_size: 32}}
model: {{name: "tutorial_nets:make_net", options: {{hidden: 32}}, time_steps: 4,
         neuron: {{type: lif, tau: 2.0}}}}
train: {{epochs: 4, lr: 0.005}}
tickets: {{prune_rate: 0.5, rounds: 2}}
search: {{n_trials: 4, population_size: 4}}
space:
  prune_rate: {{type: float, low: 0.3, high: 0.8}}
  model.neuron.tau: {{type: categorical, choices: [1.5, 2.0]}}
""")
result = sltsearch.run(spec_file, run_dir=work / "run", workers=1, threads=1)
result.front[["ticket_id", "round", "param_model.neuron.tau", "sparsity", "val_accuracy", "energy_uj"]].round(3)

# %% [markdown]
# Before the first trial sltsearch built the network and ran it on two samples; a network without spiking
# neurons, without a layer to prune, or with the wrong output shape stops here with one line. The stage
# cache keys include a hash of `tutorial_nets.py`, so editing the network never reuses stale stages.
#
# ## Python objects instead of files
#
# The same builder and torch `Dataset`s can be handed over directly (`val` / `test` may be `None`: carved
# from train). The objects live in this process, so such a search runs one worker.

# %%
import torch
from torch.utils.data import TensorDataset
from tutorial_nets import make_net

train = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
again = sltsearch.run(spec_file, run_dir=work / "run-objects", n_trials=2, model=make_net,
                      data=(train, None, None), threads=1)
again.tickets[["ticket_id", "round", "sparsity", "val_accuracy", "energy_uj"]].round(3)

# %% [markdown]
# Next: [choose, export and deploy a ticket](deploy_ticket.py).
