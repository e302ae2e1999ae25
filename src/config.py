"""params.yaml, read once at the edge into typed, validated, immutable objects."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from src import paths
from src.errors import StudyError

Variant = Literal["vanilla", "bn"]
TrainingStage = Literal["tune", "train", "sweep", "edge"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
DISPLAY_NAMES: dict[str, str] = {"vanilla": "vanilla", "bn": "BN"}  # how prose and tables name the variants

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class ConfigError(StudyError):
    """A parameter is missing, misspelt, of the wrong type or out of range."""


class _Section(BaseModel):
    # strict: a quoted "5000" or a YAML 1.1 "1e-5" string is an error, not a silent coercion
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataConfig(_Section):
    mirrors: Annotated[list[str], Field(min_length=1)]
    timeout_s: PositiveFloat
    val_size: Annotated[int, Field(ge=10, le=50_000)]
    split_seed: Annotated[int, Field(ge=0)]
    binarize: bool


class ModelConfig(_Section):
    hidden_layers: PositiveInt
    hidden_units: PositiveInt
    init_std: PositiveFloat
    bn_eps: PositiveFloat
    bn_momentum: Annotated[float, Field(gt=0, le=1)]
    population_batches: Annotated[int, Field(ge=2)]


class TrainConfig(_Section):
    steps: PositiveInt
    batch_size: PositiveInt
    seeds: PositiveInt
    momentum: Annotated[float, Field(ge=0, lt=1)]
    eval_every: PositiveInt
    evals_per_decade: Annotated[int, Field(ge=0)]
    checkpoint_every: PositiveInt
    device: Literal["auto", "cpu", "cuda", "mps"]
    tracked_units: PositiveInt
    percentile_examples: Annotated[int, Field(ge=10, le=10_000)]

    @field_validator("batch_size")
    @classmethod
    def _batch_has_a_variance(cls, batch_size: int) -> int:
        # both variants share the batch size, so the BN constraint applies to both
        if batch_size < 2:
            raise ValueError(f"must be >= 2: BN's mini-batch variance is undefined for one example, got {batch_size}")
        return batch_size

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))


class TuneConfig(_Section):
    trials: PositiveInt
    trials_per_batch: PositiveInt
    steps: PositiveInt
    eval_every: PositiveInt
    evals_per_decade: Annotated[int, Field(ge=0)]
    lr_min: PositiveFloat
    lr_max: PositiveFloat
    seed: Annotated[int, Field(ge=0)]
    storage: Annotated[str, Field(min_length=1)]
    timeout_s: PositiveFloat | None
    pruning_warmup_evals: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _range_is_ordered(self) -> TuneConfig:
        if self.lr_min >= self.lr_max:
            raise ValueError(f"lr_min must be < lr_max, got lr_min={self.lr_min}, lr_max={self.lr_max}")
        return self


class SweepConfig(_Section):
    lr_min: PositiveFloat
    lr_max: PositiveFloat
    lrs_per_decade: PositiveInt
    init_stds: Annotated[list[PositiveFloat], Field(min_length=1)]
    seeds: PositiveInt
    steps: PositiveInt
    eval_every: PositiveInt
    evals_per_decade: Annotated[int, Field(ge=0)]
    checkpoint_every: PositiveInt
    # How the grid is cut into units of work, each trained as one vectorised model by whichever worker takes it:
    # "variant" (the whole grid), "seed" (one unit per seed) or {"seed_and_rates": k} (per seed, k rates a unit).
    unit: Literal["variant", "seed"] | dict[str, PositiveInt]
    storage: Annotated[str, Field(min_length=1)]  # the Optuna storage its units are queued in
    heartbeat_s: PositiveInt  # a unit whose worker is silent for 3 heartbeats is taken again

    @field_validator("unit", mode="before")
    @classmethod
    def _a_known_cut(cls, unit: object) -> object:
        rates = unit.get("seed_and_rates") if isinstance(unit, dict) and list(unit) == ["seed_and_rates"] else None
        if unit in ("variant", "seed") or (type(rates) is int and rates > 0):
            return unit
        raise ValueError(f"must be variant, seed or {{seed_and_rates: k}} with k >= 1, got {unit!r}")

    @model_validator(mode="after")
    def _range_is_ordered(self) -> SweepConfig:
        if self.lr_min > self.lr_max:
            raise ValueError(f"lr_min must be <= lr_max, got lr_min={self.lr_min}, lr_max={self.lr_max}")
        return self

    @property
    def learning_rates(self) -> list[float]:
        """lr_min, then `lrs_per_decade` geometric steps per decade up to lr_max (both ends included)."""
        points = round(self.lrs_per_decade * math.log10(self.lr_max / self.lr_min))
        return [self.lr_min * 10 ** (i / self.lrs_per_decade) for i in range(points + 1)]

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def lr_index(self, learning_rate: float) -> int:
        """The position of a swept rate, given to six significant digits (0.316228 for 0.31622776…)."""
        for index, swept in enumerate(self.learning_rates):
            if math.isclose(learning_rate, swept, rel_tol=1e-6):
                return index
        swept = ", ".join(f"{lr:.4g}" for lr in self.learning_rates)
        raise ValueError(f"{learning_rate:g} is not a swept learning rate ({swept})")


class EdgeConfig(_Section):
    """Where each seed's largest usable rate lies, to a finer factor than the sweep's grid step."""

    rates_between: Annotated[int, Field(ge=1)]
    init_stds: Annotated[list[PositiveFloat], Field(min_length=1)]
    checkpoint_every: PositiveInt


class NoisyBNConfig(_Section):
    """The noise of the engine's noisy BN net (src/engine/noise.py): each training step, each unit's noise has mean
    μ ~ U(−mean_bound, mean_bound) and standard deviation σ ~ U(std_min, std_max); each example draws N(μ, σ²)."""

    mean_bound: PositiveFloat
    std_min: PositiveFloat
    std_max: PositiveFloat

    @model_validator(mode="after")
    def _range_is_ordered(self) -> NoisyBNConfig:
        if self.std_min > self.std_max:
            raise ValueError(f"std_min must be <= std_max, got std_min={self.std_min}, std_max={self.std_max}")
        return self


class TrackingConfig(_Section):
    experiment: Annotated[str, Field(min_length=1)]
    system_metrics: bool  # stage runs log MLflow's system metrics (CPU, memory, disk, network; GPU with nvidia-ml-py)


Fraction = Annotated[float, Field(gt=0, lt=1)]


class EvaluateConfig(_Section):
    """The analysis, fixed before the outcome is seen: how every claim is tested and over which alternatives."""

    confidence: Fraction
    seed_test: Literal["sign_flip", "signed_rank"]
    interval: Literal["studentized", "BCa", "t", "percentile"]
    accuracy_test: Literal["seeds_and_images", "seeds"]
    correction: Literal["holm", "bh"]
    map_correction: Literal["holm", "bh"]
    resamples: Annotated[int, Field(ge=999)]
    bootstrap_seed: Annotated[int, Field(ge=0)]
    usable_accuracy: Fraction
    did_not_train_below: Fraction
    both_train_share: Annotated[float, Field(gt=0, le=1)]
    convergence_climb: Fraction
    convergence_climbs: Annotated[list[Fraction], Field(min_length=1)]
    drift_reference: Fraction
    drift_references: Annotated[list[Fraction], Field(min_length=1)]
    accuracy_targets: Annotated[list[Fraction], Field(min_length=1)]
    figure1_lrs: Annotated[list[PositiveFloat], Field(min_length=1)]

    @model_validator(mode="after")
    def _primary_choices_are_on_their_curves(self) -> EvaluateConfig:
        if self.convergence_climb not in self.convergence_climbs:
            raise ValueError(f"convergence_climbs must include convergence_climb ({self.convergence_climb})")
        if self.drift_reference not in self.drift_references:
            raise ValueError(f"drift_references must include drift_reference ({self.drift_reference})")
        if self.did_not_train_below >= self.usable_accuracy:
            raise ValueError("did_not_train_below must be below usable_accuracy: a run cannot both train and not")
        return self

    @property
    def alpha(self) -> float:
        """The level every test is held to, after its family's correction."""
        return round(1 - self.confidence, 12)


