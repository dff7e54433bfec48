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
# # A first search and its front
#
# This tutorial runs a small search from Python, reads every ticket it made with pandas, and draws its
# Pareto front: validation accuracy against estimated energy per inference. It is executed every time the
# documentation is built, so every number and figure below comes from that run (a minute or two on 2 CPU
# cores). The same search from the command line is `sltsearch run first-search.yaml`.
#
# ## The spec
#
# A search is described by a *spec*, YAML validated by pydantic (every field: [Spec reference](../reference/spec.md)).
# This one is deliberately tiny: scikit-learn's 8x8 digits, the `tiny` spiking CNN, 3 epochs, up to 3 IMP
# rounds, 4 trials. The `space` says what the search varies: the pruning rate per round and the number of
# time steps T.

# %%
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt

import sltsearch

warnings.filterwarnings("ignore", message="IProgress not found")  # optuna imports tqdm's notebook bar: not used here

work = Path(tempfile.mkdtemp(prefix="sltsearch-tutorial-"))
spec_file = work / "first-search.yaml"
spec_file.write_text("""
name: first-search
seed: 0
data: {name: digits, batch_size: 64}
model: {name: spiking_cnn, preset: tiny, time_steps: 4}
train: {epochs: 3, lr: 0.01}
tickets: {strategy: imp, prune_rate: 0.5, rounds: 3, rewind_epoch: 1}
objective:
  metrics: {val_accuracy: maximize, energy_uj: minimize}
search: {sampler: nsga2, n_trials: 4, population_size: 4}
space:
  prune_rate: {type: float, low: 0.4, high: 0.8, step: 0.1}
  time_steps: {type: categorical, choices: [2, 4]}
""")
spec = sltsearch.validate(spec_file)  # what `sltsearch validate` checks: spec, data, model, device
print(spec.name, "| rates per round:", spec.tickets.round_rates(), "| searched:", list(spec.space))

# %% [markdown]
# ## Run it
#
# `sltsearch.run` trains the dense network once per T (trials share it through the stage cache), then runs
# each trial's IMP rounds with rewinding to epoch 1 and measures every ticket. One worker with one torch
# thread keeps this page's build predictable; without them the trials fill every core.

# %%
result = sltsearch.run(spec_file, run_dir=work / "run", workers=1, threads=1)
print(result.run_dir)
print(sorted(p.name for p in result.run_dir.iterdir()))

# %% [markdown]
# The run folder holds the frozen spec, the Optuna study, the ticket table, the cache and `pareto.csv` /
# `pareto.png` ([run folder reference](../reference/run-folder.md)). Running the same call again resumes
# instead of starting over.
#
# ## Every ticket, with pandas
#
# `sltsearch.load` reads the ticket table: one row per IMP round of every trial, round 0 being the dense
# network. Test accuracy is stored beside validation accuracy, but nothing is ever chosen on it.

# %%
tickets = sltsearch.load(result.run_dir)
print(len(tickets), "tickets from", tickets["trial"].nunique(), "trials")
tickets[["ticket_id", "round", "param_prune_rate", "time_steps", "sparsity", "val_accuracy", "test_accuracy",
         "energy_uj"]].round(3)

# %%
tickets.groupby("round")[["sparsity", "val_accuracy", "energy_uj"]].mean().round(3)

# %% [markdown]
# ## The front
#
# `sltsearch.pareto` keeps the non-dominated finished tickets (validation accuracy up, energy down), each
# ticket once even when several trials reached it (the shared dense network above all). A very sparse ticket
# that lost its accuracy is cheap, so it is on the front too: `min_accuracy` leaves such tickets out.

# %%
front = sltsearch.pareto(result.run_dir, min_accuracy=0.8)
front[["ticket_id", "round", "time_steps", "sparsity", "val_accuracy", "energy_uj"]].round(3)

# %%
# %matplotlib inline
shown = tickets[tickets["val_accuracy"] >= 0.8]  # the region of interest: the front above 80 %
fig, ax = plt.subplots(figsize=(6, 4))
points = ax.scatter(shown["energy_uj"], 100 * shown["val_accuracy"], c=100 * shown["sparsity"],
                    cmap="viridis", s=30)
ax.set_title(f"{len(shown)} of {len(tickets)} tickets (validation accuracy >= 80 %)", fontsize=10)
ordered = front.sort_values("energy_uj")
ax.step(ordered["energy_uj"], 100 * ordered["val_accuracy"], where="post", color="crimson", label="front")
ax.set_xlabel("energy per inference (µJ)")
ax.set_ylabel("validation accuracy (%)")
fig.colorbar(points, label="sparsity (%)")
ax.legend(loc="lower right")
fig.tight_layout()

# %% [markdown]
# `sltsearch pareto RUN --plot front.png` draws the same front with the dense networks labelled; the run
# wrote it as `pareto.png`:

# %%
from IPython.display import Image

Image(filename=str(result.run_dir / "pareto.png"), width=560)

# %% [markdown]
# ## Pick one ticket
#
# `sltsearch.select` chooses on validation metrics only: `knee` is the front point farthest from the line
# joining its two ends (both objectives scaled to [0, 1]); `min_accuracy` restricts the candidates first.
# A hypervolume against a fixed reference point is one number to compare runs by.

# %%
knee = sltsearch.select(tickets, "knee", min_accuracy=0.8)
print("knee:", knee["ticket_id"], f"sparsity {knee['sparsity']:.3f}, val {knee['val_accuracy']:.3f}, "
      f"test {knee['test_accuracy']:.3f}, {knee['energy_uj']:.4f} µJ")
reference = {"val_accuracy": 0.0, "energy_uj": float(tickets["energy_uj"].max())}
print("hypervolume:", round(sltsearch.hypervolume(result.run_dir, reference), 4))

# %% [markdown]
# Next: [your own network and data](own_network.py), or [export and deploy the ticket](deploy_ticket.py).
