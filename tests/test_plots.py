"""`nnrun plot`: figures are written, are images of the size asked for, and show summary.csv's numbers."""

from __future__ import annotations

import hashlib
import struct
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import invoke, small_sweep
from nnrun import figures, plots, stats

LRS = [0.1, 0.3, 1, 3, 10]  # the default sweep's, which the tiny sweeps keep
BUDGET = 300  # the tiny sweeps' training.epochs
STEMS = ["curves-ce", "success", "epochs", "ecdf"]


@pytest.fixture(scope="module")
def default_dir(tmp_path_factory) -> Path:
    return small_sweep(tmp_path_factory.mktemp("plots") / "default")


@pytest.fixture(scope="module")
def axis_dir(tmp_path_factory) -> Path:
    return small_sweep(tmp_path_factory.mktemp("plots") / "axis", "--grid", "model.init.scale=0.5,2")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def expected_px(size: tuple[float, float]) -> tuple[int, int]:
    return round(size[0] * figures.DPI), round(size[1] * figures.DPI)


def written(result) -> list[Path]:
    return [Path(line.removeprefix("wrote ").strip()) for line in result.output.splitlines() if line.startswith("wrote ")]


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


# ----------------------------------------------------------------------------- files


def test_plot_writes_four_pngs_of_the_expected_size_into_results_plots(default_dir):
    before = digest(default_dir)
    result = invoke("plot", default_dir)
    assert result.exit_code == 0, result.output
    paths = written(result)
    assert paths == [default_dir / "plots" / f"{stem}.png" for stem in STEMS]
    for path in paths:
        assert path.stat().st_size > 10_000
    assert png_size(paths[0]) == expected_px(figures.curves_figsize(len(LRS)))
    for path in paths[1:]:
        assert png_size(path) == expected_px(figures.PLOT_SIZE)
    import matplotlib.image

    image = matplotlib.image.imread(paths[1])
    assert image.shape[:2] == expected_px(figures.PLOT_SIZE)[::-1]
    assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    assert digest(default_dir) == before  # reads only: runs, curves and tables untouched


def test_plot_svg_into_out_directory(default_dir, tmp_path):
    out = tmp_path / "figs"
    result = invoke("plot", default_dir, "--format", "svg", "--metric", "mse", "--out", out)
    assert result.exit_code == 0, result.output
    paths = written(result)
    assert [p.name for p in paths] == ["curves-mse.svg", "success.svg", "epochs.svg", "ecdf.svg"]
    assert sorted(out.iterdir()) == sorted(paths)
    for path, size in zip(paths, [figures.curves_figsize(len(LRS))] + [figures.PLOT_SIZE] * 3):
        root = ET.parse(path).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert float(root.get("width").removesuffix("pt")) == pytest.approx(size[0] * 72)
        assert float(root.get("height").removesuffix("pt")) == pytest.approx(size[1] * 72)


def test_a_sweep_axis_gives_one_figure_set_per_value(axis_dir):
    result = invoke("plot", axis_dir)
    assert result.exit_code == 0, result.output
    names = [p.name for p in written(result)]
    assert names == [f"{stem}-model.init.scale={v}.png" for v in ("0.5", "2.0") for stem in STEMS]
    assert all((axis_dir / "plots" / n).is_file() for n in names)


def test_several_results_directories_each_get_a_subfolder(default_dir, axis_dir, tmp_path):
    result = invoke("plot", default_dir, axis_dir, "--out", tmp_path / "both")
    assert result.exit_code == 0, result.output
    folders = {p.parent for p in written(result)}
    assert folders == {tmp_path / "both" / "default", tmp_path / "both" / "axis"}
    assert len(written(result)) == 4 + 8


# ----------------------------------------------------------------------------- the plotted data


def _summary_csv(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / "summary.csv")


