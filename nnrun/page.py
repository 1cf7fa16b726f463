"""`nnrun report`: one self-contained HTML page, and its Markdown twin, per experiment.

The page holds the question, the verdict in words with its caveats, the tables (summary,
paired comparison, tuned), plots.py's figures rendered to inline SVG, an overview across
sweep cells, the provenance and the command that regenerates it. Nothing on it loads from
the network: the stylesheet is inline and every figure is inline SVG.

Reading only: the tables are computed from runs.csv exactly as `nnrun compare` computes
them, and the only files written are report.html and report.md (in the results directory,
or where ``--out`` says). A partial run gets a page that says what is missing.
"""

from __future__ import annotations

import io
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nnrun import compare, overview, plots, report, stats, tuning
from nnrun import results as rs
from nnrun.config import Config, ConfigError, cells
from nnrun.figures import variant_style, variant_styles
from nnrun.stats import EPOCHS

CURVE_METRIC = "ce"  # the loss-curve figure's yardstick: the same for every variant


@dataclass(frozen=True)
class Source:
    """One results directory as stored; ``runs`` is None before runs.csv is written, and
    ``curves`` None before curves.npz is."""

    path: Path
    manifest: dict
    config: Config
    runs: pd.DataFrame | None
    curves: dict | None
    missing: list[str]


@dataclass(frozen=True)
class HtmlTable:
    """A table as shown: formatted cells; ``kind`` (summary, comparison, tuned, overview)
    is its CSS class."""

    kind: str
    caption: str
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Picture:
    caption: str
    svg: str


@dataclass
class Cell:
    """One sweep cell (or the whole experiment without axes): its tables and figures."""

    heading: str
    tables: list[HtmlTable] = field(default_factory=list)
    figures: list[Picture] = field(default_factory=list)


@dataclass
class Section:
    """Everything the page says about one results directory."""

    name: str
    path: Path
    question: str
    verdict: list[str]
    caveats: list[str]
    missing: list[str]
    provenance: list[tuple[str, str]]
    config_yaml: str
    variants: list[str]
    overview: list[Picture] = field(default_factory=list)
    overview_table: HtmlTable | None = None
    cells: list[Cell] = field(default_factory=list)


# ----------------------------------------------------------------------------- reading


def read_source(directory: Path) -> Source:
    """A results directory, complete or partial; what a partial one lacks is listed."""
    manifest = rs.read_manifest(directory)
    config = rs.read_config(directory)
    missing = []
    if manifest["status"] != "complete":
        from nnrun.api import resume_command

        resume = shlex.join(resume_command(shlex.split(manifest["command"]), directory)) if manifest.get("command") else f"the command that started it, with --out {directory} --resume"
        missing.append(
            f"The run is {manifest['status']}: {manifest.get('runs_done', '?')} of {manifest.get('runs_total', '?')} runs finished. "
            f"Everything below rests on the finished runs only; finish it with {resume}."
        )
    runs = rs.read_runs(directory) if rs.has_runs(directory) else None
    if runs is None or runs.empty:
        missing.append(f"{rs.RUNS} holds no finished run yet: there are no tables, figures or verdict.")
        runs = None
    curves = None
    if rs.has_curves(directory):
        curves = rs.read_curves(directory)
    elif runs is not None:
        missing.append(f"{rs.CURVES} is not written yet (it is written when the run completes): the loss-curve figures are left out.")
    return Source(Path(directory), manifest, config, runs, curves, missing)


def tables_of(source: Source) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """summary, comparison and tuned frames as `nnrun compare` computes them (the config's
    first variant the baseline), and the sweep axes."""
    runs, axes, _ = compare.combine([compare.Results(source.path, source.config, source.manifest, source.runs)])
    baseline = source.config.variant_objects()[0].name
    return compare.tables(runs, axes, [], baseline, EPOCHS), axes


# ----------------------------------------------------------------------------- words


