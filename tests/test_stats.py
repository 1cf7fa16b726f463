"""stats.py against hand-worked counts and scipy.stats called directly on hand-built runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from nnrun import stats, tuning

Z = st.norm.ppf(0.975)
BUDGET = 100


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval from its textbook formula."""
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return centre - half, centre + half


def make_runs(spec: dict, lr: float = 1.0, **extra) -> pd.DataFrame:
    """``spec``: variant -> {seed: epochs to converge, or None for a run that did not}."""
    rows = []
    for variant, by_seed in spec.items():
        for seed, e in by_seed.items():
            rows.append(
                {
                    "variant": variant,
                    "output": "sigmoid",
                    "loss": variant,
                    "delta": "exact",
                    "learning_rate": lr,
                    "seed": seed,
                    **extra,
                    "converged": e is not None,
                    "epochs_to_converge": np.nan if e is None else float(e),
                    "epochs_run": BUDGET if e is None else e,
                    "diverged": False,
                    "final_ce": 0.01 * (seed + 1) * (2 if variant == "mse" else 1),
                    "final_mse": 0.001,
                    "final_accuracy": 1.0,
                    "final_max_error": 0.05 if e is not None else 0.4,
                }
            )
    frame = pd.DataFrame(rows)
    frame.insert(0, "run_id", range(len(frame)))
    return frame


# Baseline ce against mse on nine seeds: ties, a pair where neither converged, one where only
# the baseline converged, one where only the variant did.
CE = {0: 10, 1: 20, 2: 30, 3: None, 4: 40, 5: None, 6: 50, 7: 16, 8: 12}
MSE = {0: 40, 1: 50, 2: 30, 3: None, 4: None, 5: 60, 6: 25, 7: 64, 8: 24}


