"""The Typer app: thin commands, and the only place that prints errors and sets exit codes.

Exit codes: 0 success; 1 a check failed (gradcheck) or an internal error; 2 bad usage,
config, data or results directory; 130 on Ctrl-C and 143 on SIGTERM, after saving what
finished.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from nnrun import signals

app = typer.Typer(
    name="nnrun",
    help="Is the output delta a − y or (a − y)·a(1 − a)? Train many small MLPs under each variant and measure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)

SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: --set training.epochs=500 (dotted key, YAML value); repeatable.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Write results exactly here instead of results/<name>/<timestamp>-<hash8>/.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no tables; only the results path.")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", min=1, help="Cores to train on (default: all): worker processes, or threads of one process where the compiled backend trains every run.")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="Where the runs train: local (this machine's processes) by default; `nnrun executors` lists every one.")]
SchedulerOpt = Annotated[Optional[str], typer.Option("--scheduler", help="Address of a running Dask scheduler, e.g. tcp://host:8786.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Finish an interrupted run in --out; only the missing runs are trained.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Every sweep cell's learning-rate table, per-rate verdicts and tuned comparison, not only the overview.")]
ReportOpt = Annotated[bool, typer.Option("--report", help="Also write report.html and report.md (one self-contained page) in the results directory.")]
ChunkOpt = Annotated[Optional[int], typer.Option("--chunk-runs", min=1, help="Runs per chunk (the unit of work and of resume); default: sized to memory and workers.")]


def _version(value: bool) -> None:
    if value:
        from nnrun import ARITHMETIC, __version__

        typer.echo(f"nnrun {__version__} (arithmetic revision {ARITHMETIC}: results resume only under the same revision)")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and the arithmetic revision, then exit.")] = False,
) -> None:
    pass


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _error(message: str) -> None:
    _console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, highlight=False)


def friendly(fn: Callable) -> Callable:
    """Turn nnrun's own exceptions into a one-paragraph message and the right exit code;
    a signal stops the command at once (reading commands: their writes are atomic)."""
    return _friendly(fn, signals.interruptible)


def friendly_run(fn: Callable) -> Callable:
    """``friendly`` for train and sweep: a signal is left to ``execute``, which stops where
    what finished is saved and says how to resume."""
    return _friendly(fn, signals.deferred)


def _friendly(fn: Callable, signal_policy: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from nnrun.api import Interrupted
        from nnrun.errors import NnrunError

        # Interrupt messages are written without rich: a signal may have cut its import short.
        try:
            with signal_policy():
                value = fn(*args, **kwargs)
            signals.check()  # a signal recorded while the command could not stop still counts
            return value
        except (typer.Exit, typer.Abort):
            raise
        except NnrunError as exc:
            _error(_escape(str(exc)))
            raise typer.Exit(exc.exit_code) from None
        except Interrupted as exc:
            _plain_stderr(exc.message())
            raise typer.Exit(exc.code) from None
        except KeyboardInterrupt as exc:
            _plain_stderr("Interrupted.")
            raise typer.Exit(signals.exit_code(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback on the terminal
            fd, path = tempfile.mkstemp(prefix="nnrun-crash-", suffix=".txt")
            with os.fdopen(fd, "w") as fh:
                traceback.print_exc(file=fh)
            _error(_escape(f"internal error ({type(exc).__name__}: {exc}). This is a bug in nnrun; the full traceback is in {path}"))
            raise typer.Exit(1) from None

    return wrapper


def _plain_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _workers(workers: int | None) -> int:
    return workers or os.cpu_count() or 1


def _run(config_path: Path | None, sets, grid, out, quiet, workers, executor, scheduler, resume, use_default: bool, chunk_runs: int | None = None, verbose: bool = False, write_report: bool = False) -> None:
    """train and sweep, with signals deferred: ``execute`` stops where it is safe."""
    from nnrun import api
    from nnrun.config import load

    _check_executor(executor)
    config = load(config_path, sets or [], grid or [], default=api.default_config() if use_default else None)
    console = _console()
    show_progress = not quiet and sys.stdout.isatty() and sys.stderr.isatty()
    progress_cb, bar = None, None
    if show_progress:
        progress_cb, bar = _progress_bar()
    try:
        result = api.execute(
            config,
            out=out,
            workers=_workers(workers),
            executor=executor,
            scheduler=scheduler,
            resume=resume,
            command=["nnrun", *sys.argv[1:]],
            progress=progress_cb,
            chunk_runs=chunk_runs,
            config_path=config_path,
        )
    finally:
        if bar is not None:
            bar.stop()
    if not quiet:
        from nnrun import report

        report.print_run(console, result, verbose=verbose)
    console.print(f"results: {result.path}", markup=False, soft_wrap=True)
    if signals.pending() is not None:  # arrived while the tables were shown: the run is whole
        raise api.Interrupted(result.path, "", signum=signals.pending(), runs_done=int(result.manifest.get("runs_done", 0)), status=result.status)
    if write_report:
        from nnrun.page import write_report as write_page

        console.print(f"report: {write_page([result.path])[0]}", markup=False, soft_wrap=True)


def _check_executor(executor: str) -> None:
    from nnrun.executor import check_executor

    check_executor(executor)


def _progress_bar():
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.fields[round]}runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=True,
    )
    state = {"task": None, "t0": time.time(), "e0": None}

    def update(done: int, total: int, epochs: int, rounds: int = 1) -> None:
        where = f"round {rounds - 1}, " if rounds > 1 else ""  # a search: its total is the runs planned so far
        if state["task"] is None:
            bar.start()
            state["task"] = bar.add_task("runs", total=total, completed=done, rate="", round=where)
            state["t0"] = time.time()
            return
        dt = max(time.time() - state["t0"], 1e-9)
        bar.update(state["task"], completed=done, total=total, round=where, rate=f"{epochs / dt:,.0f} net-epochs/s")

    return update, bar


@app.command()
@friendly_run
def train(
    config: Annotated[Path, typer.Argument(help="The experiment's YAML config.")],
    set_: SetOpt = None,
    out: OutOpt = None,
    quiet: QuietOpt = False,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    resume: ResumeOpt = False,
    chunk_runs: ChunkOpt = None,
    verbose: VerboseOpt = False,
    report: ReportOpt = False,
) -> None:
    """Run the experiment CONFIG describes (variants × learning rates × seeds) and summarise it."""
    _run(config, set_, [], out, quiet, workers, executor, scheduler, resume, use_default=False, chunk_runs=chunk_runs, verbose=verbose, write_report=report)


@app.command()
@friendly_run
def sweep(
    config: Annotated[Optional[Path], typer.Argument(help="The experiment's YAML config (default: the built-in XOR sweep).")] = None,
    grid: Annotated[Optional[list[str]], typer.Option("--grid", help="A sweep axis from the command line: --grid model.hidden=[2],[4],[8]; repeatable.")] = None,
    set_: SetOpt = None,
    out: OutOpt = None,
    quiet: QuietOpt = False,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    resume: ResumeOpt = False,
    chunk_runs: ChunkOpt = None,
    verbose: VerboseOpt = False,
    report: ReportOpt = False,
) -> None:
    """Like train, over the grid of `sweep:` axes and --grid axes; bare `nnrun sweep` runs the seed's XOR sweep."""
    _run(config, set_, grid, out, quiet, workers, executor, scheduler, resume, use_default=config is None, chunk_runs=chunk_runs, verbose=verbose, write_report=report)