def question(config: Config, n_cells: int) -> str:
    """The experiment's question in one paragraph, from its config."""
    variants = "; ".join(f"{v.name} ({v.output} output, {LOSS_WORDS.get(v.loss, v.loss)} loss, output delta {v.delta_formula})" for v in config.variant_objects())
    c = config.convergence
    criterion = {
        "max_error": f"every output is within {c.threshold:g} of its target (max |a − y| < {c.threshold:g})",
        "accuracy": f"its accuracy reaches {c.threshold:g}",
        "loss": f"its {c.metric} loss falls below {c.threshold:g}",
    }[c.criterion]
    cells = f" in each of {n_cells} sweep cells ({', '.join(config.sweep)})" if config.sweep else ""
    lrs_text = ", ".join(f"{x:g}" for x in config.first_rates())
    if config.search:
        lrs_text = f"found by a search on a log lattice, starting from {lrs_text} and refined around each variant's best"
    return (
        f"Which output-layer variant trains this network in fewer epochs, and more reliably: {variants}? "
        f"Network and training: {plots.describe(config)}. Each variant is trained from {len(config.seed_list())} seeds "
        f"(the same seed gives every variant the same initial weights, so runs are compared seed by seed) at learning rates {lrs_text}{cells}. "
        f"A run has converged when {criterion}, within {config.training.epochs:,} epochs."
    )


def _lr(x) -> str:
    """A learning rate to 4 significant digits, as the figures label it (a search's lattice
    points are irrational: 1.778, not 1.77828)."""
    return f"{x:.4g}"


LOSS_WORDS = {"ce": "cross-entropy", "mse": "squared-error"}


def _direction(row: pd.Series) -> str:
    """'fewer' or 'more' epochs than the baseline when the Wilcoxon test (p < 0.05) and the
    median ratio's CI agree; 'on balance' when only the test does; else 'no clear difference'."""
    if not report._ok(row["wilcoxon_p"]) or row["wilcoxon_p"] >= stats.ALPHA:
        return "no clear difference"
    lo, hi = row["epochs_ratio_ci_low"], row["epochs_ratio_ci_high"]
    if pd.notna(lo) and (hi < 1 or lo > 1):
        return "fewer" if hi < 1 else "more"
    return "on balance"


def _headline(row: pd.Series) -> str:
    v, b = row["variant"], row["baseline"]
    word = _direction(row)
    if word == "no clear difference":
        return f"no clear difference in epochs between {v} and {b}"
    if word == "on balance":
        faster = "faster" if row["win_rate"] > 0.5 else "slower"
        return f"{v} was {faster} than {b} on balance by the signed-rank test, but the 95% CI of its median per-seed epochs ratio includes 1"
    return f"{v} needed {word} epochs than {b}"


def verdict_lines(tuned: pd.DataFrame, axes: list[str]) -> list[str]:
    """The verdict in words: at tuned rates, per variant; across cells, how many go each way."""
    if tuned.empty:
        return ["No tuned comparison could be made: the baseline or the other variants have no runs in common."]
    lines = []
    for variant, rows in tuned.groupby("variant", sort=False):
        base = rows["baseline"].iloc[0]
        if len(rows) == 1:
            row = rows.iloc[0]
            lines.append(f"Each at its own best learning rate ({variant} at {_lr(row['learning_rate'])}, {base} at {_lr(row['baseline_learning_rate'])}): {_headline(row)}. In detail: {report.verdict(row)}.")
        else:
            counts = rows.apply(_direction, axis=1).value_counts()
            lines.append(
                f"Across the {len(rows)} sweep cells ({' × '.join(axes)}), each variant at its own best learning rate, {variant} against {base}: "
                f"fewer epochs in {counts.get('fewer', 0)} cells, more in {counts.get('more', 0)} (Wilcoxon p < {stats.ALPHA:g} and a median ratio whose CI excludes 1), "
                f"a signed-rank difference whose median CI includes 1 in {counts.get('on balance', 0)}, and no clear difference in {counts.get('no clear difference', 0)}. "
                "Each cell's numbers are in the overview and the sections below."
            )
    return lines