def test_wilson_matches_the_textbook_formula():
    for k, n in [(0, 10), (3, 10), (10, 10), (97, 100), (1, 1)]:
        assert stats.wilson(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
    assert all(np.isnan(stats.wilson(0, 0)))


def km_by_lifelines(epochs, converged, budget):
    """The independent oracle: lifelines' Kaplan–Meier median, its CI and quartiles (inf → NaN)."""
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times, qth_survival_times

    t = np.where(converged, epochs, budget)
    kmf = KaplanMeierFitter().fit(t, np.asarray(converged, bool))
    ci = median_survival_times(kmf.confidence_interval_).to_numpy(float)[0]
    nan = lambda x: np.nan if np.isinf(x) else float(x)  # noqa: E731
    sf = kmf.survival_function_
    return nan(kmf.median_survival_time_), nan(ci[0]), nan(ci[1]), nan(qth_survival_times(0.75, sf)), nan(qth_survival_times(0.25, sf))


@pytest.mark.parametrize("seed", range(6))
def test_kaplan_meier_median_ci_and_quartiles_equal_lifelines(seed):
    pytest.importorskip("lifelines", reason="lifelines is the independent Kaplan–Meier oracle (test extra)")
    rng = np.random.default_rng(seed)
    n = 37  # odd: no S(t) lands exactly on 1/4, 1/2 or 3/4, where float rounding decides
    epochs = rng.integers(10, 400, n).astype(float)
    converged = rng.random(n) < [0.9, 0.7, 0.55, 0.5, 1.0, 0.3][seed]
    km = stats.survival(epochs, converged, 400.0)
    expected = km_by_lifelines(epochs, converged, 400.0)
    got = (km.median, km.ci_low, km.ci_high, km.q25, km.q75)
    np.testing.assert_allclose(got, expected, equal_nan=True)


def test_kaplan_meier_hand_worked_ties_one_run_and_all_censored():
    # 10, 20, 30, 40 all converged: S = 3/4, 1/2, 1/4, 0; the median is the smallest t with
    # S(t) ≤ 1/2 (20, not numpy's 25), the quartiles 10 and 30.
    km = stats.survival([10, 20, 30, 40], [True] * 4, 100)
    assert (km.median, km.q25, km.q75) == (20, 10, 30)
    # One run: a median, but no interval (its band collapses onto its own time).
    one = stats.survival([7020], [True], 10000)
    assert one.median == 7020 and np.isnan(one.ci_low) and np.isnan(one.ci_high)
    # Every run censored: S stays 1, nothing is reached.
    none = stats.survival([np.nan] * 5, [False] * 5, 100)
    assert all(np.isnan([none.median, none.ci_low, none.ci_high, none.q25, none.q75]))
    # 2 of 4 converged by 30, the others censored at 100: S(30) = 1/2 exactly.
    assert stats.survival([10, 30, np.nan, np.nan], [True, True, False, False], 100).median == 30


def test_summary_median_counts_every_run_not_only_the_converged():
    """Issue case 1: 16 of 100 runs converge within 500 epochs; the converged-only median
    (about 468) made the variant look fast. The Kaplan–Meier median is not reached."""
    epochs = {s: (440 + 2 * s if s < 16 else None) for s in range(100)}
    runs = make_runs({"mse": epochs})
    row = stats.summarize(runs, [], budget=500).iloc[0]
    assert row["converged"] == 16 and row["runs"] == 100 and row["budget"] == 500
    assert np.isnan(row["epochs_median"]) and np.isnan(row["epochs_median_ci_low"])
    assert row["epochs_median_converged"] == np.median([440 + 2 * s for s in range(16)])
    assert row["epochs_q25"] == 440 + 2 * 24 if False else np.isnan(row["epochs_q25"])  # only 16% converged: S never reaches 3/4
    from nnrun import report

    assert report.median_cell(row) == "> 500"


def test_summary_counts_final_medians_and_a_diverged_run_is_censored():
    runs = make_runs({"ce": {0: 10, 1: 20, 2: 30, 3: 40, 4: None}})
    runs.loc[4, ["diverged", "final_ce"]] = [True, np.nan]
    row = stats.summarize(runs, [], budget=BUDGET).iloc[0]
    assert (row["runs"], row["converged"], row["diverged"]) == (5, 4, 1)
    assert row["success_rate"] == 0.8
    assert (row["success_ci_low"], row["success_ci_high"]) == pytest.approx(wilson_by_hand(4, 5))
    # S = 4/5, 3/5, 2/5, 1/5 then the diverged run censored at 100: the median is 30.
    assert (row["epochs_q25"], row["epochs_median"], row["epochs_q75"]) == (20.0, 30.0, 40.0)
    assert row["epochs_median_converged"] == 25.0
    assert row["median_final_ce"] == pytest.approx(np.median([0.01, 0.02, 0.03, 0.04]))  # the diverged run left out


def standin(d, big=1e3):
    """The oracle's own coding of a censored pair: a log-ratio beyond every real one."""
    return np.where(np.isinf(d), np.sign(d) * big, d)


def test_paired_effect_and_test_use_the_same_pairs():
    """Issue case 2: every seed pair counts for the ratio and for its test."""
    p = stats.paired(make_runs({"mse": MSE}), make_runs({"ce": CE}), budget=BUDGET)
    assert p.seeds_paired == 9 and p.effect_n == 9
    assert p.success_rate == pytest.approx(7 / 9) and p.baseline_success_rate == pytest.approx(7 / 9)
    assert p.success_diff == 0.0
    # Discordant pairs: seed 5 (only mse converged), seed 4 (only ce): binomial 1 of 2.
    assert p.mcnemar_p == pytest.approx(st.binomtest(1, 2, 0.5).pvalue) == 1.0
    # Per-seed ratios: 4, 2.5, 1, tie (neither converged), +∞ (seed 4), 0 (seed 5), 0.5, 4, 2:
    # sorted 0, 0.5, 1, 1, 2, 2.5, 4, 4, ∞ — the median is 2 (over both-converged pairs only it was 2.25).
    assert p.effect == pytest.approx(2.0)
    with np.errstate(divide="ignore"):  # log 0 = −∞ on purpose: seed 5's ratio
        d = np.log([4, 2.5, 1, 1, np.inf, 0, 0.5, 4, 2])
        assert p.wilcoxon_p == pytest.approx(st.wilcoxon(standin(d), zero_method="zsplit").pvalue)
    # mse sooner on seed 5 (ce never converged) and seed 6 (25 < 50); not on the tie.
    assert p.win_rate == pytest.approx(2 / 9)
    assert p.min_attainable_p == pytest.approx(2**-8)


def test_a_median_on_a_censored_pair_is_a_bound():
    # ce converges on 6 of 7 seeds; mse on 2: the median ratio lands on +∞.
    ce = make_runs({"ce": {s: 10 * (s + 1) for s in range(6)} | {6: None}})
    mse = make_runs({"mse": {0: 40, 1: 30} | {s: None for s in range(2, 7)}})
    p = stats.paired(mse, ce, budget=BUDGET)
    assert np.isinf(p.effect) and p.effect > 0
    # Counting each censored run at the budget (100): ratios 4, 1.5, 100/30, 100/40, 100/50, 100/60, 1 (both at 100).
    assert p.bound == pytest.approx(np.median([4, 1.5, 100 / 30, 100 / 40, 100 / 50, 100 / 60, 1]))
    from nnrun import report

    row = pd.Series(stats.stat_row(p))
    assert report.effect_cell(row).startswith(f"> {p.bound:.2f}×")


def test_a_run_converging_on_the_last_epoch_still_beats_one_that_never_did():
    ce = make_runs({"ce": {0: BUDGET, 1: 10, 2: 20, 3: 30, 4: 40, 5: 50}})
    mse = make_runs({"mse": {0: None, 1: 15, 2: 29, 3: 33, 4: 60, 5: 44}})
    p = stats.paired(mse, ce, budget=BUDGET)
    d = np.log([np.inf, 1.5, 29 / 20, 1.1, 1.5, 44 / 50])
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(standin(d), zero_method="zsplit").pvalue)
    assert p.win_rate == pytest.approx(1 / 6)


