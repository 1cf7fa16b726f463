"""The config: its validated schema, how a file and its ``--set``/``--grid`` overrides are
loaded, the words its errors are made of, and grid expansion into sweep cells.

Every default is defined once — in its registry entry (a data set's parameters, an
optimiser's arguments) or in ``schema.py`` with the reason beside it. Configs only override.
Every error is a ``ConfigError`` whose message names the file, the key path, the bad value
and what was expected.
"""

from nnrun.config.loader import parse_yaml, read_yaml
from nnrun.config.overrides import Cell, cells, check_axes, load, n_runs, parse_assignment, set_dotted, validate
from nnrun.config.prose import format_errors
from nnrun.config.schema import (
    PRIMARY_METRICS,
    RESERVED_AXES,
    SCHEMA_PATHS,
    Config,
    ConvergenceConfig,
    DatasetConfig,
    InitConfig,
    InlineVariant,
    LoggingConfig,
    LRSearch,
    ModelConfig,
    OptimizerConfig,
    StudyConfig,
    TrainingConfig,
)
from nnrun.errors import ConfigError, hint

__all__ = [
    "PRIMARY_METRICS", "RESERVED_AXES", "SCHEMA_PATHS", "Cell", "Config", "ConfigError", "ConvergenceConfig", "DatasetConfig",
    "InitConfig", "InlineVariant", "LRSearch", "LoggingConfig", "ModelConfig", "OptimizerConfig", "StudyConfig", "TrainingConfig",
    "cells", "check_axes", "format_errors", "hint", "load", "n_runs", "parse_assignment", "parse_yaml", "read_yaml",
    "set_dotted", "validate",
]
