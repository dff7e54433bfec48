"""The search spec's schema: one validated, frozen pydantic model for a whole search.

A spec names the data, model, training recipe, ticket strategy, objective and the searched *space*.
Each searched parameter overrides one field of the spec (an alias such as ``prune_rate`` or a dotted
path such as ``train.lr``); `Spec.with_params` applies a trial's values and re-validates, so every
range check written on the fields below also guards the search space.

Every field also declares, in its annotation, which cached stages its value decides (``DENSE``, ``ROUND``,
``MEASURE``) or that it decides none (``RUN``: the search itself; ``NONE``: budget and storage): the cache keys
and the run folder's identity are derived from these declarations (`sltsearch.spec.keys`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from sltsearch.errors import UserError
from sltsearch.spec.keys import DENSE, MEASURE, NONE, ROUND, RUN, Stage, affects
from sltsearch.spec.keys import content_hash as _content_hash
from sltsearch.spec.scalars import Strict
from sltsearch.spec.space import ParamSpec, check_space, resolve_param_path, set_path
from sltsearch.system.secrets import check_url

# How each field enters the cache keys (`sltsearch.spec.keys`); the shared declarations, named once:
_RATES = affects(Stage.ROUND, via="rates")  # the round key holds the pruning rates these fields give
_EARLY_BIRD = affects(Stage.ROUND, via="early_bird")  # the round key of an early_bird strategy only
_TIME_STEPS = affects(Stage.DENSE, via="time_steps")  # the T the dense run trains at (T_search if set)
_NEW_DENSE = affects(Stage.DENSE, when_set=True)  # added later: in the dense key only when set
_NEW_RUN = affects(Stage.RUN, identity_when_set=True)  # added later: in the run identity only when set


# what `sltsearch.system.device.resolve_device` understands; checked here so `validate` catches e.g. "tpu"
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"


class DataSpec(Strict):
    """Which dataset and how it is split; splits are fixed by ``split_seed``."""

    name: Annotated[str, DENSE] = "digits"
    root: Annotated[str | None, DENSE] = Field(
        None, description="local folder for on-disk datasets (never downloaded)"
    )
    val_fraction: Annotated[float, DENSE] = Field(0.2, gt=0.0, lt=0.5)
    test_fraction: Annotated[float, DENSE] = Field(0.2, gt=0.0, lt=0.5)
    batch_size: Annotated[int, DENSE] = Field(32, ge=1, le=65536)
    eval_batch_size: Annotated[int, affects(Stage.DENSE, Stage.MEASURE)] = Field(512, ge=1, le=65536)
    split_seed: Annotated[int, DENSE] = Field(0, ge=0)
    options: Annotated[dict[str, Any], DENSE] = Field(default_factory=dict, description="dataset-specific options")
    path: Annotated[str | None, _NEW_DENSE] = Field(
        None, description="file a dataset is read from (name: arrays, a .npz file)"
    )


# neuron types that make the model the ANN twin of its spiking network (sltsearch/models/twin.py)
ANN_ACTIVATIONS = ("relu",)
# spec paths that only shape a spiking network: the ANN twin runs once with ReLU, so these neither change it nor
# enter its stage keys (`sltsearch.trial.stages.dense_key`), and the ticket table blanks them on its rows
SPIKING_ONLY_PATHS = (
    "model.time_steps",
    "model.neuron.tau",
    "model.neuron.v_threshold",
    "model.neuron.v_reset",
    "model.neuron.surrogate",
    "model.neuron.surrogate_alpha",
    "model.neuron.detach_reset",
    "tickets.time_steps_search",
)


class NeuronSpec(Strict):
    """Spiking neuron used throughout the model, or ``relu``: the same network as an ANN (its twin)."""

    type: Annotated[Literal["lif", "plif", "if", "lif_multi", "relu"], DENSE] = Field(
        "lif",
        description="lif | plif | if: spiking neurons; lif_multi: a LIF that fires several spikes in a step, as "
        "Sinabs does (soft reset); relu: the ANN twin (every neuron a ReLU, run once, no time steps)",
    )
    tau: Annotated[float, DENSE] = Field(2.0, gt=1.0)
    v_threshold: Annotated[float, DENSE] = Field(1.0, gt=0.0)
    v_reset: Annotated[float | None, DENSE] = 0.0
    surrogate: Annotated[Literal["atan", "sigmoid", "fast_sigmoid", "piecewise_quadratic"], DENSE] = "atan"
    surrogate_alpha: Annotated[float | None, DENSE] = Field(None, gt=0.0)
    detach_reset: Annotated[bool, DENSE] = True

    @model_validator(mode="after")
    def _multi_spike_resets_by_subtraction(self) -> NeuronSpec:
        if self.type == "lif_multi" and self.v_reset is not None:
            raise ValueError("type lif_multi resets the membrane by subtraction: set v_reset: null")
        return self


class ModelSpec(Strict):
    """A registered model family, a size preset, explicit size overrides and the time dimension."""

    name: Annotated[str, DENSE] = "spiking_cnn"
    preset: Annotated[str, DENSE] = "tiny"
    options: Annotated[dict[str, Any], DENSE] = Field(
        default_factory=dict, description="explicit sizes, override the preset"
    )
    neuron: NeuronSpec = NeuronSpec()
    encoder: Annotated[Literal["direct", "rate", "learned"], DENSE] = Field(
        "direct",
        description="direct: real values every step; rate: Poisson spikes; learned: a spiking conv encoder "
        "that sees the real values once (docs/energy.md)",
    )
    time_steps: Annotated[int, _TIME_STEPS] = Field(4, ge=1, le=1024)
    version: Annotated[str | None, _NEW_DENSE] = Field(
        None, description="your network's version: keys its cached stages instead of a hash of its source"
    )
    encoder_channels: Annotated[int | None, _NEW_DENSE] = Field(
        None, ge=1, le=4096, description="learned encoder: output channels (default 16)"
    )

    @property
    def network(self) -> Literal["snn", "ann"]:
        """``ann`` for the ANN twin (``neuron.type: relu``), else ``snn``; the ticket table's ``network`` column."""
        return "ann" if self.neuron.type in ANN_ACTIVATIONS else "snn"

    @property
    def inference_steps(self) -> int:
        """The time steps one inference runs: ``time_steps``, or 1 for the ANN twin (it runs once)."""
        return 1 if self.network == "ann" else self.time_steps

    @model_validator(mode="after")
    def _ann_input(self) -> ModelSpec:
        if self.network == "ann" and self.encoder == "rate":
            raise ValueError(
                f"neuron.type {self.neuron.type} (the ANN twin) takes the real-valued input once; rate encoding "
                "draws spikes for a spiking network: use encoder direct (or learned)"
            )
        return self


