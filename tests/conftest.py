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
