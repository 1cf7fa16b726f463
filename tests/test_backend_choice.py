"""Which backend trains a sweep: ``training.backend`` resolved once per sweep, before anything
runs. Pretends numba is installed where it is not: nothing here trains."""

import pytest

from nnrun import api, backends
from nnrun.config import load


@pytest.fixture
def numba_here(monkeypatch):
    monkeypatch.setattr(backends, "numba_installed", lambda: True)


def _backend(grid=(), **overrides) -> str:
    config = load(None, overrides=[f"{k}={v}" for k, v in overrides.items()], grid=grid)
    return api._with_backend(config).training.backend


def test_auto_compiles_a_full_batch_sweep(numba_here):
    assert _backend() == "numba"


def test_auto_keeps_minibatches_on_numpy_where_it_is_faster(numba_here):
    assert _backend(**{"training.batch_size": 2}) == "numpy"


def test_auto_keeps_a_sweep_with_any_minibatch_cell_on_numpy(numba_here):
    assert _backend(grid=["training.batch_size=full,2"]) == "numpy"


def test_an_explicit_choice_is_kept(numba_here):
    assert _backend(**{"training.backend": "numba", "training.batch_size": 2}) == "numba"
    assert _backend(**{"training.backend": "numpy"}) == "numpy"


def test_auto_without_numba_is_numpy(monkeypatch):
    monkeypatch.setattr(backends, "numba_installed", lambda: False)
    assert _backend() == "numpy"


def _spread(workers: int, chunks: int, grid=(), **overrides) -> tuple[int, int]:
    from nnrun import executor

    config = api._with_backend(load(None, overrides=[f"{k}={v}" for k, v in overrides.items()], grid=grid))
    return executor.spread(config.model_dump_json(), workers, chunks)


@pytest.fixture
def cold(monkeypatch):
    monkeypatch.setattr(backends, "kernel_loaded", lambda: False)


def test_no_more_chunks_than_workers_on_a_cold_kernel_train_in_one_process_of_threads(numba_here, cold):
    assert _spread(4, 1) == (1, 4)  # one chunk too: this process imports the statistics meanwhile
    assert _spread(4, 4) == (1, 4)
    assert _spread(1, 16) == (0, 1)  # --workers 1: here, on one core


def test_many_chunks_or_a_loaded_kernel_get_a_process_a_worker(numba_here, cold, monkeypatch):
    assert _spread(4, 5) == (4, 1)  # each chunk's Python work in parallel outweighs numba's starts
    monkeypatch.setattr(backends, "kernel_loaded", lambda: True)  # forked workers start with it
    assert _spread(4, 2) == (4, 1)
    assert _spread(4, 1) == (0, 4)  # one chunk: here, on the loaded kernel's threads


def test_the_numpy_engine_and_runs_numba_does_not_cover_keep_a_process_a_worker(numba_here, cold):
    assert _spread(4, 2, **{"training.backend": "numpy"}) == (4, 1)
    assert _spread(4, 1, **{"training.backend": "numpy"}) == (0, 1)
    # auto: adam cells train on the NumPy engine, so the sweep keeps its processes
    assert _spread(4, 2, grid=["training.optimizer.name=sgd,adam"]) == (4, 1)