def test_plotted_data_equal_summary_csv(default_dir):
    (fs,) = plots.figure_data(plots.read_sweep(default_dir))
    summary = _summary_csv(default_dir)
    key = ["variant", "learning_rate"]

    success = fs.success.merge(summary, on=key, suffixes=("", "_csv"))
    assert len(success) == len(summary) == 2 * len(LRS)
    for col in ("success_rate", "success_ci_low", "success_ci_high"):
        np.testing.assert_allclose(success[col], success[f"{col}_csv"], rtol=1e-12)

    epochs = fs.epochs.merge(summary, on=key, suffixes=("", "_csv"))
    assert len(epochs) == len(summary)  # every rate, a median not reached included (drawn as a bound)
    for col in ("epochs_median", "epochs_median_ci_low", "epochs_median_ci_high", "converged", "runs"):
        np.testing.assert_allclose(epochs[col], epochs[f"{col}_csv"], rtol=1e-12, equal_nan=True)
    assert (epochs["reached"] == epochs["epochs_median"].notna()).all()

    # Each curve ends where its run stopped: at an epoch, the band counts the runs still training.
    runs = pd.read_csv(default_dir / "runs.csv")
    for epoch in (0, 100, int(fs.curves["epoch"].max())):
        at = fs.curves[fs.curves["epoch"] == epoch]
        for _, row in at.iterrows():
            g = runs[(runs["variant"] == row["variant"]) & (runs["learning_rate"] == row["learning_rate"]) & ~runs["diverged"]]
            assert row["runs"] == (g["epochs_run"] >= epoch).sum(), (epoch, row["variant"], row["learning_rate"])


def test_ecdf_is_taken_at_each_variants_best_learning_rate(default_dir):
    (fs,) = plots.figure_data(plots.read_sweep(default_dir))
    summary = _summary_csv(default_dir)
    runs = pd.read_csv(default_dir / "runs.csv")
    tuned = pd.read_csv(default_dir / "tuned.csv").iloc[0]
    best = dict(zip(fs.best["variant"], fs.best["learning_rate"]))
    assert best == {"ce": tuned["baseline_learning_rate"], "mse": tuned["learning_rate"]}  # the tuned rates of tuned.csv
    for variant, lr in best.items():
        b = summary[(summary["variant"] == variant) & (summary["learning_rate"] == lr)].iloc[0]
        e = fs.ecdf[fs.ecdf["variant"] == variant]
        assert set(e["learning_rate"]) == {lr}
        sel = runs[(runs["variant"] == variant) & (runs["learning_rate"] == lr) & runs["converged"]]
        converged_at = np.unique(sel["epochs_to_converge"].astype(float))
        assert list(e["epochs"][e["epochs"] < BUDGET]) == list(converged_at[converged_at < BUDGET])
        # Censoring happens only at the budget here, so 1 − S(t) is the share converged by t.
        for t, f in zip(e["epochs"], e["fraction"]):
            assert f == pytest.approx((sel["epochs_to_converge"] <= t).sum() / b["runs"])
        assert e["fraction"].max() == pytest.approx(b["success_rate"])
        assert e["epochs"][e["fraction"] >= 0.5 - 1e-12].min() == b["epochs_median"]  # the same estimator as summary.csv
        assert (e["low"] <= e["fraction"] + 1e-12).all() and (e["fraction"] <= e["high"] + 1e-12).all()


def test_group_data_equal_that_groups_rows_of_summary_csv(axis_dir):
    sets = plots.figure_data(plots.read_sweep(axis_dir))
    summary = _summary_csv(axis_dir)
    assert [fs.group.key for fs in sets] == [(("model.init.scale", 0.5),), (("model.init.scale", 2.0),)]
    for fs in sets:
        rows = summary[summary["model.init.scale"] == fs.group.key[0][1]]
        merged = fs.epochs.merge(rows, on=["variant", "learning_rate"], suffixes=("", "_csv"))
        assert len(merged) == len(rows) > 0
        np.testing.assert_allclose(merged["epochs_median"], merged["epochs_median_csv"], rtol=1e-12, equal_nan=True)
        assert set(fs.group.runs["model.init.scale"]) == {fs.group.key[0][1]}


def test_by_pools_over_other_columns(axis_dir):
    (whole,) = plots.groups(plots.read_sweep(axis_dir), ["output"])
    assert whole.key == (("output", "sigmoid"),)
    assert whole.summary["runs"].tolist() == [2 * 5] * (2 * len(LRS))  # two scales × five seeds pooled


def test_titles_say_what_was_trained(axis_dir):
    sw = plots.read_sweep(axis_dir)
    g = plots.groups(sw)[1]
    text = plots.title(sw, g, "Success")
    assert "xor" in text and "3-4-1 sigmoid" in text and "sgd" in text
    assert "5 runs each" in text and "model.init.scale = 2.0" in text