@app.command()
@friendly
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML config to check.")],
    set_: SetOpt = None,
) -> None:
    """Check a config (and its data) without running it."""
    from nnrun.api import preflight
    from nnrun.config import load, n_runs
    from nnrun.datasets import DataError
    from nnrun.executor import plan

    cfg = load(config, set_ or [])
    p = plan(cfg)
    try:
        preflight(p)  # the data and any weights file it names, exactly as a run loads them
    except DataError as exc:
        raise DataError(f"{config}: not valid: {exc}") from None
    rates = f"{len(cfg.first_rates())} learning rates"
    if cfg.search:
        rates = f"a learning-rate search starting with {len(cfg.first_rates())} rates"
    total = f"{n_runs(cfg)} runs" if not cfg.search else f"{n_runs(cfg)} runs in round 0, more in later rounds"
    _console().print(f"{config}: valid — {total} ({len(p.cells)} sweep cells × {len(cfg.variants)} variants × {rates} × {len(cfg.seed_list())} seeds)", markup=False)


@app.command()
@friendly
def variants() -> None:
    """List the built-in variants (output, loss and delta formulas) and the blocks inline variants combine."""
    _print_tables("variants")


@app.command()
@friendly
def datasets() -> None:
    """List the data sets with their shapes and parameters (and their defaults)."""
    _print_tables("datasets")


