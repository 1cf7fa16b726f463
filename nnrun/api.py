"""The one execution path shared by `nnrun train`, `nnrun sweep` and `nnrun.run()`.

``execute`` creates (or resumes) a results directory, trains the missing chunks on the
chosen executor round by round (a learning-rate search adds rounds), journals each chunk
as it finishes, and has ``nnrun.results`` assemble the results files from the journal;
the statistics tables are computed here. ``load`` reads an experiment back.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import yaml

from nnrun import results as rs
from nnrun import signals
from nnrun.config import Config, ConfigError, cells
from nnrun.config import load as load_config
from nnrun.executor import Plan, iterate, layer_sizes, load_data, load_init_file, plan as make_plan

if TYPE_CHECKING:  # pandas and scipy load while the workers train (see execute)
    import pandas as pd


class Interrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM: what finished is saved in ``path`` (None: nothing was
    started) and ``resume_command`` goes on from there."""

    def __init__(
        self, path: Path | None, resume_command: str, *, signum: int | None = None, runs_done: int = 0, runs_total: int | None = None, status: str = "partial"
    ) -> None:
        self.path = path
        self.resume_command = resume_command
        self.signum = signum or signal.SIGINT
        self.runs_done = runs_done
        self.runs_total = runs_total
        self.status = status
        super().__init__(self.message())

    @property
    def code(self) -> int:
        """The exit status a shell reports for the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum

    def message(self) -> str:
        name = signal.Signals(self.signum).name
        if self.path is None:
            return f"Interrupted ({name}) before the run started; no runs were saved. Start it again with:\n  {self.resume_command}"
        if self.status == "complete":
            return f"Interrupted ({name}) as the run ended: all {self.runs_done} runs are saved in {self.path} (status: complete); nothing is left to resume."
        saved = f"{self.runs_done} of {self.runs_total} runs are saved" if self.runs_done else f"no runs had finished, so none of {self.runs_total} are saved yet"
        return f"Interrupted ({name}): {saved} in {self.path} (status: partial). Resume with:\n  {self.resume_command}"


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame()


@dataclass
class RunResult:
    """An experiment, from ``nnrun.run`` or ``nnrun.load``: ``.runs`` is read from runs.csv
    when first asked for, so a million-run sweep never holds every row in memory unasked.
    A partial experiment has the rows that finished and empty tables."""

    path: Path
    config: Config
    summary: pd.DataFrame
    comparison: pd.DataFrame = field(default_factory=_empty_frame)
    tuned: pd.DataFrame = field(default_factory=_empty_frame)
    manifest: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        """complete, partial (interrupted), or running."""
        return str(self.manifest.get("status", "complete"))

    @functools.cached_property
    def runs(self) -> pd.DataFrame:
        if self.status != "complete" and not rs.has_runs(self.path):
            return _empty_frame()  # interrupted before its first rows were written
        return rs.read_runs(self.path)


def load(directory: str | Path) -> RunResult:
    """An experiment as stored in its results directory; reads only, never computes.

    ``nnrun.load("results/xor/20260101-120000-1a2b3c4d")`` gives ``.config``,
    ``.manifest``, ``.status`` and the ``.runs``, ``.summary``, ``.comparison`` and
    ``.tuned`` DataFrames; those a partial run has not written yet are empty.
    """
    directory = Path(directory)
    manifest = rs.read_manifest(directory)
    tables = [rs.read_table(directory, name) for name in ("summary", "comparison", "tuned")]
    return RunResult(directory, rs.read_config(directory), *tables, manifest=manifest)


def default_config() -> dict:
    """The built-in default sweep, also shipped as configs/xor.yaml."""
    return yaml.safe_load(resources.files("nnrun").joinpath("defaults/xor.yaml").read_text(encoding="utf-8"))


def preflight(p: Plan) -> None:
    """Load every cell's data and init file once, so their errors come before any output."""
    for cell in p.cells:
        data = load_data(cell.config)
        if cell.config.model.init.scheme == "file":
            for variant in cell.config.variant_objects():
                load_init_file(cell.config, layer_sizes(cell.config, data, variant.output))


def next_rates(directory: Path, p: Plan, done: set[int]) -> dict[tuple[int, int], list[float]]:
    """A search's next round: per (cell, variant index), the untried lattice neighbours of
    its tuned rate so far (empty once every neighbour is tried, or after max_rounds)."""
    from nnrun import search, stats, tuning

    s = p.config.search
    if s is None or p.rounds > s.max_rounds:
        return {}
    names = [v.name for v in p.config.variant_objects()]
    metric = p.config.primary_metric()  # the search tunes on what the tables will compare
    out = {}
    for cell, (config, runs) in zip(p.cells, rs.cell_runs(directory, p, done)):
        summary = stats.summarize(runs, [], metric, budget=config.training.epochs)
        for _, best in tuning.best_rates(runs, summary, [], metric).iterrows():
            tried = sorted(summary.loc[summary["variant"] == best["variant"], "learning_rate"])
            rates = search.neighbours(float(best["learning_rate"]), tried, s)
            if rates:
                out[(cell.index, names.index(best["variant"]))] = rates
    return out