def test_exact_mcnemar_and_the_success_difference_in_points():
    # mse converges on all 10 seeds, ce on 2: 8 discordant pairs, all one way.
    ce = make_runs({"ce": {s: (10 if s < 2 else None) for s in range(10)}})
    mse = make_runs({"mse": {s: 20 for s in range(10)}})
    p = stats.paired(mse, ce, budget=BUDGET)
    assert p.mcnemar_p == pytest.approx(2 * 0.5**8)
    assert p.success_diff == pytest.approx(80.0)
    ref = st.bootstrap((100.0 * np.r_[np.zeros(2), np.ones(8)],), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(stats.BOOTSTRAP_SEED))
    assert (p.success_diff_ci_low, p.success_diff_ci_high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert p.win_rate == pytest.approx(8 / 10)  # slower where both converged, faster where ce did not
    assert p.effect == 0.0  # the median pair: mse converged, ce censored (ratio 0, a bound)
    assert p.bound == pytest.approx(20 / 100)


def test_no_converged_runs_tie_and_give_no_median():
    ce = make_runs({"ce": {s: None for s in range(6)}})
    mse = make_runs({"mse": {s: None for s in range(6)}})
    p = stats.paired(mse, ce, budget=BUDGET)
    assert p.seeds_paired == 6 and p.success_rate == 0 and p.mcnemar_p == 1.0 and p.win_rate == 0
    assert p.effect == 1.0 and p.wilcoxon_p == 1.0  # six ties: no evidence either way
    row = stats.summarize(ce, [], budget=BUDGET).iloc[0]
    assert row["success_rate"] == 0 and np.isnan(row["epochs_median"]) and np.isnan(row["epochs_median_converged"])
    assert row["success_ci_low"] == 0 and row["success_ci_high"] == pytest.approx(Z**2 / (6 + Z**2))


def test_all_converged_and_all_tied():
    ce = make_runs({"ce": {s: 10 + s for s in range(8)}})
    tied = make_runs({"mse": {s: 10 + s for s in range(8)}})
    p = stats.paired(tied, ce, budget=BUDGET)
    assert p.success_rate == p.baseline_success_rate == 1.0 and p.mcnemar_p == 1.0
    assert p.effect == 1.0 and (p.effect_ci_low, p.effect_ci_high) == (1.0, 1.0)
    assert p.wilcoxon_p == 1.0 and p.win_rate == 0.0  # every pair ties; ties never win
    row = stats.summarize(ce, [], budget=BUDGET).iloc[0]
    assert row["success_ci_high"] == pytest.approx(1.0) and row["success_ci_low"] == pytest.approx(wilson_by_hand(8, 8)[0])


def test_one_seed():
    p = stats.paired(make_runs({"mse": {0: 30}}), make_runs({"ce": {0: 10}}), budget=BUDGET)
    assert p.seeds_paired == 1 and p.effect == pytest.approx(3.0) and np.isnan(p.effect_ci_low) and np.isnan(p.effect_ci_high)
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon([np.log(3)]).pvalue) == 1.0
    assert p.win_rate == 0.0 and p.min_attainable_p == 1.0


