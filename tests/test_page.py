"""`nnrun report`: the page is self-contained, well formed, shows the CSVs' numbers, and
reading never changes the results directory."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import invoke, small_sweep, tiny_config

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def report(*args) -> str:
    result = invoke("report", *args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def default_dir(tmp_path_factory) -> Path:
    """The default sweep, shrunk, with its page written."""
    out = small_sweep(tmp_path_factory.mktemp("page") / "default")
    report(out)
    return out


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory) -> Path:
    """A 2 × 2 grid, with its page written."""
    out = small_sweep(tmp_path_factory.mktemp("page") / "grid", "--grid", "model.hidden=[2],[4]", "--grid", "model.init.scale=0.5,2")
    report(out)
    return out


def snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.rglob("*")) if p.is_file()}


class Page(HTMLParser):
    """Every tag as opened and closed, each URL-bearing attribute, and each table's cells."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.urls: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "xlink:href", "action", "data", "poster") and v is not None]
        self.urls += re.findall(r"url\(([^)]*)\)", attrs.get("style") or "")
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("class", ""), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page_of(directory: Path) -> tuple[str, Page]:
    text = (directory / "report.html").read_text(encoding="utf-8")
    return text, Page(text)


def test_report_writes_only_the_page_and_changes_no_data(default_dir):
    before = snapshot(default_dir)
    output = report(default_dir)
    after = snapshot(default_dir)
    assert set(after) - set(before) <= {"report.html", "report.md"} and {"report.html", "report.md"} <= set(after)
    assert {k: v for k, v in after.items() if k in before and not k.startswith("report.")} == {k: v for k, v in before.items() if not k.startswith("report.")}
    assert f"wrote {default_dir / 'report.html'}" in output and "report.md" in output


def test_the_page_loads_nothing_from_the_network(default_dir):
    text, page = page_of(default_dir)
    assert page.counts.get("svg", 0) >= 4  # the four figures, inline
    assert "link" not in page.counts and "script" not in page.counts
    outside = [u for u in page.urls + re.findall(r"url\(([^)]*)\)", text) if not u.strip("'\" ").startswith(("#", "data:"))]
    assert outside == []


def test_the_page_is_well_formed(grid_dir):
    _, page = page_of(grid_dir)
    assert page.errors == [] and page.stack == []
    assert page.counts["html"] == page.counts["head"] == page.counts["body"] == page.counts["title"] == 1


def test_numbers_on_the_page_are_the_csvs(default_dir):
    _, page = page_of(default_dir)
    summary = pd.read_csv(default_dir / "summary.csv")
    (header, *rows) = page.tables["summary"]
    shown = {(r[0], r[1]): dict(zip(header, r)) for r in rows}
    assert len(shown) == len(summary)
    for _, s in summary.iterrows():
        cell = shown[(f"{s['learning_rate']:.4g}", s["variant"])]
        assert cell["success [95% CI]"].startswith(f"{100 * s['success_rate']:.0f}% [")
        assert cell["converged/runs"] == f"{s['converged']}/{s['runs']}"
        median = cell["median epochs [95% CI]"]
        assert median.startswith(f"{s['epochs_median']:,.0f} [") if pd.notna(s["epochs_median"]) else median == "> 300"
        q75 = f"{s['epochs_q75']:,.0f}" if pd.notna(s["epochs_q75"]) else ">300"  # not reached within the budget
        assert cell["quartiles"] == (f"{s['epochs_q25']:,.0f}–{q75}" if pd.notna(s["epochs_q25"]) else "n/a")
    tuned = pd.read_csv(default_dir / "tuned.csv").iloc[0]
    (theader, trow) = page.tables["tuned"]
    assert dict(zip(theader, trow))["variant's tuned lr"].startswith(f"{tuned['learning_rate']:.4g}")
    assert dict(zip(theader, trow))["epochs ratio [95% CI]"].startswith(f"{tuned['epochs_ratio_median']:.2f}×")


def test_the_page_states_question_verdict_caveats_and_provenance(default_dir):
    text, _ = page_of(default_dir)
    assert "Which output-layer variant trains this network" in text and "within 300 epochs" in text
    assert "Each at its own best learning rate" in text
    for caveat in ("Tuned rule:", "Censoring:", "Seeds: 5 per variant", "0.062"):
        assert caveat in text
    manifest = json.loads((default_dir / "manifest.json").read_text())
    assert manifest["command"].split()[0] in text and "arithmetic revision 2" in text and "wall time" in text
    assert f"nnrun report {default_dir}" in text  # the command that regenerates the page
    md = (default_dir / "report.md").read_text()
    assert "### Verdict" in md and "| lr | variant |" in md and f"nnrun report {default_dir}" in md


