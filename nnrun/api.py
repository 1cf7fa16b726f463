"""The one execution path shared by `nnrun train`, `nnrun sweep` and `nnrun.run()`.

Creates (or resumes) a results directory, runs the missing chunks on the chosen executor,
journals each as it finishes, and assembles runs.csv, curves.npz, weights.npz,
summary.csv and comparison.csv from the journal.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import yaml

from nnrun import ARITHMETIC, __version__
from nnrun import locks, signals
from nnrun import results as rs
from nnrun.config import Config, ConfigError, read_config
from nnrun.config import load as load_config
from nnrun.executor import Plan, iterate, layer_sizes, load_data, load_init_file, plan as make_plan
from nnrun.results import ResultsError

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
        if self.status != "complete" and not (self.path / "runs.csv").exists():
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
    tables = [rs.read_table(directory / f"{name}.csv") for name in ("summary", "comparison", "tuned")]
    return RunResult(directory, read_config(directory), *tables, manifest=manifest)


def default_config() -> dict:
    """The built-in default sweep, also shipped as configs/xor.yaml."""
    return yaml.safe_load(resources.files("nnrun").joinpath("defaults/xor.yaml").read_text(encoding="utf-8"))


def results_dir(config: Config, root: Path = Path("results")) -> Path:
    """results/<name>/<UTC timestamp>-<config hash8>; the name is validated to stay inside."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = root / config.name / f"{stamp}-{config.sha256()[:8]}"
    n = 1
    while path.exists():
        n += 1
        path = root / config.name / f"{stamp}-{config.sha256()[:8]}-{n}"
    return path


def axis_columns(config: Config) -> list[str]:
    return list(config.sweep)