@app.command()
@friendly
def optimizers() -> None:
    """List the optimisers with their arguments (and their defaults)."""
    _print_tables("optimizers")


@app.command()
@friendly
def executors() -> None:
    """List the executors (--executor) with the options they read."""
    _print_tables("executors")


def _print_tables(registry: str) -> None:
    from nnrun import listings

    for table in getattr(listings, registry)():
        _console().print(table)


@app.command()
@friendly
def init(directory: Annotated[Path, typer.Argument(help="Where to write the example configs (default: configs/).")] = Path("configs")) -> None:
    """Write commented example configs (example.yaml, xor.yaml) to start from; never overwrites a file."""
    from nnrun.examples import write_examples

    for path in write_examples(directory):
        _console().print(f"wrote {path}", markup=False)


@app.command()
@friendly
def compare(
    results: Annotated[list[Path], typer.Argument(help="Results directories, or folders to search below.")],
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="The variant others are compared with (default: the config's first).")] = None,
    metric: Annotated[str, typer.Option("--metric", help="epochs (to converge) or any final_* column.")] = "epochs",
    by: Annotated[Optional[list[str]], typer.Option("--by", help="Group rows by this column instead of the sweep axes; repeatable.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, markdown, latex or json.")] = "table",
    out: Annotated[Optional[Path], typer.Option("--out", help="Also save the tables as summary.csv, comparison.csv and tuned.csv in this new or empty directory.")] = None,
) -> None:
    """Read results directories and print the comparison tables (never retrains, never changes them)."""
    from nnrun.compare import run_compare

    run_compare(results, baseline=baseline, metric=metric, by=by, fmt=fmt, out=out, console=_console())


@app.command()
@friendly
def gradcheck(
    config: Annotated[Optional[Path], typer.Argument(help="A config whose variants and network to check (default: the XOR sweep's).")] = None,
    set_: SetOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    points: Annotated[int, typer.Option("--points", min=1, help="Random weight points per variant.")] = 3,
) -> None:
    """Check every variant's backprop gradient against central finite differences of its own loss."""
    from nnrun.gradcheck import run_gradcheck

    ok = run_gradcheck(config, sets=set_ or [], fmt=fmt, points=points, console=_console())
    raise typer.Exit(0 if ok else 1)