def test_five_seeds_cannot_reach_p_below_005_and_the_output_says_so():
    """Issue case 6: with 5 pairs the smallest two-sided p is 2/2⁵ = 0.0625."""
    ce = make_runs({"ce": {s: 10 for s in range(5)}})
    mse = make_runs({"mse": {s: 50 + s for s in range(5)}})
    p = stats.paired(mse, ce, budget=BUDGET)
    assert p.min_attainable_p == pytest.approx(0.0625)
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(np.log([5, 5.1, 5.2, 5.3, 5.4])).pvalue) == pytest.approx(0.0625)
    from rich.console import Console

    from nnrun import report

    runs = pd.concat([ce, mse], ignore_index=True)
    summary = stats.summarize(runs, [], budget=BUDGET)
    console = Console(width=80, record=True)
    report.render(console, report.Tables(summary, stats.compare(runs, [], "ce", budget=BUDGET), tuning.tuned(runs, summary, [], "ce", budget=BUDGET), []))
    assert "with 5 seed pairs no paired test can reach p < 0.05" in console.export_text()


def test_unequal_seeds_pair_only_the_common_ones():
    ce = make_runs({"ce": {s: 10 for s in range(10)}})
    mse = make_runs({"mse": {s: 10 + 5 * s for s in range(3, 14)}})  # seeds 3..13
    p = stats.paired(mse, ce, budget=BUDGET)
    assert p.seeds_paired == 7  # seeds 3..9
    assert p.effect == pytest.approx(np.median([(10 + 5 * s) / 10 for s in range(3, 10)]))
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(np.log([(10 + 5.0 * s) / 10 for s in range(3, 10)])).pvalue)
    assert stats.paired(mse, make_runs({"ce": {99: 10}})) == stats.NO_PAIRS


def test_final_metric_pairs_finite_values_and_a_finite_value_wins():
    ce = make_runs({"ce": {s: 10 for s in range(6)}})
    mse = make_runs({"mse": {s: 10 for s in range(6)}})
    mse["final_ce"] = [0.5, 0.1, 0.4, 0.2, 0.9, np.nan]  # seed 5 diverged
    ce["final_ce"] = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    p = stats.paired(mse, ce, "final_ce")
    x, y = np.array([0.5, 0.1, 0.4, 0.2, 0.9]), np.full(5, 0.2)
    assert p.effect_n == 5 and p.effect == pytest.approx(np.median(x / y))
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(np.log(x / y), zero_method="zsplit").pvalue)
    assert p.win_rate == pytest.approx(1 / 6)  # lower on seed 1 only; the diverged seed loses
    ce["final_ce"] = [0.2, 0.2, 0.2, 0.2, 0.2, np.nan]
    mse["final_ce"] = [0.5, 0.1, 0.4, 0.2, 0.9, 0.3]
    assert stats.paired(mse, ce, "final_ce").win_rate == pytest.approx(2 / 6)


