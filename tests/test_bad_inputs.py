"""Bad inputs: every mistake a user can make exits 2 with a message naming the file, the key
and what was expected — never a traceback, never a file written where it should not be.

Each case builds its inputs in a fresh directory (also the working directory, so a default
``results/`` lands there too), runs one command through ``CliRunner`` and checks the exit
code, the words of the message and the absence of "Traceback".
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import TINY
from nnrun.cli import app
from nnrun.results import ResultsError, find_results, read_manifest, read_runs

DROP = object()  # a value for `tiny()` that removes the key


def tiny(**changes) -> dict:
    """TINY with dotted keys replaced: ``tiny(**{"training.epochs": 0})``."""
    data = copy.deepcopy(TINY)
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return data


@dataclass
class Ctx:
    """What a case's setup gets: its directory and a finished tiny run to copy on demand."""

    tmp: Path
    _template: Callable[[], Path]

    def write(self, name: str, content: str | bytes | dict) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = yaml.safe_dump(content, sort_keys=False)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def run_dir(self, name: str = "res/run1") -> Path:
        """A copy of a finished tiny run (config.yaml, manifest.json, runs.csv, …)."""
        dest = self.tmp / name
        shutil.copytree(self._template(), dest)
        return dest


def _older_partial(text: str) -> str:
    """A partial run's manifest as nnrun 0.1.0 wrote it (no arithmetic revision)."""
    manifest = json.loads(text)
    del manifest["arithmetic"]
    return json.dumps({**manifest, "status": "partial", "nnrun": "0.1.0"})


@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str]]  # writes the inputs, returns the command line
    words: tuple[str, ...]  # each must appear in the message
    check: Callable[[Ctx], None] | None = None  # more assertions after the run
    absent: tuple[str, ...] = field(default=())  # words that must not appear


def config(cid: str, content: str | bytes | dict, *words: str, command: str = "validate", extra: tuple[str, ...] = (), name: str = "bad.yaml", **kw) -> Case:
    """A case whose config file holds ``content`` (a dict is dumped as YAML)."""

    def setup(ctx: Ctx) -> list[str]:
        ctx.write(name, content)
        return [command, name, *extra]

    return Case(cid, setup, words, **kw)


def options(cid: str, extra: list[str], *words: str, command: str = "validate", **kw) -> Case:
    """A valid tiny config with bad command-line options."""

    def setup(ctx: Ctx) -> list[str]:
        ctx.write("tiny.yaml", TINY)
        return [command, "tiny.yaml", *extra]

    return Case(cid, setup, words, **kw)


CSV_OK = "x1,x2,label\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"


def data(cid: str, csv: str | bytes | None, *words: str, dataset: dict | None = None, command: str = "validate", **kw) -> Case:
    """A csv data set holding ``csv`` (None: the file does not exist)."""

    def setup(ctx: Ctx) -> list[str]:
        if csv is not None:
            ctx.write("data.csv", csv)
        ds = {"name": "csv", "path": "data.csv", "target": "label", **(dataset or {})}
        ctx.write("exp.yaml", tiny(dataset=ds))
        return [command, "exp.yaml"]

    return Case(cid, setup, words, **kw)


def init_file(cid: str, arrays: dict[str, np.ndarray] | bytes | None, *words: str) -> Case:
    """`init: file` from weights.npz; the tiny net is 3-2-1 (xor with a bias column)."""

    def setup(ctx: Ctx) -> list[str]:
        if isinstance(arrays, bytes):
            ctx.write("weights.npz", arrays)
        elif arrays is not None:
            np.savez(ctx.tmp / "weights.npz", **arrays)
        ctx.write("exp.yaml", tiny(**{"model.init": {"scheme": "file", "path": "weights.npz"}}))
        return ["train", "exp.yaml", "--quiet", "--workers", "1", "--out", "out"]

    return Case(cid, setup, words, check=lambda ctx: _no_results(ctx.tmp / "out"))