def _cell_value(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else json.dumps(value)


def chunk_frame(p: Plan, chunk, result: dict | None = None) -> pd.DataFrame:
    """A chunk's rows: identity columns, sweep axes, and (given a result) its outcomes."""
    import pandas as pd

    v = p.config.variant_objects()[chunk.variant]
    lrs, seeds = chunk.lrs_seeds(p.cells[chunk.cell].config)
    frame = pd.DataFrame(
        {
            "run_id": chunk.run_ids,
            "round": chunk.round,
            "variant": v.name,
            "output": v.output,
            "loss": v.loss,
            "delta": v.delta,
            "learning_rate": lrs,
            "seed": seeds,
        }
    )
    for key, value in p.cells[chunk.cell].axes:
        frame[key] = _cell_value(value)
    if result is not None:
        for key, values in _scalar_columns(result).items():
            frame[key] = values
        frame["epochs_to_converge"] = frame["epochs_to_converge"].where(frame["converged"]).astype("Int64")
        frame = frame.reindex(columns=_column_order(p))
    return frame


def _column_order(p: Plan) -> list[str]:
    """runs.csv's columns; test metrics when any cell holds a test split (NaN elsewhere)."""
    finals = FINAL_ORDER if any(c.config.dataset.has_test_split() for c in p.cells) else FINAL_ORDER[:4]
    return rs.ID_COLUMNS + axis_columns(p.config) + ["converged", "epochs_to_converge", "epochs_run", "diverged"] + finals


def _scalar_columns(result: dict) -> dict:
    keep = ["converged", "epochs_to_converge", "epochs_run", "diverged"]
    keep += [k for k in result if k.startswith("final_")]
    return {k: result[k] for k in keep}


FINAL_ORDER = ["final_ce", "final_mse", "final_accuracy", "final_max_error", "final_test_accuracy", "final_test_ce", "final_test_mse", "final_test_max_error"]


def assemble(directory: Path, p: Plan, done: set[int], write_curves: bool = True) -> None:
    """runs.csv (+ curves.npz, weights.npz) from the journal's finished chunks, streamed
    chunk by chunk in run-id order: memory holds one chunk at a time, whatever the sweep."""
    import pandas as pd

    with rs.atomic_open(directory / "runs.csv", "w") as fh:
        first = True
        for chunk in p.chunks:
            if chunk.id in done:
                chunk_frame(p, chunk, rs.journal_read(directory, chunk.id, rs.per_run_scalars)).to_csv(fh, index=False, header=first, lineterminator="\n")
                first = False
        if first:
            pd.DataFrame(columns=_column_order(p)).to_csv(fh, index=False, lineterminator="\n")
    if write_curves and done:
        _write_curves(directory, p, done)
        if p.config.logging.save_weights:
            _write_weights(directory, p, done)


def cell_runs(directory: Path, p: Plan, done: set[int]):
    """(cell config, its rows) for each sweep cell: statistics never span cells, so they are
    computed one cell at a time and memory is bounded by the largest cell, not the sweep."""
    import pandas as pd

    for cell in p.cells:
        chunks = [c for c in p.chunks if c.cell == cell.index and c.id in done]
        if chunks:
            yield cell.config, pd.concat([chunk_frame(p, c, rs.journal_read(directory, c.id, rs.per_run_scalars)) for c in chunks], ignore_index=True)


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
    for cell, (config, runs) in zip(p.cells, cell_runs(directory, p, done)):
        summary = stats.summarize(runs, [], metric, budget=config.training.epochs)
        for _, best in tuning.best_rates(runs, summary, [], metric).iterrows():
            tried = sorted(summary.loc[summary["variant"] == best["variant"], "learning_rate"])
            rates = search.neighbours(float(best["learning_rate"]), tried, s)
            if rates:
                out[(cell.index, names.index(best["variant"]))] = rates
    return out


def _write_curves(directory: Path, p: Plan, done: set[int]) -> None:
    chunks = [c for c in p.chunks if c.id in done]
    grid = np.unique(np.concatenate([rs.journal_read(directory, c.id, lambda k: k == "log_epochs")["log_epochs"] for c in chunks]))
    n = sum(c.size for c in chunks)

    def rows(metric: str):
        for c in chunks:
            j = rs.journal_read(directory, c.id, lambda k: k in ("log_epochs", f"curve_{metric}"))
            block = np.full((c.size, len(grid)), np.nan, dtype=np.float32)
            block[:, np.searchsorted(grid, j["log_epochs"])] = j[f"curve_{metric}"]
            yield block

    with rs.atomic_open(directory / "curves.npz") as fh:
        out = rs.NpzStream(fh)
        out.add("epoch", grid.shape, np.int64, [grid])
        out.add("run_id", (n,), np.int64, [c.run_ids for c in chunks])
        for metric in ("ce", "mse", "accuracy"):
            out.add(metric, (n, len(grid)), np.float32, rows(metric))
        out.close()


def _write_weights(directory: Path, p: Plan, done: set[int]) -> None:
    with rs.atomic_open(directory / "weights.npz") as fh:
        out = rs.NpzStream(fh)
        for c in p.chunks:
            if c.id not in done:
                continue
            j = rs.journal_read(directory, c.id, lambda k: k.startswith("weights_"))
            for key in sorted(j):
                name = key.removeprefix("weights_")
                for r, run_id in enumerate(c.run_ids):
                    out.add(f"r{run_id}.{name}", j[key][r].shape, np.float64, [j[key][r]])
        out.close()


def write_tables(directory: Path, config: Config, cells) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """summary.csv, comparison.csv, tuned.csv (each variant at its best learning rate) and
    tuning_budget.csv (the expected best median for k random rates),
    from ``cells``: (config, runs) pairs whose groups do not span pairs."""
    import pandas as pd

    from nnrun import stats, tuning

    axes = axis_columns(config)
    baseline = config.variant_objects()[0].name
    metric = config.primary_metric()
    parts: dict[str, list[pd.DataFrame]] = {"summary": [], "comparison": [], "tuned": [], "tuning_budget": []}
    for cell_config, runs in cells:
        budget = cell_config.training.epochs
        summary = stats.summarize(runs, axes, metric, budget=budget)
        parts["summary"].append(summary)
        memo: dict = {}  # tuned reuses a pair the comparison already has
        parts["comparison"].append(stats.compare(runs, axes, baseline, metric, budget=budget, memo=memo))
        parts["tuned"].append(tuning.tuned(runs, summary, axes, baseline, metric, budget=budget, memo=memo))
        parts["tuning_budget"].append(tuning.tuning_budget(summary, axes))
    tables = []
    for name, frames in parts.items():
        frames = [f for f in frames if len(f)]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        rs.write_csv(directory / f"{name}.csv", table)
        tables.append(table)
    return tables[0], tables[1], tables[2]  # tuning_budget.csv is for files and figures only


def preflight(p: Plan) -> None:
    """Load every cell's data and init file once, so their errors come before any output."""
    for cell in p.cells:
        data = load_data(cell.config)
        if cell.config.model.init.scheme == "file":
            for variant in cell.config.variant_objects():
                load_init_file(cell.config, layer_sizes(cell.config, data, variant.output))


def _check_resumable(out: Path, config: Config) -> dict:
    manifest = rs.read_manifest(out)
    stored = manifest.get("config_sha256")
    if stored != config.sha256():
        raise ConfigError(
            f"{out}: cannot resume: it holds a run of a different config (sha256 {str(stored)[:12]}… there, "
            f"{config.sha256()[:12]}… now). Resume with the same config and --set options, or choose a new --out"
        )
    arithmetic = manifest.get("arithmetic", 1)  # manifests before the field: revision 1
    if manifest.get("status") != "complete" and arithmetic != ARITHMETIC:
        raise ResultsError(
            f"{out}: cannot resume: it was started by nnrun {manifest.get('nnrun', '?')}, whose results differ from this "
            f"nnrun {__version__}'s in the last bits for some configs (arithmetic revision {arithmetic} there, "
            f"{ARITHMETIC} here), so its rows would not match the new ones. Finish it with nnrun "
            f"{manifest.get('nnrun', 'of that revision')}, or start again with a new --out"
        )
    return manifest


def execute(
    config: Config,
    *,
    out: Path | None = None,
    workers: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    resume: bool = False,
    command: list[str] | None = None,
    progress: Callable[[int, int, int], None] | None = None,
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
    out = out if out is not None else results_dir(config, root)
    with signals.handled():
        try:
            signals.check()
        except KeyboardInterrupt:
            raise Interrupted(None, shlex.join(command), signum=signals.pending()) from None
        if resume and (out / "manifest.json").is_file():  # (no manifest: _check_resumable says why)
            try:
                locks.acquire(out)
            except locks.Locked as exc:
                raise ResultsError(
                    f"{out}: another nnrun (PID {exc.pid}) is running this experiment now; wait for it to finish (see `nnrun ls`) or stop it before resuming"
                ) from None
        try:
            return _execute(config, out, workers, executor, scheduler, resume, command, progress, chunk_runs, config_path)
        finally:
            locks.release(out)


def _create(out: Path, config: Config, manifest: dict) -> None:
    """The results directory appears whole (config, manifest, lock) or not at all: it is built
    under a hidden name beside ``out`` and renamed, so a kill at any moment strands nothing."""
    import tempfile

    if out.exists():  # an empty directory the user made: fill it in place, manifest first
        try:
            locks.acquire(out)
        except locks.Locked as exc:
            raise ResultsError(f"{out}: another nnrun (PID {exc.pid}) is starting a run there; choose another --out") from None
        if (out / "manifest.json").exists():  # it won the race before we took the lock
            locks.release(out)
            rs.require_new_dir(out)
        rs.remove_temporaries(out)
        rs.write_json(out / "manifest.json", manifest)
        rs.write_text(out / "config.yaml", config.dump_yaml())
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~rs.UMASK)  # mkdtemp makes 0700; results are ordinary folders
        locks.acquire(tmp)
        rs.write_json(tmp / "manifest.json", manifest)
        rs.write_text(tmp / "config.yaml", config.dump_yaml())
        os.rename(tmp, out)
        locks.moved(tmp, out)
    except BaseException:
        locks.release(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _execute(config, out, workers, executor, scheduler, resume, command, progress, chunk_runs, config_path) -> RunResult:
    started = time.time()
    if resume:
        manifest = _check_resumable(out, config)
        if manifest.get("status") == "complete":
            return load(out)
        try:
            p = make_plan(config, chunk_runs=int(manifest["chunk_runs"]))
        except (KeyError, TypeError, ValueError):
            raise ResultsError(f"{out / 'manifest.json'}: has no valid 'chunk_runs'; cannot tell which runs are done. Start a new --out") from None
        rs.remove_temporaries(out)
        done = rs.journal_done(out)
        prior_wall = float(manifest.get("wall_seconds") or 0.0)
    else:
        rs.require_new_dir(out, " (add --resume to finish it)" if (out / "manifest.json").exists() else "")
        p = make_plan(config, chunk_runs=chunk_runs, workers=workers)
        done = set()
        prior_wall = 0.0
        manifest = {}
    preflight(p)  # bad data or init files are reported before anything is written
    manifest.update(
        {
            **rs.environment(),
            **rs.provenance(command, config_path),
            "config_sha256": config.sha256(),
            "started": manifest.get("started", rs.now()),
            "finished": None,
            "status": "running",
            "runs_total": p.n_runs,  # with a search: the runs of the rounds planned so far
            "rounds": p.rounds,
            "runs_done": sum(c.size for c in p.chunks if c.id in done),
            "chunk_runs": p.chunk_runs,
            "wall_seconds": prior_wall,
        }
    )
    if resume:
        manifest.setdefault("resumed", []).append(rs.now())
        rs.write_text(out / "config.yaml", config.dump_yaml())
        rs.write_json(out / "manifest.json", manifest)
    else:
        _create(out, config, manifest)

    todo = [c for c in p.chunks if c.id not in done]
    config_json = config.model_dump_json()
    runs_done = manifest["runs_done"]
    epochs_done = 0
    last_flush = time.time()
    flush_every = 10.0
    if progress:
        progress(runs_done, p.n_runs, 0, p.rounds)

    def save(status: str) -> None:
        complete = status == "complete"
        assemble(out, p, done, write_curves=complete)
        if complete:  # every results file exists before the manifest says so
            tables.extend(write_tables(out, config, cell_runs(out, p, done)))
        manifest.update(
            status=status,
            runs_done=runs_done,
            wall_seconds=round(prior_wall + time.time() - started, 3),
            finished=rs.now() if complete else None,
        )
        rs.write_json(out / "manifest.json", manifest)

    def interrupted(status: str) -> Interrupted:
        return Interrupted(out, shlex.join(_resume_command(command, out)), signum=signals.pending(), runs_done=runs_done, runs_total=p.n_runs, status=status)

    tables: list[pd.DataFrame] = []

    try:
        while True:  # one pass per round of a learning-rate search; a plain list has one
            chunks = iterate(config_json, todo, workers=workers, executor=executor, scheduler=scheduler, while_waiting=_import_stats) if todo else iter_none()
            try:
                while True:
                    with signals.interruptible():  # waiting for workers, or training inline
                        item = next(chunks, None)
                    if item is None:
                        break
                    chunk, result = item
                    rs.journal_write(out, chunk.id, result)
                    done.add(chunk.id)
                    runs_done += chunk.size
                    epochs_done += int(result["epochs_run"].sum())
                    if progress:
                        progress(runs_done, p.n_runs, epochs_done, p.rounds)
                    if time.time() - last_flush > flush_every:  # a readable partial runs.csv, even after a kill -9
                        t0 = time.time()
                        save("running")
                        last_flush = time.time()
                        flush_every = max(10.0, 10 * (last_flush - t0))  # never more than ~10% of the time
            finally:
                chunks.close()  # the workers stop now on any way out (the CLI ends with os._exit)
            rates = next_rates(out, p, done)  # rebuilt from the journal, so a resumed search takes the same rounds
            if not rates:
                break
            p = p.extend(rates)
            todo = [c for c in p.chunks if c.id not in done]
            manifest.update(runs_total=p.n_runs, rounds=p.rounds)
            if progress:
                progress(runs_done, p.n_runs, epochs_done, p.rounds)
    except KeyboardInterrupt:
        save("partial")
        raise interrupted("partial") from None
    except Exception:
        if signals.pending() is None:
            raise
        save("partial")  # a worker that the same signal ended broke the pool: still an interrupt
        raise interrupted("partial") from None
    save("complete")  # a signal that arrives now waits until every file is written
    rs.journal_clear(out)  # everything it held is in the results files now
    if signals.pending() is not None:
        raise interrupted("complete")
    return RunResult(out, config, *tables, manifest=manifest)


def default_workers() -> int:
    """All cores where worker processes fork; 1 where they are fresh interpreters that
    import the caller's script (a notebook or unguarded script would start itself again)."""
    import multiprocessing

    return (os.cpu_count() or 1) if "fork" in multiprocessing.get_all_start_methods() else 1


def iter_none():
    """No chunks to train (a round that finished before an interrupt): no pool, no cluster."""
    yield from ()


def _import_stats() -> None:
    """pandas and scipy.stats take ~0.6 s to import: load them while the workers train."""
    import nnrun.stats  # noqa: F401  (imports pandas too)


def _resume_command(command: list[str], out: Path) -> list[str]:
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
