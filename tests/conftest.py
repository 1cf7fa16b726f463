"""Shared fixtures: tiny configs that run the real pipeline in well under a second."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# The smallest experiment that exercises the whole pipeline: a second or less to train.
TINY = {
    "name": "tiny",
    "dataset": {"name": "xor"},
    "model": {"hidden": [2]},
    "training": {"epochs": 5},
    "variants": ["ce", "mse"],
    "learning_rates": [1.0],
    "seeds": 2,
    "logging": {"every": 1},
}


def tiny_config(**changes) -> dict:
    """The seed's network, shrunk: 2 learning rates × 4 seeds × 300 epochs."""
    config = {
        "name": "tiny",
        "dataset": {"name": "xor"},
        "model": {"hidden": [4], "init": {"scheme": "legacy"}},
        "training": {"epochs": 300},
        "variants": ["ce", "mse"],
        "learning_rates": [1.0, 3.0],
        "seeds": 4,
        "logging": {"every": 50},
    }
    for key, value in changes.items():
        node = config
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return config


@pytest.fixture
def write_config(tmp_path):
    def write(name: str = "tiny.yaml", **changes) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_config(**changes)))
        return path

    return write


def live_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name) of every process that
    is not a zombie: fields[1] is the parent's pid, fields[2] the process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(stat.parent.name), fields


# The default sweep, shrunk for CLI tests: its first 5 learning rates (no search) × 5 seeds × 300 epochs.
SMALL_SWEEP = ["--set", "seeds=5", "--set", "training.epochs=300", "--set", "learning_rates=[0.1, 0.3, 1, 3, 10]", "--workers", "1", "--quiet"]


def invoke(*args):
    """`nnrun ARGS` in-process through Typer's CliRunner; arguments may be paths."""
    from typer.testing import CliRunner

    from nnrun.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def small_sweep(out: Path, *extra: str) -> Path:
    """`nnrun sweep` shrunk (SMALL_SWEEP) with ``extra`` options, into ``out``."""
    result = invoke("sweep", *SMALL_SWEEP, *extra, "--out", out)
    assert result.exit_code == 0, result.output
    return out