def results(cid: str, command: str, edit: Callable[[Path], None] | None, *words: str, target: str = "res") -> Case:
    """compare/plot on a copy of a finished run after ``edit(run_dir)`` (None: an empty dir)."""

    def setup(ctx: Ctx) -> list[str]:
        if edit is None:
            (ctx.tmp / "res").mkdir()
        else:
            edit(ctx.run_dir())
        return [command, target]

    return Case(cid, setup, words)


def _no_results(path: Path) -> None:
    """Nothing of a run was left behind: no directory, or an empty one."""
    assert not path.exists() or not any(path.iterdir()), sorted(p.name for p in path.iterdir())


def _rewrite(name: str, fn: Callable[[str], str]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        p = run / name
        p.write_text(fn(p.read_text(encoding="utf-8")), encoding="utf-8")

    return edit


def _set_cell(column: str, value: str, row: int = 0) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        import pandas as pd

        frame = pd.read_csv(run / "runs.csv", dtype=str, keep_default_na=False)
        frame.loc[row, column] = value
        frame.to_csv(run / "runs.csv", index=False)

    return edit


def _truncate(run: Path) -> None:
    p = run / "runs.csv"
    text = p.read_text(encoding="utf-8")
    p.write_text(text[: len(text) // 2 + 7], encoding="utf-8")  # cut mid-row


UNSAFE = '!!python/object/apply:os.system ["echo pwned > pwned.txt"]\n'

CASES: list[Case] = [
    # ------------------------------------------------------------------ configs: keys
    config("unknown-top-key", {**TINY, "epochs": 5}, "bad.yaml", "epochs", "unknown key", "did you mean 'training.epochs'"),
    config("misspelt-learning-rate", tiny(learning_rates=DROP) | {"learning_rate": [1.0]}, "bad.yaml", "learning_rate", "did you mean 'learning_rates'"),
    config("misspelt-nested-key", tiny(**{"model.hiden": [2]}), "bad.yaml", "model.hiden", "did you mean 'model.hidden'"),
    config("misspelt-optimiser", tiny(**{"training.optimiser": {"name": "sgd"}}), "bad.yaml", "training.optimiser", "did you mean 'training.optimizer'"),
    config("misspelt-threshold", {**TINY, "convergence": {"treshold": 0.1}}, "bad.yaml", "convergence.treshold", "did you mean 'convergence.threshold'"),
    config("duplicate-key", "name: tiny\nseeds: 2\nseeds: 3\n", "bad.yaml", "line 3", "seeds", "twice"),
    config("non-string-key", "name: tiny\n1: 2\n", "bad.yaml", "1", "unknown key"),
    config("param-not-for-dataset", tiny(**{"dataset.n_samples": 10}), "bad.yaml", "dataset.n_samples", "does not apply", "xor"),
    # ------------------------------------------------------------------ configs: types and ranges
    config("epochs-not-int", tiny(**{"training.epochs": "many"}), "bad.yaml", "training.epochs", "must be an integer", '"many"'),
    config("epochs-nan", "training:\n  epochs: .nan\n", "bad.yaml", "training.epochs", "must be a finite number", "NaN"),
    config("hidden-not-list", tiny(**{"model.hidden": 4}), "bad.yaml", "model.hidden", "must be a list", "got 4"),
    config("section-not-mapping", tiny(model=[4]), "bad.yaml", "model", "must be a mapping"),
    config("lr-negative", tiny(learning_rates=[1.0, -0.1]), "bad.yaml", "learning_rates[1]", "must be greater than 0", "got -0.1"),
    config("lr-zero", tiny(learning_rates=[0]), "bad.yaml", "learning_rates[0]", "must be greater than 0", "got 0"),
    config("lr-nan", "learning_rates: [1, .nan]\n", "bad.yaml", "learning_rates[1]", "finite", "NaN"),
    config("lr-inf", "learning_rates: [.inf]\n", "bad.yaml", "learning_rates[0]", "finite", "Infinity"),
    config("lr-overflow", "learning_rates: [1.0e400]\n", "bad.yaml", "learning_rates[0]", "finite"),
    config("lr-empty", tiny(learning_rates=[]), "bad.yaml", "learning_rates", "at least 1"),
    config("lr-repeated", tiny(learning_rates=[1.0, 1.0]), "bad.yaml", "learning_rates", "repeats"),
    config("epochs-zero", tiny(**{"training.epochs": 0}), "bad.yaml", "training.epochs", "must be greater than or equal to 1", "got 0"),
    config("variants-empty", tiny(variants=[]), "bad.yaml", "variants", "at least 1"),
    config("hidden-zero", tiny(**{"model.hidden": [4, 0]}), "bad.yaml", "model.hidden[1]", "must be greater than or equal to 1", "got 0"),
    config("hidden-negative", tiny(**{"model.hidden": [-3]}), "bad.yaml", "model.hidden[0]", "must be greater than or equal to 1", "got -3"),
    config("threshold-zero", tiny(convergence={"threshold": 0}), "bad.yaml", "convergence.threshold", "must be greater than 0", "got 0"),
    config("threshold-negative", tiny(convergence={"threshold": -0.5}), "bad.yaml", "convergence.threshold", "must be greater than 0", "got -0.5"),
    config("threshold-nan", "convergence:\n  threshold: .nan\n", "bad.yaml", "convergence.threshold", "finite"),
    config("threshold-accuracy-above-1", tiny(convergence={"criterion": "accuracy", "threshold": 1.5}), "bad.yaml", "convergence.threshold", "(0, 1]", "1.5"),
    config("loss-criterion-needs-metric", tiny(convergence={"criterion": "loss", "threshold": 0.1}), "bad.yaml", "convergence.metric", "ce or mse"),
    config("seeds-zero", tiny(seeds=0), "bad.yaml", "seeds", "greater than or equal to 1", "a list", "got 0"),
    config("seeds-repeated", tiny(seeds=[1, 1]), "bad.yaml", "seeds", "repeats"),
    config("batch-size-word", tiny(**{"training.batch_size": "half"}), "bad.yaml", "training.batch_size", "'full'", "integer", '"half"'),
    config("init-scale-negative", tiny(**{"model.init": {"scale": -1}}), "bad.yaml", "model.init.scale", "must be greater than 0"),
    config("init-file-without-path", tiny(**{"model.init": {"scheme": "file"}}), "bad.yaml", "model.init.path"),
    # ------------------------------------------------------------------ configs: unknown names
    config("unknown-variant", tiny(variants=["ce", "mse2"]), "bad.yaml", "variants[1]", "'mse2'", "did you mean 'mse'"),
    config("unknown-activation", tiny(**{"model.activation": "sigmod"}), "bad.yaml", "model.activation", "'sigmoid'", "tanh", "did you mean 'sigmoid'"),
    config("unknown-dataset", tiny(dataset={"name": "xorr"}), "bad.yaml", "dataset.name", "did you mean 'xor'"),
    config("unknown-optimizer", tiny(**{"training.optimizer": {"name": "adamw"}}), "bad.yaml", "training.optimizer.name", "momentum", "did you mean 'adam'"),
    config("unknown-dtype", tiny(**{"training.dtype": "float16"}), "bad.yaml", "training.dtype", "float32", '"float16"'),
    config("unknown-init-scheme", tiny(**{"model.init": {"scheme": "glorot"}}), "bad.yaml", "model.init.scheme", "xavier", '"glorot"'),
    config("inline-variant-bad-loss", tiny(variants=[{"name": "lin-ce", "output": "linear", "loss": "ce"}]), "bad.yaml", "variants[0]", "'lin-ce'", "not defined"),
    config("optimizer-arg-not-applicable", tiny(**{"training.optimizer": {"name": "sgd", "beta": 0.9}}), "bad.yaml", "training.optimizer.beta", "does not apply", "'sgd'"),
    # ------------------------------------------------------------------ configs: the file itself
    Case("config-missing", lambda ctx: ["validate", "nope.yaml"], ("nope.yaml", "no such config file")),
    config("yaml-syntax-error", "name: tiny\nmodel:\n  hidden: [2, 4\ntraining: {epochs: 5}\n", "bad.yaml", "line 4", "not valid YAML"),
    config("yaml-bad-indent", "name: tiny\n model: x\n  y: 2\n", "bad.yaml", "line", "not valid YAML"),
    config("top-level-list", "- ce\n- mse\n", "bad.yaml", "top level must be a mapping", "list"),
    config("top-level-scalar", "just some words\n", "bad.yaml", "top level must be a mapping", "str"),
    config("empty-file", "", "bad.yaml", "empty"),
    config("comments-only", "# nothing here yet\n", "bad.yaml", "empty"),
    config("binary-config", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "bad.yaml", "cannot be read"),
    config("unsafe-tag", UNSAFE, "bad.yaml", "line 1", "python/object/apply:os.system", "not allowed", check=lambda ctx: _not_constructed(ctx)),
    config("unsafe-tag-nested", "name: tiny\nmodel:\n  hidden: !!python/object/apply:os.system ['echo pwned > pwned.txt']\n", "bad.yaml", "line 3", "not allowed", check=lambda ctx: _not_constructed(ctx)),
    config("unsafe-tag-train", UNSAFE, "bad.yaml", "not allowed", command="train", extra=("--out", "out"), check=lambda ctx: (_not_constructed(ctx), _no_results(ctx.tmp / "out"))),
    config("bad-int-tag", "training:\n  epochs: !!int many\n", "bad.yaml", "line 2", "!!int", "many"),
    config("bad-float-tag", "name: tiny\nlearning_rates: [!!float fast]\n", "bad.yaml", "line 2", "!!float", "'fast'"),
    config("set-tag-refused", "name: tiny\nseeds: !!set {1, 2}\n", "bad.yaml", "line 2", "!!set", "not allowed"),
    # ------------------------------------------------------------------ --set, --grid, sweep axes
    options("set-without-equals", ["--set", "training.epochs"], "--set", "training.epochs", "KEY=VALUE"),
    options("set-empty-key", ["--set", "=5"], "--set", "KEY=VALUE"),
    options("set-unparsable-value", ["--set", "model.hidden=[8,"], "--set", "model.hidden", "not valid YAML"),
    options("set-bad-tag", ["--set", "training.epochs=!!int x"], "--set", "training.epochs", "not valid YAML"),
    options("set-unknown-key", ["--set", "training.epoch=9"], "training.epoch", "did you mean 'training.epochs'"),
    options("set-wrong-type", ["--set", "training.epochs=lots"], "training.epochs", "must be an integer", '"lots"'),
    options("set-below-non-mapping", ["--set", "learning_rates.first=1"], "--set", "learning_rates", "not a mapping"),
    options("set-negative-lr-train", ["--set", "learning_rates=[-1]", "--out", "out"], "learning_rates[0]", "must be greater than 0", "got -1", command="train"),
    options("grid-without-equals", ["--grid", "model.hidden"], "--grid", "model.hidden", "KEY=V1,V2", command="sweep"),
    options("grid-unparsable", ["--grid", "model.hidden=[2],[4"], "--grid", "model.hidden", "not a valid", command="sweep"),
    options("grid-unknown-axis", ["--grid", "model.hiden=[2],[4]"], "sweep.model.hiden", "unknown sweep axis", "model.hidden", command="sweep"),
    options("grid-reserved-axis", ["--grid", "learning_rates=0.1,1"], "sweep.learning_rates", "cannot be a sweep axis", command="sweep"),
    options("grid-bad-value", ["--grid", "training.epochs=5,0", "--out", "out"], "training.epochs", "must be greater than or equal to 1", "got 0", command="sweep", check=lambda ctx: _no_results(ctx.tmp / "out")),
    config("sweep-unknown-axis", tiny(sweep={"model.widht": [1, 2]}), "bad.yaml", "sweep.model.widht", "unknown sweep axis"),
    config("sweep-reserved-axis", tiny(sweep={"seeds": [1, 2]}), "bad.yaml", "sweep.seeds", "cannot be a sweep axis"),
    config("sweep-not-a-list", tiny(sweep={"model.hidden": 4}), "bad.yaml", "sweep.model.hidden", "list"),
    config("sweep-empty-list", tiny(sweep={"model.hidden": []}), "bad.yaml", "sweep.model.hidden", "non-empty list"),
    config("sweep-into-a-leaf", tiny(sweep={"training.epochs.max": [1, 2]}), "bad.yaml", "sweep.training.epochs.max", "unknown sweep axis"),
    options("executor-unknown", ["--executor", "spark", "--out", "out"], "--executor must be local", "dask", "'spark'", command="train"),
    # ------------------------------------------------------------------ data
    data("csv-missing", None, "data.csv", "no such file", "dataset.path"),
    Case("csv-is-a-directory", lambda ctx: ((ctx.tmp / "folder").mkdir(), ctx.write("exp.yaml", tiny(dataset={"name": "csv", "path": "folder", "target": "label"})), ["validate", "exp.yaml"])[-1],
         ("folder", "directory")),
    data("csv-binary", b"\x00\x01\x02\xff\xfe\x00PK\x03\x04" * 20, "data.csv", "cannot be read"),
    data("csv-empty", "", "data.csv", "empty"),
    data("csv-header-only", "x1,x2,label\n", "data.csv", "no data rows"),
    data("csv-no-target", CSV_OK.replace("label", "y"), "data.csv", "no column 'label'", "dataset.target", "x1, x2, y"),
    data("csv-only-target", "label\n0\n1\n", "data.csv", "no feature columns"),
    data("csv-non-numeric", "x1,x2,label\n0,0,0\n0,one,1\n1,0,1\n", "data.csv", "'x2'", "numeric", "line 3", "'one'"),
    data("csv-nan-feature", "x1,x2,label\n0,0,0\n0,,1\n1,0,1\n1,1,0\n", "data.csv", "'x2'", "missing value", "line 3"),
    data("csv-inf-feature", "x1,x2,label\n0,0,0\n0,inf,1\n1,0,1\n1,1,0\n", "data.csv", "'x2'", "line 3", "finite"),
    data("csv-overflowing-number", "x1,x2,label\n0,0,0\n0,1,1\n1,0,1\n1,1e400,0\n", "data.csv", "'x2'", "line 5", "finite"),
    data("csv-nan-target", "x1,x2,label\n0,0,0\n0,1,\n1,0,1\n", "data.csv", "'label'", "missing", "line 3"),
    data("csv-single-class", "x1,x2,label\n0,0,1\n0,1,1\n", "data.csv", "single class", "dataset.task"),
    data("csv-binary-task-three-classes", "x1,label\n0,a\n1,b\n2,c\n", "data.csv", "binary", "found 3", dataset={"task": "binary"}),
    data("csv-regression-text-target", "x1,label\n0,a\n1,b\n", "data.csv", "regression", "numeric", dataset={"task": "regression"}),
    data("csv-regression-inf-target", "x1,label\n0,0.5\n1,inf\n", "data.csv", "'label'", "finite", "line 3", dataset={"task": "regression"}),
    data("csv-ragged-rows", "x1,x2,label\n0,0,0\n0,1,1,7,8\n", "data.csv", "cannot be read"),
    Case("csv-missing-train", lambda ctx: (ctx.write("exp.yaml", tiny(dataset={"name": "csv", "path": "data.csv", "target": "label"})), ["train", "exp.yaml", "--out", "out", "--quiet", "--workers", "1"])[-1],
         ("data.csv", "no such file"), check=lambda ctx: _no_results(ctx.tmp / "out")),
    config("csv-without-path", tiny(dataset={"name": "csv", "target": "label"}), "bad.yaml", "dataset.path"),
    config("test-fraction-empties-split", tiny(dataset={"name": "xor", "test_fraction": 0.1}), "dataset.test_fraction", "empty"),
    init_file("init-file-missing", None, "weights.npz", "no such weights file", "model.init.path"),
    init_file("init-file-not-npz", b"these are not weights", "weights.npz", "cannot be read"),
    init_file("init-file-wrong-shape", {"W1": np.zeros((3, 5)), "W2": np.zeros((5, 1))}, "weights.npz", "W1", "(3, 5)", "(3, 2)"),
    init_file("init-file-missing-array", {"W1": np.zeros((3, 2))}, "weights.npz", "'W2'"),
    init_file("init-file-nan-weights", {"W1": np.full((3, 2), np.nan), "W2": np.zeros((2, 1))}, "weights.npz", "W1", "NaN"),
    init_file("init-file-extra-layer", {"W1": np.zeros((3, 2)), "W2": np.zeros((2, 1)), "W3": np.zeros((1, 1))}, "weights.npz", "more layers", "model.hidden"),
    # ------------------------------------------------------------------ paths
    options("name-with-slash", ["--set", "name=../escape", "--quiet"], "name", "letters, digits", '"../escape"', command="train", check=lambda ctx: _nothing_outside(ctx)),
    options("name-dot-dot", ["--set", "name=..", "--quiet"], "name", "letters, digits", command="train", check=lambda ctx: _nothing_outside(ctx)),
    options("name-with-space", ["--set", "name=my run", "--quiet"], "name", "letters, digits", '"my run"', command="train", check=lambda ctx: _nothing_outside(ctx)),
    options("name-absolute", ["--set", "name=/tmp/x"], "name", "letters, digits", command="validate"),
    Case("out-not-empty", lambda ctx: (ctx.write("out/keep.txt", "precious"), ctx.write("tiny.yaml", TINY), ["train", "tiny.yaml", "--out", "out", "--quiet"])[-1],
         ("out", "not empty", "never overwrites"), check=lambda ctx: _only(ctx.tmp / "out", {"keep.txt": "precious"})),
    Case("out-is-a-file", lambda ctx: (ctx.write("out", "precious"), ctx.write("tiny.yaml", TINY), ["train", "tiny.yaml", "--out", "out", "--quiet"])[-1],
         ("out", "not a directory"), check=lambda ctx: _same(ctx.tmp / "out", "precious")),
    Case("out-holds-a-run", lambda ctx: (ctx.run_dir("out"), ctx.write("tiny.yaml", TINY), ["train", "tiny.yaml", "--out", "out", "--quiet"])[-1],
         ("out", "not empty", "--resume")),
    options("resume-without-out", ["--resume", "--quiet"], "--resume", "--out", command="train"),
    Case("resume-not-a-run", lambda ctx: (ctx.write("out/notes.txt", "mine"), ctx.write("tiny.yaml", TINY), ["train", "tiny.yaml", "--out", "out", "--resume", "--quiet"])[-1],
         ("manifest.json", "not an nnrun results directory"), check=lambda ctx: _only(ctx.tmp / "out", {"notes.txt": "mine"})),
    Case("resume-missing-dir", lambda ctx: (ctx.write("tiny.yaml", TINY), ["train", "tiny.yaml", "--out", "nowhere", "--resume", "--quiet"])[-1],
         ("nowhere", "not an nnrun results directory"), check=lambda ctx: _no_results(ctx.tmp / "nowhere")),
    Case("resume-other-config", lambda ctx: (ctx.run_dir("out"), ctx.write("tiny.yaml", TINY), ["train", "tiny.yaml", "--out", "out", "--resume", "--set", "training.epochs=6", "--quiet"])[-1],
         ("out", "different config", "--set")),
    Case("resume-other-arithmetic", lambda ctx: (_rewrite("manifest.json", _older_partial)(ctx.run_dir("out")), ctx.write("tiny.yaml", TINY), ["train", "tiny.yaml", "--out", "out", "--resume", "--quiet"])[-1],
         ("out", "nnrun 0.1.0", "arithmetic revision 1", "new --out")),
    Case("resume-manifest-not-json", lambda ctx: (_rewrite("manifest.json", lambda t: t[: len(t) // 2])(ctx.run_dir("out")), ctx.write("tiny.yaml", TINY), ["train", "tiny.yaml", "--out", "out", "--resume", "--quiet"])[-1],
         ("manifest.json", "JSON")),
    # ------------------------------------------------------------------ results on disk
    results("compare-empty-dir", "compare", None, "res", "no nnrun results directory"),
    results("plot-empty-dir", "plot", None, "res", "no nnrun results directory"),
    results("compare-missing-path", "compare", lambda run: None, "nowhere", "no such file or directory", target="nowhere"),
    results("compare-missing-manifest", "compare", lambda run: (run / "manifest.json").unlink(), "res", "manifest.json"),
    results("compare-manifest-not-json", "compare", _rewrite("manifest.json", lambda t: "{ status: complete,"), "manifest.json", "JSON"),
    results("compare-manifest-a-list", "compare", _rewrite("manifest.json", lambda t: "[1, 2]"), "manifest.json", "not an nnrun manifest"),
    results("plot-manifest-not-json", "plot", _rewrite("manifest.json", lambda t: "\x00\x01garbage"), "manifest.json", "JSON"),
    results("compare-runs-missing", "compare", lambda run: (run / "runs.csv").unlink(), "runs.csv", "missing"),
    results("compare-runs-empty", "compare", _rewrite("runs.csv", lambda t: ""), "runs.csv", "empty"),
    results("compare-runs-truncated", "compare", _truncate, "runs.csv", "line"),
    results("plot-runs-truncated", "plot", _truncate, "runs.csv", "line"),
    results("compare-runs-missing-column", "compare", _rewrite("runs.csv", lambda t: t.replace("final_ce", "final_xx", 1)), "runs.csv", "final_ce"),
    results("compare-runs-text-in-number", "compare", _set_cell("learning_rate", "fast", 1), "runs.csv", "line 3", "learning_rate", "'fast'"),
    results("compare-runs-bad-bool", "compare", _set_cell("converged", "maybe"), "runs.csv", "line 2", "converged", "'maybe'"),
    results("compare-runs-duplicate-id", "compare", _set_cell("run_id", "0", 1), "runs.csv", "run_id", "line 3", "unique"),
    results("compare-runs-binary", "compare", lambda run: (run / "runs.csv").write_bytes(b"\x00\xff\xfe" * 50), "runs.csv"),
    Case("gradcheck-missing-config", lambda ctx: ["gradcheck", "nope.yaml"], ("nope.yaml", "no such config file")),
    Case("gradcheck-bad-set", lambda ctx: (ctx.write("tiny.yaml", TINY), ["gradcheck", "tiny.yaml", "--set", "model.activation=sigmod"])[-1],
         ("model.activation", "did you mean 'sigmoid'")),
]


def _not_constructed(ctx: Ctx) -> None:
    assert not (ctx.tmp / "pwned.txt").exists(), "a YAML tag ran a shell command"


def _nothing_outside(ctx: Ctx) -> None:
    """A rejected name leaves no directory anywhere: not in results/, not beside it."""
    assert sorted(p.name for p in ctx.tmp.iterdir()) == ["tiny.yaml"] or not (ctx.tmp / "results").exists()
    assert not (ctx.tmp.parent / "escape").exists()


def _only(directory: Path, files: dict[str, str]) -> None:
    assert {p.name: p.read_text() for p in directory.iterdir()} == files


def _same(path: Path, text: str) -> None:
    assert path.is_file() and path.read_text() == text


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One finished tiny run, trained once and copied by every case that needs it."""
    root = tmp_path_factory.mktemp("template")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(root / "tiny.yaml"), "--out", str(root / "run"), "--quiet", "--workers", "1"])
    assert result.exit_code == 0, result.output
    return root / "run"


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(case: Case, tmp_path: Path, monkeypatch, request) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = Ctx(tmp_path, lambda: request.getfixturevalue("finished_run"))
    args = case.setup(ctx)
    result = CliRunner().invoke(app, args)
    out = _squash(result.output)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "error:" in out
    for word in case.words:
        assert word in out, f"{word!r} not in: {out}"
    for word in case.absent:
        assert word not in out
    if case.check:
        case.check(ctx)


def test_the_table_is_long_enough() -> None:
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_tiny_config_itself_is_valid(tmp_path: Path, monkeypatch) -> None:
    """Guards the table: every case is bad because of its one change, not because of TINY."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
    (tmp_path / "data.csv").write_text(CSV_OK, encoding="utf-8")
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(tiny(dataset={"name": "csv", "path": "data.csv", "target": "label"})), encoding="utf-8")
    for name in ("tiny.yaml", "exp.yaml"):
        result = CliRunner().invoke(app, ["validate", name])
        assert result.exit_code == 0, result.output
        assert "valid" in result.output


# ----------------------------------------------------------------------------- the readers, directly


def test_read_runs_accepts_what_train_writes(finished_run: Path) -> None:
    runs = read_runs(finished_run)
    assert list(runs["run_id"]) == list(range(4))
    assert runs["converged"].dtype == bool
    assert read_manifest(finished_run)["status"] == "complete"
    assert find_results([finished_run.parent]) == [finished_run]


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda run: (run / "runs.csv").write_text("run_id,variant\n0,ce\n"), ["runs.csv", "missing column", "learning_rate"]),
        (lambda run: (run / "runs.csv").write_text(""), ["runs.csv", "empty"]),
        (_truncate, ["runs.csv", "line"]),
        (_set_cell("seed", "1.5e", 2), ["runs.csv", "line 4", "'seed'", "'1.5e'"]),
        (_set_cell("epochs_run", "-3", 0), ["runs.csv", "line 2", "'epochs_run'", "-3"]),
        (_set_cell("learning_rate", "nan", 0), ["runs.csv", "line 2", "'learning_rate'"]),
        (_set_cell("run_id", "", 1), ["runs.csv", "line 3", "run_id"]),
        (_set_cell("run_id", "2.5", 1), ["runs.csv", "line 3", "run_id", "whole number"]),
    ],
    ids=["missing-columns", "empty", "truncated", "text-seed", "negative-epochs", "nan-lr", "blank-run-id", "fractional-run-id"],
)
def test_read_runs_names_line_and_column(finished_run: Path, tmp_path: Path, edit, words) -> None:
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    edit(run)
    with pytest.raises(ResultsError) as info:
        read_runs(run)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_read_manifest_rejects_non_manifests(tmp_path: Path) -> None:
    for text, word in [("", "JSON"), ("[]", "not an nnrun manifest"), ('{"nnrun": "0.1"}', "status"), ('{"status": "exploded"}', "complete or partial")]:
        (tmp_path / "manifest.json").write_text(text)
        with pytest.raises(ResultsError, match="manifest.json") as info:
            read_manifest(tmp_path)
        assert word in str(info.value)


def test_find_results_skips_nothing_and_invents_nothing(finished_run: Path, tmp_path: Path) -> None:
    a = Path(shutil.copytree(finished_run, tmp_path / "x" / "a"))
    b = Path(shutil.copytree(finished_run, tmp_path / "x" / "deeper" / "b"))
    assert find_results([tmp_path / "x"]) == [a, b]
    assert find_results([a / "runs.csv", a]) == [a]  # a file means its directory; no duplicates
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no nnrun results directory"):
        find_results([tmp_path / "empty"])
    with pytest.raises(ResultsError, match="no such file or directory"):
        find_results([tmp_path / "missing"])
    with pytest.raises(ResultsError, match="no results directories given"):
        find_results([])
