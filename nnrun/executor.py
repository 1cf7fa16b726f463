"""Plans an experiment into chunks and trains them on local processes or Dask.

A config expands into cells (sweep-axis combinations) × variants; each (cell, variant) is
a batch of learning rates × seeds, cut into chunks of at most ``chunk_runs`` runs. Chunks
are the unit of work, of journaling and of resume: ``run_chunk`` trains one and returns its
arrays under the journal's keys (``nnrun.results`` stores them; ``api`` drives the runs). The
engine's results do not depend on how runs are chunked, so neither the worker count nor the
executor changes a row.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from nnrun import backends
from nnrun import datasets as ds
from nnrun import results as rs
from nnrun import signals
from nnrun.config import Cell, Config, cells
from nnrun.datasets import Data, DataError
from nnrun.engine import TrainSpec, init_params
from nnrun.errors import UsageError, hint
from nnrun.registry import Param

# Memory a chunk may use while training (bytes); chunks never hold more runs than this allows.
CHUNK_BYTES = 256 * 2**20
# More runs per chunk than this stops paying: NumPy's per-call overhead is amortised by then.
MAX_CHUNK_RUNS = 4096


@dataclass(frozen=True)
class Chunk:
    """Runs ``start .. start+size−1``: positions ``lo .. hi−1`` of one (cell, variant) batch,
    whose runs go learning rate → seed. Positions, not value lists, keep a million-run plan
    small; ``lrs_seeds`` turns them into values with the cell's config. A search round's
    batch carries its own rates (``lrs``); the first round's are the config's."""

    id: int
    cell: int
    variant: int
    start: int
    lo: int
    hi: int
    round: int = 0
    lrs: tuple[float, ...] | None = None

    @property
    def size(self) -> int:
        return self.hi - self.lo

    @property
    def run_ids(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.size)

    def lrs_seeds(self, config: Config) -> tuple[np.ndarray, np.ndarray]:
        """(learning rates, seeds) of this chunk's runs, from its cell's config."""
        seeds = np.arange(config.seeds) if isinstance(config.seeds, int) else np.asarray(config.seeds, dtype=np.int64)
        pos = np.arange(self.lo, self.hi)
        rates = self.lrs if self.lrs is not None else config.first_rates()
        return np.asarray(rates, dtype=float)[pos // len(seeds)], seeds[pos % len(seeds)]


@dataclass(frozen=True)
class Plan:
    config: Config
    cells: tuple[Cell, ...]
    chunks: tuple[Chunk, ...]
    chunk_runs: int

    @property
    def n_runs(self) -> int:
        return sum(c.size for c in self.chunks)

    @property
    def rounds(self) -> int:
        """How many rounds of rates the plan holds (1 without a search)."""
        return 1 + max((c.round for c in self.chunks), default=0)

    def extend(self, rates: dict[tuple[int, int], list[float]]) -> "Plan":
        """This plan and one more round: for each (cell, variant) in ``rates``, its new
        rates × seeds, run ids and chunk ids continuing, in cell → variant → rate → seed order."""
        chunks, run_id, r = list(self.chunks), self.n_runs, self.rounds
        n_seeds = len(self.config.seed_list())
        for (cell, variant), lrs in sorted(rates.items()):
            batch = len(lrs) * n_seeds
            for lo in range(0, batch, self.chunk_runs):
                chunks.append(Chunk(len(chunks), cell, variant, run_id + lo, lo, min(batch, lo + self.chunk_runs), r, tuple(sorted(lrs))))
            run_id += batch
        return Plan(self.config, self.cells, tuple(chunks), self.chunk_runs)


def per_run_bytes(config: Config, data: Data | None = None) -> int:
    """A generous estimate of one run's working memory in the engine."""
    n = len(data.X) if data is not None else 4
    d = data.X.shape[1] if data is not None else 3
    k = 10 if data is None else data.n_outputs("softmax")
    sizes = [d, *config.model.hidden, k]
    params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    units = sum(sizes)
    batch = n if config.training.batch_size == "full" else min(n, int(config.training.batch_size))
    logged = config.training.epochs // config.logging.every + 2
    itemsize = 4 if config.training.dtype == "float32" else 8
    return itemsize * (8 * params + 6 * n * units + 4 * batch * units) + 3 * 8 * logged + 64


