"""What a results directory says about where it came from, and `nnrun ls` / `--version`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nnrun
from nnrun import locks
from nnrun.cli import app

runner = CliRunner()
HAS_GIT = shutil.which("git") is not None


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def train(config: Path, out: Path, *extra: str) -> dict:
    """A real `nnrun train` process, so the manifest records a real command line."""
    args = ["train", str(config), "--out", str(out), "-q", "--workers", "1", *extra]
    result = subprocess.run([sys.executable, "-m", "nnrun", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == " ".join(["nnrun", *args])
    return manifest


@pytest.mark.skipif(not HAS_GIT, reason="needs git")
def test_manifest_records_the_config_repositorys_commit_and_whether_it_was_dirty(write_config, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    config = repo / "tiny.yaml"
    shutil.copy(write_config(), config)
    git(repo, "add", "tiny.yaml")
    git(repo, "commit", "-q", "-m", "config")
    head = git(repo, "rev-parse", "HEAD")

    m = train(config, tmp_path / "clean", "--set", "training.epochs=20")  # results outside the repo
    assert m["git_commit"] == head and m["git_dirty"] is False
    assert m["cwd"] == str(Path.cwd())
    assert set(m["machine"]) == {"cpu", "cores", "memory_gib"} and m["machine"]["cores"] == os.cpu_count()
    assert m["machine"]["memory_gib"] is None or m["machine"]["memory_gib"] > 0

    config.write_text(config.read_text() + "\n# edited\n")
    m = train(config, tmp_path / "dirty", "--set", "training.epochs=20")
    assert m["git_commit"] == head and m["git_dirty"] is True


def test_outside_a_repository_the_git_fields_are_null(write_config, tmp_path, monkeypatch):
    config = write_config()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path counts
    m = train(config, tmp_path / "o", "--set", "training.epochs=20")
    assert m["git_commit"] is None and m["git_dirty"] is None
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))  # and without git at all
    m = train(config, tmp_path / "o2", "--set", "training.epochs=20")
    assert m["git_commit"] is None and m["git_dirty"] is None


def test_version_prints_the_version_and_the_arithmetic_revision():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert f"nnrun {nnrun.__version__}" in result.output and f"arithmetic revision {nnrun.ARITHMETIC}" in result.output


# ----------------------------------------------------------------------------- ls and the lock


def _manifest(directory: Path, **fields) -> None:
    directory.mkdir(parents=True)
    base = {"status": "complete", "runs_total": 16, "runs_done": 16, "started": "2026-01-01T00:00:00+00:00", "wall_seconds": 3.5, "command": "nnrun train x.yaml"}
    (directory / "manifest.json").write_text(json.dumps({**base, **fields}))


def test_ls_lists_every_experiment_newest_first_with_status_and_reads_only(tmp_path):
    root = tmp_path / "results"
    _manifest(root / "a" / "old", started="2026-01-01T00:00:00+00:00")
    _manifest(root / "b" / "cut", status="partial", runs_done=5, started="2026-01-03T00:00:00+00:00", command="nnrun sweep y.yaml")
    _manifest(root / "b" / "killed", status="running", runs_done=8, started="2026-01-02T00:00:00+00:00")
    (root / "b" / "killed" / locks.NAME).write_text("999999\n")  # a dead holder's lock file
    _manifest(root / "a" / ".new.abc.tmp", started="2026-01-04T00:00:00+00:00")  # still being built: not an experiment yet
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["ls", str(root)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "2026-01-0" in line]
    assert [r.split("│")[1].strip() for r in rows] == ["partial", "interrupted", "complete"]
    assert "5/16" in rows[0] and "nnrun sweep y.yaml" in rows[0] and "3.5 s" in rows[2]
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_ls_of_an_empty_or_missing_folder(tmp_path):
    result = runner.invoke(app, ["ls", str(tmp_path)])
    assert result.exit_code == 0 and "no nnrun experiments" in result.output
    result = runner.invoke(app, ["ls", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or directory" in result.output


@pytest.mark.slow
def test_a_running_sweep_holds_its_lock_ls_shows_it_and_a_second_resume_is_refused(write_config, tmp_path):
    config = write_config("long.yaml", training={"epochs": 12000}, seeds=40, convergence={"stop_converged": False}, logging={"every": 500})
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nnrun", "sweep", str(config), "--out", str(out), "--chunk-runs", "8", "-q", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not (out / "manifest.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        assert locks.is_held(out) and locks.holder(out) == str(proc.pid)
        listed = runner.invoke(app, ["ls", str(tmp_path)], env={"COLUMNS": "200"})
        assert f"running (PID {proc.pid})" in listed.output
        second = runner.invoke(app, ["sweep", str(config), "--out", str(out), "--resume", "-q"])
        assert second.exit_code == 2 and f"another nnrun (PID {proc.pid}) is running this experiment" in " ".join(second.output.split())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert not locks.is_held(out) and not (out / locks.NAME).exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "partial"