def test_accuracy_compares_as_a_difference_in_points():
    """Issue case 5: accuracy is a share, so its effect is a difference in points, not a ratio."""
    ce = make_runs({"ce": {s: 10 for s in range(6)}})
    mse = make_runs({"mse": {s: 10 for s in range(6)}})
    mse["final_accuracy"], ce["final_accuracy"] = [1, 1, 0.75, 1, 1, 1], [0.75] * 6
    p = stats.paired(mse, ce, "final_accuracy")
    assert p.win_rate == pytest.approx(5 / 6)
    assert p.effect == pytest.approx(100 * np.mean([0.25, 0.25, 0, 0.25, 0.25, 0.25]))  # +20.8 points
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon([25, 25, 0, 25, 25, 25.0], zero_method="zsplit").pvalue)
    row = stats.stat_row(p, "final_accuracy")
    assert "final_accuracy_diff" in row and "final_accuracy_diff_ci_low" in row and not any("ratio" in k for k in row)
    from nnrun import report

    assert report.effect_cell(pd.Series(row), "final_accuracy").startswith("+20.8 pts")


def test_compare_groups_by_axes_and_learning_rate_with_the_documented_columns():
    parts = []
    for hidden, lr, shift in [("[2]", 1.0, 0), ("[2]", 3.0, 5), ("[4]", 1.0, 10)]:
        parts.append(make_runs({"ce": {s: 10 + s for s in range(6)}, "mse": {s: 20 + s + shift for s in range(6)}}, lr=lr, **{"model.hidden": hidden}))
    runs = pd.concat(parts, ignore_index=True)
    c = stats.compare(runs, ["model.hidden"], "ce", budget=BUDGET)
    spec_cols = ["variant", "baseline", "model.hidden", "learning_rate", "seeds_paired", "success_rate", "baseline_success_rate", "success_diff",
                 "mcnemar_p", "epochs_ratio_median", "epochs_ratio_ci_low", "epochs_ratio_ci_high", "wilcoxon_p", "win_rate", "min_attainable_p"]  # fmt: skip
    assert [col for col in c.columns if col in spec_cols] == spec_cols
    assert list(zip(c["model.hidden"], c["learning_rate"])) == [("[2]", 1.0), ("[2]", 3.0), ("[4]", 1.0)]
    # six pairs: the median of the log-ratios, i.e. the geometric mean of the middle two ratios
    expected = [np.exp(np.median(np.log([(20 + s + shift) / (10 + s) for s in range(6)]))) for shift in (0, 5, 10)]
    assert c["epochs_ratio_median"].tolist() == pytest.approx(expected)
    logs = [np.log([(20 + s + k) / (10 + s) for s in range(6)]) for k in (0, 5, 10)]
    assert c["wilcoxon_p"].tolist() == pytest.approx([st.wilcoxon(d).pvalue for d in logs])


def test_pooling_an_axis_pairs_on_seed_and_that_axis():
    parts = [make_runs({"ce": {s: 10 for s in range(5)}, "mse": {s: 10 * k for s in range(5)}}, **{"model.init.scale": k}) for k in (2, 3)]
    runs = pd.concat(parts, ignore_index=True)
    c = stats.compare(runs, [], "ce", pair_on=["seed", "model.init.scale"], budget=BUDGET).iloc[0]
    assert c["seeds_paired"] == 10 and c["epochs_ratio_median"] == pytest.approx(np.sqrt(2 * 3))  # middle ratios 2 and 3