def test_provenance_shows_git_and_machine_when_the_manifest_has_them(default_dir, tmp_path):
    copy = Path(shutil.copytree(default_dir, tmp_path / "copy"))
    manifest = json.loads((copy / "manifest.json").read_text())
    older = {k: v for k, v in manifest.items() if k not in ("git_commit", "git_dirty", "machine")}
    (copy / "manifest.json").write_text(json.dumps(older))
    report(copy)
    assert "git commit" not in page_of(copy)[0] and "<dt>machine</dt>" not in page_of(copy)[0]  # an older manifest: nothing invented
    manifest.update(git_commit="0123456789abcdef", git_dirty=True, machine={"cpu": "Test CPU", "cores": 2, "memory_gib": 23.5})
    (copy / "manifest.json").write_text(json.dumps(manifest))
    report(copy)
    text = page_of(copy)[0]
    assert "0123456789abcdef (with uncommitted changes)" in text and "Test CPU, 2 cores, 23.5 GiB memory" in text


def test_a_sweep_gets_an_overview_before_each_cell(grid_dir, tmp_path):
    text, page = page_of(grid_dir)
    assert text.index("Overview across the sweep") < text.index("model.hidden = [2], model.init.scale = 0.5")
    assert len(page.tables["overview"]) == 1 + 4 * 2  # header, then (2 × 2 cells) × 2 variants
    assert "mse / ce epochs" in text and "ce success" in text  # the heatmaps' panel titles
    one = small_sweep(tmp_path / "one", "--grid", "model.init.scale=0.5,2")
    report(one)
    assert "xor across model.init.scale" in page_of(one)[0]  # one axis: lines over it


def test_a_partial_run_gets_a_page_that_says_what_is_missing(default_dir, tmp_path):
    part = Path(shutil.copytree(default_dir, tmp_path / "part"))
    for name in ("curves.npz", "summary.csv", "comparison.csv", "tuned.csv", "report.html", "report.md"):
        (part / name).unlink(missing_ok=True)
    runs = (part / "runs.csv").read_text().splitlines()
    (part / "runs.csv").write_text("\n".join(runs[:31]) + "\n")
    manifest = json.loads((part / "manifest.json").read_text())
    manifest.update(status="partial", runs_done=30, finished=None)
    (part / "manifest.json").write_text(json.dumps(manifest))
    report(part)
    text, page = page_of(part)
    assert "The run is partial: 30 of 50 runs finished" in text and "curves.npz is not written yet" in text
    assert f"--out {part} --resume" in text  # how to finish it
    assert "Training loss" not in text and "summary" in page.tables
    (part / "runs.csv").unlink()
    report(part)
    assert "runs.csv holds no finished run yet" in page_of(part)[0]


def test_several_directories_need_out_and_give_one_page(default_dir, grid_dir, tmp_path):
    both = tmp_path / "both"
    both.mkdir()
    for d in (default_dir, grid_dir):
        shutil.copytree(d, both / d.name)
    before = snapshot(both)
    result = invoke("report", both)
    assert result.exit_code == 2 and "needs --out FILE.html" in result.output and "Traceback" not in result.output
    report(both, "--out", tmp_path / "pages" / "both.html")
    text, page = page_of_file(tmp_path / "pages" / "both.html")
    assert (tmp_path / "pages" / "both.md").exists()
    assert "Across the results directories" in text and text.count('<section class="experiment"') == 2
    assert snapshot(both) == before  # nothing written inside the directories read


