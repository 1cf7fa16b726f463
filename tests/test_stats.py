"""stats.py against hand-worked counts and scipy.stats called directly on hand-built runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from nnrun import stats

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


def test_summary_counts_quartiles_and_final_medians():
    runs = make_runs({"ce": {0: 10, 1: 20, 2: 30, 3: 40, 4: None}})
    runs.loc[4, ["diverged", "final_ce"]] = [True, np.nan]
    row = stats.summarize(runs, []).iloc[0]
    assert (row["runs"], row["converged"], row["diverged"]) == (5, 4, 1)
    assert row["success_rate"] == 0.8
    assert (row["success_ci_low"], row["success_ci_high"]) == pytest.approx(wilson_by_hand(4, 5))
    # numpy's linear quartiles of 10, 20, 30, 40 by hand: 17.5, 25, 32.5
    assert (row["epochs_q25"], row["epochs_median"], row["epochs_q75"], row["epochs_mean"]) == (17.5, 25.0, 32.5, 25.0)
    assert np.isnan(row["epochs_mean_ci_low"])  # 4 converged runs: too few for a bootstrap
    assert row["median_final_ce"] == pytest.approx(np.median([0.01, 0.02, 0.03, 0.04]))  # the diverged run left out


def test_summary_bootstrap_ci_of_the_mean_is_scipys_with_the_fixed_seed():
    epochs = [100, 130, 90, 250, 180, 120, 95, 300]
    runs = make_runs({"ce": dict(enumerate(epochs))})
    row = stats.summarize(runs, []).iloc[0]
    ref = st.bootstrap((np.array(epochs, float),), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(stats.BOOTSTRAP_SEED))
    assert (row["epochs_mean_ci_low"], row["epochs_mean_ci_high"]) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert min(epochs) <= row["epochs_mean_ci_low"] < np.mean(epochs) < row["epochs_mean_ci_high"] <= max(epochs)


def test_paired_epochs_against_hand_counts_and_scipy():
    p = stats.paired(make_runs({"mse": MSE}), make_runs({"ce": CE}), budget=BUDGET)
    assert p.seeds_paired == 9
    assert p.success_rate == pytest.approx(7 / 9) and p.baseline_success_rate == pytest.approx(7 / 9)
    # Discordant pairs: seed 5 (only mse converged), seed 4 (only ce): binomial 1 of 2.
    assert p.mcnemar_p == pytest.approx(st.binomtest(1, 2, 0.5).pvalue) == 1.0
    # Ratios over seeds where both converged (0, 1, 2, 6, 7, 8): 4, 2.5, 1, 0.5, 4, 2.
    assert p.ratio_n == 6 and p.ratio_median == 2.25
    ref = st.bootstrap((np.array([4, 2.5, 1, 0.5, 4, 2]),), np.median, n_resamples=2000, method="percentile", rng=np.random.default_rng(stats.BOOTSTRAP_SEED))
    assert (p.ratio_ci_low, p.ratio_ci_high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    # Non-converged = 101 epochs; seed 2 (30 vs 30) and seed 3 (neither) tie and drop out.
    d = np.array([40 - 10, 50 - 20, 101 - 40, 60 - 101, 25 - 50, 64 - 16, 24 - 12], float)
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(d).pvalue)
    # mse sooner on seed 5 (ce never converged) and seed 6 (25 < 50); not on the tie.
    assert p.win_rate == pytest.approx(2 / 9)


def test_non_converged_counts_as_budget_plus_one_whatever_the_run_stopped_at():
    ce, mse = make_runs({"ce": {0: 5, 1: 7, 2: 9, 3: 4, 4: 6, 5: 8}}), make_runs({"mse": {0: 50, 1: None, 2: 60, 3: 3, 4: 70, 5: None}})
    mse.loc[mse["converged"] == False, "epochs_run"] = [12, 13]  # noqa: E712 - e.g. diverged early
    p = stats.paired(mse, ce, budget=1000)
    d = np.array([45, 1001 - 7, 51, -1, 64, 1001 - 8], float)
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(d).pvalue)
    # A swept training.epochs column gives each run its own budget.
    p2 = stats.paired(mse.assign(**{"training.epochs": 500}), ce.assign(**{"training.epochs": 500}))
    assert p2.wilcoxon_p == pytest.approx(st.wilcoxon(np.array([45, 501 - 7, 51, -1, 64, 501 - 8], float)).pvalue)


def test_a_run_converging_on_the_last_epoch_still_beats_one_that_never_did():
    ce = make_runs({"ce": {0: BUDGET, 1: 10, 2: 20, 3: 30, 4: 40, 5: 50}})
    mse = make_runs({"mse": {0: None, 1: 15, 2: 29, 3: 33, 4: 60, 5: 44}})
    p = stats.paired(mse, ce, budget=BUDGET)
    d = np.array([BUDGET + 1 - BUDGET, 5, 9, 3, 20, -6], float)  # seed 0: 101 vs 100, not a tie
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(d).pvalue)
    assert p.wilcoxon_p != pytest.approx(st.wilcoxon(d[1:]).pvalue)
    assert p.win_rate == pytest.approx(1 / 6)


def test_exact_mcnemar_on_discordant_pairs():
    # mse converges on all 10 seeds, ce on 2: 8 discordant pairs, all one way.
    ce = make_runs({"ce": {s: (10 if s < 2 else None) for s in range(10)}})
    mse = make_runs({"mse": {s: 20 for s in range(10)}})
    p = stats.paired(mse, ce, budget=BUDGET)
    assert p.mcnemar_p == pytest.approx(2 * 0.5**8)
    assert p.win_rate == pytest.approx(8 / 10)  # slower where both converged, faster where ce did not
    assert p.ratio_n == 2 and p.ratio_median == 2.0 and np.isnan(p.ratio_ci_low)  # 2 pairs: no CI


def test_no_converged_runs_give_na_not_numbers():
    ce = make_runs({"ce": {s: None for s in range(6)}})
    mse = make_runs({"mse": {s: None for s in range(6)}})
    p = stats.paired(mse, ce, budget=BUDGET)
    assert p.seeds_paired == 6 and p.success_rate == 0 and p.mcnemar_p == 1.0 and p.win_rate == 0
    assert np.isnan(p.ratio_median) and np.isnan(p.ratio_ci_low) and np.isnan(p.wilcoxon_p) and p.ratio_n == 0
    row = stats.summarize(ce, []).iloc[0]
    assert row["success_rate"] == 0 and np.isnan(row["epochs_median"]) and np.isnan(row["epochs_mean"])
    assert row["success_ci_low"] == 0 and row["success_ci_high"] == pytest.approx(Z**2 / (6 + Z**2))


def test_all_converged_and_all_tied():
    ce = make_runs({"ce": {s: 10 + s for s in range(8)}})
    tied = make_runs({"mse": {s: 10 + s for s in range(8)}})
    p = stats.paired(tied, ce, budget=BUDGET)
    assert p.success_rate == p.baseline_success_rate == 1.0 and p.mcnemar_p == 1.0
    assert p.ratio_median == 1.0 and (p.ratio_ci_low, p.ratio_ci_high) == (1.0, 1.0)
    assert np.isnan(p.wilcoxon_p) and p.win_rate == 0.0  # every difference is zero; ties never win
    row = stats.summarize(ce, []).iloc[0]
    assert row["success_ci_high"] == pytest.approx(1.0) and row["success_ci_low"] == pytest.approx(wilson_by_hand(8, 8)[0])


def test_one_seed():
    p = stats.paired(make_runs({"mse": {0: 30}}), make_runs({"ce": {0: 10}}), budget=BUDGET)
    assert p.seeds_paired == 1 and p.ratio_median == 3.0 and np.isnan(p.ratio_ci_low) and np.isnan(p.ratio_ci_high)
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon([20.0]).pvalue) == 1.0
    assert p.win_rate == 0.0


def test_unequal_seeds_pair_only_the_common_ones():
    ce = make_runs({"ce": {s: 10 for s in range(10)}})
    mse = make_runs({"mse": {s: 10 + 5 * s for s in range(3, 14)}})  # seeds 3..13
    p = stats.paired(mse, ce, budget=BUDGET)
    assert p.seeds_paired == 7  # seeds 3..9
    assert p.ratio_median == pytest.approx(np.median([(10 + 5 * s) / 10 for s in range(3, 10)]))
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(np.array([5.0 * s for s in range(3, 10)])).pvalue)
    assert stats.paired(mse, make_runs({"ce": {99: 10}})) == stats.NO_PAIRS


def test_final_metric_pairs_finite_values_and_a_finite_value_wins():
    ce = make_runs({"ce": {s: 10 for s in range(6)}})
    mse = make_runs({"mse": {s: 10 for s in range(6)}})
    mse["final_ce"] = [0.5, 0.1, 0.4, 0.2, 0.9, np.nan]  # seed 5 diverged
    ce["final_ce"] = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    p = stats.paired(mse, ce, "final_ce")
    x, y = np.array([0.5, 0.1, 0.4, 0.2, 0.9]), np.full(5, 0.2)
    assert p.ratio_n == 5 and p.ratio_median == pytest.approx(np.median(x / y))
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(x - y).pvalue)
    assert p.win_rate == pytest.approx(1 / 6)  # lower on seed 1 only; the diverged seed loses
    ce["final_ce"] = [0.2, 0.2, 0.2, 0.2, 0.2, np.nan]
    mse["final_ce"] = [0.5, 0.1, 0.4, 0.2, 0.9, 0.3]
    assert stats.paired(mse, ce, "final_ce").win_rate == pytest.approx(2 / 6)
    # higher accuracy is better
    mse["final_accuracy"], ce["final_accuracy"] = [1, 1, 0.75, 1, 1, 1], [0.75] * 6
    assert stats.paired(mse, ce, "final_accuracy").win_rate == pytest.approx(5 / 6)


def test_compare_groups_by_axes_and_learning_rate_with_spec_columns():
    parts = []
    for hidden, lr, shift in [("[2]", 1.0, 0), ("[2]", 3.0, 5), ("[4]", 1.0, 10)]:
        parts.append(make_runs({"ce": {s: 10 + s for s in range(6)}, "mse": {s: 20 + s + shift for s in range(6)}}, lr=lr, **{"model.hidden": hidden}))
    runs = pd.concat(parts, ignore_index=True)
    c = stats.compare(runs, ["model.hidden"], "ce", budget=BUDGET)
    spec_cols = ["variant", "baseline", "model.hidden", "learning_rate", "seeds_paired", "success_rate", "baseline_success_rate", "mcnemar_p",
                 "epochs_ratio_median", "epochs_ratio_ci_low", "epochs_ratio_ci_high", "wilcoxon_p", "win_rate"]  # fmt: skip
    assert [col for col in c.columns if col in spec_cols] == spec_cols
    assert list(zip(c["model.hidden"], c["learning_rate"])) == [("[2]", 1.0), ("[2]", 3.0), ("[4]", 1.0)]
    expected = [np.median([(20 + s + shift) / (10 + s) for s in range(6)]) for shift in (0, 5, 10)]
    assert c["epochs_ratio_median"].tolist() == pytest.approx(expected)
    assert c["wilcoxon_p"].tolist() == pytest.approx([st.wilcoxon(np.full(6, 10.0 + k)).pvalue for k in (0, 5, 10)])


def test_pooling_an_axis_pairs_on_seed_and_that_axis():
    parts = [make_runs({"ce": {s: 10 for s in range(5)}, "mse": {s: 10 * k for s in range(5)}}, **{"model.init.scale": k}) for k in (2, 3)]
    runs = pd.concat(parts, ignore_index=True)
    c = stats.compare(runs, [], "ce", pair_on=["seed", "model.init.scale"], budget=BUDGET).iloc[0]
    assert c["seeds_paired"] == 10 and c["epochs_ratio_median"] == 2.5


def test_best_learning_rate_prefers_success_then_fewer_epochs_then_lower_lr():
    runs = pd.concat(
        [
            make_runs({"ce": {0: 50, 1: 60, 2: None}}, lr=0.5),  # 67%
            make_runs({"ce": {0: 40, 1: 45, 2: 42}}, lr=1.0),  # 100%, median 42
            make_runs({"ce": {0: 30, 1: 35, 2: 32}}, lr=2.0),  # 100%, median 32 <- best
            make_runs({"mse": {0: 90, 1: 80, 2: 85}}, lr=0.5),  # 100%, 85 <- best (tie with lr 1, lower lr)
            make_runs({"mse": {0: 90, 1: 80, 2: 85}}, lr=1.0),
            make_runs({"mse": {0: 9, 1: None, 2: None}}, lr=2.0),  # fastest, but 33%
        ],
        ignore_index=True,
    )
    best = stats.best_learning_rates(stats.summarize(runs, []), [])
    assert dict(zip(best["variant"], best["learning_rate"])) == {"ce": 2.0, "mse": 0.5}
    t = stats.tuned(runs, stats.summarize(runs, []), [], "ce", budget=BUDGET).iloc[0]
    assert (t["variant"], t["learning_rate"], t["baseline_learning_rate"]) == ("mse", 0.5, 2.0)
    assert t["epochs_ratio_median"] == pytest.approx(np.median([90 / 30, 80 / 35, 85 / 32]))
    assert t["win_rate"] == 0.0 and t["seeds_paired"] == 3


def test_bootstrap_needs_enough_values():
    assert all(np.isnan(stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0])))
    lo, hi = stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert 1.0 <= lo < 3.5 < hi <= 6.0


def test_tuned_reuses_the_comparisons_pair_only_when_both_best_rates_match(monkeypatch):
    """write_tables shares a memo between compare and tuned: a pair both need is computed
    once, and the tables are exactly those computed without it, NaN axis values included."""
    parts = []
    for hidden, mse_fast_at in [("[2]", 1.0), ("[4]", 3.0), (np.nan, 1.0)]:
        for lr in (1.0, 3.0):
            mse = {s: 20 + s if lr == mse_fast_at else 40 + s for s in range(6)}
            parts.append(make_runs({"ce": {s: 10 + s + (lr == 3.0) for s in range(6)}, "mse": mse}, lr=lr, **{"model.hidden": hidden}))
    runs = pd.concat(parts, ignore_index=True)
    summary = stats.summarize(runs, ["model.hidden"])
    plain_c = stats.compare(runs, ["model.hidden"], "ce", budget=BUDGET)
    plain_t = stats.tuned(runs, summary, ["model.hidden"], "ce", budget=BUDGET)
    calls = []
    real = stats.paired
    monkeypatch.setattr(stats, "paired", lambda *a, **k: calls.append(1) or real(*a, **k))
    memo: dict = {}
    c = stats.compare(runs, ["model.hidden"], "ce", budget=BUDGET, memo=memo)
    t = stats.tuned(runs, summary, ["model.hidden"], "ce", budget=BUDGET, memo=memo)
    pd.testing.assert_frame_equal(c, plain_c)
    pd.testing.assert_frame_equal(t, plain_t)
    assert len(c) == 6 and len(t) == 3
    assert len(calls) == 6 + 1  # ce is best at lr 1 everywhere; mse too except for hidden [4]