def test_tuned_rule_lowest_median_among_rates_not_credibly_less_successful():
    runs = pd.concat(
        [
            make_runs({"ce": {s: 50 for s in range(20)}}, lr=0.5),  # 100%, median 50
            make_runs({"ce": {s: (10 if s < 12 else None) for s in range(20)}}, lr=2.0),  # 60%: 8 fewer, p = 2⁻⁸ — out
            make_runs({"ce": {s: (30 if s else None) for s in range(20)}}, lr=1.0),  # 95%: one fewer, p = 0.5 — kept, median 30 <- tuned
            make_runs({"mse": {s: 90 for s in range(20)}}, lr=0.5),  # 100%, 90
            make_runs({"mse": {s: 90 for s in range(20)}}, lr=1.0),  # the same: the lower rate wins the tie
            make_runs({"mse": {s: None for s in range(20)}}, lr=2.0),
        ],
        ignore_index=True,
    )
    summary = stats.summarize(runs, [], budget=BUDGET)
    best = tuning.best_rates(runs, summary, []).set_index("variant")
    assert best.loc["ce", "learning_rate"] == 1.0 and best.loc["ce", "eligible"] == 2 and not best.loc["ce", "at_edge"]
    assert (best.loc["ce", "lr_low"], best.loc["ce", "lr_high"]) == (0.5, 2.0)
    assert best.loc["mse", "learning_rate"] == 0.5 and best.loc["mse", "at_edge"] and np.isnan(best.loc["mse", "lr_low"])
    t = tuning.tuned(runs, summary, [], "ce", budget=BUDGET).iloc[0]
    assert (t["variant"], t["learning_rate"], t["baseline_learning_rate"]) == ("mse", 0.5, 1.0)
    assert bool(t["at_edge"]) and not bool(t["baseline_at_edge"]) and t["rounds"] == 1
    assert t["epochs_ratio_median"] == pytest.approx(3.0)  # 90 / 30 on 19 seeds, +∞ on one: the median is 3


def test_one_seed_cannot_flip_the_tuned_rate():
    """Issue case 3 (adam_vs_sgd's Adam cell): 98% at 486 epochs vs 96% at 70 epochs. The
    old rule (highest success first) took the slow rate on one seed's difference."""
    slow = {s: (486 + s % 7 if s != 0 else None) for s in range(50)}  # 49 of 50
    fast = {s: (70 + s % 5 if s not in (0, 1) else None) for s in range(50)}  # 48 of 50
    runs = pd.concat([make_runs({"ce": slow}, lr=0.01), make_runs({"ce": fast}, lr=0.1)], ignore_index=True)
    best = tuning.best_rates(runs, stats.summarize(runs, [], budget=5000), []).iloc[0]
    assert best["learning_rate"] == 0.1 and best["eligible"] == 2


def test_the_edge_of_the_tried_range_is_flagged_in_the_table_and_on_screen():
    """Issue case 4: mse's best is the largest rate tried."""
    from rich.console import Console

    from nnrun import report

    runs = pd.concat(
        [make_runs({"ce": {s: 40 + s for s in range(8)}, "mse": {s: 90 + s for s in range(8)}}, lr=1.0),
         make_runs({"ce": {s: 30 + s for s in range(8)}, "mse": {s: 60 + s for s in range(8)}}, lr=3.0),
         make_runs({"ce": {s: None for s in range(8)}, "mse": {s: 20 + s for s in range(8)}}, lr=10.0)],
        ignore_index=True,
    )  # fmt: skip
    summary = stats.summarize(runs, [], budget=BUDGET)
    tuned = tuning.tuned(runs, summary, [], "ce", budget=BUDGET)
    assert bool(tuned["at_edge"].iloc[0]) and not bool(tuned["baseline_at_edge"].iloc[0])
    console = Console(width=80, record=True)
    report.render(console, report.Tables(summary, stats.compare(runs, [], "ce", budget=BUDGET), tuned, []))
    text = console.export_text()
    assert "mse at lr 10 (at the edge of the rates tried" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_bootstrap_needs_enough_values():
    assert all(np.isnan(stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0])))
    lo, hi = stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert 1.0 <= lo < 3.5 < hi <= 6.0


