"""Chaos: SIGINT, SIGTERM or SIGKILL at seeded random moments of real sweeps, one and two
workers. Every trial must end with the signal's exit status, leave no process of its
process group behind, and leave a directory that --resume completes to exactly the rows of
an uninterrupted sweep."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import live_processes
from nnrun.cli import app

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process groups from /proc")

runner = CliRunner()
LANDED = 32  # trials whose signal reaches a running sweep (one that finished first does not count)
MAX_TRIALS = 60
SEED = 17
# What the process is told and how a shell reports its end: 128 + n after nnrun's own exit,
# -9 when the kernel kills it.
EXPECTED = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}
# Before the interpreter reaches nnrun's first line (its own start-up and `site`, ~50 ms)
# Python's default dispositions apply: it dies of the signal itself.
STARTUP = 0.25


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    return [pid for pid, fields in live_processes() if int(fields[2]) == pgid]


def wait_group_gone(pgid: int, timeout: float = 10.0) -> list[int]:
    deadline = time.time() + timeout
    while (left := group_members(pgid)) and time.time() < deadline:
        time.sleep(0.05)
    return left


def start(config: Path, out: Path, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nnrun", "sweep", str(config), "--out", str(out), "--chunk-runs", "8", "-q", "--workers", str(workers)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture
def chaos_config(write_config):
    # 2 variants × 2 rates × 16 seeds = 64 runs in 8 chunks; ~3 s from start to finish
    return write_config("chaos.yaml", training={"epochs": 1500}, seeds=16, convergence={"stop_converged": False}, logging={"every": 500})


@pytest.mark.slow
def test_signals_at_random_moments_leave_no_process_and_a_resumable_directory(chaos_config, tmp_path):
    ref = tmp_path / "ref"
    t0 = time.time()
    proc = start(chaos_config, ref, 2)
    _, err = proc.communicate(timeout=300)
    duration = time.time() - t0
    assert proc.returncode == 0, err
    reference = pd.read_csv(ref / "runs.csv")
    assert len(reference) == 64

    rng = random.Random(SEED)
    outcomes: collections.Counter = collections.Counter()
    trial = landed = 0
    while landed < LANDED and trial < MAX_TRIALS:
        signum = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)[trial % 3]
        workers = 1 + (trial // 3) % 2
        to_group = signum == signal.SIGINT or (signum == signal.SIGTERM and trial % 2 == 0)  # a terminal's Ctrl-C reaches the group
        delay = rng.uniform(0.0, 0.7 * duration)
        out = tmp_path / f"t{trial:02d}"
        proc = start(chaos_config, out, workers)
        time.sleep(delay)
        what = f"trial {trial}: {signum.name} to the {'group' if to_group else 'process'} after {delay:.2f} s, {workers} worker(s)"
        if proc.poll() is None:
            (os.killpg if to_group else os.kill)(proc.pid, signum)
        stdout, stderr = proc.communicate(timeout=120)
        left = wait_group_gone(proc.pid)
        assert not left, f"{what}: processes {left} of its group outlived it"

        if proc.returncode == 0:
            outcome = "finished first"
            assert json.loads((out / "manifest.json").read_text())["status"] == "complete", what
        elif proc.returncode == -signum and signum != signal.SIGKILL and delay < STARTUP and "Interrupted" not in stderr:
            outcome = "died in interpreter start-up"
            assert not out.exists(), what
        else:
            assert proc.returncode == EXPECTED[signum], f"{what}: exit {proc.returncode}\n{stderr}"
            outcome = f"exit {proc.returncode}"
            if signum != signal.SIGKILL:
                assert "Traceback" not in stderr and "internal error" not in stderr, f"{what}:\n{stderr}"
                manifest = json.loads((out / "manifest.json").read_text()) if out.exists() else {"status": None, "runs_done": 0}
                if manifest["status"] == "complete":  # the signal came during the final writes
                    assert "all 64 runs are saved" in stderr, f"{what}:\n{stderr}"
                elif manifest["status"] is None:  # stopped before the directory existed
                    assert "no runs were saved. Start it again with:" in stderr and f"--out {out}" in stderr and "--resume" not in stderr, f"{what}:\n{stderr}"
                else:
                    assert manifest["status"] == "partial", what
                    saved = f"{manifest['runs_done']} of 64 runs are saved" if manifest["runs_done"] else "no runs had finished"
                    assert saved in stderr and f"--out {out} --resume" in stderr, f"{what}:\n{stderr}"
        outcomes[(signum.name, workers, outcome)] += 1
        landed += outcome != "finished first"
        trial += 1

        # --resume where the directory exists (a kill can leave no half-made one); else start again
        resume = ["--resume"] if out.exists() else []
        assert out.exists() or not list(tmp_path.glob(f".{out.name}.*")) or signum == signal.SIGKILL, f"{what}: a directory was left half-built"
        result = runner.invoke(app, ["sweep", str(chaos_config), "--out", str(out), "--chunk-runs", "8", *resume, "-q", "--workers", "1"])
        assert result.exit_code == 0, f"{what}: {'resume' if resume else 'rerun'} failed\n{result.output}"
        pd.testing.assert_frame_equal(pd.read_csv(out / "runs.csv"), reference, check_exact=True, obj=what)
        assert json.loads((out / "manifest.json").read_text())["status"] == "complete", what

    summary = ", ".join(f"{s} w{w} {o}: {n}" for (s, w, o), n in sorted(outcomes.items()))
    print(f"\nchaos: {trial} trials (sweep of {duration:.1f} s): {summary}")
    assert landed >= LANDED, f"only {landed} of {trial} signals landed during a sweep: {summary}"


@pytest.mark.slow
def test_sigkill_takes_down_the_local_dask_cluster_too(chaos_config, tmp_path):
    out = tmp_path / "dask"
    cmd = [sys.executable, "-m", "nnrun", "sweep", str(chaos_config), "--out", str(out), "--chunk-runs", "8", "-q", "--workers", "2", "--executor", "dask"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while len(group_members(proc.pid)) < 3 and time.time() < deadline:  # nnrun and two Dask workers
        time.sleep(0.1)
    assert len(group_members(proc.pid)) >= 3, proc.communicate(timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not wait_group_gone(proc.pid), "Dask worker processes outlived nnrun"