@app.command()
@friendly
def plot(
    results: Annotated[list[Path], typer.Argument(help="Results directories, or folders to search below.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the figures into this new or empty directory instead of each results directory's plots/ (one subfolder per directory when there are several).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="png or svg.")] = "png",
    metric: Annotated[str, typer.Option("--metric", help="Curve yardstick: ce or mse.")] = "ce",
    by: Annotated[Optional[list[str]], typer.Option("--by", help="One figure set per value of this column; repeatable.")] = None,
) -> None:
    """Write convergence figures from stored results (never retrains)."""
    from nnrun.plots import run_plots

    notes: list[str] = []
    for path in run_plots(results, out=out, fmt=fmt, metric=metric, by=by, notes=notes):
        _console().print(f"wrote {path}", markup=False, soft_wrap=True)
    for note in notes:
        _console(stderr=True).print(f"note: {note}", markup=False, soft_wrap=True)


@app.command("ls")
@friendly
def ls(results: Annotated[Path, typer.Argument(help="A folder to search below (a results directory also works).")] = Path("results")) -> None:
    """List the experiments below a folder, newest first: status, runs done, start, wall time, command."""
    from nnrun.listings import experiments

    table = experiments(results)
    _console().print(table if table is not None else f"no nnrun experiments below {results}", markup=False)


@app.command()
@friendly
def study(
    source: Annotated[Optional[Path], typer.Argument(help="A directory of problem configs, or a study.yaml listing them (default: the built-in suite, configs/suite/).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="5 seeds and a tenth of the epochs per problem: a look at the whole suite, not a verdict.")] = False,
    set_: SetOpt = None,
    out: OutOpt = None,
    quiet: QuietOpt = False,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    resume: ResumeOpt = False,
) -> None:
    """Run every problem's tuned, paired comparison into one study directory: study.csv and a verdict across problems."""
    from nnrun.study import run_study

    _check_executor(executor)
    err = _console(stderr=True)

    def on_problem(i: int, n: int, problem, state: str) -> None:
        if not quiet:
            err.print(f"[{i + 1}/{n}] {problem.name}: {state}", markup=False)

    path, table, verdict = run_study(
        source, sets=set_ or [], quick=quick, out=out, resume=resume, workers=_workers(workers), executor=executor,
        scheduler=scheduler, command=["nnrun", *sys.argv[1:]], on_problem=on_problem,
    )  # fmt: skip
    console = _console()
    if not quiet:
        _print_study(console, table, verdict)
    console.print(f"results: {path}", markup=False, soft_wrap=True)


def _print_study(console, study, verdict: str) -> None:
    """study.csv as a terminal table (formatted by report's cell formatters), then the verdict."""
    from rich.table import Table

    from nnrun import report

    table = Table(title="study: each variant at its tuned learning rate; effect vs the baseline on the problem's primary metric")
    for col in ("problem", "primary", "variant", "lr", "success", "median epochs", "test acc.", "effect [95% CI]", "p", "winner"):
        table.add_column(col, justify="left" if col in ("problem", "primary", "variant", "winner") else "right")
    for r in study.itertuples(index=False):
        fmt = report.ratio if r.effect_scale == "ratio" else (lambda x: f"{x:+.1f} pts")
        effect = "" if r.variant == r.baseline else f"{fmt(r.effect)} [{fmt(r.effect_ci_low)}, {fmt(r.effect_ci_high)}]"
        table.add_row(
            r.problem, r.primary, r.variant, f"{r.learning_rate:.4g}", report.pct(r.success_rate), report.num(r.epochs_median),
            "n/a" if r.final_test_accuracy != r.final_test_accuracy else f"{100 * r.final_test_accuracy:.1f}%", effect, "" if r.variant == r.baseline else report.pvalue(r.p),
            "(baseline)" if r.variant == r.baseline else r.winner,
        )  # fmt: skip
    console.print(table)
    console.print(verdict, markup=False, soft_wrap=False)


@app.command("report")
@friendly
def report_(
    results: Annotated[list[Path], typer.Argument(help="A results directory; several (or a folder holding several) give one page comparing them.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="The page's file (report.md lands beside it); default: report.html inside the one results directory.")] = None,
) -> None:
    """Write one self-contained page (report.html, and report.md) about stored results; works offline."""
    from nnrun.page import write_report

    for path in write_report(results, out):
        _console().print(f"wrote {path}", markup=False, soft_wrap=True)


def main() -> None:
    """The console script. Once a command has returned, every file it wrote is closed, so
    the process ends with ``os._exit``: the interpreter's teardown of NumPy, SciPy and
    pandas (~0.2 s, measured in benchmarks/) would only delay the prompt."""
    signals.install()  # nnrun.__main__ did it before importing this module; a script made by an older install did not
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message") semantics
        print(code, file=sys.stderr)
        code = 1
    if code == 0 and signals.pending() is not None:  # e.g. during --help: stopped all the same
        _plain_stderr("Interrupted.")
        code = 128 + signals.pending()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe (nnrun … | head): nothing left to say
            pass
        except OSError:  # output lost (a full disk): fail as Python's own exit does
            code = code or 120
    if _instrumented():  # coverage, cProfile, a debugger: they write their data at exit
        sys.exit(code)
    os._exit(code)


def _instrumented() -> bool:
    """Is a tracer, profiler or (Python ≥ 3.12) sys.monitoring tool attached?"""
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and any(monitoring.get_tool(tool) is not None for tool in range(6))


if __name__ == "__main__":
    main()