# The params each stage reads, as dvc.yaml lists them: a change to any of them re-runs the stage.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "download": ("data.mirrors", "data.timeout_s"),
    "preprocess": ("data.val_size", "data.split_seed"),
    "tune": ("data.binarize", "model", "tune", "train.batch_size", "train.momentum", "train.device", "tracking"),
    "train": ("data.binarize", "model", "train", "tracking"),
    "sweep": (
        "data.binarize",
        "model",
        "sweep",
        "train.batch_size",
        "train.momentum",
        "train.device",
        "train.tracked_units",
        "train.percentile_examples",
        "tracking",
    ),
    "edge": (
        "data.binarize",
        "model",
        "sweep",
        "edge",
        "evaluate.usable_accuracy",
        "train.batch_size",
        "train.momentum",
        "train.device",
        "train.tracked_units",
        "train.percentile_examples",
        "tracking",
    ),
    "evaluate": ("data.binarize", "model", "sweep", "edge", "evaluate", "tracking"),
}
# Of those, the ones that do not change the numbers a run computes. The device setting is replaced by the device it
# resolves to; how often a run is checkpointed, and a study's budget, storage and deadline, only change when it ends;
# where the sweep's units are queued and how often their workers beat only change where they train. How the sweep is
# cut into units decides the sweep's rounding, not the edge's. Whether stage runs log system metrics changes what MLflow
# holds, not a number; the experiment stays in the training stages' identities, as their checkpoints and the sweep's
# study hold the ids of runs in it.
NOT_DECIDING: dict[str, tuple[str, ...]] = {
    "download": (),
    "preprocess": (),
    "evaluate": (),
    "tune": ("train.device", "tune.trials", "tune.trials_per_batch", "tune.storage", "tune.timeout_s", "tracking"),
    "train": ("train.device", "train.checkpoint_every", "tracking.system_metrics"),
    "sweep": (
        "train.device",
        "sweep.checkpoint_every",
        "sweep.storage",
        "sweep.heartbeat_s",
        "tracking.system_metrics",
    ),
    "edge": (
        "train.device",
        "sweep.checkpoint_every",
        "sweep.storage",
        "sweep.heartbeat_s",
        "sweep.unit",
        "edge.checkpoint_every",
        "tracking.system_metrics",
    ),
}


