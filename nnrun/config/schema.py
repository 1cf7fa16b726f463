"""The validated config schema: every key, its default with the reason beside it, its checks.

Configs only override. Keys a registry owns (a data set's parameters, an optimiser's
arguments, the variants' building blocks) come from that registry; the rest are defined
once, here. An unknown key is an error, never a silent no-op.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Mapping, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model, field_validator, model_validator

from nnrun import registry
from nnrun.datasets import DATASETS
from nnrun.errors import hint, show
from nnrun.optim import OPTIMIZERS
from nnrun.registry import Param
from nnrun.variants import ACTIVATIONS, DELTA_RULES, LOSS_NAMES, OUTPUT_NAMES, VARIANTS, Variant, VariantError

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _registry_field(p: Param) -> tuple[Any, Any]:
    """A registry entry's parameter as a schema field; None (not given) means the entry's
    default, which lives in the entry alone."""
    finite = {"allow_inf_nan": False} if p.type is float else {}
    return Optional[p.type], Field(None, description=p.description, **p.bounds(), **finite)


def _given_params(section: str, owner: str, name: str, params: tuple[Param, ...], model: BaseModel, shared: dict[str, Param]) -> None:
    """ValueError for a parameter set that entry ``name`` does not take (never ignored) or a
    required one left out."""
    takes = [p.name for p in params]
    for key in shared:
        if getattr(model, key) is not None and key not in takes:
            raise ValueError(f"{section}.{key} does not apply to {owner} {name!r}, which takes {', '.join(takes) or 'no parameters of its own'}")
    missing = [p for p in params if p.required and getattr(model, p.name) is None]
    if missing:
        raise ValueError(f"{section}.{missing[0].name}: {owner} {name} needs " + " and ".join(f"{section}.{p.name} ({p.description})" for p in missing))


def _unknown_params(section: str, owner: str, data: Any, model: type[BaseModel], registry_: Mapping[str, Any], owned: dict[str, Param]) -> Any:
    """ValueError for a key the section does not have and that misspells none (those get a
    "did you mean"), listing what the named entry takes."""
    name = data.get("name", model.model_fields["name"].default) if isinstance(data, dict) else None
    if not isinstance(name, str) or name not in registry_:
        return data  # a wrong name (or section) is the error to report
    shared = [k for k in model.model_fields if k != "name" and k not in owned]
    also = f", and every {owner} takes {', '.join(shared)}" if shared else ""
    for key in data:
        if key not in model.model_fields and not hint(str(key), model.model_fields):
            raise ValueError(f"{section}.{key}: unknown key; {owner} {name!r} takes {registry.described(registry_[name].params) or 'no parameters of its own'}{also}")
    return data


def _registry_checks(section: str, owner: str, entries: Mapping[str, Any]) -> type[Strict]:
    """A base for a config section whose ``name`` picks one of ``entries`` and whose other
    keys include the entries' parameters: a parameter that entry does not take, a required
    one left out, or a key that is no parameter at all is an error listing what it takes."""
    owned = registry.union(entries.values())

    class RegistryChecks(Strict):
        @model_validator(mode="before")
        @classmethod
        def _known_keys(cls, data: Any) -> Any:
            return _unknown_params(section, owner, data, cls, entries, owned)

        @model_validator(mode="after")
        def _params_apply(self) -> "RegistryChecks":
            _given_params(section, owner, self.name, entries[self.name].params, self, owned)
            return self

    return RegistryChecks


DATASET_PARAMS = registry.union(DATASETS.values())  # every data set's parameters, by name


class _DatasetChecks(_registry_checks("dataset", "dataset", DATASETS)):  # type: ignore[misc]
    """What ``DatasetConfig`` checks and derives; its fields are built below, the data-set
    parameters from the ``DATASETS`` registry."""

    @model_validator(mode="after")
    def _split_and_task_apply(self) -> "_DatasetChecks":
        entry = DATASETS[self.name]
        if entry.own_split and self.test_fraction > 0:
            raise ValueError(f"dataset.test_fraction does not apply to dataset {self.name!r}, which comes with its own train/test split; remove it")
        if self.task != "auto" and not entry.from_file:
            raise ValueError(f"dataset.task applies only to data read from a file, not to dataset {self.name!r}")
        return self

    def has_test_split(self) -> bool:
        return self.test_fraction > 0 or DATASETS[self.name].own_split

    def params(self) -> dict[str, Any]:
        """The data set's optional parameters that the config sets (its required ones name
        its input, e.g. a file and a column)."""
        return {p.name: getattr(self, p.name) for p in DATASETS[self.name].params if not p.required and getattr(self, p.name) is not None}


DatasetConfig = create_model(  # fields in the order an example config shows them
    "DatasetConfig",
    __base__=_DatasetChecks,
    __module__=__name__,
    name=(Literal[tuple(DATASETS)], Field("xor", description="the data set")),  # the seed's problem
    bias_column=(bool, Field(True, description="append a constant-1 input column (the seed's bias)")),  # as the seed, no bias vectors
    **{name: _registry_field(p) for name, p in DATASET_PARAMS.items()},
    task=(Literal["auto", "binary", "multiclass", "regression"], Field("auto", description="how to read a file's target column (auto: inferred from it)")),  # the target says
    standardize=(Optional[bool], Field(None, description="standardise the features (default: as the data set says)", examples=[True])),  # None: the entry's
    test_fraction=(float, Field(0.0, ge=0, lt=1, description="hold out this share, stratified, drawn with shuffle_seed")),  # XOR has 4 rows: hold nothing out unless asked
    shuffle_seed=(int, Field(0, ge=0, description="seeds generated noise and the test split")),
)  # fmt: skip


class InitConfig(Strict):
    scheme: Literal["uniform", "normal", "xavier", "he", "legacy", "file"] = Field("uniform", description="how the first weights are drawn (legacy: the seed's; file: from model.init.path)")  # U(−1, 1), as the seed's range
    scale: PositiveFloat = Field(1.0, description="multiplies the scheme's spread")  # 1 is the seed's
    path: Optional[str] = Field(None, description="scheme file: an .npz of W1, b1, W2, …, or a results directory", examples=["results/xor/…/weights.npz"])
    run_id: Optional[int] = Field(None, ge=0, description="scheme file: which run's final weights in a weights.npz", examples=[0])

    @model_validator(mode="after")
    def _file_needs_path(self) -> "InitConfig":
        if self.scheme == "file" and not self.path:
            raise ValueError("init scheme 'file' needs model.init.path (an .npz file)")
        if self.scheme != "file" and (self.path is not None or self.run_id is not None):
            raise ValueError("model.init.path and model.init.run_id apply only to init scheme 'file'")
        return self


class ModelConfig(Strict):
    hidden: list[Annotated[int, Field(ge=1, le=100_000)]] = Field([4], description="hidden layer sizes; [] = no hidden layer")  # the seed's 4 hidden units
    activation: Literal[tuple(ACTIVATIONS)] = Field("sigmoid", description="the hidden layers' activation")  # type: ignore[valid-type]  # the seed's
    bias: bool = Field(False, description="separate bias vectors")  # the seed has none: the bias is the constant input column
    init: InitConfig = InitConfig()


OPTIMIZER_PARAMS = registry.union(OPTIMIZERS.values())  # every optimiser's arguments, by name


class _OptimizerChecks(_registry_checks("training.optimizer", "optimizer", OPTIMIZERS)):  # type: ignore[misc]
    """What ``OptimizerConfig`` derives; its fields are built below, the arguments from the
    ``OPTIMIZERS`` registry."""

    def args(self) -> tuple[tuple[str, float], ...]:
        """Every argument of the optimiser: the config's, else the registry's default."""
        entry = OPTIMIZERS[self.name]
        return tuple(registry.resolve(entry.params, {p.name: getattr(self, p.name) for p in entry.params}, self.name).items())


OptimizerConfig = create_model(
    "OptimizerConfig",
    __base__=_OptimizerChecks,
    __module__=__name__,
    name=(Literal[tuple(OPTIMIZERS)], Field("sgd", description="the optimiser, with PyTorch's update formulas")),  # the seed's plain gradient descent
    **{name: _registry_field(p) for name, p in OPTIMIZER_PARAMS.items()},
)  # fmt: skip


class TrainingConfig(Strict):
    epochs: int = Field(60000, ge=1, le=100_000_000, description="epochs each run trains at most")  # the seed's 60,000
    batch_size: Union[Literal["full"], Annotated[int, Field(ge=1)]] = Field("full", description="full, or an integer: minibatches, reshuffled every epoch per seed")  # the seed is full batch
    reduction: Literal["sum", "mean"] = Field("sum", description="how gradients combine over samples")  # the seed sums
    optimizer: OptimizerConfig = OptimizerConfig()
    dtype: Literal["float64", "float32"] = Field("float64", description="the floating-point type of the arithmetic")  # exact reproduction first; float32 is opt-in


class InlineVariant(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    output: Literal[OUTPUT_NAMES]  # type: ignore[valid-type]
    loss: Literal[LOSS_NAMES]  # type: ignore[valid-type]
    delta: Literal[DELTA_RULES] = "exact"  # type: ignore[valid-type]  # the loss's own gradient


class ConvergenceConfig(Strict):
    criterion: Literal["max_error", "accuracy", "loss"] = Field("max_error", description="when a run has converged")  # the seed's question: every output close
    threshold: PositiveFloat = Field(0.1, description="max_error: every |a − y| below it; accuracy: a fraction; loss: the loss below it")  # the seed's
    metric: Optional[Literal[LOSS_NAMES]] = Field(None, description="criterion loss: which yardstick (required then)", examples=["ce"])  # type: ignore[valid-type]
    check_every: int = Field(1, ge=1, description="test for convergence every this many epochs")  # every epoch, so epochs-to-converge is exact
    stop_converged: bool = Field(True, description="converged runs stop updating; all done → stop early")  # no run trains past its answer

    @model_validator(mode="after")
    def _consistent(self) -> "ConvergenceConfig":
        if self.criterion == "loss" and self.metric is None:
            raise ValueError("convergence.criterion 'loss' needs convergence.metric: ce or mse (a variant's own loss is no fair yardstick)")
        if self.criterion != "loss" and self.metric is not None:
            raise ValueError("convergence.metric applies only to criterion 'loss'")
        if self.criterion == "accuracy" and self.threshold > 1:
            raise ValueError(f"convergence.threshold for criterion 'accuracy' is a fraction in (0, 1], got {self.threshold}")
        return self


class LoggingConfig(Strict):
    every: int = Field(100, ge=1, description="a curve point every this many epochs")  # 601 points for the seed's 60,000
    save_weights: bool = Field(False, description="write every run's final weights to weights.npz")  # it costs disk on large sweeps; ask for it


class LRSearch(Strict):
    """A learning-rate search per variant and sweep cell: the ``first`` rates, then rounds
    on a fixed log lattice (``resolution`` apart) around each variant's tuned rate."""

    search: Literal["log"]  # the only kind: rates on a log lattice
    first: list[PositiveFloat] = Field(default_factory=lambda: [0.1, 0.3, 1.0, 3.0, 10.0], min_length=1)  # a coarse grid, two decades
    resolution: float = Field(1.33, gt=1.0, le=10.0, allow_inf_nan=False)  # neighbours ~10^(1/8) apart: a tuned rate within 33%
    limits: tuple[PositiveFloat, PositiveFloat] = (0.001, 1000.0)  # rates beyond these are never tried
    max_rounds: int = Field(20, ge=1, le=1000)  # every search ends; hitting it marks the result at_edge

    @field_validator("first")
    @classmethod
    def _unique_first(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("learning_rates.first: the list repeats a learning rate")
        return value

    @model_validator(mode="after")
    def _inside_limits(self) -> "LRSearch":
        lo, hi = self.limits
        if not lo < hi:
            raise ValueError(f"learning_rates.limits: expected [low, high] with low < high, got [{lo:g}, {hi:g}]")
        outside = [x for x in self.first if not lo <= x <= hi]
        if outside:
            raise ValueError(f"learning_rates.first: {outside[0]:g} lies outside learning_rates.limits [{lo:g}, {hi:g}]")
        return self


def _rates_kind(value: Any) -> str:
    return "LRSearch" if isinstance(value, (dict, LRSearch)) else "list[...]"


# What a study judges a problem by, and the runs.csv column behind it (stats' metric name).
PRIMARY_METRICS = {"epochs": "epochs", "test_accuracy": "final_test_accuracy"}


class StudyConfig(Strict):
    primary: Literal[tuple(PRIMARY_METRICS)] = Field("epochs", description="the metric a study judges this problem by")  # type: ignore[valid-type]  # the seed's question: time to success


RESERVED_AXES = ("name", "variants", "learning_rates", "seeds", "sweep", "study")


class Config(Strict):
    name: str = Field("xor-seed", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$", description="results/<name>/…; letters, digits, '-', '_' only")  # the seed's sweep
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    variants: list[Union[str, InlineVariant]] = Field(
        default_factory=lambda: ["ce", "mse"], min_length=1, description="`nnrun variants` lists them; or inline {name, output, loss, delta}"
    )  # the seed's question
    # A list, or a search (a mapping with `search: log`); the list is the seed's 1 and its neighbours.
    learning_rates: Annotated[
        Union[Annotated[list[PositiveFloat], Field(min_length=1), Tag("list[...]")], Annotated[LRSearch, Tag("LRSearch")]],
        Discriminator(_rates_kind),
    ] = Field(default_factory=lambda: [0.5, 1.0, 2.0], description="a list, or a search: {search: log, first: [0.1, 0.3, 1, 3, 10]}")
    seeds: Union[Annotated[int, Field(ge=1, le=10_000_000)], list[Annotated[int, Field(ge=0)]]] = Field(100, description="a count (0..N−1) or a list of seeds")  # 0..99
    convergence: ConvergenceConfig = ConvergenceConfig()
    logging: LoggingConfig = LoggingConfig()
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="a grid: every combination × variants × learning_rates × seeds",
        examples=[{"model.hidden": [[2], [4], [8]], "model.init.scale": [0.5, 1, 2]}],
    )  # dotted key -> values; none: one cell
    study: StudyConfig = StudyConfig()  # a study's problems name in advance the metric that judges them

    @model_validator(mode="after")
    def _primary_needs_test_split(self) -> "Config":
        if self.study.primary == "test_accuracy" and not self.dataset.has_test_split():
            raise ValueError("study.primary: test_accuracy needs a test split; set dataset.test_fraction (e.g. 0.2) or use primary: epochs")
        return self

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, value: list) -> list:
        names = []
        for i, v in enumerate(value):
            name = v if isinstance(v, str) else v.name
            if isinstance(v, str) and v not in VARIANTS:
                raise ValueError(f"variants[{i}]: unknown variant {v!r}{hint(v, VARIANTS)}; `nnrun variants` lists them")
            if not isinstance(v, str):
                try:
                    Variant(v.name, v.output, v.loss, v.delta)
                except VariantError as exc:
                    raise ValueError(f"variants[{i}]: {exc}") from None
            if name in names:
                raise ValueError(f"variants[{i}]: variant {name!r} is listed twice")
            names.append(name)
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("seeds: give a count (e.g. 100) or a non-empty list of seeds")
            if len(set(value)) != len(value):
                raise ValueError("seeds: the list repeats a seed")
        return value

    @field_validator("learning_rates")
    @classmethod
    def _unique_lrs(cls, value: Any) -> Any:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("learning_rates: the list repeats a learning rate")
        return value

    @field_validator("sweep")
    @classmethod
    def _axes(cls, value: dict) -> dict:
        for key, values in value.items():
            if key.split(".")[0] in RESERVED_AXES:
                raise ValueError(f"sweep.{key}: {key} cannot be a sweep axis; it is already one of every experiment's own axes")
            if not isinstance(values, list) or not values:
                raise ValueError(f"sweep.{key}: expected a non-empty list of values, got {show(values)}")
            try:
                json.dumps(values)
            except (TypeError, ValueError):
                raise ValueError(f"sweep.{key}: values must be plain numbers, strings, lists or mappings, got {show(values)}") from None
        return value

    # --------------------------------------------------------------- derived values

    @property
    def search(self) -> LRSearch | None:
        """The learning-rate search, or None for a plain list of rates."""
        return self.learning_rates if isinstance(self.learning_rates, LRSearch) else None

    def first_rates(self) -> list[float]:
        """The rates of the first (for a plain list, the only) round."""
        return list(self.search.first if self.search else self.learning_rates)

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def variant_objects(self) -> list[Variant]:
        return [VARIANTS[v] if isinstance(v, str) else Variant(v.name, v.output, v.loss, v.delta, "custom") for v in self.variants]

    def primary_metric(self) -> str:
        """The metric summary, comparison and tuned tables are computed on (epochs unless a
        study names another)."""
        return PRIMARY_METRICS[self.study.primary]

    def sha256(self) -> str:
        data = self.model_dump(mode="json")
        if self.study == StudyConfig():  # configs without a study section keep the hashes they had
            del data["study"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)


def _schema_paths(model: type[BaseModel] = Config, prefix: str = "") -> dict[str, type[BaseModel] | None]:
    """Every dotted key the schema knows, mapped to its sub-model (None for leaves)."""
    out: dict[str, type[BaseModel] | None] = {}
    for name, field in model.model_fields.items():
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
        out[prefix + name] = sub
        if sub is not None:
            out.update(_schema_paths(sub, prefix + name + "."))
    return out


SCHEMA_PATHS = _schema_paths() | _schema_paths(LRSearch, "learning_rates.")  # a search is the mapping form of learning_rates

