"""The compiled backend against the NumPy engine (the reference), its exp against np.exp,
and the backend setting through the CLI: choice, manifest, resume, unwritable cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from nnrun import backends, engine
from nnrun.cli import app
from nnrun.variants import VARIANTS
from conftest import ROOT

runner = CliRunner()
needs_numba = pytest.mark.skipif(not backends.numba_installed(), reason="the numba extra is not installed")
XOR_X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], float)
XOR_Y = np.array([[0], [1], [1], [0]], float)


@needs_numba
@pytest.mark.parametrize("dtype, ulps", [("float64", 1), ("float32", 3)])
def test_fast_exp_is_within_an_ulp_or_so_of_numpy_and_saturates_like_it(dtype, ulps):
    from numba import njit

    from nnrun.backends.exp_kernel import fast_exp

    @njit
    def exps(x, out):
        for i in range(x.size):
            out[i] = fast_exp(x[i])

    rng = np.random.default_rng(0)
    special = [np.nan, np.inf, -np.inf, 0.0, -0.0, 709.78, 709.79, -745.13, -745.14, 88.72, 88.73, -103.9, -104.0, 1e-300]
    x = np.concatenate([rng.uniform(-760, 720, 200_000), rng.uniform(-20, 20, 200_000), special]).astype(dtype)
    got = np.empty_like(x)
    exps(x, got)
    with np.errstate(all="ignore"):
        want = np.exp(x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got == np.inf, want == np.inf) and np.array_equal(got == 0, want == 0)
    normal = np.isfinite(want) & (want > np.finfo(dtype).tiny)
    assert np.max(np.abs(got[normal] - want[normal]) / np.spacing(want[normal])) <= ulps
    sub = np.isfinite(want) & (want > 0) & ~normal  # subnormal results: an absolute ulp of the smallest
    assert np.max(np.abs(got[sub] - want[sub])) <= ulps * np.finfo(dtype).smallest_subnormal


def _both(spec, X, Y, sizes, R=64, lr=1.0, bias=False):
    seeds = np.arange(R)
    lrs = np.full(R, lr) if np.isscalar(lr) else np.asarray(lr)
    out = []
    for train in (engine.train, _numba_train()):
        Ws, bs = engine.init_params("legacy", sizes, seeds, bias=bias, dtype=spec.dtype)
        out.append((train(spec, X, Y, Ws, bs, lrs, seeds), Ws, bs))
    return out


def _numba_train():
    from nnrun.backends import numba_train

    return numba_train.train


def _assert_agree(ref, got, rel=1e-5):
    (a, Wa, ba), (b, Wb, bb) = ref, got
    np.testing.assert_array_equal(a.diverged, b.diverged)
    np.testing.assert_array_equal(a.converged, b.converged)
    same = a.epochs_to_converge == b.epochs_to_converge
    assert same.mean() >= 0.99 and np.abs(a.epochs_to_converge - b.epochs_to_converge).max() <= 1
    # Weights: the runs that converged. Most agree to ~1e-15 relative; a run on a sensitive
    # trajectory (large rates, long plateaus) amplifies exp's last-bit differences, to ~1e-6
    # over 1000 epochs at rate 2 on XOR, so the bound here is 1e-5, not the hoped-for 1e-9.
    ok = a.converged
    params = [(p, q) for p, q in zip(Wa + ba, Wb + bb) if p is not None]
    scale = np.max([np.abs(p).reshape(-1, p.shape[-1]).max(axis=0) for p, _ in params], axis=0)
    err = np.max([np.abs(p - q).reshape(-1, p.shape[-1]).max(axis=0) for p, q in params], axis=0)
    assert np.all(err[ok] <= rel * scale[ok]), f"largest relative difference {np.max(err[ok] / scale[ok]):.2e}"


@needs_numba
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("batch_size", [None, 2])
def test_every_variant_activation_and_batching_agrees_with_numpy(variant, activation, batch_size):
    v = VARIANTS[variant]
    X = np.random.default_rng(1).normal(size=(6, 3))
    Y = (np.eye(2)[[0, 1, 1, 0, 1, 0]] if v.output == "softmax" else np.array([[0.0], [1], [1], [0], [1], [0]]))
    k = Y.shape[1]
    spec = engine.TrainSpec(variant=v, activation=activation, epochs=200, batch_size=batch_size, log_every=50, reduction="mean" if batch_size else "sum", threshold=0.2)
    ref, got = _both(spec, X, Y, [3, 4, 3, k], R=200, lr=np.geomspace(0.02, 0.5, 200), bias=True)
    _assert_agree(ref, got)
    ok = ref[0].converged & (ref[0].epochs_to_converge == got[0].epochs_to_converge)  # stopped at the same epoch
    for key in ("mse", "max_error", "accuracy"):
        np.testing.assert_allclose(got[0].final[key][ok], ref[0].final[key][ok], rtol=1e-4, atol=1e-9)


@needs_numba
@pytest.mark.parametrize("criterion, metric, threshold", [("max_error", None, 0.1), ("accuracy", None, 1.0), ("loss", "mse", 0.01), ("loss", "ce", 0.05)])
def test_the_seeds_xor_agrees_over_1000_epochs_for_every_criterion(criterion, metric, threshold):
    for variant in ("ce", "mse"):
        spec = engine.TrainSpec(variant=VARIANTS[variant], epochs=1000, criterion=criterion, metric=metric, threshold=threshold, log_every=100)
        ref, got = _both(spec, XOR_X, XOR_Y, [3, 4, 1], R=300, lr=np.repeat([0.5, 1.0, 2.0], 100))
        _assert_agree(ref, got)


@needs_numba
def test_diverging_and_nan_runs_are_flagged_as_numpy_flags_them():
    X = np.random.default_rng(2).normal(size=(8, 3)) * 10
    Y = X @ np.array([[1.0], [-2.0], [0.5]]) * 100
    spec = engine.TrainSpec(variant=VARIANTS["mse-linear"], activation="relu", epochs=200, log_every=7, threshold=1e-3)
    ref, got = _both(spec, X, Y, [3, 5, 1], R=40, lr=np.geomspace(1e-6, 10.0, 40), bias=True)
    assert ref[0].diverged.any() and not ref[0].diverged.all()
    _assert_agree(ref, got)
    np.testing.assert_array_equal(ref[0].epochs_run[ref[0].diverged], got[0].epochs_run[got[0].diverged])


@needs_numba
def test_a_cross_entropy_criterion_on_a_linear_output_never_converges_as_in_numpy():
    X = np.random.default_rng(3).normal(size=(6, 3))
    spec = engine.TrainSpec(variant=VARIANTS["mse-linear"], epochs=50, criterion="loss", metric="ce", threshold=10.0, log_every=20)
    ref, got = _both(spec, X, X[:, :1], [3, 4, 1], R=16, lr=0.01)
    assert not ref[0].converged.any() and not ref[0].diverged.any()
    _assert_agree(ref, got)


@needs_numba
def test_float32_agrees_to_float32_precision():
    spec = engine.TrainSpec(variant=VARIANTS["mse"], epochs=300, dtype="float32", log_every=100)
    ref, got = _both(spec, XOR_X, XOR_Y, [3, 4, 1], R=64, lr=2.0)
    _assert_agree(ref, got, rel=1e-4)


@needs_numba
def test_a_runs_numbers_do_not_depend_on_its_batch_or_threads():
    import numba

    from nnrun.backends import numba_train

    spec = engine.TrainSpec(variant=VARIANTS["ce"], epochs=400, batch_size=2, log_every=100)
    seeds = np.arange(300)  # more than a block of lanes
    whole_W, _ = engine.init_params("legacy", [3, 4, 1], seeds)
    backends.set_threads(2)  # two blocks of 150 runs, one a thread (where there are 2 cores)
    try:
        whole = numba_train.train(spec, XOR_X, XOR_Y, whole_W, [None, None], np.full(300, 2.0), seeds)
    finally:
        backends.set_threads(1)
    numba.set_num_threads(1)
    for part in (slice(0, 7), slice(7, 300)):
        Ws, _ = engine.init_params("legacy", [3, 4, 1], seeds[part])
        res = numba_train._Training(spec, XOR_X, XOR_Y, Ws, [None, None], np.full(len(seeds[part]), 2.0), seeds[part]).run(None, None)
        np.testing.assert_array_equal(res.epochs_to_converge, whole.epochs_to_converge[part])
        for W, Wall in zip(Ws, whole_W):
            np.testing.assert_array_equal(W, Wall[..., part])


def test_an_explicit_numba_that_cannot_run_exits_2_before_training(write_config, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "numba_installed", lambda: False)
    result = runner.invoke(app, ["train", str(write_config()), "--out", str(tmp_path / "a"), "--set", "training.backend=numba"])
    assert result.exit_code == 2 and "pip install 'nnrun[numba]'" in result.output
    monkeypatch.setattr(backends, "numba_installed", lambda: True)
    result = runner.invoke(app, ["train", str(write_config()), "--out", str(tmp_path / "b"), "--set", "training.backend=numba", "--set", "training.optimizer.name=adam"])
    assert result.exit_code == 2 and "training.optimizer 'adam'" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_manifest_records_the_backend_and_resume_refuses_another(write_config, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "numba_installed", lambda: True)  # refused before anything trains
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", str(write_config()), "--out", str(out), "--set", "training.backend=numpy", "--workers", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == "numpy"
    manifest["status"] = "partial"
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["train", str(write_config()), "--out", str(out), "--resume", "--set", "training.backend=numba"])
    assert result.exit_code == 2
    assert "trained by the numpy backend" in result.output and "training.backend=numpy" in result.output


@needs_numba
@pytest.mark.slow
def test_an_unwritable_cache_directory_compiles_without_caching(write_config, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory below a file cannot be made, even by root
    env = {**os.environ, "NUMBA_CACHE_DIR": str(blocker / "numba")}
    code = "from nnrun.backends import jit; print(jit.CACHING)"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip() == "False"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nnrun", "train", str(write_config()), "--out", str(out), "--set", "training.backend=numba", "--workers", "1"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "manifest.json").read_text())["backend"] == "numba"


_COMPILE_THEN_FORK = """
import numba  # imported by another library before nnrun: nnrun's settings come after numba's first read
import sys
from pathlib import Path
import numpy as np
from typer.testing import CliRunner
from nnrun import engine
from nnrun.backends import numba_train
from nnrun.cli import app
from nnrun.variants import VARIANTS
from nnrun.backends.jit import numba as nb

