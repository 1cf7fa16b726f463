"""The learning-rate search: the lattice, the rounds, determinism, resume after SIGKILL, and
the searched optimum against an independent dense scan of the seed's problem."""

from __future__ import annotations

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

from nnrun import stats, tuning
from nnrun.cli import app
from nnrun.config import LRSearch
from nnrun.search import lattice_rate, neighbours, steps_per_decade

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
SEARCH = LRSearch(search="log")  # first 0.1 … 10, resolution 1.33, limits 0.001 … 1000


def small_search(tmp_path: Path, **extra) -> Path:
    """The default sweep's search on fewer seeds and a shorter budget."""
    data = yaml.safe_load((ROOT / "configs/xor.yaml").read_text())
    data.update(seeds=20, name="search")
    data["training"]["epochs"] = 3000
    data.update(extra)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_lattice_is_fixed_and_shared():
    assert steps_per_decade(SEARCH) == 8  # 10^(1/8) = 1.334
    assert lattice_rate(8, 8) == 10.0 and lattice_rate(-8, 8) == 0.1 and lattice_rate(0, 8) == 1.0
    assert lattice_rate(3, 8) == float(f"{10 ** (3 / 8):.12g}")
    # 3 lies between lattice points 10^(3/8) and 10^(4/8): both are its neighbours.
    assert neighbours(3.0, [0.1, 0.3, 1, 3, 10], SEARCH) == [lattice_rate(3, 8), lattice_rate(4, 8)]
    # On the lattice: the points either side, minus those tried.
    assert neighbours(lattice_rate(3, 8), [0.1, 0.3, 1, 3, 10, lattice_rate(4, 8)], SEARCH) == [lattice_rate(2, 8)]
    # At the top of the range tried: one step and half a decade beyond.
    assert neighbours(10.0, [0.1, 1, 10], SEARCH) == [lattice_rate(7, 8), lattice_rate(9, 8), lattice_rate(13, 8)]
    # Never beyond the limits; nothing left to try ends the search.
    tight = LRSearch(search="log", first=[1, 10], limits=[1, 10])
    assert neighbours(10.0, [1, 10], tight) == [lattice_rate(7, 8)]
    assert neighbours(10.0, [1, 10, lattice_rate(7, 8)], tight) == []


def test_bad_search_configs_exit_2(tmp_path):
    for rates, expected in [({"search": "log", "first": [0.1, 5000]}, "outside learning_rates.limits"),
                            ({"search": "log", "resolution": 1.0}, "learning_rates.resolution"),
                            ({"search": "grid"}, "learning_rates.search"),
                            ({"search": "log", "resolutoin": 2}, "did you mean 'learning_rates.resolution'")]:  # fmt: skip
        path = small_search(tmp_path, learning_rates=rates)
        r = runner.invoke(app, ["validate", str(path)])
        assert r.exit_code == 2 and expected in " ".join(r.output.split()), r.output
    r = runner.invoke(app, ["validate", str(small_search(tmp_path))])
    assert r.exit_code == 0 and "round 0" in r.output and "learning-rate search" in " ".join(r.output.split())


