"""A config with its ``--set``/``--grid`` overrides applied and validated, and its grid of
sweep cells."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin

from pydantic import ValidationError

from nnrun.config.loader import read_yaml, yaml_problem
from nnrun.config.prose import format_errors, unknown_key_hint
from nnrun.config.schema import RESERVED_AXES, SCHEMA_PATHS, Config
from nnrun.errors import ConfigError, show

def parse_assignment(text: str, option: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{option} {text!r}: expected KEY=VALUE, e.g. {option} training.epochs=500")
    if any(not part for part in key.split(".")):
        raise ConfigError(f"{option} {text!r}: {key!r} is not a dotted key like training.epochs")
    if not value.strip():
        return key, None
    data, problem = yaml_problem(value)
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
        split = ",".join(f"[{show(v)}]" for v in values[0])
        raise ConfigError(
            f"--grid {text!r}: gives one value, {show(values[0])}, so it would run a single cell. For one cell per value write "
            f"--grid {key}={split}; for that one setting, --set {key}={show(values[0]).replace(' ', '')}"
        )
    if _takes_list(key) and any(not isinstance(v, list) for v in values):
        split = ",".join(f"[{show(v)}]" if not isinstance(v, list) else show(v).replace(" ", "") for v in values)
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
        values, problem = yaml_problem(f"[{raw}]")
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
            raise ConfigError(f"{source}: sweep.{key}: unknown sweep axis{unknown_key_hint(key).replace('; ', ' — ', 1)}")
    cells(config, source)


def n_runs(config: Config) -> int:
    n_cells = math.prod(len(v) for v in config.sweep.values()) if config.sweep else 1
    return n_cells * len(config.variants) * len(config.first_rates()) * len(config.seed_list())