nb.njit(lambda x: x + 1)(1.0)  # compiles: numba re-reads the environment nnrun changed since its import

X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], float)
Y = np.array([[0], [1], [1], [0]], float)
Ws, bs = engine.init_params("legacy", [3, 4, 1], np.arange(4))
numba_train.train(engine.TrainSpec(variant=VARIANTS["ce"], epochs=50), X, Y, Ws, bs, np.ones(4), np.arange(4))  # compiles here
config, out = sys.argv[1], sys.argv[2]
result = CliRunner().invoke(app, ["train", config, "--out", out, "-q", "--workers", "2", "--set", "training.backend=numba"])
print(result.exit_code, result.output)
"""


@needs_numba
@pytest.mark.slow
def test_a_process_that_compiled_the_kernel_can_fork_workers(write_config, tmp_path):
    """numba re-reads its config from the environment when it compiles; the threading layer
    must stay one that survives fork (GNU OpenMP aborts forked workers), even where numba was
    imported before nnrun set its cache directory."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cache")  # compile afresh, as on a new machine
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", _COMPILE_THEN_FORK, str(write_config(seeds=8)), str(out)], env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.stdout.startswith("0 "), (done.stdout, done.stderr)
    assert "OpenMP" not in done.stderr
    assert json.loads((out / "manifest.json").read_text())["backend"] == "numba"