@dataclass(frozen=True)
class Horizon:
    """How long a run trains and when it is evaluated: step 0, every `eval_every` steps, `evals_per_decade`
    log-spaced steps, and the last."""

    steps: int
    eval_every: int
    evals_per_decade: int


@dataclass(frozen=True)
class TrainingRun:
    """What one training stage's run reads, composed from its sections of params.yaml: the model, its horizon, the
    optimizer and data every stage shares, where it runs, what it records and how it is checkpointed and tracked."""

    stage: TrainingStage  # names its checkpoints and MLflow runs
    model: ModelConfig
    horizon: Horizon
    batch_size: int
    momentum: float
    device: str  # as params.yaml says it: auto, cpu, cuda or mps
    binarize: bool
    tracked_units: int  # last-hidden-layer sigmoids whose inputs are recorded (0: none)
    percentile_examples: int
    checkpoint_every: int | None
    experiment: str  # the MLflow experiment
    system_metrics: bool  # whether its stage run logs MLflow's system metrics
    read: Mapping  # the params the stage reads (STAGE_PARAMS), nested as in params.yaml: logged with its runs
    deciding: Mapping  # of those, the ones that decide its numbers: the identity of its checkpoints and studies


def select(tree: Mapping, keys: Sequence[str], keep: bool = True) -> dict:
    """`tree` with only (keep) or without (not keep) the dotted `keys`, e.g. "model" or "train.batch_size"."""
    if keep:
        chosen: dict = {}
        for key in keys:
            *parents, leaf = key.split(".")
            source, target = tree, chosen
            for name in parents:
                source, target = source[name], target.setdefault(name, {})
            target[leaf] = source[leaf]
        return chosen
    pruned = {name: dict(value) if isinstance(value, Mapping) else value for name, value in tree.items()}
    for key in keys:
        *parents, leaf = key.split(".")
        node = pruned
        for name in parents:
            node = node.get(name, {})
        node.pop(leaf, None)
    return {name: value for name, value in pruned.items() if value != {}}


