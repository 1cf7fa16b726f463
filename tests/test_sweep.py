"""Sweeps at scale: identical rows for any worker count or executor, and resume after a
real SIGKILL or Ctrl-C gives exactly the rows of an uninterrupted sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import live_processes
from nnrun import locks
from nnrun.cli import app

runner = CliRunner()


def _same_results(a: Path, b: Path) -> None:
    ra, rb = pd.read_csv(a / "runs.csv"), pd.read_csv(b / "runs.csv")
    pd.testing.assert_frame_equal(ra, rb, check_exact=True)
    ca, cb = np.load(a / "curves.npz"), np.load(b / "curves.npz")
    for key in ("epoch", "run_id", "ce", "mse", "accuracy"):
        np.testing.assert_array_equal(ca[key], cb[key])
    pd.testing.assert_frame_equal(pd.read_csv(a / "summary.csv"), pd.read_csv(b / "summary.csv"), check_exact=True)


@pytest.fixture
def sweep_config(write_config):
    return write_config(
        "sweep.yaml",
        training={"epochs": 400, "batch_size": 2},
        seeds=6,
        sweep={"model.hidden": [[2], [4]]},
    )


@pytest.mark.slow
def test_rows_identical_for_workers_1_2_and_dask(sweep_config, tmp_path):
    outs = {}
    for label, extra in {
        "w1": ["--workers", "1"],
        "w2": ["--workers", "2", "--chunk-runs", "5"],
        "dask": ["--executor", "dask", "--workers", "2", "--chunk-runs", "7"],
    }.items():
        outs[label] = tmp_path / label
        result = runner.invoke(app, ["sweep", str(sweep_config), "--out", str(outs[label]), "-q", *extra])
        assert result.exit_code == 0, (label, result.output)
    assert len(pd.read_csv(outs["w1"] / "runs.csv")) == 2 * 2 * 2 * 6
    _same_results(outs["w1"], outs["w2"])
    _same_results(outs["w1"], outs["dask"])


@pytest.mark.slow
def test_dask_scheduler_address(sweep_config, tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = runner.invoke(app, ["sweep", str(sweep_config), "--out", str(tmp_path / "s"), "-q", "--scheduler", cluster.scheduler_address, "--chunk-runs", "6"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sweep", str(sweep_config), "--out", str(tmp_path / "ref"), "-q", "--workers", "1"])
    assert result.exit_code == 0, result.output
    _same_results(tmp_path / "s", tmp_path / "ref")


def _long_config(write_config) -> Path:
    # 2 variants × 2 lrs × 40 seeds = 160 runs in 20 chunks of 8, each a few tenths of a second
    # on NumPy (pinned: the compiled kernel would finish before a signal could land midway)
    return write_config("long.yaml", training={"epochs": 12000, "backend": "numpy"}, seeds=40, convergence={"stop_converged": False}, logging={"every": 500})


def _start(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "nnrun", "sweep", str(config), "--out", str(out), "--chunk-runs", "8", "-q", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_chunks(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list((out / "journal").glob("chunk-*.npz"))) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the sweep journaled too few chunks in time")


def _every_file_parses(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "running"  # killed: nobody could say otherwise, and its lock is free
    assert not locks.is_held(out)
    yaml.safe_load((out / "config.yaml").read_text())
    for path in out.rglob("*"):
        # A write cut off by the kill leaves only its hidden temporary file, never a torn
        # file under the real name; --resume removes such leftovers.
        if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp")):
            if path.suffix == ".npz":
                with np.load(path) as npz:
                    [npz[k] for k in npz.files]
            elif path.suffix == ".csv":
                pd.read_csv(path)


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigkill_midway_then_resume_gives_identical_rows(write_config, tmp_path, workers):
    config = _long_config(write_config)
    out = tmp_path / "killed"
    proc = _start(config, out, "--workers", workers)
    _wait_for_chunks(out, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if workers == "2":  # pool workers die with their parent (parent-death signal)
        time.sleep(0.5)
    done = len(list((out / "journal").glob("chunk-*.npz")))
    assert 3 <= done < 20, f"the kill must land midway, but {done} of 20 chunks were done"
    _every_file_parses(out)

    result = runner.invoke(app, ["sweep", str(config), "--out", str(out), "--resume", "-q", "--workers", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["runs_done"] == 160 and manifest["resumed"]
    assert not [p for p in out.rglob("*.tmp")], "resume leaves no temporary files behind"

    ref = tmp_path / "ref"
    assert runner.invoke(app, ["sweep", str(config), "--out", str(ref), "-q", "--workers", "1"]).exit_code == 0
    _same_results(out, ref)


@pytest.mark.slow
def test_ctrl_c_saves_partial_exits_130_and_prints_the_resume_command(write_config, tmp_path):
    config = _long_config(write_config)
    out = tmp_path / "stopped"
    proc = _start(config, out, "--workers", "1")
    _wait_for_chunks(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "--resume" in stderr and str(out) in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "partial" and 0 < manifest["runs_done"] < 160
    partial = pd.read_csv(out / "runs.csv")
    assert len(partial) == manifest["runs_done"]

    result = runner.invoke(app, ["sweep", str(config), "--out", str(out), "--resume", "-q"])
    assert result.exit_code == 0, result.output
    ref = tmp_path / "ref"
    assert runner.invoke(app, ["sweep", str(config), "--out", str(ref), "-q"]).exit_code == 0
    _same_results(out, ref)
    # the rows saved at Ctrl-C are the same rows the complete run has
    full = pd.read_csv(out / "runs.csv")
    pd.testing.assert_frame_equal(partial, full.set_index("run_id").loc[partial["run_id"]].reset_index(), check_exact=True, check_dtype=False)


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    return {child for child, fields in live_processes() if int(fields[1]) == pid}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process parents from /proc")
def test_ctrl_c_with_a_worker_pool_leaves_no_worker_running(write_config, tmp_path):
    config = _long_config(write_config)
    out = tmp_path / "stopped"
    proc = _start(config, out, "--workers", "2")
    _wait_for_chunks(out, 1, proc)
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in stderr
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers)


def test_resume_with_a_different_config_is_refused(write_config, tmp_path):
    config = write_config()
    out = tmp_path / "o"
    assert runner.invoke(app, ["train", str(config), "--out", str(out), "-q"]).exit_code == 0
    result = runner.invoke(app, ["train", str(config), "--out", str(out), "--resume", "--set", "training.epochs=301"])
    assert result.exit_code == 2
    assert "different config" in " ".join(result.output.split())


def test_resume_needs_out_and_a_run_directory(write_config, tmp_path):
    config = write_config()
    result = runner.invoke(app, ["train", str(config), "--resume"])
    assert result.exit_code == 2 and "--out" in result.output
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a run")
    result = runner.invoke(app, ["train", str(config), "--resume", "--out", str(tmp_path / "other")])
    assert result.exit_code == 2 and "manifest.json" in result.output
    assert (tmp_path / "other" / "notes.txt").read_text() == "not a run"


def test_a_signal_before_the_run_starts_saves_nothing_and_gives_the_command_again(write_config, tmp_path, monkeypatch):
    import nnrun.config

    from nnrun import signals

    config, out = write_config(), tmp_path / "never"
    real_load = nnrun.config.load

    def load_and_get_sigterm(*args, **kwargs):  # a SIGTERM while the config is read
        os.kill(os.getpid(), signal.SIGTERM)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(nnrun.config, "load", load_and_get_sigterm)
    args = ["train", str(config), "--out", str(out), "-q"]
    monkeypatch.setattr(sys, "argv", ["nnrun", *args])  # what the command line would have been
    with signals.handled():
        result = runner.invoke(app, args)
    assert result.exit_code == 143, result.output
    text = " ".join(result.output.split())
    assert "Interrupted (SIGTERM) before the run started; no runs were saved" in text
    assert f"Start it again with: nnrun train {config} --out {out} -q" in text and "--resume" not in text
    assert not out.exists()


def test_a_signal_before_any_run_finished_says_none_were_saved_and_resume_completes(write_config, tmp_path, monkeypatch):
    import nnrun.api

    from nnrun import signals

    config, out = write_config(), tmp_path / "early"
    real_preflight = nnrun.api.preflight

    def preflight_and_get_sigint(p):  # Ctrl-C while the data are loaded, before any chunk
        os.kill(os.getpid(), signal.SIGINT)
        return real_preflight(p)

    monkeypatch.setattr(nnrun.api, "preflight", preflight_and_get_sigint)
    args = ["train", str(config), "--out", str(out), "-q", "--workers", "1"]
    monkeypatch.setattr(sys, "argv", ["nnrun", *args])
    with signals.handled():
        result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    text = " ".join(result.output.split())
    assert f"no runs had finished, so none of 16 are saved yet in {out} (status: partial)" in text and "Finished runs are saved" not in text
    assert f"Resume with: nnrun train {config} -q --workers 1 --out {out} --resume" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "partial" and manifest["runs_done"] == 0 and not (out / locks.NAME).exists()
    monkeypatch.setattr(nnrun.api, "preflight", real_preflight)
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    assert len(pd.read_csv(out / "runs.csv")) == 16


def test_a_kill_while_the_directory_is_built_leaves_nothing_under_its_name(write_config, tmp_path, monkeypatch):
    import nnrun.api

    config, out = write_config(), tmp_path / "half"

    def killed(src, dst):
        raise KeyboardInterrupt  # stands in for the process ending just before the rename

    monkeypatch.setattr(nnrun.api.os, "rename", killed)
    result = runner.invoke(app, ["train", str(config), "--out", str(out), "-q", "--workers", "1"])
    assert result.exit_code == 130
    assert not out.exists() and not list(tmp_path.glob(".half.*")), "neither the directory nor its hidden build is left"
    monkeypatch.undo()
    assert runner.invoke(app, ["train", str(config), "--out", str(out), "-q", "--workers", "1"]).exit_code == 0


def test_chunking_does_not_change_rows(write_config, tmp_path):
    config = write_config(seeds=7)
    for chunk in ("1", "3", "1000"):
        assert runner.invoke(app, ["train", str(config), "--out", str(tmp_path / chunk), "-q", "--chunk-runs", chunk]).exit_code == 0
    _same_results(tmp_path / "1", tmp_path / "3")
    _same_results(tmp_path / "1", tmp_path / "1000")
