"""The real pipeline through the CLI, shrunk: files, columns, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import nnrun
from nnrun.cli import app
from conftest import ROOT

runner = CliRunner()

RUN_COLUMNS = [
    "run_id", "round", "variant", "output", "loss", "delta", "learning_rate", "seed", "converged", "epochs_to_converge",
    "epochs_run", "diverged", "final_ce", "final_mse", "final_accuracy", "final_max_error",
]  # fmt: skip


def test_train_writes_the_results_directory(write_config, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", str(write_config(logging={"every": 50, "save_weights": True})), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert f"results: {out}" in result.output.replace("\n", "")
    for name in ("config.yaml", "manifest.json", "runs.csv", "summary.csv", "comparison.csv", "curves.npz", "weights.npz"):
        assert (out / name).is_file(), name
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns) == RUN_COLUMNS
    assert list(runs["run_id"]) == list(range(16))
    assert list(runs["variant"]) == ["ce"] * 8 + ["mse"] * 8
    assert list(runs["learning_rate"][:8]) == [1.0] * 4 + [3.0] * 4
    assert list(runs["seed"][:8]) == [0, 1, 2, 3] * 2
    # epochs_to_converge is empty exactly when the run did not converge
    assert (runs["epochs_to_converge"].isna() == ~runs["converged"]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["runs_total"] == manifest["runs_done"] == 16
    for key in ("nnrun", "python", "numpy", "blas", "platform", "command", "config_sha256", "started", "finished", "wall_seconds"):
        assert key in manifest, key
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["training"]["epochs"] == 300 and resolved["training"]["reduction"] == "sum"  # defaults applied
    curves = np.load(out / "curves.npz")
    assert list(curves["epoch"]) == [0, 50, 100, 150, 200, 250, 300]
    assert curves["ce"].shape == (16, 7) and list(curves["run_id"]) == list(range(16))
    weights = np.load(out / "weights.npz")
    assert weights["r5.W1"].shape == (3, 4) and weights["r5.W2.init"].shape == (4, 1)
    rs = np.random.RandomState(1)  # run 5 is ce, lr 3, seed 1: legacy init = the seed's draws
    np.testing.assert_array_equal(weights["r5.W1.init"], 2 * rs.random_sample((3, 4)) - 1)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and set(summary["runs"]) == {4}


def test_set_overrides_and_the_summary_table(write_config, tmp_path):
    out = tmp_path / "o"
    result = runner.invoke(app, ["train", str(write_config()), "--set", "training.epochs=40", "--set", "learning_rates=[2]", "--out", str(out)])
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 8 and runs["epochs_run"].max() <= 40
    assert "success" in result.output and "epochs" in result.output and "Kaplan–Meier" in result.output
    assert "\x1b" not in result.output  # no control characters when stdout is not a terminal


def test_sweep_grid_adds_axis_columns(write_config, tmp_path):
    out = tmp_path / "s"
    result = runner.invoke(app, ["sweep", str(write_config()), "--grid", "model.hidden=[2],[3]", "--grid", "model.init.scale=0.5,1", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 * 16
    assert list(runs.columns[8:10]) == ["model.hidden", "model.init.scale"]
    assert list(pd.unique(runs["model.hidden"])) == ["[2]", "[3]"]
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 * 2 * 2
    weights_shape_ok = yaml.safe_load((out / "config.yaml").read_text())["sweep"]["model.hidden"] == [[2], [3]]
    assert weights_shape_ok


def test_default_results_path_is_under_results_name(write_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", str(write_config()), "-q"])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "results" / "tiny").iterdir()
    assert path.name.endswith(json.loads((path / "manifest.json").read_text())["config_sha256"][:8])


def test_out_that_exists_is_never_overwritten(write_config, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    result = runner.invoke(app, ["train", str(write_config()), "--out", str(out)])
    assert result.exit_code == 2
    assert "already exists" in result.output and (out / "precious.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"learning_rates": [1.0, -0.1]}, ["learning_rates[1]", "greater than 0", "-0.1"]),
        ({"traning": {"epochs": 5}}, ["traning", "did you mean 'training'"]),
        ({"variants": ["ce", "nmse"]}, ["variants[1]", "'nmse'", "did you mean 'mse'"]),
        ({"model": {"hidden": [4], "activation": "sigmod"}}, ["model.activation", "sigmod", "did you mean 'sigmoid'"]),
        ({"training": {"epochs": 0}}, ["training.epochs", "greater than or equal to 1"]),
    ],
)
def test_bad_configs_exit_2_with_a_message(write_config, tmp_path, changes, words):
    path = write_config(**changes)
    result = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "tiny.yaml" in text
    for w in words:
        assert w in text, (w, text)
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_validate_variants_datasets_init(write_config, tmp_path):
    result = runner.invoke(app, ["validate", str(write_config())])
    assert result.exit_code == 0 and "16 runs" in result.output
    result = runner.invoke(app, ["variants"])
    assert result.exit_code == 0
    for name in ("ce-softmax", "mse-softmax", "mse-linear", "ng-on-mse", "mitchell-on-ce", "(a − y)·a(1 − a)"):
        assert name in result.output
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0 and "parity" in result.output and "n_bits" in result.output
    result = runner.invoke(app, ["init", str(tmp_path / "cfg")])
    assert result.exit_code == 0
    for name in ("example.yaml", "xor.yaml"):
        assert runner.invoke(app, ["validate", str(tmp_path / "cfg" / name)]).exit_code == 0
    assert runner.invoke(app, ["init", str(tmp_path / "cfg")]).exit_code == 2  # never overwrites


def test_configs_directory_all_validate():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(path)])
        init = (yaml.safe_load(path.read_text()).get("model") or {}).get("init") or {}
        if init.get("scheme") == "file" and not (path.parent / init["path"]).exists():  # its pretraining has not run here
            assert result.exit_code == 2 and "no such weights file" in result.output, (path, result.output)
            continue
        assert result.exit_code == 0, (path, result.output)


def test_validate_checks_the_files_a_config_names(write_config, tmp_path):
    config = write_config(model={"hidden": [4], "init": {"scheme": "file", "path": "missing.npz"}})
    result = runner.invoke(app, ["validate", str(config)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and f"{config}: not valid" in text and "missing.npz: no such weights file (model.init.path)" in text
    config = write_config(dataset={"name": "csv", "path": "nowhere.csv", "target": "y"})
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2 and "nowhere.csv" in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["--grid", "model.hidden=[2, 4]"], ["gives one value", "--grid model.hidden=[2],[4]", "--set model.hidden=[2,4]"]),
        (["--grid", "model.hidden=2,4"], ["model.hidden takes a list", "--grid model.hidden=[2],[4]"]),
        (["training.epochs=500"], ["no such config file", "--set training.epochs=500"]),
    ],
)
def test_grid_and_positional_override_mistakes_get_the_spelling_meant(tmp_path, args, words):
    result = runner.invoke(app, ["sweep", *args, "--out", str(tmp_path / "o")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and all(w in text for w in words), text
    assert not (tmp_path / "o").exists()


def test_init_where_examples_exist_explains_and_names_a_free_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "xor.yaml").write_text("mine")
    result = runner.invoke(app, ["init"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "never overwrites" in text and "example.yaml and xor.yaml" in text
    suggested = text.split("e.g. nnrun init ")[1].split()[0]
    assert runner.invoke(app, ["init", suggested]).exit_code == 0
    assert (tmp_path / "configs" / "xor.yaml").read_text() == "mine"


def test_shipped_xor_config_is_the_default_sweep():
    from nnrun.api import default_config

    assert yaml.safe_load((ROOT / "configs" / "xor.yaml").read_text()) == default_config()
    d = default_config()
    assert d["learning_rates"] == {"search": "log", "first": [0.1, 0.3, 1, 3, 10], "resolution": 1.33, "limits": [0.001, 1000]}
    assert d["seeds"] == 100 and d["training"]["epochs"] == 10000


def test_python_api(tmp_path, write_config):
    res = nnrun.run(str(write_config()), training__epochs=50, out=str(tmp_path / "api"))
    assert res.path == tmp_path / "api"
    assert len(res.runs) == 16 and res.runs["epochs_run"].max() <= 50
    assert {"success_rate", "epochs_median"} <= set(res.summary.columns)
    assert "out" in nnrun.run.__doc__ and "workers" in nnrun.run.__doc__ and '__name__ == "__main__"' in nnrun.run.__doc__


def test_python_run_uses_the_clis_worker_count_where_processes_fork(monkeypatch, write_config):
    import multiprocessing

    import nnrun.api

    seen = {}
    monkeypatch.setattr(nnrun.api, "execute", lambda config, **kw: seen.update(kw))
    nnrun.run(str(write_config()))
    forks = "fork" in multiprocessing.get_all_start_methods()
    assert seen["workers"] == ((__import__("os").cpu_count() or 1) if forks else 1)
    nnrun.run(str(write_config()), workers=3)
    assert seen["workers"] == 3


def test_python_load_gives_an_experiment_complete_or_partial(tmp_path, write_config):
    done = nnrun.run(str(write_config()), training__epochs=50, out=str(tmp_path / "done"), workers=1)
    loaded = nnrun.load(tmp_path / "done")
    assert loaded.status == "complete" and loaded.config == done.config and loaded.manifest == json.loads((tmp_path / "done" / "manifest.json").read_text())
    pd.testing.assert_frame_equal(loaded.runs, done.runs)
    for name in ("summary", "comparison", "tuned"):
        pd.testing.assert_frame_equal(getattr(loaded, name), pd.read_csv(tmp_path / "done" / f"{name}.csv"))
    assert len(loaded.summary) == 4

    partial = tmp_path / "partial"  # as an interrupted run leaves it: some rows, no tables yet
    partial.mkdir()
    (partial / "config.yaml").write_bytes((tmp_path / "done" / "config.yaml").read_bytes())
    done.runs.iloc[:6].to_csv(partial / "runs.csv", index=False)
    manifest = {**done.manifest, "status": "partial", "runs_done": 6, "finished": None}
    (partial / "manifest.json").write_text(json.dumps(manifest))
    p = nnrun.load(partial)
    assert p.status == "partial" and len(p.runs) == 6 and p.summary.empty and p.comparison.empty and p.tuned.empty
    (partial / "runs.csv").unlink()  # interrupted before its first rows
    assert nnrun.load(partial).runs.empty


def test_python_m_nnrun_and_console_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nnrun", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "sweep" in result.stdout


@pytest.mark.parametrize("traced", [False, True])
def test_main_skips_interpreter_teardown_unless_a_tracer_must_write(traced):
    """main() ends with os._exit (atexit hooks do not run), except under a tracer or profiler
    (coverage, cProfile), whose results are written at exit."""
    code = (
        "import atexit, sys\n"
        + ("sys.settrace(lambda *a: None)\n" if traced else "")
        + "atexit.register(lambda: print('atexit ran'))\n"
        "sys.argv = ['nnrun', 'validate', 'missing.yaml']\n"
        "from nnrun.cli import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "missing.yaml" in result.stderr
    assert ("atexit ran" in result.stdout) == traced


def test_the_process_ends_with_its_exit_code_and_every_line_written(tmp_path):
    """main() ends the process with os._exit: what was printed into a pipe must still arrive,
    and the exit codes must be the commands' own."""

    def nnrun(*args):
        return subprocess.run([sys.executable, "-m", "nnrun", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)

    out = tmp_path / "r"
    ok = nnrun("sweep", "--set", "seeds=3", "--set", "training.epochs=50", "--out", str(out), "--workers", "2")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith(f"results: {out}") and "lr" in ok.stdout  # the tables, then the path
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    bad = nnrun("validate", "missing.yaml")
    assert bad.returncode == 2 and "missing.yaml" in bad.stderr and "Traceback" not in bad.stderr
    usage = nnrun("train")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


def test_sweep_without_config_runs_the_default_network(tmp_path):
    out = tmp_path / "d"
    result = runner.invoke(app, ["sweep", "--set", "seeds=3", "--set", "training.epochs=200", "--out", str(out), "-q", "--workers", "1"])
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(out / "runs.csv")
    first = runs[runs["round"] == 0]  # the default sweep searches: its first round is the grid
    assert sorted(pd.unique(first["learning_rate"])) == [0.1, 0.3, 1, 3, 10]
    assert len(first) == 2 * 5 * 3 and runs["round"].max() >= 1