def caveats(source: Source, frames: dict[str, pd.DataFrame], axes: list[str]) -> list[str]:
    """What the verdict rests on: the tuned rule, rates at an edge, censoring, seeds."""
    runs, tuned = source.runs, frames["tuned"]
    out = [f"Tuned rule: {tuning.TUNED_RULE}."]
    if len(tuned):
        columns = [*axes, "variant", "learning_rate", "lr_high"]
        sides = [
            tuned.loc[tuned["at_edge"], columns],
            tuned.loc[tuned["baseline_at_edge"], [*axes, "baseline", "baseline_learning_rate", "baseline_lr_high"]].set_axis(columns, axis=1),
        ]
        edge = pd.concat(sides).drop_duplicates([*axes, "variant"])
        n_cells = len(tuned[axes].drop_duplicates()) if axes else 1
        alike: dict[str, list[str]] = {}  # one sentence for the variants at the same edge
        for variant, g in edge.groupby("variant", sort=False):
            ends = [("highest" if pd.isna(r["lr_high"]) else "lowest") + f" ({_lr(r['learning_rate'])})" for _, r in g.iterrows()]
            where = f" in {len(g)} of {n_cells} cells" if axes else ""
            alike.setdefault(f"the {' or '.join(dict.fromkeys(ends))} rate tried{where}", []).append(variant)
        for end, variants in alike.items():
            who = f"{variants[0]}'s tuned learning rate is" if len(variants) == 1 else f"the tuned learning rates of {', '.join(variants[:-1])} and {variants[-1]} are"
            out.append(f"Edge of range: {who} {end}, so the optimum may lie beyond the rates tried.")
    censored, diverged = int((~runs["converged"]).sum()), int(runs["diverged"].sum())
    out.append(
        f"Censoring: {censored:,} of {len(runs):,} runs did not converge within the budget of {source.config.training.epochs:,} epochs "
        f"({diverged:,} diverged). They count as censored at the budget, never dropped: medians are Kaplan–Meier medians, '> budget' where fewer than half converged."
    )
    seeds = len(source.config.seed_list())
    floor = stats.min_attainable_p(seeds)
    enough = "" if floor < stats.ALPHA else f" That is not below {stats.ALPHA:g}: no paired test here can find a clear difference; add seeds for a verdict."
    out.append(f"Seeds: {seeds} per variant and learning rate; with n seed pairs the smallest two-sided p a paired test can give is 2 · 2⁻ⁿ, {floor:.2g} here.{enough}")
    return out


# ----------------------------------------------------------------------------- tables


def _cell_heading(axes: list[str], key: tuple) -> str:
    return ", ".join(f"{a} = {v}" for a, v in zip(axes, key)) or "Tables and figures"


def _quartiles(r: pd.Series) -> str:
    """'60–181'; an upper quartile not reached within the budget reads '>10,000'."""
    if not report._ok(r["epochs_q25"]):
        return "n/a"
    return f"{report.num(r['epochs_q25'])}–{report._epoch_end(r['epochs_q75'], r.get('budget', float('nan')))}"


def summary_table(s: pd.DataFrame) -> HtmlTable:
    rows = [
        [_lr(r["learning_rate"]), r["variant"], f"{int(r['converged'])}/{int(r['runs'])}", report.success_cell(r), report.median_cell(r), _quartiles(r), report.num(r["epochs_median_converged"]), str(int(r["diverged"]))]
        for _, r in s.iterrows()
    ]
    columns = ["lr", "variant", "converged/runs", "success [95% CI]", "median epochs [95% CI]", "quartiles", "median of converged only", "diverged"]
    return HtmlTable("summary", "Summary: each variant at each learning rate (Kaplan–Meier medians; censored runs counted)", columns, rows)


def comparison_table(c: pd.DataFrame) -> HtmlTable:
    rows = [
        [_lr(r["learning_rate"]), f"{r['variant']} vs {r['baseline']}", str(int(r["seeds_paired"])), report.effect_cell(r), report.pvalue(r["wilcoxon_p"]), report.pct(r["win_rate"]), f"{report.points(r['success_diff'])} pts", report.pvalue(r["mcnemar_p"])]
        for _, r in c.iterrows()
    ]
    columns = ["lr", "comparison", "seed pairs", "epochs ratio [95% CI]", "Wilcoxon", "faster on", "success difference", "McNemar"]
    return HtmlTable("comparison", "Paired comparison at each shared learning rate, seed by seed", columns, rows)