def test_titles_follow_the_groups_cell_config():
    from nnrun.config import load

    config = load({"variants": ["ce", "ce-softmax"], "training": {"epochs": 10}, "sweep": {"training.optimizer": [{"name": "sgd"}, {"name": "adam"}]}})
    (adam,) = plots.group_config(config, (("training.optimizer", '{"name": "adam"}'),))
    assert adam.training.optimizer.name == "adam"
    assert plots.describe(adam) == "xor · 3-4-1 sigmoid (ce-softmax: 3-4-2) · adam, full batch, summed gradients"
    assert len(plots.group_config(config, ())) == 2


def test_one_colour_per_variant_in_every_figure(default_dir):
    styles = plots.variant_styles(["ce", "mse", "ce"])
    assert list(styles) == ["ce", "mse"] and styles["ce"].color != styles["mse"].color
    (fs,) = plots.figure_data(plots.read_sweep(default_dir))
    for fig in (
        plots.draw_success(fs.success, styles, "t"),
        plots.draw_epochs(fs.epochs, LRS, styles, "t", 300),
        plots.draw_ecdf(fs.ecdf, fs.best, styles, "t", 300),
    ):
        (ax,) = fig.axes
        legend = fig.legends[0]
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            variant = text.get_text().split(" ")[0]
            assert handle.get_color() == styles[variant].color
        colours = {line.get_color() for line in ax.get_lines() if line.get_color() != "0.5"}  # 0.5: the budget line
        assert colours == {styles["ce"].color, styles["mse"].color}


# ----------------------------------------------------------------------------- pure functions, by hand


def test_curve_bands_by_hand():
    runs = pd.DataFrame(
        {
            "run_id": [0, 1, 2, 3, 4],
            "variant": ["a", "a", "a", "a", "b"],
            "learning_rate": [1.0] * 5,
            "diverged": [False, False, False, True, False],
        }
    )
    nan = np.nan
    ce = np.array(
        [
            [1.0, 0.5, nan],
            [3.0, 0.7, nan],
            [2.0, np.inf, nan],
            [9.0, 9.0, 9.0],  # diverged: left out
            [4.0, 4.0, 4.0],
        ],
        dtype=np.float32,
    )
    curves = {"epoch": np.array([0, 10, 20]), "run_id": np.arange(5), "ce": ce, "mse": ce}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no all-NaN median warning for the empty epoch
        bands = plots.curve_bands(runs, curves, "ce")
    a = bands[bands["variant"] == "a"]
    np.testing.assert_allclose(a["median"], [2.0, 0.6, nan])
    np.testing.assert_allclose(a["q25"], [1.5, 0.55, nan])
    np.testing.assert_allclose(a["q75"], [2.5, 0.65, nan])
    assert a["runs"].tolist() == [3, 2, 0]
    b = bands[bands["variant"] == "b"]
    assert b["median"].tolist() == [4.0, 4.0, 4.0]


def test_curve_bands_follow_run_id_not_row_order():
    runs = pd.DataFrame({"run_id": [7, 3], "variant": ["a", "b"], "learning_rate": [1.0, 1.0], "diverged": [False, False]})
    curves = {"epoch": np.array([0]), "run_id": np.array([3, 7]), "ce": np.array([[30.0], [70.0]])}
    bands = plots.curve_bands(runs, curves, "ce").set_index("variant")
    assert bands.loc["a", "median"] == 70.0 and bands.loc["b", "median"] == 30.0


def test_survival_curve_ends_at_the_success_rate_and_counts_an_early_censored_run():
    runs = pd.DataFrame(
        {
            "variant": ["a"] * 4,
            "learning_rate": [1.0] * 4,
            "seed": range(4),
            "converged": [True, False, True, True],
            "epochs_to_converge": [30.0, np.nan, 10.0, 20.0],
            "epochs_run": [30, 100, 10, 20],
        }
    )
    best = pd.DataFrame({"variant": ["a"], "learning_rate": [1.0]})
    e = plots.ecdf_points(runs, pd.DataFrame(), best, budget=100)
    assert e["epochs"].tolist() == [10.0, 20.0, 30.0, 100.0]  # the censored run's time ends the table
    assert e["fraction"].tolist() == pytest.approx([0.25, 0.5, 0.75, 0.75])
    assert set(e["runs"]) == {4}
    # Censored at 15 instead (a budget-15 run in a pooled group): Kaplan–Meier by hand,
    # S(10) = 3/4, S(20) = 3/4 · 1/2, S(30) = 0, so the share converged is 1/4, 5/8, 1.
    pooled = runs.assign(**{"training.epochs": [100, 15, 100, 100]})
    e = plots.ecdf_points(pooled, pd.DataFrame(), best)
    assert e["fraction"].tolist() == pytest.approx([0.25, 0.25, 0.625, 1.0])