def test_rounds_run_ids_and_tuned_columns(tmp_path):
    out = tmp_path / "s"
    r = runner.invoke(app, ["train", str(small_search(tmp_path)), "--out", str(out), "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns[:3]) == ["run_id", "round", "variant"]
    assert (runs["run_id"] == np.arange(len(runs))).all() and runs["round"].is_monotonic_increasing
    first = runs[runs["round"] == 0]
    assert sorted(first["learning_rate"].unique()) == [0.1, 0.3, 1.0, 3.0, 10.0] and len(first) == 200
    later = runs.loc[runs["round"] > 0, "learning_rate"].unique()
    assert len(later) and all(any(abs(lr - lattice_rate(k, 8)) == 0 for k in range(-24, 25)) for lr in later)  # exact lattice values
    assert runs["round"].max() >= 1
    tuned = pd.read_csv(out / "tuned.csv").iloc[0]
    for col in ("lr_low", "lr_high", "baseline_lr_low", "baseline_lr_high", "at_edge", "baseline_at_edge", "rounds"):
        assert col in tuned.index
    # A finished search stops with both neighbours of each tuned rate tried (or a limit).
    for variant, lr, lo, hi in [(tuned["variant"], tuned["learning_rate"], tuned["lr_low"], tuned["lr_high"]),
                                (tuned["baseline"], tuned["baseline_learning_rate"], tuned["baseline_lr_low"], tuned["baseline_lr_high"])]:  # fmt: skip
        tried = sorted(runs.loc[runs["variant"] == variant, "learning_rate"].unique())
        assert neighbours(lr, tried, SEARCH) == []
        assert lo < lr < hi and hi / lo <= 1.34**2 * 1.001
    manifest = yaml.safe_load((out / "manifest.json").read_text())
    assert manifest["runs_total"] == len(runs) and manifest["rounds"] == runs["round"].max() + 1
    listed = runner.invoke(app, ["ls", str(out)])
    assert listed.exit_code == 0 and f"{len(runs)} in {manifest['rounds']} rounds" in " ".join(listed.output.split())


def test_same_rows_for_any_worker_count_chunking_and_executor(tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra runs the same search on a local cluster")
    path = small_search(tmp_path, seeds=8)
    outs = []
    for i, extra in enumerate([["--workers", "1"], ["--workers", "2", "--chunk-runs", "7"], ["--executor", "dask", "--workers", "2", "--chunk-runs", "13"]]):
        out = tmp_path / f"w{i}"
        r = runner.invoke(app, ["train", str(path), "--out", str(out), "--quiet", *extra])
        assert r.exit_code == 0, r.output
        outs.append(pd.read_csv(out / "runs.csv"))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    pd.testing.assert_frame_equal(outs[0], outs[2])


def _journal_count(out: Path) -> int:
    journal = out / "journal"
    return len([p for p in journal.glob("chunk-*.npz")]) if journal.is_dir() else 0


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [10, 11, 13], ids=["between-rounds", "inside-round-1", "later"])
def test_a_search_killed_with_sigkill_resumes_to_identical_rows(tmp_path, kill_after):
    """Round 0 is 10 chunks of 20 runs: killing after 10 journaled chunks lands between
    rounds (or just as round 1 starts), after 11 inside round 1."""
    path = small_search(tmp_path)
    reference = tmp_path / "ref"
    args = [sys.executable, "-m", "nnrun", "train", str(path), "--workers", "1", "--chunk-runs", "20", "--quiet"]
    assert subprocess.run([*args, "--out", str(reference)], capture_output=True, timeout=300).returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while _journal_count(out) < kill_after and proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = _journal_count(out)
    assert done >= min(kill_after, 10)  # the kill came once that many chunks were journaled
    resumed = subprocess.run([*args, "--out", str(out), "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out / "runs.csv"), pd.read_csv(reference / "runs.csv"))


@pytest.mark.slow
def test_the_searched_optimum_agrees_with_a_dense_scan(tmp_path):
    """The seed's XOR network, 100 seeds: a dense scan of 40 log-spaced rates from 0.1 to
    1000, trained here as a plain list (no search), marks which rates the tuned rule finds
    not credibly worse than its best; each variant's searched rate lies among them."""
    out = tmp_path / "search"
    r = runner.invoke(app, ["sweep", "--out", str(out), "--workers", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    searched = pd.read_csv(out / "tuned.csv").iloc[0]
    assert not searched["at_edge"] and not searched["baseline_at_edge"]
    dense_rates = [float(f"{x:.6g}") for x in np.geomspace(0.1, 1000, 40)]
    dense = tmp_path / "dense"
    r = runner.invoke(app, ["sweep", "--set", f"learning_rates={dense_rates}", "--out", str(dense), "--workers", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    runs = pd.read_csv(dense / "runs.csv")
    summary = stats.summarize(runs, [], budget=10000)
    best = tuning.best_rates(runs, summary, []).set_index("variant")
    searched_runs = pd.read_csv(out / "runs.csv")
    net_epochs = searched_runs.groupby("round")["epochs_run"].sum()
    assert net_epochs.sum() <= 3 * net_epochs.iloc[0]  # a search costs at most 3 first rounds
    for variant, lr in [("ce", searched["baseline_learning_rate"]), ("mse", searched["learning_rate"])]:
        b = best.loc[variant]
        assert not b["at_edge"]
        s = summary[summary["variant"] == variant].set_index("learning_rate")
        at_top = runs[(runs["variant"] == variant) & (runs["learning_rate"] == s["success_rate"].idxmax())].set_index("seed")["converged"]
        good = []
        for rate in dense_rates:  # the tuned rule's eligibility, and a median whose CI reaches the best's
            here = runs[(runs["variant"] == variant) & (runs["learning_rate"] == rate)].set_index("seed")["converged"]
            eligible = stats.mcnemar(int((at_top & ~here).sum()), int((here & ~at_top).sum()), "greater") >= 0.05
            close = s.loc[rate, "epochs_median_ci_low"] <= b["epochs_median_ci_high"]
            if eligible and close:
                good.append(rate)
        assert b["learning_rate"] in good and min(good) <= lr <= max(good), (variant, lr, good)


def test_tuning_budget_against_enumerating_every_draw():
    """E[best of k draws] by brute force over all k-tuples, with log-range weights by hand."""
    import itertools

    rates, medians = [10.0, 0.1, 1.0, 0.3], np.array([200.0, 50.0, 80.0, 30.0])
    # log-range each rate stands for: geometric midpoints between neighbours, ends at the rates
    x = np.log([0.1, 0.3, 1.0, 10.0])
    cell = np.diff(np.r_[x[0], (x[1:] + x[:-1]) / 2, x[-1]]) / (x[-1] - x[0])
    w = tuning.rate_weights(rates)
    assert w == pytest.approx([cell[3], cell[0], cell[2], cell[1]]) and w.sum() == pytest.approx(1)
    for k in (1, 2, 3):
        brute = sum(np.prod(w[list(c)]) * medians[list(c)].min() for c in itertools.product(range(4), repeat=k))
        assert tuning.expected_best(medians, w, k) == pytest.approx(brute)
    summary = pd.DataFrame({"variant": "ce", "learning_rate": rates, "epochs_median": [np.nan, 50, 80, 30], "budget": 200.0})
    tb = tuning.tuning_budget(summary, [])
    assert list(tb["k"]) == [1, 2, 3, 4] and tb["expected_best_epochs"].is_monotonic_decreasing
    assert tb["expected_best_epochs"].iloc[0] == pytest.approx(np.dot(tuning.rate_weights(sorted(rates)), [50, 30, 80, 200]))


def test_a_search_writes_its_tuning_budget_and_plots_sensitivity(tmp_path):
    out = tmp_path / "s"
    r = runner.invoke(app, ["train", str(small_search(tmp_path, seeds=6)), "--out", str(out), "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    tb = pd.read_csv(out / "tuning_budget.csv")
    summary = pd.read_csv(out / "summary.csv")
    for variant, g in tb.groupby("variant"):
        assert g["k"].max() == (summary["variant"] == variant).sum()  # k = 1 … rates tried
    p = runner.invoke(app, ["plot", str(out)])
    assert p.exit_code == 0, p.output
    assert {"sensitivity.png", "tuning-budget.png"} <= {f.name for f in (out / "plots").iterdir()}
