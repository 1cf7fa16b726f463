"""`nnrun study`: the tuned, paired comparison over a suite of problems, one table and verdict.

A study is a directory holding one ordinary results directory per problem (each run by
``api.execute``, the same path as `nnrun train`), ``study.csv`` (per problem and variant)
and a manifest with ``kind: study``. Each problem's config names the metric it is judged
by (``study.primary``), so its own tuned.csv already holds the effect the study reports;
study.csv only gathers those rows (``problem_rows``) and never recomputes a statistic.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import signal
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from nnrun import api
from nnrun import results as rs
from nnrun.config import Config, ConfigError, hint, parse_yaml
from nnrun.config import load as load_config
from nnrun.results import ResultsError

if TYPE_CHECKING:
    import pandas as pd

# --quick: a look at the whole suite in a minute or two, not a verdict: so few seeds
# cannot reach p < 0.05 on most comparisons, and a tenth of the epochs is not the budget.
QUICK_SEEDS = 5
QUICK_EPOCHS_DIVISOR = 10
ALPHA = 0.05  # a comparison counts as won when p < ALPHA and its CI excludes "no effect"
STUDY_KEYS = ("name", "problems")  # what a study.yaml may hold

STUDY_COLUMNS = [
    "problem", "primary", "variant", "baseline", "learning_rate", "at_edge", "success_rate", "epochs_median",
    "final_test_accuracy", "effect", "effect_ci_low", "effect_ci_high", "effect_scale", "p", "winner",
]  # fmt: skip


class StudyInterrupted(api.Interrupted):
    """SIGINT or SIGTERM during a study: finished problems are kept, and the one running
    saved what it had finished; ``resume_command`` resumes the study."""

    def __init__(self, path: Path, resume_command: str, *, signum: int | None, done: int, total: int) -> None:
        self.done, self.total = done, total
        super().__init__(path, resume_command, signum=signum)

    def message(self) -> str:
        name = signal.Signals(self.signum).name
        return (
            f"Interrupted ({name}): {self.done} of {self.total} problems are finished in {self.path} and the one running "
            f"saved what it had finished (status: partial). Resume with:\n  {self.resume_command}"
        )


@dataclass(frozen=True)
class Problem:
    """One problem of a study: its config file and the resolved config it runs."""

    source: Path
    config: Config

    @property
    def name(self) -> str:
        return self.config.name  # validated: letters, digits, '-', '_' (a safe folder name)


def suite_dir() -> Path:
    """The built-in suite shipped with the package (the same files as configs/suite/)."""
    return Path(str(resources.files("nnrun").joinpath("suite")))


def problem_files(source: Path | None) -> list[Path]:
    """The config files a study runs: a directory's *.yaml, or those a study.yaml lists."""
    source = suite_dir() if source is None else Path(source)
    if source.is_dir():
        files = sorted(source.glob("*.yaml"))
        if not files:
            raise ConfigError(f"{source}: no *.yaml problem configs in this directory; `nnrun study` with no argument runs the built-in suite")
        return files
    if not source.exists():
        raise ConfigError(f"{source}: no such study file or directory; give a directory of problem configs or a study.yaml")
    data = parse_yaml(_read(source), str(source))
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a study file is a mapping with problems: [config files, relative to it]")
    for key in data:
        if key not in STUDY_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}{hint(str(key), STUDY_KEYS)}; a study file holds {', '.join(STUDY_KEYS)}")
    problems = data.get("problems")
    if not isinstance(problems, list) or not problems or not all(isinstance(p, str) and p for p in problems):
        raise ConfigError(f"{source}: problems must be a non-empty list of config files (relative to the study file), got {json.dumps(problems)}")
    base = source.parent.resolve()
    files = []
    for i, text in enumerate(problems):
        path = (base / text).resolve()
        if not path.is_relative_to(base):
            raise ConfigError(f"{source}: problems[{i}]: {text!r} lies outside the study file's directory {base}; keep problem configs beside it or below")
        files.append(path)
    return files


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as a study file: {exc}") from None


