"""The validated config schema, `--set`/`--grid` overrides, and grid expansion into batches.

Every default is defined once, here, with the reason beside it. Configs only override.
Unknown keys are errors with a "did you mean" hint; every error is a ``ConfigError``
whose message names the file, the key path, the bad value and what was expected.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from nnrun.datasets import DATASETS, OWN_SPLIT
from nnrun.variants import DELTA_RULES, LOSS_NAMES, OUTPUT_NAMES, VARIANTS, Variant, VariantError


class ConfigError(ValueError):
    """A config the user wrote cannot be used; the message says where and how to fix it."""


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Which data-set parameters apply to which data set (the rest are rejected, not ignored).
DATASET_PARAMS = {
    "xor": (),
    "parity": ("n_bits",),
    "and": ("n_bits",),
    "or": ("n_bits",),
    "moons": ("n_samples", "noise"),
    "circles": ("n_samples", "noise", "factor"),
    "spirals": ("n_samples", "noise", "classes"),
    "blobs": ("n_samples", "noise", "classes", "n_features"),
    "csv": ("path", "target", "task"),
    "digits": (),
    "iris": (),
    "breast_cancer": (),
    "wine": (),
    "mnist1d": (),
}
OPTIONAL_DATASET_KEYS = ("n_bits", "n_samples", "noise", "factor", "classes", "n_features", "path", "target")


class DatasetConfig(Strict):
    name: Literal[tuple(DATASETS)] = "xor"  # type: ignore[valid-type]  # the seed's problem
    bias_column: bool = True  # the seed appends a constant-1 input instead of bias vectors
    n_bits: int | None = Field(None, ge=1, le=16)  # parity/and/or inputs; generator default 3 (parity) or 2
    n_samples: int | None = Field(None, ge=2, le=1_000_000)  # generator default 200
    noise: float | None = Field(None, ge=0, allow_inf_nan=False)  # generator default 0.1 (blobs: 1.0)
    factor: float | None = Field(None, gt=0, lt=1)  # circles: inner radius; default 0.5
    classes: int | None = Field(None, ge=2, le=100)  # spirals/blobs; default 2
    n_features: int | None = Field(None, ge=1, le=1000)  # blobs; default 2
    path: str | None = None  # csv: the file, relative to the config file
    target: str | None = None  # csv: the target column
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"  # csv: inferred from the target
    standardize: bool | None = None  # None: yes for csv, iris, breast_cancer and wine, no otherwise
    test_fraction: float = Field(0.0, ge=0, lt=1)  # XOR has 4 rows: hold nothing out unless asked
    shuffle_seed: int = Field(0, ge=0)  # seeds the generators' noise and the test split

    @model_validator(mode="after")
    def _params_apply(self) -> "DatasetConfig":
        allowed = DATASET_PARAMS[self.name]
        for key in OPTIONAL_DATASET_KEYS:
            if getattr(self, key) is not None and key not in allowed:
                takes = ", ".join(allowed) if allowed else "no parameters of its own"
                raise ValueError(f"dataset.{key} does not apply to dataset {self.name!r}, which takes {takes}")
        if self.name in OWN_SPLIT and self.test_fraction > 0:
            raise ValueError(f"dataset.test_fraction does not apply to dataset {self.name!r}, which comes with its own train/test split; remove it")
        if self.name == "csv" and (self.path is None or self.target is None):
            raise ValueError("dataset csv needs dataset.path (the CSV file) and dataset.target (the label column)")
        return self

    def has_test_split(self) -> bool:
        return self.test_fraction > 0 or self.name in OWN_SPLIT

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in DATASET_PARAMS[self.name] if getattr(self, k) is not None and k not in ("path", "target", "task")}


class InitConfig(Strict):
    scheme: Literal["uniform", "normal", "xavier", "he", "legacy", "file"] = "uniform"  # U(−1, 1), as the seed's range
    scale: PositiveFloat = 1.0  # multiplies the scheme's spread; 1 is the seed's
    path: str | None = None  # file: an .npz of W1, b1, W2, … or a results directory's weights.npz
    run_id: int | None = Field(None, ge=0)  # file: which run's final weights in a weights.npz

    @model_validator(mode="after")
    def _file_needs_path(self) -> "InitConfig":
        if self.scheme == "file" and not self.path:
            raise ValueError("init scheme 'file' needs model.init.path (an .npz file)")
        if self.scheme != "file" and (self.path is not None or self.run_id is not None):
            raise ValueError("model.init.path and model.init.run_id apply only to init scheme 'file'")
        return self


class ModelConfig(Strict):
    hidden: list[Annotated[int, Field(ge=1, le=100_000)]] = [4]  # the seed's 4 hidden units; [] = no hidden layer
    activation: Literal["sigmoid", "tanh", "relu"] = "sigmoid"  # the seed's hidden activation
    bias: bool = False  # the seed has no bias vectors (the bias is the constant input column)
    init: InitConfig = InitConfig()


class OptimizerConfig(Strict):
    name: Literal["sgd", "momentum", "adam"] = "sgd"  # the seed's plain gradient descent
    beta: float | None = Field(None, ge=0, lt=1)  # momentum; default 0.9 (PyTorch users' usual)
    beta1: float | None = Field(None, ge=0, lt=1)  # adam; default 0.9 (torch.optim.Adam)
    beta2: float | None = Field(None, ge=0, lt=1)  # adam; default 0.999 (torch.optim.Adam)
    eps: float | None = Field(None, gt=0, allow_inf_nan=False)  # adam; default 1e-8 (torch.optim.Adam)

    @model_validator(mode="after")
    def _args_apply(self) -> "OptimizerConfig":
        allowed = {"sgd": (), "momentum": ("beta",), "adam": ("beta1", "beta2", "eps")}[self.name]
        for key in ("beta", "beta1", "beta2", "eps"):
            if getattr(self, key) is not None and key not in allowed:
                raise ValueError(f"training.optimizer.{key} does not apply to optimizer {self.name!r}")
        return self

    def args(self) -> tuple[tuple[str, float], ...]:
        defaults = {"sgd": {}, "momentum": {"beta": 0.9}, "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}[self.name]
        return tuple((k, getattr(self, k) if getattr(self, k) is not None else v) for k, v in defaults.items())


class TrainingConfig(Strict):
    epochs: int = Field(60000, ge=1, le=100_000_000)  # the seed's 60,000
    batch_size: Union[Literal["full"], Annotated[int, Field(ge=1)]] = "full"  # the seed is full batch
    reduction: Literal["sum", "mean"] = "sum"  # the seed sums gradients over samples
    optimizer: OptimizerConfig = OptimizerConfig()
    dtype: Literal["float64", "float32"] = "float64"  # exact reproduction first; float32 is opt-in


class InlineVariant(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    output: Literal[OUTPUT_NAMES]  # type: ignore[valid-type]
    loss: Literal[LOSS_NAMES]  # type: ignore[valid-type]
    delta: Literal[DELTA_RULES] = "exact"  # type: ignore[valid-type]


class ConvergenceConfig(Strict):
    criterion: Literal["max_error", "accuracy", "loss"] = "max_error"  # the seed's question: every output close
    threshold: PositiveFloat = 0.1  # max_error: every |a − y| below it
    metric: Literal["ce", "mse"] | None = None  # loss criterion: which yardstick (required then)
    check_every: int = Field(1, ge=1)  # every epoch, so epochs-to-converge is exact
    stop_converged: bool = True  # a converged run stops updating; all done → stop early

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
    every: int = Field(100, ge=1)  # curve points every 100 epochs: 601 for the seed's 60,000
    save_weights: bool = False  # weights.npz costs disk on large sweeps; ask for it


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
    primary: Literal[tuple(PRIMARY_METRICS)] = "epochs"  # type: ignore[valid-type]  # the seed's question: time to success


RESERVED_AXES = ("name", "variants", "learning_rates", "seeds", "sweep", "study")


class Config(Strict):
    name: str = Field("xor-seed", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")  # results/<name>/
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    variants: list[Union[str, InlineVariant]] = Field(default_factory=lambda: ["ce", "mse"], min_length=1)  # the seed's question
    # A list, or a search (a mapping with `search: log`); the list is the seed's 1 and its neighbours.
    learning_rates: Annotated[
        Union[Annotated[list[PositiveFloat], Field(min_length=1), Tag("list[...]")], Annotated[LRSearch, Tag("LRSearch")]],
        Discriminator(_rates_kind),
    ] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    seeds: Union[Annotated[int, Field(ge=1, le=10_000_000)], list[Annotated[int, Field(ge=0)]]] = 100  # 0..99
    convergence: ConvergenceConfig = ConvergenceConfig()
    logging: LoggingConfig = LoggingConfig()
    sweep: dict[str, list[Any]] = Field(default_factory=dict)  # dotted key -> values
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
                raise ValueError(f"sweep.{key}: expected a non-empty list of values, got {_show(values)}")
            try:
                json.dumps(values)
            except (TypeError, ValueError):
                raise ValueError(f"sweep.{key}: values must be plain numbers, strings, lists or mappings, got {_show(values)}") from None
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


# ----------------------------------------------------------------------------- errors


def hint(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def _loc(loc: tuple) -> str:
    """pydantic's error location as the user writes the key: ``model.hidden[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or part == "[key]" or str(part).startswith(("function-", "constrained-", "literal[", "union[", "list[", "json-")):
            continue  # which member of a union failed, not a key the user wrote
        else:
            out += ("." if out else "") + str(part)
    return out