class Params(_Section):
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    tune: TuneConfig
    sweep: SweepConfig
    edge: EdgeConfig
    noisy_bn: NoisyBNConfig  # read by no stage: the engine's noisy BN net is not one of the study's variants
    tracking: TrackingConfig
    evaluate: EvaluateConfig

    @model_validator(mode="after")
    def _tracked_units_exist(self) -> Params:
        if self.train.tracked_units > self.model.hidden_units:
            raise ValueError(
                f"train.tracked_units must be <= model.hidden_units ({self.model.hidden_units}), "
                f"got {self.train.tracked_units}"
            )
        return self

    @model_validator(mode="after")
    def _figure1_lrs_are_swept(self) -> Params:
        for learning_rate in self.evaluate.figure1_lrs:
            try:
                self.sweep.lr_index(learning_rate)
            except ValueError as error:
                raise ValueError(f"evaluate.figure1_lrs: {error}") from None
        if not set(self.edge.init_stds) <= set(self.sweep.init_stds):
            raise ValueError(
                f"edge.init_stds must be swept init stds ({self.sweep.init_stds}), got {self.edge.init_stds}"
            )
        if self.model.init_std not in self.sweep.init_stds:
            raise ValueError(
                f"sweep.init_stds must include model.init_std ({self.model.init_std}), the init the claims compare at, "
                f"got {self.sweep.init_stds}"
            )
        if self.model.init_std not in self.edge.init_stds:
            raise ValueError(
                f"edge.init_stds must include model.init_std ({self.model.init_std}), where the usable-rate claim is "
                f"decided, got {self.edge.init_stds}"
            )
        return self

    def listed(self, keys: Sequence[str]) -> dict:
        """The params at the dotted `keys` (a stage's STAGE_PARAMS), nested as in params.yaml."""
        return select(self.model_dump(), keys)

    @property
    def tune_run(self) -> TrainingRun:
        """tune@'s trials: tune's horizon, scored on the validation split, with no checkpoints and no sigmoid inputs."""
        return self._run("tune", self.tune, checkpoint_every=None, tracked_units=0)

    @property
    def train_run(self) -> TrainingRun:
        return self._run("train", self.train, self.train.checkpoint_every, self.train.tracked_units)

    @property
    def sweep_run(self) -> TrainingRun:
        return self._run("sweep", self.sweep, self.sweep.checkpoint_every, self.train.tracked_units)

    @property
    def edge_run(self) -> TrainingRun:
        """edge@'s members train as the sweep's do (its horizon): their edges are read against the sweep's grid."""
        return self._run("edge", self.sweep, self.edge.checkpoint_every, self.train.tracked_units)

    def _run(
        self,
        stage: TrainingStage,
        horizon: TuneConfig | TrainConfig | SweepConfig,
        checkpoint_every: int | None,
        tracked_units: int,
    ) -> TrainingRun:
        """A training stage's run: its horizon's steps and evaluations, the sections every stage shares, what it reads
        (STAGE_PARAMS) and of that what decides its numbers."""
        read = self.listed(STAGE_PARAMS[stage])
        return TrainingRun(
            stage=stage,
            model=self.model,
            horizon=Horizon(horizon.steps, horizon.eval_every, horizon.evals_per_decade),
            batch_size=self.train.batch_size,
            momentum=self.train.momentum,
            device=self.train.device,
            binarize=self.data.binarize,
            tracked_units=tracked_units,
            percentile_examples=self.train.percentile_examples,
            checkpoint_every=checkpoint_every,
            experiment=self.tracking.experiment,
            system_metrics=self.tracking.system_metrics,
            read=read,
            deciding=select(read, NOT_DECIDING[stage], keep=False),
        )