def tables(config: Config, cells) -> dict[str, pd.DataFrame]:
    """summary, comparison, tuned (each variant at its best learning rate) and tuning_budget
    (the expected best median for k random rates), from ``cells``: (config, runs) pairs
    whose groups do not span pairs."""
    import pandas as pd

    from nnrun import stats, tuning

    axes = rs.axis_columns(config)
    baseline = config.variant_objects()[0].name
    metric = config.primary_metric()
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in rs.TABLES}
    for cell_config, runs in cells:
        budget = cell_config.training.epochs
        summary = stats.summarize(runs, axes, metric, budget=budget)
        parts["summary"].append(summary)
        memo: dict = {}  # tuned reuses a pair the comparison already has
        parts["comparison"].append(stats.compare(runs, axes, baseline, metric, budget=budget, memo=memo))
        parts["tuned"].append(tuning.tuned(runs, summary, axes, baseline, metric, budget=budget, memo=memo))
        parts["tuning_budget"].append(tuning.tuning_budget(summary, axes))
    out = {}
    for name, frames in parts.items():
        frames = [f for f in frames if len(f)]
        out[name] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out


# ----------------------------------------------------------------------------- execution


def execute(
    config: Config,
    *,
    out: Path | None = None,
    workers: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    resume: bool = False,
    command: list[str] | None = None,
    progress: Callable[[int, int, int, int], None] | None = None,
    root: Path = Path("results"),
    chunk_runs: int | None = None,
    config_path: Path | None = None,
) -> RunResult:
    """Run (or finish) an experiment; ``progress(runs_done, runs_total, epochs_done, rounds)``
    (with a learning-rate search, ``runs_total`` counts the ``rounds`` planned so far);
    ``config_path``, the file the config came from, is where git provenance is looked up.

    SIGINT and SIGTERM end it at a safe point with what finished saved, raising
    ``Interrupted``; a SIGKILL leaves a directory that ``resume`` completes.
    """
    command = command if command is not None else sys.argv
    if resume and out is None:
        raise ConfigError("--resume needs --out DIR: the directory of the interrupted run")
    out = out if out is not None else rs.new_dir(root, config.name, config.sha256())
    config = _with_backend(config)
    train = functools.partial(iterate, config.model_dump_json(), workers=workers, executor=executor, scheduler=scheduler, while_waiting=functools.partial(_while_training, config))
    with signals.handled():
        try:
            signals.check()
        except KeyboardInterrupt:
            raise Interrupted(None, shlex.join(command), signum=signals.pending()) from None
        with rs.holding(out, resume):
            session = _open(config, out, resume, workers, chunk_runs, command, config_path, progress)
            if session is None:
                return load(out)  # resumed a run that had completed
            return session.run(train)


def _with_backend(config: Config) -> Config:
    """``config`` with ``training.backend`` resolved to the backend that trains it (numpy or
    numba), as the workers, config.yaml and the manifest record it. ``auto`` picks numba
    where it is installed and every cell trains full batch, where the kernel is fastest."""
    from nnrun import backends

    grid = [c.config.training for c in cells(config)]
    requested = config.training.backend
    if requested == "auto" and any(t.batch_size != "full" for t in grid):
        requested = "numpy"  # on minibatches NumPy's matrix products beat the kernel's run lanes (benchmarks/, W2)
    try:
        backend = backends.resolve(requested, [t.optimizer.name for t in grid])
    except backends.BackendError as exc:
        raise ConfigError(str(exc)) from None
    return config.model_copy(update={"training": config.training.model_copy(update={"backend": backend})})


def _open(config: Config, out: Path, resume: bool, workers: int, chunk_runs: int | None, command: list[str], config_path: Path | None, progress) -> _Session | None:
    """Plan the run and write its directory: new, or resumed from its journal (None: the
    stored run is complete). Bad data or init files are reported before anything is written."""
    started = time.time()
    if resume:
        manifest = rs.check_resumable(out, config)
        if manifest["status"] == "complete":
            return None
        p = make_plan(config, chunk_runs=rs.stored_chunk_runs(out, manifest))
        rs.remove_cut_writes(out)
        done = rs.journal_done(out)
    else:
        rs.require_new_run_dir(out)
        p = make_plan(config, chunk_runs=chunk_runs, workers=workers)
        done, manifest = set(), {}
    preflight(p)
    rs.run_opening(manifest, config, p, done, command, config_path)
    if resume:
        rs.mark_resumed(out, manifest, config)
    else:
        rs.create(out, config, manifest)
    return _Session(out, config, p, done, manifest, command, started, progress)


