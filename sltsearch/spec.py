"""The search spec: one validated, frozen pydantic model for a whole search, loaded from YAML.

A spec names the data, model, training recipe, ticket strategy, objective and the searched *space*.
Each searched parameter overrides one field of the spec (an alias such as ``prune_rate`` or a dotted
path such as ``train.lr``); `Spec.with_params` applies a trial's values and re-validates, so every
range check written on the fields below also guards the search space.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sltsearch.errors import SpecError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    """Which dataset and how it is split; splits are fixed by ``split_seed``."""

    name: str = "digits"
    root: str | None = Field(None, description="local folder for on-disk datasets (never downloaded)")
    val_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    batch_size: int = Field(32, ge=1, le=65536)
    eval_batch_size: int = Field(512, ge=1, le=65536)
    split_seed: int = Field(0, ge=0)
    options: dict[str, Any] = Field(default_factory=dict, description="dataset-specific options")


class NeuronSpec(_Strict):
    """Spiking neuron used throughout the model."""

    type: Literal["lif", "plif", "if"] = "lif"
    tau: float = Field(2.0, gt=1.0)
    v_threshold: float = Field(1.0, gt=0.0)
    v_reset: float | None = 0.0
    surrogate: Literal["atan", "sigmoid", "fast_sigmoid", "piecewise_quadratic"] = "atan"
    surrogate_alpha: float | None = Field(None, gt=0.0)
    detach_reset: bool = True


class ModelSpec(_Strict):
    """A registered model family, a size preset, explicit size overrides and the time dimension."""

    name: str = "spiking_cnn"
    preset: str = "tiny"
    options: dict[str, Any] = Field(default_factory=dict, description="explicit sizes, override the preset")
    neuron: NeuronSpec = NeuronSpec()
    encoder: Literal["direct", "rate"] = "direct"
    time_steps: int = Field(4, ge=1, le=1024)


class TrainSpec(_Strict):
    """Surrogate-gradient BPTT recipe; the LR schedule is a function of the absolute epoch."""

    epochs: int = Field(10, ge=1, le=10000)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-2, gt=0.0, le=10.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    select: Literal["best_val", "last"] = Field(
        "best_val", description="which epoch's weights a training run keeps; chosen on validation only"
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")


class TicketSpec(_Strict):
    """How tickets are drawn from the dense network."""

    strategy: Literal["imp"] = "imp"
    scope: Literal["global", "layerwise"] = "global"
    prune_rate: float = Field(
        0.5, gt=0.0, lt=1.0, description="fraction of remaining weights pruned per round"
    )
    rounds: int = Field(1, ge=1, le=100)
    rewind_epoch: int = Field(0, ge=0, description="0 = reset to init (original LTH); k > 0 = late rewinding")


class EnergySpec(_Strict):
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

    @field_validator("memory_breakpoints")
    @classmethod
    def _breakpoints(cls, value: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if value is not None:
            from sltsearch.energy.memory import cost_config

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


class ObjectiveSpec(_Strict):
    """Which ticket metrics the search optimises and in which direction; test metrics are never allowed."""

    metrics: dict[str, Direction] = Field(
        default_factory=lambda: {"val_accuracy": "maximize", "energy_uj": "minimize"}
    )
    energy: EnergySpec = EnergySpec()

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, Direction]) -> dict[str, Direction]:
        if not value:
            raise ValueError("at least one metric is needed, e.g. {val_accuracy: maximize}")
        for name in value:
            if name.startswith("test"):
                raise ValueError(f"'{name}' is a test metric: the search selects on validation metrics only")
            if name not in KNOWN_METRICS:
                raise ValueError(f"unknown metric '{name}'; allowed: {', '.join(KNOWN_METRICS)}")
        return value


class SearchSpec(_Strict):
    """The driver: backend, sampler, budget and storage."""

    backend: Literal["optuna"] = "optuna"
    sampler: Literal["nsga2", "tpe", "random"] = "nsga2"
    n_trials: int = Field(8, ge=1, le=100000)
    timeout_s: float | None = Field(None, gt=0.0)
    population_size: int = Field(8, ge=2, description="NSGA-II population size")
    storage: str | None = Field(
        None, description="RDB URL shared by many workers; default: journal file in run dir"
    )
    study_name: str | None = None


class ParamSpec(_Strict):
    """One searched parameter: a float/int range or a list of choices."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0.0)
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None:
                raise ValueError("a categorical parameter takes 'choices', not 'low'/'high'")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scaled parameter needs low > 0")
            if self.choices is not None:
                raise ValueError(f"a {self.type} parameter takes 'low'/'high', not 'choices'")
            if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
                raise ValueError("an int parameter needs integer 'low' and 'high'")
        return self

    def probe_values(self) -> list[Any]:
        """Values that must all be valid for the range to be valid (the bounds, or every choice)."""
        if self.type == "categorical":
            return list(self.choices or [])
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