def load_params(path: str | Path = paths.PARAMS) -> Params:
    """Read and validate a params file; any problem raises one ConfigError naming the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (run from the repository root)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_params(raw, source=str(path))


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    return validated(Params, raw, source)


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], raw: object, source: str, hint: str = "") -> Model:
    """`raw` as a `model`; any problem raises one ConfigError naming `source` and each bad key (then `hint`)."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        # one line however many problems: the stages print it as their single `error: ...` line
        problems = "; ".join(_describe_all(error.errors(), model))
        raise ConfigError(f"{source}: {problems}" + (f"; {hint}" if hint else "")) from None


def with_overrides(params: Params, overrides: Mapping[str, object], source: str = "command line") -> Params:
    """`params` with dotted keys replaced ({"tune.trials": 48}), validated as params.yaml is, cross-field checks
    included: a bad value is the line a bad params.yaml gives, with `source` in place of the file's name."""
    raw = params.model_dump()
    for key, value in overrides.items():
        *sections, name = key.split(".")
        section = raw
        for part in sections:
            section = section.setdefault(part, {})
        section[name] = value
    return parse_params(raw, source)


def validate_option(kind: Any, value: object, name: str, source: str = "command line") -> Any:
    """`value` as the type `kind` (e.g. PositiveInt) for a setting that is not in params.yaml (`name`, e.g. a flag);
    a bad one is one ConfigError line in the format of a bad parameter."""
    try:
        return TypeAdapter(kind).validate_python(value, strict=True)
    except ValidationError as error:
        issues = [{**issue, "loc": (name, *issue["loc"])} for issue in error.errors()]
        raise ConfigError(f"{source}: " + "; ".join(_describe_all(issues, BaseModel))) from None


def _describe_all(issues: list[dict], root: type[BaseModel]) -> list[str]:
    """One description per mistake: a misspelt key is named once, not again as the key that is then missing."""
    suggested = {
        (*issue["loc"][:-1], _suggestion(issue["loc"], root)) for issue in issues if issue["type"] == "extra_forbidden"
    }
    return [
        _describe(issue, root)
        for issue in issues
        if not (issue["type"] == "missing" and tuple(issue["loc"]) in suggested)
    ]


def _describe(issue: dict, root: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in issue["loc"])
    if issue["type"] == "extra_forbidden":
        suggestion = _suggestion(issue["loc"], root)
        known = ", ".join(_known_keys(issue["loc"], root))
        return f"unknown key '{key}' ({f'did you mean {suggestion!r}?' if suggestion else f'known keys: {known}'})"
    if issue["type"] == "missing":
        return f"missing key '{key}'"
    where = f"{key}: " if key else ""  # an empty key: the file as a whole (empty, or not a mapping)
    message = issue["msg"].removeprefix("Value error, ")
    if issue["type"] == "value_error":  # our own validators already name the value
        return f"{where}{message}"
    got = issue.get("input")
    hint = ""
    if isinstance(got, str) and _looks_numeric(got):
        hint = " (YAML 1.1 reads a number like 1e-5 as text: write 1.0e-5)"
    return f"{where}{message}, got {got!r}{hint}"


def _known_keys(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The keys allowed beside the last one of `loc`."""
    section = _section_at(loc[:-1], root)
    return sorted(section.model_fields) if section else []


def _suggestion(loc: tuple, root: type[BaseModel]) -> str | None:
    """The allowed key closest to the unknown last key of `loc`, if one is close."""
    close = difflib.get_close_matches(str(loc[-1]), _known_keys(loc, root), n=1)
    return close[0] if close else None


def _section_at(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    model = root
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