def page_of_file(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing-dir"], "no such file or directory"),
        (["{d}", "--out", "{d}"], "is a directory"),
        (["{d}", "--out", "page.txt"], "ending in .html"),
    ],
)
def test_bad_input_exits_2_with_a_message(default_dir, args, message):
    result = invoke("report", *[a.format(d=default_dir) for a in args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_train_report_writes_the_page_at_the_end(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    result = invoke("train", config, "--workers", "1", "--quiet", "--report", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert f"report: {tmp_path / 'run' / 'report.html'}" in result.output
    assert Page((tmp_path / "run" / "report.html").read_text()).counts["svg"] >= 4


@pytest.mark.parametrize(
    "p, low, high, expected",
    [
        (0.001, 0.5, 0.8, "fewer"),
        (0.001, 1.2, 1.5, "more"),
        (0.001, 0.68, 1.03, "on balance"),  # the default sweep's tuned pair: the test and the CI disagree
        (0.2, 0.5, 0.8, "no clear difference"),
    ],
)
def test_verdict_words_need_the_test_and_the_interval_to_agree(p, low, high, expected):
    from nnrun import page

    row = pd.Series({"variant": "mse", "baseline": "ce", "wilcoxon_p": p, "epochs_ratio_ci_low": low, "epochs_ratio_ci_high": high, "win_rate": 0.57})
    assert page._direction(row) == expected
    if expected == "on balance":
        assert page._headline(row) == "mse was faster than ce on balance by the signed-rank test, but the 95% CI of its median per-seed epochs ratio includes 1"


def test_overview_points_are_tuned_csv_at_summary_csv_rates(grid_dir):
    from nnrun import overview

    axes = ["model.hidden", "model.init.scale"]
    tuned, summary = pd.read_csv(grid_dir / "tuned.csv"), pd.read_csv(grid_dir / "summary.csv")
    points = overview.overview_points(tuned, summary, axes)
    assert len(points) == 2 * len(tuned)  # the baseline and the variant per cell
    for _, t in tuned.iterrows():
        cell = points[(points["model.hidden"] == t["model.hidden"]) & (points["model.init.scale"] == t["model.init.scale"])].set_index("variant")
        for variant, lr in ((t["variant"], t["learning_rate"]), (t["baseline"], t["baseline_learning_rate"])):
            s = summary[(summary["model.hidden"] == t["model.hidden"]) & (summary["model.init.scale"] == t["model.init.scale"]) & (summary["variant"] == variant) & (summary["learning_rate"] == lr)]
            assert cell.loc[variant, "learning_rate"] == lr and cell.loc[variant, "success_rate"] == s["success_rate"].iloc[0]
        assert cell.loc[t["variant"], "wilcoxon_p"] == pytest.approx(t["wilcoxon_p"])


def test_a_searched_sweep_shows_the_search(tmp_path):
    out = tmp_path / "search"
    result = invoke("sweep", "--set", "seeds=5", "--set", "training.epochs=300", "--workers", "1", "--quiet", "--out", out, "--report")
    assert result.exit_code == 0, result.output
    text = (out / "report.html").read_text()
    assert "found by a search on a log lattice" in text
    assert "Sensitivity to the learning rate" in text and "Tuning budget" in text


def _points(axes: dict[str, list]) -> pd.DataFrame:
    """Overview points for every combination of ``axes``: ce the baseline, mse 0.5× faster,
    except one cell where mse never converged (a ratio bound, the median at +∞)."""
    import itertools

    rows = []
    for i, values in enumerate(itertools.product(*axes.values())):
        cell = dict(zip(axes, values))
        rows.append({**cell, "variant": "ce", "learning_rate": 1.0, "at_edge": False, "baseline": True, "success_rate": 1.0, "success_ci_low": 0.8, "success_ci_high": 1.0})
        ratio = (float("inf"), float("inf"), float("inf"), 12.0, "> 12.0×") if i == 0 else (0.5, 0.4, 0.6, float("nan"), "0.50× [0.40, 0.60]")
        rows.append({**cell, "variant": "mse", "learning_rate": 3.0, "at_edge": i == 1, "baseline": False, "success_rate": 0.0 if i == 0 else 1.0, "success_ci_low": 0.0, "success_ci_high": 1.0,
                     "epochs_ratio_median": ratio[0], "epochs_ratio_ci_low": ratio[1], "epochs_ratio_ci_high": ratio[2], "epochs_ratio_bound": ratio[3], "effect": ratio[4], "wilcoxon_p": 0.01})
    return pd.DataFrame(rows)


def test_overview_figures_one_per_value_of_the_axes_beyond_two():
    from nnrun import overview

    axes = {"a": [1, 2], "b": ["x", "y"], "c": [0.5, 2.0]}
    figures = overview.overview_figures(_points(axes), list(axes), "t")
    assert [caption.split(":")[0] for caption, _ in figures] == ["t, c = 0.5", "t, c = 2.0"]
    titles = [ax.get_title() for ax in figures[0][1].axes]
    assert titles == ["mse / ce epochs", "ce success", "mse success"]
    assert [t.get_text() for t in figures[0][1].axes[0].texts] == ["> 12.0×", "0.50×", "0.50×", "0.50×"]  # a bound, not a number
    assert figures[1][1].axes[0].texts[0].get_text() == "0.50×*"  # * : the tuned rate is at an edge
    (caption, lines), = overview.overview_figures(_points({"a": [1, 2, 3]}), ["a"], "t")
    assert [ax.get_xlabel() for ax in lines.axes] == ["a", "a"]
    assert overview.overview_figures(_points({"a": [1]}).iloc[:0], [], "t") == []