def test_a_bootstrap_over_many_pairs_stays_small_and_draws_scipys_numbers():
    """20,000 pairs: scipy's one-shot bootstrap (the oracle) holds 2,000 × 20,000 values and
    their indices at once (~640 MB); batched, the same interval costs a few tens of MB."""
    import tracemalloc

    d = np.random.default_rng(3).normal(size=20_000)
    median = lambda x, axis=-1: np.median(x, axis=axis)  # noqa: E731
    tracemalloc.start()
    try:
        lo, hi = stats.bootstrap_ci(d, median)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    ref = st.bootstrap((d,), median, n_resamples=stats.BOOTSTRAP_RESAMPLES, method="percentile", rng=np.random.default_rng(stats.BOOTSTRAP_SEED))
    assert (lo, hi) == (ref.confidence_interval.low, ref.confidence_interval.high)


def test_tuned_reuses_the_comparisons_pair_only_when_both_best_rates_match(monkeypatch):
    """write_tables shares a memo between compare and tuned: a pair both need is computed
    once, and the tables are exactly those computed without it, NaN axis values included."""
    parts = []
    for hidden, mse_fast_at in [("[2]", 1.0), ("[4]", 3.0), (np.nan, 1.0)]:
        for lr in (1.0, 3.0):
            mse = {s: 20 + s if lr == mse_fast_at else 40 + s for s in range(6)}
            parts.append(make_runs({"ce": {s: 10 + s + (lr == 3.0) for s in range(6)}, "mse": mse}, lr=lr, **{"model.hidden": hidden}))
    runs = pd.concat(parts, ignore_index=True)
    summary = stats.summarize(runs, ["model.hidden"], budget=BUDGET)
    plain_c = stats.compare(runs, ["model.hidden"], "ce", budget=BUDGET)
    plain_t = tuning.tuned(runs, summary, ["model.hidden"], "ce", budget=BUDGET)
    calls = []
    real = stats.paired
    counted = lambda *a, **k: calls.append(1) or real(*a, **k)  # noqa: E731
    monkeypatch.setattr(stats, "paired", counted)
    monkeypatch.setattr(tuning, "paired", counted)
    memo: dict = {}
    c = stats.compare(runs, ["model.hidden"], "ce", budget=BUDGET, memo=memo)
    t = tuning.tuned(runs, summary, ["model.hidden"], "ce", budget=BUDGET, memo=memo)
    pd.testing.assert_frame_equal(c, plain_c)
    pd.testing.assert_frame_equal(t, plain_t)
    assert len(c) == 6 and len(t) == 3
    assert len(calls) == 6 + 1  # ce is best at lr 1 everywhere; mse too except for hidden [4]


def test_differences_equal_but_for_float_noise_tie_in_the_test():
    """One test sample more or less is the same difference whatever the two accuracies:
    0.9638 − 0.9624 and 0.9624 − 0.9610 differ by ~1e-16 and must tie when ranked."""
    x = np.array([0.9638, 0.9624, 0.9652, 0.961, 0.9666, 0.9624, 0.9652, 0.961])
    y = np.array([0.9624, 0.961, 0.9638, 0.9624, 0.9638, 0.9624, 0.9666, 0.9596])
    noisy = 100 * (x - y)
    assert len(set(noisy)) > 4  # the float noise is there
    ce = make_runs({"ce": {s: 10 for s in range(8)}}).assign(final_accuracy=y)
    mse = make_runs({"mse": {s: 10 for s in range(8)}}).assign(final_accuracy=x)
    p = stats.paired(mse, ce, "final_accuracy")
    by_hand = np.array([0.14, 0.14, 0.14, -0.14, 0.28, 0, -0.14, 0.14])  # points, exactly
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(by_hand, zero_method="zsplit").pvalue)
    assert p.wilcoxon_p != pytest.approx(st.wilcoxon(noisy, zero_method="zsplit").pvalue)  # what the noise gave