class TrainSpec(Strict):
    """Surrogate-gradient BPTT recipe; the LR schedule is a function of the absolute epoch."""

    epochs: Annotated[int, DENSE] = Field(10, ge=1, le=10000)
    optimizer: Annotated[Literal["adam", "adamw", "sgd"], DENSE] = "adam"
    lr: Annotated[float, DENSE] = Field(1e-2, gt=0.0, le=10.0)
    momentum: Annotated[float, DENSE] = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: Annotated[float, DENSE] = Field(0.0, ge=0.0)
    schedule: Annotated[Literal["cosine", "constant"], DENSE] = "cosine"
    select: Annotated[Literal["best_val", "last"], DENSE] = Field(
        "best_val", description="which epoch's weights a training run keeps; chosen on validation only"
    )
    device: Annotated[str, RUN] = Field("auto", description="auto | cpu | cuda | cuda:N | mps")

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not re.match(DEVICE_PATTERN, value):
            raise ValueError(f"'{value}' is not a device; allowed: auto, cpu, cuda, cuda:N, mps")
        return value


class TicketSpec(Strict):
    """How tickets are drawn from the dense network (see sltsearch/tickets/__init__.py for the strategies).

    Rounds: ``prune_rates`` (explicit per-round rates) > ``target_sparsity`` (rounds derived: the smallest R
    with 1-(1-p)^R >= target, the last round's rate trimmed to land on the target exactly) > ``rounds``.
    Rewinding: ``rewind_iteration`` (optimizer step k of the dense run) overrides ``rewind_epoch``; k = 0
    is the original LTH reset to init. After a rewind the optimizer starts fresh and the LR schedule is
    replayed from the rewind epoch (for an iteration, the epoch holding it) to the end of the recipe.
    """

    strategy: Annotated[
        Literal["imp", "one_shot", "early_bird"], affects(Stage.ROUND, via=("rates", "early_bird"))
    ] = Field(
        "imp",
        description="imp: iterative magnitude pruning; one_shot: one round straight to the target sparsity; "
        "early_bird: mask drawn during dense training once it stops changing",
    )
    scope: Annotated[Literal["global", "layerwise"], ROUND] = "global"
    prune_rate: Annotated[float, _RATES] = Field(
        0.5, gt=0.0, lt=1.0, description="fraction of remaining weights pruned per round"
    )
    rounds: Annotated[int, _RATES] = Field(1, ge=1, le=100)
    target_sparsity: Annotated[float | None, _RATES] = Field(
        None, gt=0.0, lt=1.0, description="final sparsity; derives the IMP rounds, the one_shot/early_bird rate"
    )
    prune_rates: Annotated[list[float] | None, _RATES] = Field(
        None, min_length=1, max_length=100, description="explicit per-round pruning rates (override the rest)"
    )
    keep_dense: Annotated[list[str], affects(Stage.ROUND, via="keep_dense")] = Field(
        default_factory=list, description="layers never pruned: 'first', 'last' or layer names"
    )
    rewind_epoch: Annotated[int, ROUND] = Field(
        0, ge=0, description="0 = reset to init (original LTH); k > 0 = late rewinding"
    )
    rewind_iteration: Annotated[int | None, affects(Stage.ROUND, when_set=True)] = Field(
        None, ge=0, description="rewind to optimizer step k of the dense run instead of an epoch"
    )
    controls: Annotated[list[Literal["random_prune", "random_reinit"]], RUN] = Field(
        default_factory=list,
        description="extra tickets per round on the same sparsities: random positions at the same per-layer "
        "density, or the same mask with fresh weights; stored, never the trial's value",
    )
    time_steps_search: Annotated[int | None, _TIME_STEPS] = Field(
        None, ge=1, le=1024, description="early-time tickets: search masks at this T, train the final one at T"
    )
    eb_threshold: Annotated[float, _EARLY_BIRD] = Field(
        0.1, gt=0.0, lt=1.0, description="early_bird: stop when the normalised mask distance falls below this"
    )
    eb_window: Annotated[int, _EARLY_BIRD] = Field(
        1, ge=1, le=20, description="early_bird: consecutive epoch pairs that must agree"
    )
    encoding_sparsity: Annotated[float | None, affects(Stage.ROUND, via="encoding_sparsity")] = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="final sparsity of the encoding (first) layer, reached on its own geometric schedule over "
        "the rounds and kept out of the global ranking (sltsearch/tickets/encoding.py)",
    )

    @field_validator("prune_rates")
    @classmethod
    def _rates(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not all(0.0 < r < 1.0 for r in value):
            raise ValueError("every entry of prune_rates must be in (0, 1)")
        return value

    def round_rates(self) -> list[float]:
        """The pruning rate (fraction of remaining weights) of every round, in order."""
        if self.prune_rates:
            return list(self.prune_rates)
        if self.strategy in {"one_shot", "early_bird"}:
            return [self.target_sparsity if self.target_sparsity is not None else self.prune_rate]
        if self.target_sparsity is None:
            return [self.prune_rate] * self.rounds
        return rates_to_target(self.prune_rate, self.target_sparsity)


def rates_to_target(rate: float, target: float, density: float = 1.0) -> list[float]:
    """Rounds of ``rate`` until 1-(1-rate)^R >= target; the last rate trimmed to hit ``target`` exactly. From
    ``density`` (the weights a path kept so far): where a branch of a path goes on at its own rate."""
    rates: list[float] = []
    while 1.0 - density < target - 1e-12 and len(rates) < 100:
        step = rate if 1.0 - density * (1.0 - rate) <= target else 1.0 - (1.0 - target) / density
        rates.append(step)
        density *= 1.0 - step
    return rates


class MultiSpSpec(Strict):
    """MultiSp (Cheng et al., arXiv 2309.13302) for ``model.name: spikformer``; see sltsearch/tickets/multisp.py.

    Applied from the first IMP round on (the dense network, round 0, is untouched): ``patch_keep`` keeps the
    highest-scoring fraction of patches (tokens) and physically drops the rest; ``pep_sparsity``,
    ``attn_sparsity`` and ``mlp_sparsity`` are final weight sparsities of the ConvPEP, attention (Q/K/V/O)
    and MLP weights, reached by magnitude on a geometric schedule over the IMP rounds (unset: the group
    follows ``tickets.prune_rate``); ``pep_binary_weights`` binarizes the ConvPEP convolutions (sign x
    per-output-channel scale); ``pep_binary_activations`` binarizes the ConvPEP output activation.
    ``pep_first_conv`` exempts the first ConvPEP convolution (it sees real-valued pixels): ``real`` keeps
    its weights real-valued (pruned with the rest), ``dense`` neither prunes nor binarizes it while
    ``pep_sparsity`` is still reached over the whole ConvPEP (the other convolutions are pruned further).
    """

    patch_keep: float = Field(1.0, gt=0.0, le=1.0, description="fraction of patches (tokens) kept")
    pep_sparsity: float | None = Field(None, ge=0.0, lt=1.0, description="ConvPEP weight sparsity target")
    pep_binary_weights: bool = False
    pep_binary_activations: bool = False
    attn_sparsity: float | None = Field(None, ge=0.0, lt=1.0, description="attention weight sparsity target")
    mlp_sparsity: float | None = Field(None, ge=0.0, lt=1.0, description="MLP weight sparsity target")
    pep_first_conv: Literal["same", "real", "dense"] = Field(
        "same",
        description="first ConvPEP conv: same as the rest; real: never binarized; dense: never pruned nor "
        "binarized, pep_sparsity still counts the whole ConvPEP",
    )
    patch_score_samples: int = Field(512, ge=1, description="training samples the patch scores are taken on")

    @property
    def active(self) -> bool:
        return self != MultiSpSpec()


class EnergySpec(Strict):
    """Energy constants (pJ per op) and counting options; defaults are 45 nm FP32 (Horowitz 2014)."""

    e_mac_pj: float = Field(4.6, gt=0.0)
    e_ac_pj: float = Field(0.9, gt=0.0)
    first_layer: Literal["per_step", "once"] = Field(
        "per_step", description="direct encoding repeats the input: count the encoding layer T times or once"
    )
    samples: int = Field(256, ge=1, description="validation samples the energy is measured on")
    model: Literal["mac_ac", "memory"] = Field(
        "mac_ac", description="mac_ac: MACs x E_MAC + ACs x E_AC; memory: plus SRAM traffic (Lemaire 2022)"
    )
    nonbinary: Literal["mac", "ac_weighted"] = Field(
        "mac", description="integer, non-binary inputs (spike counts): MACs (strict) or ACs x |count|"
    )
    count_neuron_updates: bool = Field(False, description="add one update per neuron per step")
    e_neuron_pj: float = Field(4.6, gt=0.0, description="energy of one neuron update (one multiply-add)")
    memory_breakpoints: list[tuple[float, float]] | None = Field(
        None,
        description="memory model: four (capacity bytes, pJ per byte) points; default spikingjelly's Lemaire",
    )
    real_inputs: Literal["all", "nonzero"] = Field(
        "all",
        description="real-valued inputs: MACs at every input position (all: dense hardware) or only at "
        "non-zero ones (nonzero: NeuroBench's effective MACs)",
    )

    @field_validator("memory_breakpoints")
    @classmethod
    def _breakpoints(cls, value: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if value is not None:
            from sltsearch.energy_model.memory import cost_config

            cost_config(value)  # raises ValueError with spikingjelly's message
        return value


Direction = Literal["maximize", "minimize"]
KNOWN_METRICS: dict[str, Direction] = {
    "val_accuracy": "maximize",
    "energy_uj": "minimize",
    "sparsity": "maximize",
    "nonzero_params": "minimize",
    "firing_rate": "minimize",
    "storage_bits": "minimize",
    "macs": "minimize",
    "acs": "minimize",
}


class Bound(Strict):
    """A constraint on one ticket metric: ``min`` and/or ``max`` (inclusive)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a constraint needs 'min' and/or 'max', e.g. {min: 0.97}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class ObjectiveSpec(Strict):
    """Which ticket metrics the search optimises and in which direction; test metrics are never allowed.

    ``constraints`` bound ticket metrics (e.g. ``val_accuracy: {min: 0.97}``): Optuna's samplers steer away
    from trials that violate them, and violating tickets are stored, marked ``feasible = False`` and kept off
    the front.
    """

    metrics: Annotated[dict[str, Direction], RUN] = Field(
        default_factory=lambda: {"val_accuracy": "maximize", "energy_uj": "minimize"}
    )
    energy: Annotated[EnergySpec, MEASURE] = EnergySpec()
    constraints: Annotated[dict[str, Bound], RUN] = Field(default_factory=dict)

    @field_validator("constraints")
    @classmethod
    def _known_constraints(cls, value: dict[str, Bound]) -> dict[str, Bound]:
        _check_validation_metrics(value, "constraint metric", "constraints select, so they use validation metrics")
        return value

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, Direction]) -> dict[str, Direction]:
        if not value:
            raise ValueError("at least one metric is needed, e.g. {val_accuracy: maximize}")
        _check_validation_metrics(value, "metric", "the search selects on validation metrics only")
        return value


def _check_validation_metrics(names: Any, what: str, why_not_test: str) -> None:
    """Every name is a known ticket metric, and none is a test metric (test accuracy is never selected on)."""
    for name in names:
        if name.startswith("test"):
            raise ValueError(f"'{name}' is a test metric: {why_not_test}")
        if name not in KNOWN_METRICS:
            raise ValueError(f"unknown {what} '{name}'; allowed: {', '.join(KNOWN_METRICS)}")


class EarlyStoppingSpec(Strict):
    """Multi-objective ASHA over IMP rounds (sltsearch/search/mo_asha.py): at every rung (by default IMP rounds
    ``min_rungs * eta**k``, ASHA's spacing), a trial continues only if its ticket ranks in the top 1/``eta`` of
    that rung."""

    rule: Literal["mo_asha"] = "mo_asha"
    eta: float = Field(3.0, gt=1.0, le=100.0)
    min_rungs: int = Field(1, ge=1, le=100, description="IMP rounds every trial runs before it may be stopped")
    rungs: Literal["geometric", "every_round"] = Field(
        "geometric", description="which rounds are rungs: min_rungs * eta**k (ASHA) or every round from min_rungs"
    )


class PathsSpec(Strict):
    """Trials as IMP paths (sltsearch/trial/paths.py): a trial prunes at its rate round after round while its
    tickets can still reach the front, instead of a drawn number of rounds. IMP rounds are nested (the 90 %
    ticket is the 80 % one pruned once more), so one path yields a ticket per sparsity, and every one is kept.

    A path stops after the round whose ticket (1) reaches ``max_sparsity``; (2) falls more than
    ``accuracy_drop`` below the best value of the first maximised metric among the run's tickets (further
    pruning only loses more); (3) cannot reach the front any more: its next round, projected optimistically
    (maximised metrics no better than now + ``slack``, minimised metrics shrinking by the ratio the path's last
    round showed, or by the density the next round keeps after the dense network), is dominated by a ticket of
    the run; or (4) when the compute budget (``search.budget_epochs``) is spent. With ``branch`` a path starts
    where a path of the same settings (all but the rate) still had a chance, not always at the dense network."""

    max_sparsity: float = Field(0.98, gt=0.0, lt=1.0, description="a path never prunes beyond this sparsity")
    accuracy_drop: float = Field(
        0.1, gt=0.0, le=1.0, description="stop a path once its ticket is this far below the run's best accuracy"
    )
    slack: float = Field(
        0.005, ge=0.0, le=1.0, description="how much a maximised metric may still improve in the next round"
    )
    stop: Literal["front", "region", "never"] = Field(
        "front", description="front: rules (1)-(4); region: (1), (2), (4); never: prune to max_sparsity"
    )
    branch: bool = Field(
        True,
        description="a path starts from the sparsest cached ticket of a path with the same settings but a larger "
        "rate whose next round at this path's finer rate can still reach the front (from the dense network when "
        "none can): refining near the knee costs a round or two, not a whole path",
    )


class SearchSpec(Strict):
    """The driver: backend, sampler, budget, storage and early stopping."""

    backend: Annotated[Literal["optuna", "ray"], NONE] = "optuna"
    early_stopping: Annotated[EarlyStoppingSpec | None, RUN] = Field(
        None, description="stop trials early on their IMP rounds: {rule: mo_asha, eta: 3, min_rungs: 1}"
    )
    sampler: Annotated[Literal["nsga2", "tpe", "random"], RUN] = "nsga2"
    n_trials: Annotated[int, NONE] = Field(8, ge=1, le=100000)
    timeout_s: Annotated[float | None, NONE] = Field(None, gt=0.0)
    budget_epochs: Annotated[float | None, NONE] = Field(
        None,
        gt=0.0,
        description="stop once the trials trained this many epochs x T (summed over the stages they trained; "
        "cached stages are free): a budget in compute, as GPU-hours scale with it",
    )
    # how many rounds a trial runs, as tickets.rounds does: through the rates (a round's key is its rates so far)
    paths: Annotated[PathsSpec | None, affects(Stage.ROUND, via="rates", identity_when_set=True)] = Field(
        None,
        description="trials as IMP paths that go on while their tickets can reach the front (unset: every trial "
        "runs tickets.rounds, as searched)",
    )
    population_size: Annotated[int, RUN] = Field(8, ge=2, description="NSGA-II population size")
    startup_trials: Annotated[int | None, _NEW_RUN] = Field(
        None, ge=1, le=1000, description="tpe: random trials before its model takes over (unset: Optuna's 10)"
    )
    storage: Annotated[str | None, NONE] = Field(
        None, description="RDB URL shared by many workers; default: journal file in run dir"
    )
    study_name: Annotated[str | None, RUN] = None

    @field_validator("storage")
    @classmethod
    def _unambiguous_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_url(value)
            except UserError as err:
                raise ValueError(str(err).removeprefix("search.storage: ")) from None
        return value


class Spec(Strict):
    """A whole search. ``space`` maps a parameter name (alias or dotted path) to its range."""

    # the name becomes a folder name (results/<name>) and the study's name: short enough for any file system
    name: Annotated[str, RUN] = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: Annotated[int, affects(Stage.DENSE, Stage.MEASURE)] = Field(0, ge=0)
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    tickets: TicketSpec = TicketSpec()
    multisp: Annotated[MultiSpSpec, affects(Stage.ROUND, via="multisp")] = MultiSpSpec()
    objective: ObjectiveSpec = ObjectiveSpec()
    search: SearchSpec = SearchSpec()
    space: Annotated[dict[str, ParamSpec], RUN] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        if self.tickets.rewind_epoch >= self.train.epochs:
            raise ValueError(
                f"tickets.rewind_epoch ({self.tickets.rewind_epoch}) must be below train.epochs "
                f"({self.train.epochs}): rewinding to the end leaves nothing to retrain"
            )
        enc = self.tickets.encoding_sparsity
        if enc is not None and self.tickets.strategy == "early_bird":
            raise ValueError("tickets.encoding_sparsity works with the imp and one_shot strategies, not early_bird")
        if enc is not None and "first" in self.tickets.keep_dense:
            raise ValueError("tickets.encoding_sparsity prunes the first layer that keep_dense: [first] keeps dense")
        if enc is not None and self.multisp.pep_first_conv == "dense" and self.model.encoder != "learned":
            raise ValueError(
                "tickets.encoding_sparsity prunes the first ConvPEP conv that multisp.pep_first_conv: dense keeps "
                "dense; use one of them"
            )
        ts = self.tickets.time_steps_search
        if ts is not None and ts > self.model.time_steps:
            raise ValueError(
                f"tickets.time_steps_search ({ts}) must not exceed model.time_steps ({self.model.time_steps})"
            )
        return self

    def _values_of(self, path: str, fixed: Any) -> set[Any]:
        """The values a spec field takes in this search: its own, and every value the space may draw for it."""
        searched = [param for key, param in self.space.items() if resolve_param_path(key) == path]
        return {fixed} | {value for param in searched for value in param.probe_values()}

    @model_validator(mode="after")
    def _paths_own_the_rounds(self) -> Spec:
        """A path's rounds come from its rate and where it stops: nothing else may fix or search them."""
        if self.search.paths is None:
            return self
        searched = {resolve_param_path(key) for key in self.space}
        fixed = {
            "tickets.rounds": "rounds",
            "tickets.target_sparsity": "target_sparsity",
            "tickets.prune_rates": "prune_rates",
        }
        for path, name in fixed.items():
            if path in searched:
                raise ValueError(
                    f"space.{name}: search.paths runs each trial's rounds until its tickets can no longer reach the "
                    f"front; remove {name} from the space (or search.paths from the spec)"
                )
        t = self.tickets
        if t.target_sparsity is not None or t.prune_rates:
            raise ValueError(
                "search.paths prunes at tickets.prune_rate up to search.paths.max_sparsity: unset "
                "tickets.target_sparsity / tickets.prune_rates"
            )
        if self._values_of("tickets.strategy", t.strategy) != {"imp"}:
            raise ValueError("search.paths needs tickets.strategy: imp (one_shot and early_bird run a single round)")
        if self._values_of("tickets.time_steps_search", t.time_steps_search) != {None}:
            raise ValueError(
                "search.paths does not run early-time tickets (tickets.time_steps_search): their search rounds are "
                "at another T than the front they would be judged against; unset one of them"
            )
        return self

    @model_validator(mode="after")
    def _multisp_needs_spikformer(self) -> Spec:
        own_network = ":" in self.model.name  # a user's network: checked for a ConvPEP when it is built
        if self.multisp.active and self.model.name != "spikformer" and not own_network:
            raise ValueError(
                f"model {self.model.name} has no ConvPEP; multisp needs model.name: spikformer"
            )
        return self

    @model_validator(mode="after")
    def _space_is_valid(self) -> Spec:
        check_space(Spec, self.model_dump(mode="json", exclude={"space"}), self.space)
        return self

    def round_rates(self) -> list[float]:
        """Every round's pruning rate a trial may run: ``tickets.round_rates()``, or with ``search.paths`` the whole
        path to ``max_sparsity`` (`sltsearch.trial.paths` decides where it stops)."""
        if self.search.paths is not None:
            return rates_to_target(self.tickets.prune_rate, self.search.paths.max_sparsity)
        return self.tickets.round_rates()

    def with_params(self, params: dict[str, Any]) -> Spec:
        """The concrete spec of one trial: the searched values applied, re-validated, without a space."""
        data = self.model_dump(mode="json", exclude={"space"})
        for key, value in params.items():
            data = set_path(data, resolve_param_path(key), value)
        return Spec.model_validate(data)

    def content_hash(self, *sections: str) -> str:
        """A short stable hash of every field a cached stage depends on (`sltsearch.spec.keys`), in the named
        top-level sections (all when none given): two specs with one hash train and measure the same."""
        return _content_hash(self, sections)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