def tuned_table(t: pd.DataFrame) -> HtmlTable:
    def at(lr, edge) -> str:
        return _lr(lr) + (" (edge)" if edge else "")

    rows = [
        [f"{r['variant']} vs {r['baseline']}", at(r["learning_rate"], r["at_edge"]), at(r["baseline_learning_rate"], r["baseline_at_edge"]), str(int(r["seeds_paired"])), report.effect_cell(r), report.pvalue(r["wilcoxon_p"]), report.pct(r["win_rate"]), f"{report.pct(r['success_rate'])} vs {report.pct(r['baseline_success_rate'])}", report.pvalue(r["mcnemar_p"])]
        for _, r in t.iterrows()
    ]
    columns = ["comparison", "variant's tuned lr", "baseline's tuned lr", "seed pairs", "epochs ratio [95% CI]", "Wilcoxon", "faster on", "success", "McNemar"]
    return HtmlTable("tuned", "Tuned: each variant at its own best learning rate", columns, rows)


def overview_table(points: pd.DataFrame, axes: list[str], label: str = "") -> HtmlTable:
    rows = [
        ([label] if label else []) + [str(r[a]) for a in axes] + [r["variant"], _lr(r["learning_rate"]) + ("*" if r["at_edge"] else ""), report.success_cell(r), "—" if r["baseline"] else r["effect"], "" if r["baseline"] else report.pvalue(r["wilcoxon_p"])]
        for _, r in points.iterrows()
    ]
    columns = (["experiment"] if label else []) + axes + ["variant", "tuned lr (* edge)", "success [95% CI]", "epochs vs baseline", "Wilcoxon"]
    return HtmlTable("overview", "Overview: each variant at its tuned learning rate in every cell", columns, rows)


# ----------------------------------------------------------------------------- figures


def svg(fig, salt: str) -> str:
    """A matplotlib Figure as inline SVG text: text kept as text, ids made unique on the page
    by ``salt``, no metadata (so a page is the same for the same results)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def cell_figures(source: Source, axes: list[str]) -> dict[tuple, list[Picture]]:
    """plots.py's figures for each sweep cell, keyed by the cell's axis values."""
    sweep = plots.Sweep(source.path, source.config, source.runs, source.curves)
    styles = variant_styles([v.name for v in source.config.variant_objects()])
    captions = {
        "curves-ce": "Training loss (cross-entropy) per learning rate",
        "success": "Success vs learning rate",
        "epochs": "Epochs to converge vs learning rate, with n",
        "ecdf": "Time to convergence (Kaplan–Meier) at each variant's tuned rate",
        "sensitivity": "Sensitivity to the learning rate: every rate the search tried",
        "tuning-budget": "Tuning budget: the best median epochs to expect from k random rates",
    }
    out = {}
    for f, figures in plots.sweep_figures(sweep, CURVE_METRIC, axes, styles):
        key = tuple(v for _, v in f.group.key)
        out[key] = [Picture(captions.get(stem, stem), svg(fig, f"{source.path}:{key}:{stem}")) for stem, fig in figures.items()]
    return out


# ----------------------------------------------------------------------------- assembly


def provenance(source: Source) -> list[tuple[str, str]]:
    """Label, value pairs from the manifest; keys an older manifest lacks are left out."""
    m = source.manifest
    items = [("results", str(source.path)), ("nnrun", f"{m.get('nnrun', '?')} (arithmetic revision {m.get('arithmetic', 1)})")]
    if m.get("git_commit"):
        items.append(("git commit", str(m["git_commit"]) + (" (with uncommitted changes)" if m.get("git_dirty") else "")))
    if m.get("machine"):
        items.append(("machine", _machine(m["machine"])))
    for key, label in (("platform", "platform"), ("python", "Python"), ("numpy", "NumPy"), ("blas", "BLAS"), ("backend", "backend"), ("command", "command"), ("config_sha256", "config sha256"), ("started", "started"), ("finished", "finished")):
        if m.get(key):
            items.append((label, str(m[key])))
    items.append(("status", f"{m['status']}, {m.get('runs_done', '?')} of {m.get('runs_total', '?')} runs"))
    if m.get("wall_seconds") is not None:
        items.append(("wall time", f"{float(m['wall_seconds']):,.1f} s"))
    return items


def _machine(machine) -> str:
    """'AMD EPYC 7B13, 2 cores, 23.5 GiB memory' from the manifest's machine entry."""
    if not isinstance(machine, dict):
        return str(machine)
    parts = [str(machine.get("cpu") or "unknown CPU")]
    if machine.get("cores"):
        parts.append(f"{machine['cores']} cores")
    if machine.get("memory_gib"):
        parts.append(f"{machine['memory_gib']} GiB memory")
    return ", ".join(parts + [f"{k}: {v}" for k, v in machine.items() if k not in ("cpu", "cores", "memory_gib") and v is not None])