def plan(config: Config, chunk_runs: int | None = None, workers: int = 1) -> Plan:
    """Chunks in run-id order; run ids go cell → variant → learning rate → seed."""
    all_cells = tuple(cells(config))
    seeds = config.seed_list()
    batch = len(config.first_rates()) * len(seeds)
    if chunk_runs is None:
        total = batch * len(config.variants) * len(all_cells)
        cap = min(MAX_CHUNK_RUNS, max(1, CHUNK_BYTES // max(per_run_bytes(c.config, _data_or_none(c.config)) for c in all_cells)))
        # One chunk per worker where memory allows: wide batches amortise NumPy's per-call
        # cost (benchmarks/: 1,000 runs a call train ~2x faster than 250), and dropping
        # frozen runs keeps a chunk's long tail of unconverged runs cheap.
        chunk_runs = max(1, min(cap, max(64, math.ceil(total / max(1, workers)))))
    chunks = []
    run_id = 0
    for cell in all_cells:
        for v in range(len(cell.config.variants)):
            for lo in range(0, batch, chunk_runs):
                chunks.append(Chunk(len(chunks), cell.index, v, run_id + lo, lo, min(batch, lo + chunk_runs)))
            run_id += batch
    return Plan(config, all_cells, tuple(chunks), chunk_runs)


def _data_or_none(config: Config) -> Data | None:
    try:
        return load_data(config)
    except DataError:
        return None


@functools.lru_cache(maxsize=8)
def _load_data_cached(dataset_json: str) -> Data:
    """The data set a config's ``dataset`` section (as JSON) describes: every key it sets is
    passed on, so a parameter the registry adds needs nothing here."""
    import json

    given = {k: v for k, v in json.loads(dataset_json).items() if v is not None}
    return ds.load(given.pop("name"), **given)


def load_data(config: Config) -> Data:
    return _load_data_cached(config.dataset.model_dump_json())


def layer_sizes(config: Config, data: Data, output: str) -> list[int]:
    return [data.X.shape[1], *config.model.hidden, data.n_outputs(output)]


def load_init_file(config: Config, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Weights for `init: file`: W1, b1, … from an .npz, or run `run_id`'s final weights.

    ``path`` is an .npz, a results directory holding ``weights.npz``, or a directory with
    exactly one such results directory below it (``results/<name>/``). With ``run_id`` the
    arrays are that run's final ``r{run_id}.W{l}``/``r{run_id}.b{l}``, so a full-batch SGD
    run warm-started for E2 epochs ends exactly where one run of E1 + E2 epochs ends.
    Minibatch shuffles and optimiser state (momentum, Adam) restart, so those only resume.
    """
    init = config.model.init
    path = rs.weights_file(Path(init.path))  # type: ignore[arg-type]
    # Fine-tuning on the same data with another split (or a split after training on all of
    # it) would train on the samples it then reports as held out.
    trained = rs.trained_dataset(path)
    now = config.dataset
    if isinstance(trained, dict) and (trained.get("name"), trained.get("path")) == (now.name, now.path) and now.test_fraction > 0:
        split = (float(trained.get("test_fraction", 0.0)), int(trained.get("shuffle_seed", 0)))
        if split != (now.test_fraction, now.shuffle_seed):
            raise DataError(
                f"{path}: these weights were trained on {now.name} with test_fraction {split[0]} and shuffle_seed {split[1]}, "
                f"but this config holds out test_fraction {now.test_fraction} with shuffle_seed {now.shuffle_seed}, "
                "so its test samples may have been trained on; use the same dataset.test_fraction and dataset.shuffle_seed"
            )
    return rs.read_init_weights(path, init.run_id, sizes, config.model.bias)


def train_spec(config: Config, variant_index: int) -> TrainSpec:
    t, c = config.training, config.convergence
    return TrainSpec(
        variant=config.variant_objects()[variant_index],
        activation=config.model.activation,
        epochs=t.epochs,
        batch_size=None if t.batch_size == "full" else int(t.batch_size),
        reduction=t.reduction,
        optimizer=t.optimizer.name,
        optimizer_args=t.optimizer.args(),
        dtype=t.dtype,
        criterion=c.criterion,
        threshold=c.threshold,
        metric=c.metric,
        check_every=c.check_every,
        stop_converged=c.stop_converged,
        log_every=config.logging.every,
        keep_weights=config.logging.save_weights,
    )


@functools.lru_cache(maxsize=4)
def _cells_cached(config_json: str) -> tuple[Cell, ...]:
    return tuple(cells(Config.model_validate_json(config_json)))


def run_chunk(config_json: str, chunk: Chunk) -> dict[str, np.ndarray]:
    """Train one chunk; returns its per-run arrays, ready for the journal."""
    cell = _cells_cached(config_json)[chunk.cell]
    config = cell.config
    spec = train_spec(config, chunk.variant)
    data = load_data(config)
    sizes = layer_sizes(config, data, spec.variant.output)
    lrs, seeds = chunk.lrs_seeds(config)
    given = load_init_file(config, sizes) if config.model.init.scheme == "file" else None
    Ws, bs = init_params(config.model.init.scheme, sizes, seeds, scale=config.model.init.scale, bias=config.model.bias, dtype=config.training.dtype, given=given)
    Y = data.targets(spec.variant.output)
    Y_test = data.targets(spec.variant.output, test=True) if data.X_test is not None else None
    with _one_blas_thread():  # a per-run product must not depend on how BLAS splits work
        res = backends.train(config.training.backend, spec, data.X, Y, Ws, bs, lrs, seeds, data.X_test, Y_test)
    return rs.journal_entry(chunk.run_ids, res)


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


# ----------------------------------------------------------------------------- executors


def _worker_init(parent: int, threads: int) -> None:
    signals.worker_init(parent)
    backends.set_threads(threads)
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def compiled(config_json: str) -> bool:
    """Whether the compiled kernel trains every chunk of this config."""
    return all(c.config.training.backend == "numba" and backends.not_covered(c.config.training.optimizer.name) is None for c in _cells_cached(config_json))


def spread(config_json: str, workers: int, chunks: int) -> tuple[int, int]:
    """(processes, threads each) to train ``chunks`` chunks on ``workers`` cores; 0 processes:
    in this one. A process forked before this one loaded the compiled kernel starts numba
    itself (~0.4 s of CPU), so on a cold kernel no more chunks than workers go to one process
    with a thread a core (W1 at 1e7 network-epochs, 2 chunks: 0.2 s sooner). More chunks go
    to a process a core, as they do once the kernel is loaded here: threads share only the
    kernel's epochs, not a chunk's Python work (its logged epochs, its results; W1 at 1e8,
    6 chunks: 0.6 s sooner in two processes)."""
    if workers <= 1:
        return 0, 1
    kernel = compiled(config_json)
    if kernel and not backends.kernel_loaded():
        return (1, workers) if chunks <= workers else (workers, 1)
    if chunks <= 1:
        return 0, workers if kernel else 1  # the loaded kernel's threads, or NumPy on one core
    return workers, 1


def _pool_context():
    """fork where the platform has it: workers start in milliseconds, before pandas loads,
    and their parent is nnrun itself, so they can be tied to its life."""
    import multiprocessing

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)


def iter_local(
    config_json: str, chunks: list[Chunk], workers: int, *, while_waiting: Callable[[], None] | None = None, **_: object
) -> Iterator[tuple[Chunk, dict]]:
    """Yield (chunk, result) as chunks finish: inline for one worker, else a process pool
    (see ``spread``: one process with a thread a worker for a few chunks on a cold kernel).

    Starting the pool and submitting happen with signals deferred (a worker forked while a
    handler is about to raise would inherit it); ``while_waiting`` too (an import cut in half
    leaves a broken module behind). The caller decides where waiting may be interrupted.
    """
    processes, threads = spread(config_json, workers, len(chunks))
    if processes == 0:
        backends.set_threads(threads)
        for chunk in chunks:
            yield chunk, run_chunk(config_json, chunk)
        return
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with signals.deferred():
        pool = ProcessPoolExecutor(max_workers=processes, mp_context=_pool_context(), initializer=_worker_init, initargs=(os.getpid(), threads))
    try:
        with signals.deferred():
            futures = {pool.submit(run_chunk, config_json, c): c for c in chunks}
            if while_waiting is not None:
                while_waiting()
        for fut in as_completed(futures):
            chunk = futures.pop(fut)  # a finished future holds its result: let it go
            yield chunk, fut.result()
    finally:
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            with contextlib.suppress(Exception):
                p.kill()


def iter_dask(config_json: str, chunks: list[Chunk], workers: int, *, scheduler: str | None = None, **_: object) -> Iterator[tuple[Chunk, dict]]:
    """Yield (chunk, result) from a Dask cluster: ``scheduler``'s, or a local one."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UsageError("--executor dask needs the 'dask' extra: pip install 'nnrun[dask]'") from None
    cluster = None
    try:
        with signals.deferred():  # a cluster half started by a signal would be nobody's to close
            if scheduler:
                try:
                    client = Client(scheduler, timeout="10s")
                except (OSError, TimeoutError) as exc:
                    raise UsageError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there ({exc})") from None
            else:
                # Its worker processes exit when this process dies (Dask's parent-alive pipe).
                cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None)
                client = Client(cluster)
        with client:
            with signals.deferred():
                futures = {client.submit(run_chunk, config_json, c, pure=False, key=f"nnrun-chunk-{c.id}-{time.time_ns()}"): c for c in chunks}
            for fut in as_completed(list(futures)):
                chunk = futures.pop(fut)
                result = fut.result()
                fut.release()  # the cluster may forget it once the client has it
                yield chunk, result
    finally:
        if cluster is not None:
            cluster.close()


@dataclass(frozen=True)
class Executor:
    """Where chunks are trained: ``run(config_json, chunks, workers, scheduler=…,
    while_waiting=…)`` yields (chunk, result) as chunks finish, taking the keyword options it
    uses; ``params`` are the command-line options it reads."""

    name: str
    description: str
    run: Callable[..., Iterator[tuple[Chunk, dict]]]
    params: tuple[Param, ...] = ()

    def takes(self, option: str) -> bool:
        return any(p.name == option for p in self.params)


WORKERS = Param("workers", int, None, "cores to train on (--workers; default: all): processes, or threads of one for the compiled backend", ge=1)
EXECUTORS: dict[str, Executor] = {
    e.name: e
    for e in (
        Executor("local", "this machine's processes: a pool (one process of threads for the compiled backend), or inline for one worker", iter_local, (WORKERS,)),
        Executor(
            "dask", "a Dask cluster: --scheduler's, or a local one of --workers processes (the 'dask' extra)",
            iter_dask,
            (WORKERS, Param("scheduler", str, None, "address of a running Dask scheduler (--scheduler), e.g. tcp://host:8786")),
        ),
    )
}  # fmt: skip


def check_executor(name: str) -> Executor:
    """The registry's entry for ``--executor name``; a UsageError listing them otherwise."""
    if name not in EXECUTORS:
        names = list(EXECUTORS)
        listed = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise UsageError(f"--executor must be {listed}, got {name!r}{hint(name, names)}")
    return EXECUTORS[name]


def iterate(
    config_json: str, chunks: list[Chunk], *, workers: int, executor: str = "local", scheduler: str | None = None, while_waiting: Callable[[], None] | None = None
) -> Iterator[tuple[Chunk, dict]]:
    """(chunk, result) pairs as chunks finish; ``while_waiting`` runs once work is out. A
    ``scheduler`` address picks an executor that takes one when ``executor`` does not."""
    entry = check_executor(executor)
    if scheduler and not entry.takes("scheduler"):
        entry = next(e for e in EXECUTORS.values() if e.takes("scheduler"))
    return entry.run(config_json, chunks, workers, scheduler=scheduler, while_waiting=while_waiting)
