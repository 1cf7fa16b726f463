"""The suite's new data sets (wine, MNIST-1D) and `nnrun study`: loaders, the MNIST-1D
checksum, the built-in suite, study.csv against each problem's own results directory,
--resume, --quick and bad input."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
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

from nnrun import study
from nnrun.cli import app
from nnrun.config import load as load_config
from nnrun.datasets import load, mnist1d_arrays
from nnrun.executor import load_data

pytest.importorskip("sklearn")
pytest.importorskip("mnist1d")

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
# sha256 of MNIST-1D's x, y, x_test, y_test bytes (float64, int64) from make_dataset's defaults.
MNIST1D_SHA256 = "2377c0b18c9f643da2b39e66086395782aac2fcfdd678b89f55a22b17ec47631"


# ----------------------------------------------------------------------------- data sets


def test_wine_is_standardised_three_classes_with_a_deterministic_split():
    import sklearn.datasets as skd

    raw = skd.load_wine()
    full = load("wine", bias_column=False)
    assert full.X.shape == (178, 13) and full.classes == ("0", "1", "2")
    np.testing.assert_allclose(full.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(full.X.std(axis=0), 1, atol=1e-12)
    np.testing.assert_array_equal(full.labels, raw.target)
    a, b, c = (load("wine", bias_column=False, test_fraction=0.2, shuffle_seed=s) for s in (0, 0, 1))
    # Class sizes 59, 71, 48; a fifth of each, rounded: 12 + 14 + 10.
    assert a.X.shape == (142, 13) and a.X_test.shape == (36, 13)
    assert np.bincount(a.labels_test).tolist() == [12, 14, 10]
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.labels_test, b.labels_test)
    assert not np.array_equal(a.X_test, c.X_test)


@pytest.fixture(scope="module")
def mnist1d_data():
    return mnist1d_arrays()


def test_mnist1d_checksum_shapes_and_classes(mnist1d_data):
    X, y, Xt, yt = mnist1d_data
    assert X.shape == (4000, 40) and Xt.shape == (1000, 40)
    assert sorted(set(y)) == list(range(10)) and sorted(set(yt)) == list(range(10))
    h = hashlib.sha256()
    for a in (X.astype(np.float64), y.astype(np.int64), Xt.astype(np.float64), yt.astype(np.int64)):
        h.update(np.ascontiguousarray(a).tobytes())
    assert h.hexdigest() == MNIST1D_SHA256


def test_mnist1d_equals_the_packages_own_generator_and_keeps_its_split(mnist1d_data):
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()
    d = make_dataset(get_dataset_args())
    np.random.set_state(state)
    for ours, theirs in zip(mnist1d_data, (d["x"], d["y"], d["x_test"], d["y_test"])):
        np.testing.assert_array_equal(ours, theirs)
    data = load("mnist1d", bias_column=False)
    np.testing.assert_array_equal(data.X, d["x"])  # not standardised again, not re-split
    np.testing.assert_array_equal(data.labels_test, d["y_test"])
    assert data.targets("softmax").shape == (4000, 10)


def test_mnist1d_is_cached_and_leaves_the_global_random_state_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state(), random.getstate()
    first = mnist1d_arrays()  # generated: the package seeds both global generators
    np_after = np.random.get_state()
    assert np.array_equal(np_after[1], np_before[1]) and np_after[2:] == np_before[2:]
    assert random.getstate() == py_before
    cached = list((tmp_path / "nnrun").glob("mnist1d-*.npz"))
    assert len(cached) == 1 and not list((tmp_path / "nnrun").glob(".*tmp"))
    with np.load(cached[0]) as f:
        f["x"][0, 0]  # readable
    second = mnist1d_arrays()  # read back from the cache
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_mnist1d_falls_back_when_the_cache_cannot_be_written(tmp_path, monkeypatch, mnist1d_data):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    for a, b in zip(mnist1d_arrays(), mnist1d_data):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ({"name": "mnist1d", "test_fraction": 0.2}, "dataset.test_fraction does not apply to dataset 'mnist1d', which comes with its own train/test split"),
        ({"name": "mnist1d", "n_samples": 100}, "dataset.n_samples does not apply to dataset 'mnist1d'"),
        ({"name": "wine", "noise": 0.1}, "dataset.noise does not apply to dataset 'wine'"),
    ],
)
def test_bad_dataset_parameters_exit_2_naming_the_key(tmp_path, dataset, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "dataset": dataset}))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split()) and "Traceback" not in result.output


def test_test_accuracy_as_primary_needs_a_test_split(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "dataset": {"name": "iris"}, "study": {"primary": "test_accuracy"}}))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "study.primary: test_accuracy needs a test split" in " ".join(result.output.split())


def test_a_config_without_a_study_section_keeps_its_hash():
    plain = load_config(ROOT / "configs" / "xor.yaml")
    named = load_config(ROOT / "configs" / "xor.yaml", ["study.primary=epochs"])
    judged = load_config(ROOT / "configs" / "digits.yaml", ["study.primary=test_accuracy"])
    assert plain.sha256() == named.sha256()
    assert judged.sha256() != load_config(ROOT / "configs" / "digits.yaml").sha256()
    assert plain.primary_metric() == "epochs" and judged.primary_metric() == "final_test_accuracy"


# ----------------------------------------------------------------------------- the built-in suite


SUITE_FILES = sorted((ROOT / "nnrun" / "suite").glob("*.yaml"))


def test_the_suite_holds_the_ten_problems_and_configs_suite_is_the_same_files():
    assert [p.stem for p in SUITE_FILES] == ["breast_cancer", "circles", "digits", "iris", "mnist1d", "moons", "parity3", "parity4", "wine", "xor"]
    shipped = sorted(p.name for p in study.problem_files(None))
    assert shipped == [p.name for p in SUITE_FILES]
    for path in SUITE_FILES:
        assert (ROOT / "configs" / "suite" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_each_suite_problem_names_its_primary_metric_and_the_right_variants(path):
    raw = yaml.safe_load(path.read_text())
    assert raw["study"]["primary"] in ("epochs", "test_accuracy")  # named, not defaulted
    config = load_config(path)
    assert len(config.seed_list()) >= 10  # a paired test can reach p < 0.05 (2 / 2^10)
    data = load_data(config)
    if data.task == "binary":
        assert config.variants == ["ce", "mse"]
    else:
        assert config.variants == ["ce-softmax", "mse-softmax", "ce", "mse"]
    has_test = data.X_test is not None
    assert raw["study"]["primary"] == ("test_accuracy" if has_test else "epochs")


# ----------------------------------------------------------------------------- nnrun study


def _problem(name: str, **changes) -> dict:
    base = {
        "name": name,
        "dataset": {"name": "xor"},
        "model": {"hidden": [4], "init": {"scheme": "legacy"}},
        "training": {"epochs": 300},
        "variants": ["ce", "mse"],
        "learning_rates": [1.0, 3.0],
        "seeds": 6,
        "logging": {"every": 50},
        "study": {"primary": "epochs"},
    }
    base.update(changes)
    return base


IRIS = _problem(
    "iris-small",
    dataset={"name": "iris", "bias_column": False, "test_fraction": 0.2, "shuffle_seed": 0},
    model={"hidden": [4], "bias": True, "init": {"scheme": "xavier"}},
    training={"epochs": 40, "reduction": "mean"},
    variants=["ce-softmax", "mse-softmax", "ce", "mse"],
    convergence={"criterion": "accuracy", "threshold": 0.9, "stop_converged": False},
    logging={"every": 10},
    study={"primary": "test_accuracy"},
)


@pytest.fixture
def suite(tmp_path) -> Path:
    directory = tmp_path / "suite"
    directory.mkdir()
    (directory / "a_xor.yaml").write_text(yaml.safe_dump(_problem("xor-small")))
    (directory / "b_iris.yaml").write_text(yaml.safe_dump(IRIS))
    return directory


def _study(*args: str) -> object:
    result = runner.invoke(app, ["study", *args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    return result


def _expected_rows(problem_dir: Path) -> list[dict]:
    """study.csv's rows rebuilt from the problem's own files, independently of nnrun.study:
    the tuned rates from tuned.csv, success and test accuracy from runs.csv itself."""
    config = yaml.safe_load((problem_dir / "config.yaml").read_text())
    runs = pd.read_csv(problem_dir / "runs.csv")
    tuned = pd.read_csv(problem_dir / "tuned.csv")
    summary = pd.read_csv(problem_dir / "summary.csv")
    baseline = config["variants"][0]
    primary = config["study"]["primary"]
    rates = {baseline: tuned["baseline_learning_rate"].iloc[0], **dict(zip(tuned["variant"], tuned["learning_rate"]))}
    edges = {baseline: tuned["baseline_at_edge"].iloc[0], **dict(zip(tuned["variant"], tuned["at_edge"]))}
    prefix = "epochs_ratio_median" if primary == "epochs" else "final_test_accuracy_ratio_median"
    if primary == "test_accuracy" and "final_test_accuracy_diff" in tuned:  # accuracy as a difference in points
        prefix = "final_test_accuracy_diff"
    stem = prefix.removesuffix("_median")
    rows = []
    for variant in config["variants"]:
        r = runs[(runs["variant"] == variant) & (runs["learning_rate"] == rates[variant])]
        s = summary[(summary["variant"] == variant) & (summary["learning_rate"] == rates[variant])].iloc[0]
        row = {
            "variant": variant,
            "learning_rate": rates[variant],
            "at_edge": edges[variant],
            "success_rate": r["converged"].mean(),
            "epochs_median": s["epochs_median"],
            "final_test_accuracy": r["final_test_accuracy"].median() if "final_test_accuracy" in r else math.nan,
        }
        if variant != baseline:
            t = tuned[tuned["variant"] == variant].iloc[0]
            row.update(effect=t[prefix], effect_ci_low=t[f"{stem}_ci_low"], effect_ci_high=t[f"{stem}_ci_high"], p=t["wilcoxon_p"])
        rows.append(row)
    return rows


def _assert_study_matches_problem_dirs(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "study.csv")
    for problem, rows in table.groupby("problem", sort=False):
        for expected, (_, got) in zip(_expected_rows(out / problem), rows.iterrows(), strict=True):
            for key, value in expected.items():
                want = value if isinstance(value, (str, bool, np.bool_)) else pytest.approx(value, nan_ok=True, rel=1e-12)
                assert got[key] == want, (problem, expected["variant"], key)
    return table


def test_study_table_equals_each_problems_own_results(suite, tmp_path):
    out = tmp_path / "study"
    result = _study(str(suite), "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "study" and manifest["status"] == "complete" and manifest["problems"] == ["xor-small", "iris-small"]
    for name in manifest["problems"]:
        assert json.loads((out / name / "manifest.json").read_text())["status"] == "complete"
    table = _assert_study_matches_problem_dirs(out)
    assert list(table["problem"]) == ["xor-small"] * 2 + ["iris-small"] * 4
    assert list(table["primary"]) == ["epochs"] * 2 + ["test_accuracy"] * 4
    baseline_rows = table[table["variant"] == table["baseline"]]
    assert baseline_rows["winner"].isna().all() and baseline_rows["effect"].isna().all()
    assert set(table.loc[table["variant"] != table["baseline"], "winner"]) <= {"ce", "mse", "ce-softmax", "mse-softmax", "ce", "inconclusive"}
    text = " ".join(result.output.split())
    assert text.startswith("[1/2] xor-small: running") or "xor-small" in text
    assert "Across 2 problems" in text and f"results: {out}" in text


def test_the_winner_follows_p_and_the_ci_on_the_metrics_direction():
    # epochs: a ratio below 1 means the variant needed fewer epochs.
    assert study.winner(0.5, 0.4, 0.6, 0.001, 1.0, False, "mse", "ce") == "mse"
    assert study.winner(2.0, 1.5, 2.5, 0.001, 1.0, False, "mse", "ce") == "ce"
    # test accuracy: a ratio above 1 means the variant classified more test samples right.
    assert study.winner(1.02, 1.01, 1.03, 0.01, 1.0, True, "mse", "ce") == "mse"
    assert study.winner(0.98, 0.97, 0.99, 0.01, 1.0, True, "mse", "ce") == "ce"
    assert study.winner(0.98, 0.97, 1.01, 0.01, 1.0, True, "mse", "ce") == "inconclusive"  # CI spans no effect
    assert study.winner(0.5, 0.4, 0.6, 0.06, 1.0, False, "mse", "ce") == "inconclusive"  # p too large
    assert study.winner(1.0, 1.0, 1.0, math.nan, 1.0, True, "mse", "ce") == "inconclusive"  # all tied


def test_the_verdict_counts_wins_flips_and_inconclusive_problems():
    rows = []
    for problem, winner in [("p1", "mse"), ("p2", "mse"), ("p3", "ce"), ("p4", "inconclusive")]:
        rows += [{"problem": problem, "variant": "ce", "baseline": "ce"}, {"problem": problem, "variant": "mse", "baseline": "ce", "winner": winner}]
    text = study.verdict(pd.DataFrame(rows))
    assert "Across 4 problems" in text and "edge" not in text
    assert "mse vs ce (4 problems): mse better on 2 (p1, p2), ce better on 1 (p3), inconclusive on 1 (p4)" in text
    assert "The answer flips between problems for mse vs ce." in text
    rows[3]["at_edge"] = True
    assert "Tuned at the edge of its learning-rate grid (it may do better outside it): mse on p2." in study.verdict(pd.DataFrame(rows))
    rows = [r for r in rows if r["problem"] == "p4"]
    assert "No comparison was decided on any problem." in study.verdict(pd.DataFrame(rows), quick=True)
    assert "a look, not a verdict" in study.verdict(pd.DataFrame(rows), quick=True)


def test_resume_after_an_interruption_skips_finished_problems(suite, tmp_path):
    whole = tmp_path / "whole"
    _study(str(suite), "--out", str(whole))
    out = tmp_path / "cut"

    def stop_at_the_second(i, n, problem, state):
        if i == 1 and state == "running":
            raise KeyboardInterrupt  # as if killed between problems

    with pytest.raises(KeyboardInterrupt):
        study.run_study(suite, out=out, on_problem=stop_at_the_second)
    assert json.loads((out / "manifest.json").read_text())["status"] == "partial"
    assert not (out / "iris-small").exists()
    first = out / "xor-small" / "runs.csv"
    stamp = first.stat().st_mtime_ns
    result = _study(str(suite), "--out", str(out), "--resume")
    assert "[1/2] xor-small: skipped" in result.output and "[2/2] iris-small: running" in result.output
    assert first.stat().st_mtime_ns == stamp  # not retrained, not rewritten
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    pd.testing.assert_frame_equal(pd.read_csv(out / "study.csv"), pd.read_csv(whole / "study.csv"))


def test_resume_finishes_a_problem_left_partial(suite, tmp_path):
    from nnrun import api

    out = tmp_path / "cut"

    def stop_inside_the_first(i, n, problem, state):
        if i == 0 and state == "running":
            # A partial results directory, as Ctrl-C during training leaves it.
            api.execute(problem.config, out=out / problem.name, workers=1, chunk_runs=6, progress=_interrupt_after(12))

    with pytest.raises(api.Interrupted):
        study.run_study(suite, out=out, on_problem=stop_inside_the_first)
    assert json.loads((out / "xor-small" / "manifest.json").read_text())["status"] == "partial"
    _study(str(suite), "--out", str(out), "--resume")
    manifest = json.loads((out / "xor-small" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest.get("resumed")
    _assert_study_matches_problem_dirs(out)


def _interrupt_after(runs: int):
    def progress(done, total, epochs, *rounds):
        if done >= runs:
            raise KeyboardInterrupt

    return progress


def test_quick_shrinks_seeds_and_epochs(suite, tmp_path):
    out = tmp_path / "quick"
    result = _study(str(suite), "--quick", "--out", str(out), "--quiet")
    config = yaml.safe_load((out / "xor-small" / "config.yaml").read_text())
    assert config["seeds"] == study.QUICK_SEEDS and config["training"]["epochs"] == 30
    assert json.loads((out / "manifest.json").read_text())["quick"] is True
    assert result.output.strip() == f"results: {out}"


def test_a_study_file_lists_problems_relative_to_itself(suite, tmp_path):
    path = suite / "study.yaml"
    path.write_text(yaml.safe_dump({"problems": ["b_iris.yaml"]}))
    out = tmp_path / "one"
    _study(str(path), "--out", str(out), "--quiet", "--set", "training.epochs=5")
    assert list(pd.read_csv(out / "study.csv")["problem"].unique()) == ["iris-small"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"problems": ["../outside.yaml"]}, "problems[0]: '../outside.yaml' lies outside the study file's directory"),
        ({"problem": ["a_xor.yaml"]}, "unknown key 'problem' (did you mean 'problems'?)"),
        ({"problems": []}, "problems must be a non-empty list of config files"),
        ({"problems": ["missing.yaml"]}, "missing.yaml: no such config file"),
        ({"problems": ["one.yaml"]}, "one.yaml: variants: a study problem compares at least two variants"),
        ({"problems": ["swept.yaml"]}, "swept.yaml: sweep: a study problem has no sweep axes"),
    ],
)
def test_bad_study_files_exit_2(suite, tmp_path, content, expected):
    (tmp_path / "outside.yaml").write_text(yaml.safe_dump(_problem("outside")))
    (suite / "one.yaml").write_text(yaml.safe_dump(_problem("one", variants=["ce"])))
    (suite / "swept.yaml").write_text(yaml.safe_dump(_problem("swept", sweep={"model.hidden": [[2], [4]]})))
    path = suite / "study.yaml"
    path.write_text(yaml.safe_dump(content))
    result = runner.invoke(app, ["study", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split()) and "Traceback" not in result.output


def test_two_problems_with_one_name_and_a_foreign_resume_exit_2(suite, tmp_path):
    (suite / "c_dup.yaml").write_text(yaml.safe_dump(_problem("xor-small")))
    result = runner.invoke(app, ["study", str(suite), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "each problem of a study needs its own name" in " ".join(result.output.split())
    (suite / "c_dup.yaml").unlink()
    out = tmp_path / "s"
    _study(str(suite), "--out", str(out), "--quiet", "--set", "training.epochs=5")
    result = runner.invoke(app, ["study", str(suite), "--out", str(out), "--resume", "--set", "training.epochs=6"])
    assert result.exit_code == 2 and "cannot resume" in result.output
    result = runner.invoke(app, ["study", str(suite), "--out", str(out)])
    assert result.exit_code == 2 and "add --resume" in " ".join(result.output.split())


def test_bare_study_quick_runs_the_built_in_suite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _study("--quick", "--set", "training.epochs=20", "--quiet")
    out = Path(result.output.strip().removeprefix("results: "))
    assert out.parent == Path("results") / "study"
    table = _assert_study_matches_problem_dirs(out)
    assert table["problem"].nunique() == 10
    mnist = table[table["problem"] == "suite-mnist1d"]
    assert list(mnist["variant"]) == ["ce-softmax", "mse-softmax", "ce", "mse"] and mnist["final_test_accuracy"].notna().all()


def test_compare_and_ls_read_a_study_directory_as_its_problems(suite, tmp_path):
    out = tmp_path / "s"
    _study(str(suite), "--out", str(out), "--quiet", "--set", "training.epochs=5")
    result = runner.invoke(app, ["compare", str(out), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "xor-small" in result.output and "iris-small" in result.output
    from nnrun.results import listing

    # the two problems; the study's own manifest is no experiment
    assert sorted((e["path"].name, e["status"]) for e in listing(out)) == [("iris-small", "complete"), ("xor-small", "complete")]
    assert runner.invoke(app, ["ls", str(out)]).exit_code == 0


def _study_in_its_third_problem(suite: Path, out: Path) -> subprocess.Popen:
    """`nnrun study` in a subprocess, returned once its third (long) problem has started."""
    long = _problem("xor-long", training={"epochs": 12000}, seeds=40, convergence={"stop_converged": False}, logging={"every": 500})
    (suite / "c_long.yaml").write_text(yaml.safe_dump(long))
    cmd = [sys.executable, "-m", "nnrun", "study", str(suite), "--out", str(out), "--workers", "1", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while not (out / "xor-long" / "manifest.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the study never reached its third problem"
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_sigkill_during_a_problem_then_resume_completes_without_retraining_finished_ones(suite, tmp_path):
    out = tmp_path / "killed"
    proc = _study_in_its_third_problem(suite, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"  # as a kill leaves it
    assert json.loads((out / "xor-long" / "manifest.json").read_text())["status"] in ("running", "partial")
    stamps = {name: (out / name / "runs.csv").stat().st_mtime_ns for name in ("xor-small", "iris-small")}

    result = _study(str(suite), "--out", str(out), "--resume")
    assert "[1/3] xor-small: skipped" in result.output and "[2/3] iris-small: skipped" in result.output
    assert {name: (out / name / "runs.csv").stat().st_mtime_ns for name in stamps} == stamps
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    ref = tmp_path / "ref"
    _study(str(suite), "--out", str(ref), "-q")
    pd.testing.assert_frame_equal(pd.read_csv(out / "study.csv"), pd.read_csv(ref / "study.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(out / "xor-long" / "runs.csv"), pd.read_csv(ref / "xor-long" / "runs.csv"))


@pytest.mark.slow
@pytest.mark.parametrize(("signame", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_during_a_study_exits_with_its_code_and_prints_the_studys_resume_command(suite, tmp_path, signame, code):
    out = tmp_path / "stopped"
    proc = _study_in_its_third_problem(suite, out)
    proc.send_signal(getattr(signal, signame))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, (stdout, stderr)
    text = " ".join(stderr.split())
    assert "Traceback" not in stderr and f"Interrupted ({signame}): 2 of 3 problems are finished in {out}" in text, stderr
    assert f"nnrun study {suite} --workers 1 -q --out {out} --resume" in text