def section(source: Source) -> Section:
    """Everything about one results directory: words, tables, figures and provenance."""
    config = source.config
    n_cells = max(1, len(list(cells(config))))
    base = Section(config.name, source.path, question(config, n_cells), [], [], list(source.missing), provenance(source), config.dump_yaml(), [v.name for v in config.variant_objects()])
    if source.runs is None:
        return base
    frames, axes = tables_of(source)
    base.verdict = verdict_lines(frames["tuned"], axes)
    base.caveats = caveats(source, frames, axes)
    points = overview.overview_points(frames["tuned"], frames["summary"], axes) if len(frames["tuned"]) else pd.DataFrame()
    if axes and len(points):
        base.overview_table = overview_table(points, axes)
        base.overview = [Picture(caption, svg(fig, f"{source.path}:overview:{i}")) for i, (caption, fig) in enumerate(overview.overview_figures(points, axes, config.name))]
    figures = cell_figures(source, axes)
    groups = [((), frames["summary"])] if not axes else list(stats._groups(frames["summary"], axes))
    for key, s in groups:
        cell = Cell(_cell_heading(axes, key), figures=figures.get(tuple(key), []))
        cell.tables.append(summary_table(s))
        for kind, make in (("comparison", comparison_table), ("tuned", tuned_table)):
            part = stats._select(frames[kind], axes, key)
            if len(part):
                cell.tables.append(make(part))
        base.cells.append(cell)
    return base


def report_paths(directories: list[Path], out: Path | None) -> tuple[Path, Path]:
    """Where report.html and report.md go: inside the one results directory, or at --out."""
    if out is None:
        if len(directories) > 1:
            found = ", ".join(str(d) for d in directories[:4]) + (", …" if len(directories) > 4 else "")
            raise ConfigError(f"found {len(directories)} results directories ({found}); a page comparing them needs --out FILE.html (it is not written inside any one of them)")
        return directories[0] / rs.REPORT_HTML, directories[0] / rs.REPORT_MD
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; name the page's file, e.g. --out {out / rs.REPORT_HTML}")
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out}: expected a file name ending in .html (report.md is written beside it)")
    return out, out.with_suffix(".md")


def write_report(paths: list[Path], out: Path | None = None) -> tuple[Path, Path]:
    """`nnrun report`: read each results directory at or below ``paths`` and write one page
    (HTML and Markdown) about them; returns the two files written."""
    directories = rs.find_results(list(paths))
    html_path, md_path = report_paths(directories, out)
    sections = [section(read_source(d)) for d in directories]
    context = {
        "title": " · ".join(dict.fromkeys(s.name for s in sections)),
        "sections": sections,
        "across": across_table(sections, directories),
        "legend": report.legend(EPOCHS),
        "colours": {v: variant_style(v).color for s in sections for v in s.variants},
        "regenerate": shlex.join(["nnrun", "report", *map(str, paths), *(["--out", str(out)] if out is not None else [])]),
    }
    rs.write_text(html_path, render("report.html.j2", context))
    rs.write_text(md_path, render("report.md.j2", context))
    return html_path, md_path


def across_table(sections: list[Section], directories: list[Path]) -> HtmlTable | None:
    """With several directories: every directory's tuned overview rows in one table."""
    if len(sections) < 2:
        return None
    rows, columns = [], None
    for s, d in zip(sections, directories):
        for cell in s.cells:
            for t in cell.tables:
                if t.kind == "tuned":
                    columns = columns or ["experiment", "directory", "cell", *t.columns]
                    rows += [[s.name, d.name, cell.heading, *r] for r in t.rows]
    if columns is None:
        return None
    return HtmlTable("overview", "Across the results directories: each variant at its tuned learning rate", columns, rows)


def render(template: str, context: dict) -> str:
    """A template from nnrun/templates/; HTML ones escape every value not marked safe."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nnrun", "templates"),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return env.get_template(template).render(**context)