_UNION_TAGS = {"str", "int", "float", "bool", "list[...]", *(m.__name__ for m in Strict.__subclasses__())}


def _unknown_key_hint(path: str) -> str:
    parent, _, key = path.rpartition(".")
    if re.fullmatch(r"variants\[\d+\]", parent):
        siblings = list(InlineVariant.model_fields)
    else:
        siblings = [p.rpartition(".")[2] for p in SCHEMA_PATHS if p.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {(parent + '.' if parent else '') + close[0]!r}?"
    elsewhere = [p for p in SCHEMA_PATHS if p.rpartition(".")[2] == key]
    if elsewhere:
        return f"; did you mean {elsewhere[0]!r}?"
    if not siblings:
        return f"; {parent} takes no keys of its own"
    return f"; the keys here are {', '.join(siblings)}"


def format_errors(exc: ValidationError, source: str) -> str:
    """One line per offending key: ``source: key: must be <what>, got <value>``.

    A union (``batch_size: 'full'`` or an integer, ``seeds``: a count or a list) reports one
    error per member; they are merged into one "must be A or B" line for the key.
    """
    entries: list[tuple[str, str | None, str, Any]] = []  # (path, expected, text, input)
    for err in exc.errors(include_url=False):
        path = _loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        got = err.get("input")
        expected = _expected(err)
        if err["type"] == "extra_forbidden":
            text = f"{path}: unknown key{_unknown_key_hint(path)}"
        elif err["type"] == "missing":
            text = f"{path}: is required"
        elif err["type"] in ("value_error", "assertion_error"):
            text = msg if msg.startswith(_OWN_PREFIXES) or not path else f"{path}: {msg}"
        elif expected is not None:
            text = ""  # built below, once the union members of this key are merged
        else:
            text = f"{path or 'config'}: {msg[0].lower() + msg[1:] if msg else 'invalid'}, got {_show(got)}"
        entries.append((path, expected, text, got))
    # A union member that failed on its type is noise when another member got further in.
    paths = [p for p, *_ in entries]
    entries = [
        e for e in entries
        if not (e[1] in _TYPE_WORDS and any(q != e[0] and q.startswith((e[0] + ".", e[0] + "[")) for q in paths))
    ]
    lines: list[str] = []
    merged: dict[str, int] = {}
    for path, expected, text, got in entries:
        if expected is not None and not text:
            if path in merged:
                i = merged[path]
                lines[i] = lines[i].replace(", got ", f" or {expected}, got ", 1)
                continue
            text = f"{path or 'config'}: must be {expected}, got {_show(got)}"
            if isinstance(got, str) and expected.startswith("one of"):
                text += hint(got, [o.strip(" '") for o in expected.removeprefix("one of ").replace(" or ", ", ").split(",")])
            merged[path] = len(lines)
        if text not in lines:
            lines.append(text)
    return f"{source}: " + ("\n  ".join(lines) if len(lines) > 1 else lines[0])


# Messages raised by the validators above already start with their key path.
_OWN_PREFIXES = ("study.", "dataset.", "model.", "training.", "convergence.", "variants[", "variants:", "seeds:", "sweep.", "learning_rates:", "logging.", "name:")
_TYPE_WORDS = ("a string", "a mapping", "a list", "an integer", "a number", "true or false")
# What a pattern-checked string may hold, in words.
_PATTERN_WORDS = {
    r"^[A-Za-z0-9_-]+$": "letters, digits, '-' and '_' only (it names the folder results/<name>/)",
    r"^[A-Za-z0-9_.+-]+$": "letters, digits and '.', '_', '+', '-' only",
}


def _expected(err: dict) -> str | None:
    """What the key must be, in words, for pydantic's usual complaints; None for the rest."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": "greater than", "greater_than_equal": "greater than or equal to", "less_than": "less than", "less_than_equal": "less than or equal to"}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"{op} {bound:g}" if isinstance(bound, float) else f"{op} {bound}"
    if kind == "finite_number":
        return "a finite number"
    if kind in ("int_parsing", "int_type", "int_from_float", "int_parsing_size"):
        return "an integer"
    if kind in ("float_parsing", "float_type"):
        return "a number"
    if kind in ("bool_parsing", "bool_type"):
        return "true or false"
    if kind in ("string_type", "string_unicode"):
        return "a string"
    if kind in ("list_type", "tuple_type", "iterable_type"):
        return "a list"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return "a mapping"
    if kind == "literal_error":
        options = str(ctx.get("expected", ""))
        return f"one of {options}" if " or " in options else options
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"a list of at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        n = ctx.get("max_length")
        return f"a list of at most {n} items"
    if kind == "string_too_short":
        return "a non-empty string"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return _PATTERN_WORDS.get(str(ctx.get("pattern")), f"a string matching {ctx.get('pattern')}")
    return None


def _show(value: Any) -> str:
    """A value as the user would write it: JSON where possible (null, true, "text", NaN)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ----------------------------------------------------------------------------- loading


class _PlainLoader(yaml.SafeLoader):
    """Safe YAML restricted to what a config holds: mappings, lists, numbers, strings, booleans.

    No tag builds a Python object (``!!python/...`` is refused, never constructed), a key given
    twice in one mapping is an error rather than a silent override, and a malformed explicit
    scalar (``!!int many``) is a YAML error with its line, not a crash.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark, f"the key {key!r} is given twice (first on line {seen[key].line + 1})", key_node.start_mark
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception:  # noqa: BLE001 - PyYAML's scalar constructors raise bare ValueError & co
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid {_tag(node.tag)}", node.start_mark
            ) from None


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None, None, f"the tag {_tag(node.tag)} is not allowed: a config holds plain YAML (mappings, lists, numbers, strings, true/false)", node.start_mark
    )


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)  # 2024-01-01 stays the text the user wrote


_PlainLoader.add_constructor(None, _refuse_tag)
for _t in ("binary", "set", "omap", "pairs"):
    _PlainLoader.add_constructor(f"tag:yaml.org,2002:{_t}", _refuse_tag)
_PlainLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _yaml_problem(text: str) -> tuple[Any, str | None]:
    """(data, None) for plain YAML, else (None, "line L, column C: problem")."""
    try:
        return _string_keys(yaml.load(text, Loader=_PlainLoader)), None  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return None, at + (getattr(exc, "problem", None) or str(exc).splitlines()[0])
    except Exception as exc:  # noqa: BLE001 - whatever PyYAML raises, the user's text is at fault
        return None, str(exc)


def parse_yaml(text: str, where: str) -> Any:
    """``text`` as plain YAML; a ConfigError naming ``where``, the line and the problem otherwise."""
    data, problem = _yaml_problem(text)
    if problem is not None:
        at, sep, rest = problem.partition(": ") if problem.startswith("line ") else ("", "", problem)
        raise ConfigError(f"{where}: {at + ': ' if at else ''}not valid YAML: {rest}")
    return data


def _string_keys(value: Any) -> Any:
    """Mapping keys as text: YAML reads ``1:`` or ``true:`` as numbers and booleans."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else str(k)): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def read_yaml(path: Path) -> dict:
    """A config file's top-level mapping, loaded safely (no tags that build objects)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if "=" in path.name and "/" not in str(path):  # `nnrun sweep training.epochs=500`
            raise ConfigError(f"{path}: no such config file; to change a config key write --set {path} (overrides are options, not arguments)") from None
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; expected a YAML config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot be read as text (UTF-8); expected a YAML config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping of config keys (name:, dataset:, model:, …). `nnrun init` writes examples to start from")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (name:, dataset:, model:, …), got a {type(data).__name__}")
    return data


def parse_assignment(text: str, option: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{option} {text!r}: expected KEY=VALUE, e.g. {option} training.epochs=500")
    if any(not part for part in key.split(".")):
        raise ConfigError(f"{option} {text!r}: {key!r} is not a dotted key like training.epochs")
    if not value.strip():
        return key, None
    data, problem = _yaml_problem(value)
    if problem is not None:
        raise ConfigError(f"{option} {text!r}: the value {value!r} is not valid YAML ({problem}); quote text, write lists as [8, 8]")
    return key, data


def set_dotted(data: dict, key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: cannot set {key}: {'.'.join(parts[: i + 1])} is not a mapping")
        node = child
    node[parts[-1]] = value


def validate(data: dict, source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from None


def _resolve_paths(data: dict, base: Path, source: str) -> None:
    """Input files named in a config are relative to the config file; store them absolute."""
    for where, node in (("dataset.path", data.get("dataset")), ("model.init.path", (data.get("model") or {}).get("init") if isinstance(data.get("model"), dict) else None)):
        if isinstance(node, dict) and isinstance(node.get("path"), str):
            try:
                p = Path(node["path"]).expanduser()
                node["path"] = str(p if p.is_absolute() else (base / p).resolve())
            except (ValueError, RuntimeError, OSError) as exc:
                raise ConfigError(f"{source}: {where}: {node['path']!r} is not a usable file path ({exc})") from None


def _takes_list(key: str) -> bool:
    """Is the schema field at dotted ``key`` a plain list (model.hidden, variants)?"""
    model: Any = Config
    annotation = None
    for part in key.split("."):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return False
        annotation = fields[part].annotation
        model = annotation
    return get_origin(annotation) is list


def _check_grid_values(text: str, key: str, values: list) -> None:
    """The two ways to misspell a grid over lists, each answered with the spelling meant."""
    if key.split(".")[0] in RESERVED_AXES:
        return  # not an axis at all: validation says so
    if len(values) == 1 and isinstance(values[0], list) and len(values[0]) > 1:
        split = ",".join(f"[{_show(v)}]" for v in values[0])
        raise ConfigError(
            f"--grid {text!r}: gives one value, {_show(values[0])}, so it would run a single cell. For one cell per value write "
            f"--grid {key}={split}; for that one setting, --set {key}={_show(values[0]).replace(' ', '')}"
        )
    if _takes_list(key) and any(not isinstance(v, list) for v in values):
        split = ",".join(f"[{_show(v)}]" if not isinstance(v, list) else _show(v).replace(" ", "") for v in values)
        raise ConfigError(f"--grid {text!r}: {key} takes a list, so each grid value must be one; write --grid {key}={split}")


def load(
    source: str | Path | dict | None,
    overrides: list[str] | tuple[str, ...] = (),
    grid: list[str] | tuple[str, ...] = (),
    default: dict | None = None,
) -> Config:
    """A validated config from a file, a dict, or ``default`` when ``source`` is None."""
    if isinstance(source, dict):
        data, name, base = copy.deepcopy(source), "config", Path.cwd()
    elif source is None:
        data, name, base = copy.deepcopy(default or {}), "default config", Path.cwd()
    else:
        path = Path(source)
        data, name, base = read_yaml(path), str(path), path.parent
    for text in overrides:
        key, value = parse_assignment(text, "--set")
        set_dotted(data, key, value, f"--set {text}")
    for text in grid:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid {text!r}: expected KEY=V1,V2,…, e.g. --grid model.hidden=[2],[4],[8]")
        values, problem = _yaml_problem(f"[{raw}]")
        if problem is not None:
            raise ConfigError(f"--grid {text!r}: the values are not a valid comma-separated YAML list ({problem}); e.g. --grid model.hidden=[2],[4],[8]")
        _check_grid_values(text, key, values)
        if not isinstance(data.get("sweep", {}), dict):
            raise ConfigError(f"{name}: sweep must be a mapping of dotted keys to lists of values")
        data.setdefault("sweep", {})[key] = values
    _resolve_paths(data, base, name)
    # Errors name the file, and the command-line options that changed it.
    options = [f"--set {t}" for t in overrides] + [f"--grid {t}" for t in grid]
    where = f"{name} with {' '.join(options)}" if options else name
    config = validate(data, where)
    check_axes(config, where)
    return config


# ----------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class Cell:
    """One combination of sweep-axis values and the config it resolves to."""

    index: int
    axes: tuple[tuple[str, Any], ...]
    config: Config


def cells(config: Config, source: str = "config") -> list[Cell]:
    """Every combination of the sweep axes, in the order the axes and values are written."""
    keys = list(config.sweep)
    base = config.model_dump(mode="json")
    base["sweep"] = {}
    out = []
    for i, combo in enumerate(itertools.product(*(config.sweep[k] for k in keys))):
        data = copy.deepcopy(base)
        for key, value in zip(keys, combo):
            set_dotted(data, key, value, f"{source}: sweep.{key}")
        try:
            cell_config = Config.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_errors(exc, f"{source}: sweep axes {dict(zip(keys, combo))}")) from None
        out.append(Cell(i, tuple(zip(keys, combo)), cell_config))
    return out


def check_axes(config: Config, source: str) -> None:
    """Unknown axis keys are errors, and so is any combination that does not validate."""
    for key in config.sweep:
        if key not in SCHEMA_PATHS:
            raise ConfigError(f"{source}: sweep.{key}: unknown sweep axis{_unknown_key_hint(key).replace('; ', ' — ', 1)}")
    cells(config, source)


def n_runs(config: Config) -> int:
    n_cells = math.prod(len(v) for v in config.sweep.values()) if config.sweep else 1
    return n_cells * len(config.variants) * len(config.first_rates()) * len(config.seed_list())


def read_config(directory: Path) -> Config:
    """The resolved config.yaml of a results directory; a ResultsError says what is wrong."""
    from nnrun.results import ResultsError

    path = Path(directory) / "config.yaml"
    if not path.exists():
        raise ResultsError(f"{path}: missing; every nnrun results directory holds the config it ran")
    try:
        return validate(read_yaml(path), str(path))
    except ConfigError as exc:
        raise ResultsError(f"{exc} (the results directory is damaged, or was written by another nnrun version)") from None