def load_problems(source: Path | None, sets: list[str], quick: bool) -> list[Problem]:
    """Every problem's validated config, with ``--set`` (and ``--quick``) applied to each."""
    problems: list[Problem] = []
    for path in problem_files(source):
        config = load_config(path, sets)
        if quick:
            shrink = [f"seeds={min(QUICK_SEEDS, len(config.seed_list()))}", f"training.epochs={max(1, math.ceil(config.training.epochs / QUICK_EPOCHS_DIVISOR))}"]
            config = load_config(path, [*sets, *shrink])
        if len(config.variants) < 2:
            raise ConfigError(f"{path}: variants: a study problem compares at least two variants (the first is the baseline), got {len(config.variants)}")
        if config.sweep:
            raise ConfigError(f"{path}: sweep: a study problem has no sweep axes (one tuned comparison per problem); make each setting its own problem config")
        same = [p for p in problems if p.name == config.name]
        if same:
            raise ConfigError(f"{path}: name {config.name!r} is also the name of {same[0].source}; each problem of a study needs its own name")
        problems.append(Problem(path, config))
    return problems


def fingerprint(problems: list[Problem]) -> str:
    """The study's identity: its problems' names and config hashes, in order."""
    return hashlib.sha256(json.dumps([[p.name, p.config.sha256()] for p in problems]).encode()).hexdigest()


# ----------------------------------------------------------------------------- the table


def problem_rows(problem: str, config: Config, summary: pd.DataFrame, tuned: pd.DataFrame) -> list[dict]:
    """study.csv's rows for one problem, read by column name from its own summary.csv and
    tuned.csv: each variant at its tuned learning rate, and its paired effect against the
    baseline on the primary metric (the baseline's row has none)."""
    import pandas as pd

    from nnrun import stats

    metric = config.primary_metric()
    effect, lo, hi = stats.effect_columns(metric)
    scale, null = ("difference", 0.0) if stats.is_difference(metric) else ("ratio", 1.0)
    higher = stats.HIGHER_IS_BETTER.get(metric, False)
    baseline = config.variant_objects()[0].name
    rates = {baseline: float(tuned["baseline_learning_rate"].iloc[0])} if len(tuned) else {}
    rates.update(zip(tuned["variant"], tuned["learning_rate"].astype(float)))
    edges = {baseline: bool(tuned["baseline_at_edge"].iloc[0])} if len(tuned) else {}
    edges.update(zip(tuned["variant"], tuned["at_edge"].astype(bool)))
    rows = []
    for variant in [v.name for v in config.variant_objects()]:
        if variant not in rates:
            continue
        s = summary[(summary["variant"] == variant) & (summary["learning_rate"] == rates[variant])].iloc[0]
        row = {
            "problem": problem,
            "primary": config.study.primary,
            "variant": variant,
            "baseline": baseline,
            "learning_rate": rates[variant],
            "at_edge": edges[variant],
            "success_rate": s["success_rate"],
            "epochs_median": s["epochs_median"],
            "final_test_accuracy": s.get("median_final_test_accuracy", math.nan),
        }
        if variant != baseline:
            t = tuned[tuned["variant"] == variant].iloc[0]
            row.update(effect=t[effect], effect_ci_low=t[lo], effect_ci_high=t[hi], effect_scale=scale, p=t["wilcoxon_p"])
            row["winner"] = winner(t[effect], t[lo], t[hi], t["wilcoxon_p"], null, higher, variant, baseline)
        rows.append(row)
    return [pd.Series(r).reindex(STUDY_COLUMNS).to_dict() for r in rows]


def winner(effect, low, high, p, null: float, higher: bool, variant: str, baseline: str) -> str:
    """Who is better on the primary metric: significant (p < ALPHA) and a CI clear of
    ``null`` on one side; otherwise "inconclusive"."""
    values = [effect, low, high, p]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values) or not p < ALPHA:
        return "inconclusive"
    if low > null or high < null:
        return variant if (effect > null) == higher else baseline
    return "inconclusive"


def table(rows: list[dict]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=STUDY_COLUMNS)