@needs_numba
@pytest.mark.parametrize(
    "runs, threads, blocks, width",
    [(600, 2, 4, 152), (1000, 2, 4, 256), (1000, 1, 4, 256), (300, 2, 2, 152), (600, 1, 3, 200), (256, 1, 1, 256), (1, 2, 1, 8), (20, 4, 3, 8), (0, 2, 0, 1)],
)
def test_blocks_share_the_runs_evenly_between_threads(runs, threads, blocks, width):
    from nnrun.backends import numba_kernel

    assert numba_kernel._blocks(runs, threads) == (blocks, width)
    assert (blocks - 1) * width < runs <= blocks * width or runs == 0  # every run in one block, no block empty
    assert width % numba_kernel.ALIGN == 0 or runs == 0


_TRAIN_AND_COUNT = """
import numpy as np
from nnrun import backends, engine
from nnrun.backends import numba_kernel, numba_train
from nnrun.variants import VARIANTS

X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], float)
Y = np.array([[0], [1], [1], [0]], float)
backends.set_threads(2)
Ws, bs = engine.init_params("legacy", [3, 4, 1], np.arange(300))
numba_train.train(engine.TrainSpec(variant=VARIANTS["ce"], epochs=20), X, Y, Ws, bs, np.ones(300), np.arange(300))
stats = numba_kernel.run_epochs.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


@needs_numba
@pytest.mark.slow
def test_the_kernel_is_compiled_once_then_loaded_from_the_cache(tmp_path):
    """A kernel numba cannot cache (a dynamic global, say) would compile in every process,
    seconds each: the second process must load it."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first, second = (subprocess.run([sys.executable, "-c", _TRAIN_AND_COUNT], env=env, capture_output=True, text=True, cwd=ROOT, timeout=600) for _ in range(2))
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    assert first.stdout.split() == ["0", "1"]  # compiled (a miss), and written to the cache
    assert second.stdout.split() == ["1", "0"], second.stderr
    assert "NumbaWarning" not in first.stderr + second.stderr


@needs_numba
def test_warming_loads_the_kernel_in_this_process():
    code = "from nnrun import backends; a = backends.kernel_loaded(); backends.warm('float64'); print(a, backends.kernel_loaded())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.stdout.split() == ["False", "True"], done.stderr