def test_log_limits_ignore_zero_nan_and_inf():
    assert plots.log_limits([np.nan, 0, 10, np.inf, 100]) == pytest.approx((8.0, 125.0))
    assert plots.log_limits([np.nan]) is None
    assert plots.log_limits([5.0], top=1000) == pytest.approx((4.0, 1250.0))


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metric", "accuracy"], "--metric must be one of ce, mse, got 'accuracy'"),
        (["--format", "jpg"], "--format must be one of png, svg, got 'jpg'"),
        (["--by", "model.init.scal"], "did you mean 'model.init.scale'?"),
        (["--by", "variant"], "every figure already shows each variant"),
        (["--by", "model.init.scale", "--by", "model.init.scale"], "a column is named twice"),
    ],
)
def test_bad_options_exit_2_with_a_message(axis_dir, args, message):
    result = invoke("plot", axis_dir, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (axis_dir / "plots" / "success-model.init.scale=0.5.jpg").exists()


def test_empty_or_damaged_directories_exit_2(tmp_path, default_dir):
    result = invoke("plot", tmp_path)
    assert result.exit_code == 2
    assert "no nnrun results directory" in " ".join(result.output.split())

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("manifest.json", "runs.csv", "config.yaml"):
        (damaged / name).write_bytes((default_dir / name).read_bytes())
    result = invoke("plot", damaged)
    assert result.exit_code == 2
    assert "curves.npz: missing" in " ".join(result.output.split())
    assert not (damaged / "plots").exists()


def test_a_partial_run_is_plotted_from_what_finished_and_says_what_is_missing(default_dir, tmp_path):
    import json

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.yaml").write_bytes((default_dir / "config.yaml").read_bytes())
    runs = pd.read_csv(default_dir / "runs.csv")
    runs[runs["learning_rate"] < 3].to_csv(partial / "runs.csv", index=False)
    manifest = json.loads((default_dir / "manifest.json").read_text())
    manifest.update(status="partial", runs_done=int((runs["learning_rate"] < 3).sum()))
    (partial / "manifest.json").write_text(json.dumps(manifest))
    result = invoke("plot", partial)
    assert result.exit_code == 0, result.output
    assert {p.name for p in written(result)} == {f"{stem}.png" for stem in STEMS[1:]}
    text = " ".join(result.output.split())
    assert f"partial ({manifest['runs_done']} of {manifest['runs_total']} runs)" in text and "curves.npz" in text and "--resume" in text


def test_out_that_is_not_empty_is_refused(default_dir, tmp_path):
    taken = tmp_path / "figs"
    taken.mkdir()
    (taken / "success.png").write_bytes(b"mine")
    result = invoke("plot", default_dir, "--out", taken)
    assert result.exit_code == 2 and "not empty" in " ".join(result.output.split())
    assert (taken / "success.png").read_bytes() == b"mine"
    assert "figures" in invoke("plot", "--help").output


def test_a_variant_keeps_its_colour_whatever_is_plotted_with_it():
    alone = plots.variant_styles(["mse"])["mse"]
    assert plots.variant_styles(["mitchell-on-ce", "ce", "mse"])["mse"] == alone
    assert plots.variant_styles(["ce"])["ce"].color == "#1f77b4" and alone.color == "#ff7f0e"
    builtin = [plots.variant_style(v).color for v in figures.FIXED_STYLES]
    assert len(set(builtin)) == len(builtin)
    custom = plots.variant_style("my-variant")
    assert custom == plots.variant_style("my-variant") and custom.color in figures.SPARE_COLOURS
    assert custom == plots.variant_styles(["ce", "my-variant"])["my-variant"]