def verdict(study: pd.DataFrame, quick: bool = False) -> str:
    """One paragraph: per comparison, on which problems each side won, where the answer
    flips, and what stayed inconclusive. No more than the table says."""
    pairs = study[study["variant"] != study["baseline"]]
    if pairs.empty:
        return "No comparisons: every problem has a single variant."
    n = study["problem"].nunique()
    parts = []
    flips = []
    for (variant, baseline), g in pairs.groupby(["variant", "baseline"], sort=False):
        won = list(g.loc[g["winner"] == variant, "problem"])
        lost = list(g.loc[g["winner"] == baseline, "problem"])
        open_ = list(g.loc[g["winner"] == "inconclusive", "problem"])
        text = f"{variant} vs {baseline} ({len(g)} problem{'s' if len(g) != 1 else ''}): {variant} better on {_count(won)}, {baseline} better on {_count(lost)}"
        if open_:
            text += f", inconclusive on {_count(open_)}"
        parts.append(text)
        if won and lost:
            flips.append(f"{variant} vs {baseline}")
    head = (
        f"Across {n} problem{'s' if n != 1 else ''}, each variant at its own tuned learning rate and judged on the problem's "
        f"primary metric (time to success, or test accuracy where there is a test split), counting a win only at "
        f"p < {ALPHA:g} with a 95% CI clear of no effect and without correction for multiple comparisons — "
    )
    if flips:
        tail = f" The answer flips between problems for {', '.join(flips)}."
    elif (pairs["winner"] != "inconclusive").any():
        tail = " No comparison changes direction between problems where it was decided."
    else:
        tail = " No comparison was decided on any problem."
    edge = study[study["at_edge"].eq(True)] if "at_edge" in study else study.iloc[:0]
    if len(edge):
        tail += " Tuned at the edge of its learning-rate grid (it may do better outside it): " + ", ".join(f"{r.variant} on {r.problem}" for r in edge.itertuples()) + "."
    if quick:
        tail += f" This is a --quick run ({QUICK_SEEDS} seeds, a tenth of the epochs): a look, not a verdict."
    return head + "; ".join(parts) + "." + tail


def _count(problems: list[str]) -> str:
    return f"{len(problems)} ({', '.join(problems)})" if problems else "0"


# ----------------------------------------------------------------------------- running


def study_dir(problems: list[Problem], root: Path = Path("results")) -> Path:
    return rs.new_dir(root, "study", fingerprint(problems))


def run_study(
    source: Path | None,
    *,
    sets: list[str] = (),
    quick: bool = False,
    out: Path | None = None,
    resume: bool = False,
    workers: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    command: list[str] | None = None,
    on_problem: Callable[[int, int, Problem, str], None] | None = None,
    root: Path = Path("results"),
) -> tuple[Path, pd.DataFrame, str]:
    """Run every problem (skipping finished ones on resume), write study.csv and the
    manifest; returns (study directory, study table, verdict paragraph).
    ``on_problem(i, n, problem, state)``: state is "running", "done" or "skipped"."""
    command = list(command) if command is not None else ["nnrun", "study"]
    started = time.time()
    problems = load_problems(source, list(sets), quick)
    if resume:
        if out is None:
            raise ConfigError("--resume needs --out DIR: the directory of the interrupted study")
        manifest = rs.check_study_resumable(out, fingerprint(problems))
    else:
        out = out if out is not None else study_dir(problems, root)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ResultsError(f"{out}: already exists and is not an empty directory; nnrun never overwrites results (add --resume to finish a study there)")
        manifest = {}
    out.mkdir(parents=True, exist_ok=True)
    rs.study_opening(manifest, shlex.join(command), fingerprint(problems), [p.name for p in problems], quick)
    prior_wall = manifest["wall_seconds"]
    rs.write_manifest(out, manifest)

    def wall() -> float:
        return round(prior_wall + time.time() - started, 3)

    rows: list[dict] = []
    try:
        for i, problem in enumerate(problems):
            directory = out / problem.name
            finished = rs.is_complete(directory)
            if not finished:
                if on_problem:
                    on_problem(i, len(problems), problem, "running")
                api.execute(
                    problem.config,
                    out=directory,
                    workers=workers,
                    executor=executor,
                    scheduler=scheduler,
                    resume=rs.has_manifest(directory),
                    command=command,
                )
            rows += problem_rows(problem.name, problem.config, rs.read_table(directory, "summary"), rs.read_table(directory, "tuned"))
            rs.write_study_table(out, table(rows))
            rs.update_manifest(out, manifest, "running", wall(), problems_done=i + 1)
            if on_problem:
                on_problem(i, len(problems), problem, "skipped" if finished else "done")
    except (api.Interrupted, KeyboardInterrupt) as exc:
        rs.update_manifest(out, manifest, "partial", wall())
        if not isinstance(exc, api.Interrupted):
            raise
        resume = shlex.join(api.resume_command(command, out))
        raise StudyInterrupted(out, resume, signum=exc.signum, done=manifest["problems_done"], total=len(problems)) from None
    study = table(rows)
    rs.update_manifest(out, manifest, "complete", wall())
    return out, study, verdict(study, quick)
