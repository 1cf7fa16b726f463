"""`nnrun compare` through the CLI on hand-written results directories and a tiny real sweep.

Every number is checked against scipy.stats called here on the hand-built data, and every
--format is parsed back.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as st
from typer.testing import CliRunner

from nnrun.cli import app

runner = CliRunner()
BUDGET = 200

# ce (the baseline) and mse on ten seeds: seed 8 only ce converged, seed 9 neither.
CE = [10, 12, 14, 16, 18, 20, 22, 24, 26, None]
MSE = [35, 40, 30, 70, 50, 10, 80, 90, None, None]


def runs_frame(spec: dict, lrs=(1.0,), axes: dict | None = None) -> pd.DataFrame:
    """runs.csv rows: ``spec`` maps variant -> per-seed epochs (None: did not converge);
    at every learning rate and value of each axis, epochs scale by lr and axis index."""
    rows = []
    axes = axes or {}
    cells = [{}]
    for key, values in axes.items():
        cells = [{**c, key: v} for c in cells for v in values]
    for cell in cells:
        for variant, epochs in spec.items():
            for lr in lrs:
                for seed, e in enumerate(epochs):
                    e = None if e is None else int(e / lr)
                    rows.append(
                        {
                            "variant": variant,
                            "output": "sigmoid",
                            "loss": variant,
                            "delta": "exact",
                            "learning_rate": lr,
                            "seed": seed,
                            **cell,
                            "converged": e is not None,
                            "epochs_to_converge": e,
                            "epochs_run": BUDGET if e is None else e,
                            "diverged": False,
                            "final_ce": round(0.01 * (seed + 1) * (3 if variant == "mse" else 2), 6),
                            "final_mse": 0.001,
                            "final_accuracy": 1.0 if e is not None else 0.75,
                            "final_max_error": 0.05 if e is not None else 0.4,
                        }
                    )
    frame = pd.DataFrame(rows)
    frame["epochs_to_converge"] = frame["epochs_to_converge"].astype("Int64")
    frame.insert(0, "run_id", range(len(frame)))
    return frame


def write_results(directory, runs: pd.DataFrame, *, name="hand", variants=("ce", "mse"), lrs=(1.0,), sweep=None, status="complete", epochs=BUDGET, total=None):
    directory.mkdir(parents=True)
    runs.to_csv(directory / "runs.csv", index=False)
    config = {"name": name, "variants": list(variants), "learning_rates": list(lrs), "seeds": 10, "training": {"epochs": epochs}, "sweep": sweep or {}}
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    manifest = {"status": status, "runs_total": total or len(runs), "runs_done": len(runs)}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def compare(*args):
    return runner.invoke(app, ["compare", *map(str, args)])


def expected_pair(v, b, budget=BUDGET) -> dict:
    """The paired statistics of per-seed epoch lists, worked out here with scipy: every pair
    counts, a run that did not converge is slower than any that did (ratio ±∞, coded as a
    log-ratio of ±1000 for the test), two such runs tie (ratio 1)."""
    ratios = []
    for x, y in zip(v, b):
        ratios.append(1.0 if x is None and y is None else np.inf if x is None else 0.0 if y is None else x / y)
    with np.errstate(divide="ignore"):
        d = np.log(ratios)
    coded = np.clip(d, -1000, 1000)
    only_v = sum(x is not None and y is None for x, y in zip(v, b))
    only_b = sum(x is None and y is not None for x, y in zip(v, b))
    return {
        "seeds_paired": len(v),
        "epochs_ratio_median": float(np.exp(np.median(d))) if abs(np.median(coded)) < 500 else None,  # None: a bound
        "wilcoxon_p": st.wilcoxon(coded, zero_method="zsplit").pvalue if np.any(coded != 0) else 1.0,
        "mcnemar_p": st.binomtest(only_v, only_v + only_b, 0.5).pvalue if only_v + only_b else 1.0,
        "win_rate": np.mean([x is not None and (y is None or x < y) for x, y in zip(v, b)]),
        "success_rate": np.mean([x is not None for x in v]),
        "baseline_success_rate": np.mean([y is not None for y in b]),
        "success_diff": 100 * (np.mean([x is not None for x in v]) - np.mean([y is not None for y in b])),
        "min_attainable_p": 2.0 ** (1 - len(v)),
    }


@pytest.fixture
def hand(tmp_path):
    return write_results(tmp_path / "hand", runs_frame({"ce": CE, "mse": MSE}))


def snapshot(directory) -> dict:
    """Every file below ``directory`` with its bytes."""
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_table_view_changes_nothing_and_out_saves_the_tables(hand, tmp_path):
    before = snapshot(hand)
    r = compare(hand)
    assert r.exit_code == 0, r.output
    assert snapshot(hand) == before, "compare wrote into the results directory it read"
    out = r.stdout
    assert "mse needed" in out and "the epochs of ce" in out and "--out" in out
    assert "Tuned" not in out  # one learning rate: the tuned comparison would repeat the same numbers
    exp = expected_pair(MSE, CE)
    assert f"faster on {round(exp['win_rate'] * 10)} of 10 seeds" in out
    assert "mse converged on 80% vs ce 90%" in out
    saved = tmp_path / "tables"
    r = compare(hand, "--out", saved)
    assert r.exit_code == 0, r.output
    assert snapshot(hand) == before
    for name in ("summary", "comparison", "tuned"):
        assert (saved / f"{name}.csv").exists()
    c = pd.read_csv(saved / "comparison.csv").iloc[0]
    for key, value in exp.items():
        assert c[key] == pytest.approx(value), key
    assert f"mse needed {c['epochs_ratio_median']:.2f}×" in out
    s = pd.read_csv(saved / "summary.csv").set_index("variant")
    assert s.loc["ce", "converged"] == 9 and s.loc["mse", "converged"] == 8
    # Kaplan–Meier: 8 of 10 converged (10, 30, 35, 40, 50, …), 2 censored at 200: S(50) = 1/2.
    assert s.loc["mse", "epochs_median"] == 50 and s.loc["mse", "epochs_median_converged"] == 45


def sections(text: str) -> dict[str, str]:
    """Split a csv/markdown/latex text of several tables at its '# name' / '### name' / '% name' lines."""
    out, name = {}, None
    for line in text.splitlines():
        for mark in ("### ", "# ", "% "):
            if line.startswith(mark) and line[len(mark) :] in ("summary", "comparison", "tuned"):
                name = line[len(mark) :]
                out[name] = ""
                break
        else:
            if name and line.strip():
                out[name] += line + "\n"
    return out


def cells(line: str, sep: str) -> list[str]:
    line = line.strip().removesuffix(r"\\").strip()
    return [c.strip().replace("\\_", "_") for c in line.strip("|").split(sep)]


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown", "latex"])
def test_every_format_parses_back_to_the_numbers(hand, fmt):
    r = compare(hand, "--format", fmt)
    assert r.exit_code == 0, r.output
    exp = expected_pair(MSE, CE)
    if fmt == "json":
        data = json.loads(r.stdout)
        frames = {k: pd.DataFrame(v) for k, v in data.items()}
    elif fmt == "csv":
        frames = {k: pd.read_csv(io.StringIO(v)) for k, v in sections(r.stdout).items()}
    else:
        frames = {}
        for k, text in sections(r.stdout).items():
            sep = "|" if fmt == "markdown" else "&"
            lines = [ln for ln in text.splitlines() if not ln.startswith(("|---", "\\hline", "\\begin", "\\end"))]
            header, *rows = [cells(ln, sep) for ln in lines]
            frames[k] = pd.DataFrame(rows, columns=header).replace("n/a", np.nan)
    assert set(frames) == {"summary", "comparison", "tuned"}
    c = frames["comparison"].iloc[0]
    tol = 1e-3 if fmt in ("markdown", "latex") else 1e-9  # 4 significant digits in text tables
    for key, value in exp.items():
        assert float(c[key]) == pytest.approx(value, rel=tol), key
    assert c["variant"] == "mse" and c["baseline"] == "ce"
    s = frames["summary"].set_index("variant")
    assert float(s.loc["mse", "success_rate"]) == 0.8 and int(float(s.loc["ce", "converged"])) == 9
    t = frames["tuned"].iloc[0]
    assert float(t["learning_rate"]) == 1.0 and float(t["epochs_ratio_median"]) == pytest.approx(exp["epochs_ratio_median"], rel=tol)


def test_baseline_option_flips_the_comparison(hand):
    r = compare(hand, "--baseline", "mse", "--format", "json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["comparison"][0]
    exp = expected_pair(CE, MSE)
    assert (c["variant"], c["baseline"]) == ("ce", "mse")
    for key, value in exp.items():
        assert c[key] == pytest.approx(value), key


def test_metric_option_compares_a_final_column(hand):
    r = compare(hand, "--metric", "final_ce", "--format", "json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["comparison"][0]
    x = np.array([0.03 * (s + 1) for s in range(10)])  # mse's final_ce by construction
    y = np.array([0.02 * (s + 1) for s in range(10)])
    assert c["final_ce_ratio_median"] == pytest.approx(1.5)
    assert c["wilcoxon_p"] == pytest.approx(st.wilcoxon(np.log(x / y)).pvalue)
    assert c["win_rate"] == 0.0
    table = compare(hand, "--metric", "final_ce").stdout
    assert "ended with 1.50×" in table and "the final_ce of ce" in table


def test_by_pools_the_other_axes_and_pairs_within_them(tmp_path):
    axes = {"model.hidden": ["[2]", "[4]"], "model.init.scale": [0.5, 1.0]}
    d = write_results(tmp_path / "grid", runs_frame({"ce": CE, "mse": MSE}, axes=axes), sweep={"model.hidden": [[2], [4]], "model.init.scale": [0.5, 1.0]})
    r = compare(d, "--format", "json")
    comp = json.loads(r.stdout)["comparison"]
    assert len(comp) == 4 and {c["seeds_paired"] for c in comp} == {10}
    r = compare(d, "--by", "model.hidden", "--format", "json")
    assert r.exit_code == 0, r.output
    comp = json.loads(r.stdout)["comparison"]
    assert [c["model.hidden"] for c in comp] == ["[2]", "[4]"]
    assert all("model.init.scale" not in c for c in comp)
    exp = expected_pair(MSE * 2, CE * 2)  # two scales pooled: twenty pairs, matched within each scale
    for c in comp:
        assert c["seeds_paired"] == 20
        assert c["wilcoxon_p"] == pytest.approx(exp["wilcoxon_p"]) and c["win_rate"] == pytest.approx(exp["win_rate"])
    table = compare(d, "--by", "model.hidden").stdout
    assert "model.hidden = [2]" in table and "model.hidden = [4]" in table and "pooled over model.init.scale" in table


@pytest.mark.parametrize(
    "args, words",
    [
        (["--baseline", "nope"], ["--baseline", "'nope'", "ce, mse"]),
        (["--metric", "speed"], ["--metric", "'speed'", "epochs", "final_ce"]),
        (["--by", "model.depth"], ["--by", "'model.depth'", "experiment"]),
        (["--format", "yaml"], ["--format", "'yaml'", "table, csv, markdown, latex, json"]),
    ],
)
def test_bad_options_exit_2_with_a_message(hand, args, words):
    r = compare(hand, *args)
    assert r.exit_code == 2, r.output
    for w in words:
        assert w in r.output
    assert "Traceback" not in r.output


def test_bad_inputs_exit_2(tmp_path, hand):
    r = compare(tmp_path / "missing")
    assert r.exit_code == 2 and "no such file" in r.output
    (hand / "config.yaml").unlink()
    r = compare(hand)
    assert r.exit_code == 2 and "config.yaml" in r.output and "Traceback" not in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = compare(empty)
    assert r.exit_code == 2 and "no nnrun results directory" in r.output


def test_partial_results_are_labelled(tmp_path):
    d = write_results(tmp_path / "p", runs_frame({"ce": CE, "mse": MSE}), status="partial", total=50)
    r = compare(d)
    assert r.exit_code == 0, r.output
    assert "partial: 20 of 50 runs" in r.stdout


def test_several_directories_combine_and_write_only_to_out(tmp_path):
    a = write_results(tmp_path / "all" / "a", runs_frame({"ce": CE, "mse": MSE}), name="alpha")
    b = write_results(tmp_path / "all" / "b", runs_frame({"ce": CE, "mse": MSE[::-1]}), name="beta")
    r = compare(tmp_path / "all", "--format", "json")
    assert r.exit_code == 0, r.output
    comp = json.loads(r.stdout)["comparison"]
    assert [c["experiment"] for c in comp] == ["alpha", "beta"]
    assert comp[1]["wilcoxon_p"] == pytest.approx(expected_pair(MSE[::-1], CE)["wilcoxon_p"])
    assert not (a / "comparison.csv").exists() and not (b / "comparison.csv").exists()
    assert "--out" in r.stderr
    out = tmp_path / "combined"
    r = compare(a, b, "--out", out)
    assert r.exit_code == 0, r.output
    assert "alpha" in r.stdout and "beta" in r.stdout
    assert pd.read_csv(out / "comparison.csv")["experiment"].tolist() == ["alpha", "beta"]


def test_same_experiment_with_a_different_setting_is_split_not_pooled(tmp_path):
    write_results(tmp_path / "r" / "short", runs_frame({"ce": CE, "mse": MSE}), epochs=BUDGET)
    write_results(tmp_path / "r" / "long", runs_frame({"ce": CE, "mse": MSE}), epochs=5000)
    r = compare(tmp_path / "r", "--format", "json")
    assert r.exit_code == 0, r.output
    comp = json.loads(r.stdout)["comparison"]
    assert sorted(c["training.epochs"] for c in comp) == [BUDGET, 5000]
    # the budget enters the Wilcoxon test: a non-converged run counts as epochs + 1
    by_budget = {c["training.epochs"]: c["wilcoxon_p"] for c in comp}
    assert by_budget[5000] == pytest.approx(expected_pair(MSE, CE, budget=5000)["wilcoxon_p"])
    assert by_budget[BUDGET] == pytest.approx(expected_pair(MSE, CE)["wilcoxon_p"])


def test_unequal_seeds_and_a_missing_baseline_partner(tmp_path):
    runs = runs_frame({"ce": CE, "mse": MSE})
    runs = runs[~((runs["variant"] == "ce") & (runs["seed"] >= 6))]  # ce ran seeds 0..5 only
    d = write_results(tmp_path / "u", runs)
    c = json.loads(compare(d, "--format", "json").stdout)["comparison"][0]
    exp = expected_pair(MSE[:6], CE[:6])
    assert c["seeds_paired"] == 6
    for key, value in exp.items():
        assert c[key] == pytest.approx(value), key


def test_no_converged_runs_say_so_and_give_nulls(tmp_path):
    d = write_results(tmp_path / "none", runs_frame({"ce": [None] * 10, "mse": [None] * 10}))
    r = compare(d)
    assert r.exit_code == 0, r.output
    assert "neither mse nor ce converged on any of the 10 seeds" in r.stdout
    c = json.loads(compare(d, "--format", "json").stdout)["comparison"][0]
    assert c["epochs_ratio_median"] == 1.0 and c["wilcoxon_p"] == 1.0  # ten ties: no evidence either way
    assert (c["success_rate"], c["mcnemar_p"], c["win_rate"], c["seeds_paired"]) == (0.0, 1.0, 0.0, 10)


def test_tiny_real_sweep_compare_matches_its_runs_and_sweeps_own_tables(tmp_path):
    out = tmp_path / "tiny"
    s = runner.invoke(app, ["sweep", "--set", "seeds=5", "--set", "training.epochs=300", "--set", "learning_rates=[0.1, 0.3, 1, 3, 10]", "--out", str(out), "--workers", "1"])
    assert s.exit_code == 0, s.output
    for name in ("summary", "comparison", "tuned"):
        assert (out / f"{name}.csv").exists()
    r = compare(out, "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    runs = pd.read_csv(out / "runs.csv")
    lrs = sorted(runs["learning_rate"].unique())
    assert [c["learning_rate"] for c in data["comparison"]] == lrs
    for c in data["comparison"]:
        at = runs[runs["learning_rate"] == c["learning_rate"]]
        ce, mse = (at[at["variant"] == v].set_index("seed").sort_index() for v in ("ce", "mse"))
        per_seed = lambda f: [e if ok else None for e, ok in zip(f["epochs_to_converge"], f["converged"])]  # noqa: E731
        exp = expected_pair(per_seed(mse), per_seed(ce), budget=300)
        assert c["wilcoxon_p"] == pytest.approx(exp["wilcoxon_p"])
        if exp["epochs_ratio_median"] is not None:
            assert c["epochs_ratio_median"] == pytest.approx(exp["epochs_ratio_median"])
        assert c["success_rate"] == mse["converged"].mean() and c["seeds_paired"] == 5
        assert c["min_attainable_p"] == pytest.approx(0.0625)
    for row in data["summary"]:
        at = runs[(runs["variant"] == row["variant"]) & (runs["learning_rate"] == row["learning_rate"])]
        assert row["runs"] == 5 and row["converged"] == at["converged"].sum()
    # sweep printed the very same tables and verdicts that compare prints
    before = snapshot(out)
    table = compare(out).stdout
    assert compare(out, "--metric", "final_mse", "--baseline", "mse").exit_code == 0
    assert snapshot(out) == before, "compare changed the run's own files"
    verdicts = [ln for ln in table.splitlines() if ln.startswith(("  mse needed", "  ce at lr", "  mse at lr"))]
    assert verdicts and all(ln in s.stdout for ln in verdicts)


def test_test_accuracy_reads_as_points(hand):
    """Issue case 5 through the command: an accuracy metric is a difference in points."""
    runs = pd.read_csv(hand / "runs.csv")
    runs["final_test_accuracy"] = np.where(runs["variant"] == "mse", 0.9, 0.8)
    runs.to_csv(hand / "runs.csv", index=False)
    r = compare(hand, "--metric", "final_test_accuracy", "--format", "json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["comparison"][0]
    assert c["final_test_accuracy_diff"] == pytest.approx(10.0) and not any("ratio" in k for k in c)
    table = compare(hand, "--metric", "final_test_accuracy").stdout
    assert "+10.0 pts" in table and "×" not in table.split("success:")[0]


def test_a_sweep_prints_one_overview_across_cells_legible_at_80_columns(tmp_path):
    """Several cells: one overview row per cell and variant, the details on request."""
    from rich.console import Console

    from nnrun import report

    out = tmp_path / "grid"
    s = runner.invoke(app, ["sweep", "--set", "seeds=6", "--set", "training.epochs=400", "--grid", "model.init.scale=0.5,2", "--out", str(out), "--workers", "1"])
    assert s.exit_code == 0, s.output
    assert "each variant at its tuned learning rate" in s.stdout and "add --verbose" in s.stdout
    assert "Tuned, each variant" not in s.stdout  # the per-cell detail only with --verbose
    tables = {name: pd.read_csv(out / f"{name}.csv") for name in ("summary", "comparison", "tuned")}
    for verbose in (False, True):
        console = Console(width=80, record=True)
        report.render(console, report.Tables(tables["summary"], tables["comparison"], tables["tuned"], ["model.init.scale"], title="xor", verbose=verbose))
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    assert text.count("Tuned, each variant") == 2  # verbose: each cell's detail
    v = runner.invoke(app, ["sweep", "--set", "seeds=6", "--set", "training.epochs=400", "--grid", "model.init.scale=0.5,2", "--out", str(tmp_path / "v"), "--workers", "1", "--verbose"])
    assert v.exit_code == 0 and v.stdout.count("Tuned, each variant") == 2


@pytest.mark.parametrize("existing", ["a file", "a non-empty directory"])
def test_out_that_exists_is_refused_and_left_alone(hand, tmp_path, existing):
    target = tmp_path / "taken"
    if existing == "a file":
        target.write_text("mine")
    else:
        target.mkdir()
        (target / "summary.csv").write_text("mine")
    before = target.read_text() if target.is_file() else (target / "summary.csv").read_text()
    r = compare(hand, "--out", target)
    assert r.exit_code == 2 and str(target) in " ".join(r.output.split())
    after = target.read_text() if target.is_file() else (target / "summary.csv").read_text()
    assert after == before


def test_out_help_says_what_compare_writes():
    r = runner.invoke(app, ["compare", "--help"])
    assert "results/<name>" not in r.output and "comparison.csv" in r.output