# Short names for the parameters people search most; any dotted path into the spec works too.
PARAM_ALIASES: dict[str, str] = {
    "prune_rate": "tickets.prune_rate",
    "rounds": "tickets.rounds",
    "rewind_epoch": "tickets.rewind_epoch",
    "scope": "tickets.scope",
    "time_steps": "model.time_steps",
    "lr": "train.lr",
    "epochs": "train.epochs",
    "weight_decay": "train.weight_decay",
}


def resolve_param_path(key: str) -> str:
    """The dotted spec path a searched parameter overrides."""
    return PARAM_ALIASES.get(key, key)


class Spec(_Strict):
    """A whole search. ``space`` maps a parameter name (alias or dotted path) to its range."""

    name: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = Field(0, ge=0)
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    tickets: TicketSpec = TicketSpec()
    objective: ObjectiveSpec = ObjectiveSpec()
    search: SearchSpec = SearchSpec()
    space: dict[str, ParamSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        if self.tickets.rewind_epoch >= self.train.epochs:
            raise ValueError(
                f"tickets.rewind_epoch ({self.tickets.rewind_epoch}) must be below train.epochs "
                f"({self.train.epochs}): rewinding to the end leaves nothing to retrain"
            )
        return self

    @model_validator(mode="after")
    def _space_is_valid(self) -> Spec:
        base = self.model_dump(mode="json", exclude={"space"})
        for key, param in self.space.items():
            path = resolve_param_path(key)
            if _get_path(base, path) is _MISSING:
                allowed = ", ".join(sorted(PARAM_ALIASES))
                raise ValueError(
                    f"space.{key}: not a spec field; use an alias ({allowed}) or a dotted path such as train.lr"
                )
            for value in param.probe_values():
                try:
                    Spec.model_validate(_set_path(base, path, value))
                except ValidationError as err:
                    first = err.errors()[0]
                    raise ValueError(
                        f"space.{key}: value {value!r} is out of range for {path} ({first['msg']})"
                    ) from None
        return self

    def with_params(self, params: dict[str, Any]) -> Spec:
        """The concrete spec of one trial: the searched values applied, re-validated, without a space."""
        data = self.model_dump(mode="json", exclude={"space"})
        for key, value in params.items():
            data = _set_path(data, resolve_param_path(key), value)
        return Spec.model_validate(data)

    def content_hash(self, *sections: str) -> str:
        """A short stable hash of the named sections (all but ``search`` and ``name`` when none given)."""
        data = self.model_dump(mode="json")
        keys = sections or tuple(k for k in data if k not in {"search", "name"})
        payload = json.dumps({k: data[k] for k in keys}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class _Missing:
    pass


_MISSING = _Missing()


def _get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``path`` set; intermediate dicts are copied, never mutated."""
    head, _, rest = path.partition(".")
    out = dict(data)
    if rest:
        child = out.get(head)
        out[head] = _set_path(child if isinstance(child, dict) else {}, rest, value)
    else:
        out[head] = value
    return out


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(first["loc"][:-1])
        msg = f"unknown key; allowed here: {', '.join(allowed)}"
    more = len(err.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    where = f"{loc}: " if loc else ""
    return f"{source}: {where}{msg}{suffix}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Spec
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return []
    return list(model.model_fields)


def parse_spec(data: Any, source: str = "<spec>") -> Spec:
    """Validate a spec given as a dict; errors name the source, the key and what is allowed."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_error(source, err)) from None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found; list the bundled ones with `sltsearch spaces`")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    return parse_spec(data, str(path))