@dataclass
class _Session:
    """A run in progress: its plan so far (a search extends it), the chunks done, the counts
    that progress reports, and the manifest that each save rewrites."""

    out: Path
    config: Config
    plan: Plan
    done: set[int]
    manifest: dict
    command: list[str]
    started: float
    progress: Callable[[int, int, int, int], None] | None = None
    epochs_done: int = 0
    flush_every: float = 10.0  # seconds between saves of a readable partial runs.csv
    tables: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prior_wall = self.manifest["wall_seconds"]  # earlier sessions' time, on resume
        self.runs_done = self.manifest["runs_done"]
        self.last_flush = time.time()

    def run(self, train: Callable[[list], Iterator]) -> RunResult:
        """Train every round, then write the results files; on a signal, save what finished
        and raise ``Interrupted``."""
        self.report()
        try:
            self.train_rounds(train)
        except KeyboardInterrupt:
            self.save("partial")
            raise self.interrupted("partial") from None
        except Exception:
            if signals.pending() is None:
                raise
            self.save("partial")  # a worker that the same signal ended broke the pool: still an interrupt
            raise self.interrupted("partial") from None
        self.save("complete")  # a signal that arrives now waits until every file is written
        rs.journal_clear(self.out)  # everything it held is in the results files now
        if signals.pending() is not None:
            raise self.interrupted("complete")
        t = self.tables
        return RunResult(self.out, self.config, t["summary"], t["comparison"], t["tuned"], manifest=self.manifest)

    def train_rounds(self, train: Callable[[list], Iterator]) -> None:
        """One pass per round of a learning-rate search; a plain list of rates has one."""
        while True:
            todo = [c for c in self.plan.chunks if c.id not in self.done]
            self.train_chunks(train(todo) if todo else iter_none())
            rates = next_rates(self.out, self.plan, self.done)  # from the journal, so a resumed search takes the same rounds
            if not rates:
                return
            self.plan = self.plan.extend(rates)
            rs.planned(self.manifest, self.plan)
            self.report()

    def train_chunks(self, chunks: Iterator) -> None:
        """Journal each chunk as it finishes; now and then save a readable partial runs.csv
        (it survives even a kill -9)."""
        try:
            while True:
                with signals.interruptible():  # waiting for workers, or training inline
                    item = next(chunks, None)
                if item is None:
                    return
                chunk, result = item
                rs.journal_write(self.out, chunk.id, result)
                self.done.add(chunk.id)
                self.runs_done += chunk.size
                self.epochs_done += int(result["epochs_run"].sum())
                self.report()
                if time.time() - self.last_flush > self.flush_every:
                    t0 = time.time()
                    self.save("running")
                    self.last_flush = time.time()
                    self.flush_every = max(10.0, 10 * (self.last_flush - t0))  # never more than ~10% of the time
        finally:
            chunks.close()  # the workers stop now on any way out (the CLI ends with os._exit)

    def report(self) -> None:
        if self.progress:
            self.progress(self.runs_done, self.plan.n_runs, self.epochs_done, self.plan.rounds)

    def save(self, status: str) -> None:
        """runs.csv now; once complete, every results file before the manifest says so."""
        complete = status == "complete"
        rs.assemble(self.out, self.plan, self.done, complete)
        if complete:
            self.tables = tables(self.config, rs.cell_runs(self.out, self.plan, self.done))
            rs.write_tables(self.out, self.tables)
        rs.update_manifest(self.out, self.manifest, status, round(self.prior_wall + time.time() - self.started, 3), runs_done=self.runs_done)

    def interrupted(self, status: str) -> Interrupted:
        resume = shlex.join(resume_command(self.command, self.out))
        return Interrupted(self.out, resume, signum=signals.pending(), runs_done=self.runs_done, runs_total=self.plan.n_runs, status=status)


def default_workers() -> int:
    """All cores where worker processes fork; 1 where they are fresh interpreters that
    import the caller's script (a notebook or unguarded script would start itself again)."""
    import multiprocessing

    return (os.cpu_count() or 1) if "fork" in multiprocessing.get_all_start_methods() else 1


def iter_none():
    """No chunks to train (a round that finished before an interrupt): no pool, no cluster."""
    yield from ()


def _while_training(config: Config) -> None:
    """While the workers train: import pandas and scipy.stats (~0.6 s); and where a
    learning-rate search will fork workers again, load the compiled kernel here, so that
    they start with it instead of each starting numba (the default sweep: 2.5 s, not 3.6)."""
    import nnrun.stats  # noqa: F401  (imports pandas too)

    if config.search is not None and config.training.backend == "numba":
        from nnrun import backends

        backends.warm(config.training.dtype)


def resume_command(command: list[str], out: Path) -> list[str]:
    args = list(command)
    if args and args[0].endswith(("nnrun", "__main__.py")):
        args[0] = "nnrun"
    for flag in ("--out",):
        if flag in args:
            i = args.index(flag)
            del args[i : i + 2]
    args = [a for a in args if not a.startswith("--out=") and a != "--resume"]
    return args + ["--out", str(out), "--resume"]


def run(source, **overrides) -> RunResult:
    """Python API: ``nnrun.run("configs/xor.yaml", training__epochs=500, out="tmp/x")``;
    ``nnrun.run``'s docstring says what ``out`` and ``workers`` do."""
    out = overrides.pop("out", None)
    workers = overrides.pop("workers", default_workers())
    sets = [f"{k.replace('__', '.')}={json.dumps(v)}" for k, v in overrides.items()]
    config = load_config(None if source is None else source, sets, default=default_config())
    return execute(config, out=Path(out) if out else None, workers=workers, command=["nnrun.run", str(source)])
