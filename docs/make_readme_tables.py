"""Regenerates README.md's "Which delta is correct?" section from nnrun's own output.

    python docs/make_readme_tables.py          # rewrite the section between the markers
    python docs/make_readme_tables.py --check  # exit 1 if README.md's section is out of date

It reruns `nnrun gradcheck` on the default sweep's network for every built-in variant and
the default sweep itself (`nnrun sweep`, in a temporary directory), and writes the tables
and the plain-words answer between ``<!-- which-delta -->`` and ``<!-- /which-delta -->``.
Every number in that section comes from here; tests/test_readme.py fails when they drift.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from nnrun import api, gradcheck, report, stats, tuning
from nnrun.config import load
from nnrun.variants import VARIANTS

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- which-delta -->", "<!-- /which-delta -->"
POINTS = 3  # gradcheck's default
ERROR_FLOOR = 1e-8  # exact variants agree to ~1e-10; the last digits vary by platform, so print "< 1e-08"
SHARED_LR = 1.0  # the seed's learning rate, for the same-step-size comparison
BASELINE, OTHER = "ce", "mse"  # the default sweep's two variants


# ----------------------------------------------------------------------------- formatting


def pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.0f}%"


def epochs(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:,.0f}"


def times(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.2f}×"


def pvalue(p: float) -> str:
    if not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def lr_text(lr: float) -> str:
    return f"{lr:.4g}"  # lattice rates such as 2.37137370566 read as 2.371


def ci(low: float, high: float, fmt=pct) -> str:
    return "" if not (np.isfinite(low) and np.isfinite(high)) else f" [{fmt(low).rstrip('×')}, {fmt(high).rstrip('×')}]"


def km_median(row) -> str:
    """The Kaplan–Meier median with its 95% CI, '> budget' where it was not reached."""
    return report.median_cell(row)


def ratio_text(row) -> str:
    """The paired median ratio with its CI ('4.89× [4.85, 4.97]', '< 0.01× [0, 0]')."""
    return report.effect_cell(row)


def faster(row) -> str:
    """Who was faster, judged by the median ratio's CI and by the signed-rank test on the same pairs."""
    r, low, high, p = row["epochs_ratio_median"], row["epochs_ratio_ci_low"], row["epochs_ratio_ci_high"], row["wilcoxon_p"]
    leader = OTHER if r < 1 else BASELINE
    if not (low <= 1 <= high):  # NaN ends compare False: no CI, no claim from it
        return f"so `{leader}` was faster" if np.isfinite(low) else "(too few seeds for a CI)"
    if p < stats.ALPHA:
        return (
            f"a median whose CI includes 1, though the signed-rank test on the same pairs (p {pvalue(p)}) finds "
            f"`{leader}` faster on balance, on {pct(row['win_rate'] if leader == OTHER else 1 - row['win_rate'])} of seeds"
        )
    return "with no clear difference"


# ----------------------------------------------------------------------------- gradcheck


def gradcheck_part() -> tuple[str, list[gradcheck.Check]]:
    config = load(None, default=api.default_config())
    checks = gradcheck.check(config, POINTS, list(VARIANTS.values()))
    bad = [c.variant.name for c in checks if not c.ok]
    if bad:  # never publish an answer the check does not support
        raise SystemExit(f"gradcheck FAILED for exact variants {', '.join(bad)}; fix the engine before regenerating the README")
    names = ", ".join(VARIANTS)
    lines = [
        "### The gradients, checked",
        "",
        f"`nnrun gradcheck --set 'variants=[{names}]'` compares each variant's backprop gradient, computed by",
        "the engine's own training code, with central finite differences of the loss the variant names, on",
        f"every weight of the default sweep's network (XOR, 3-4-1 sigmoid, {POINTS} random weight points, float64;",
        "softmax variants get two output units):",
        "",
        gradcheck.markdown(checks, error_floor=ERROR_FLOOR).rstrip("\n"),
        "",
    ]
    lines += [f"- {c.explanation}" for c in checks if c.explanation]
    return "\n".join(lines), checks


# ----------------------------------------------------------------------------- the default sweep


# The README's numbers are the NumPy engine's: its install is a plain `pip install -e .`
# (the compiled backend's differ in the last bits, which a chaotic run can amplify).
BACKEND = "training.backend=numpy"


def sweep_part() -> tuple[str, dict]:
    config = load(None, [BACKEND], default=api.default_config())
    with tempfile.TemporaryDirectory() as tmp:
        result = api.execute(config, out=Path(tmp) / "default-sweep", workers=1, command=["docs/make_readme_tables.py"])
        runs, summary = result.runs, result.summary  # runs is read from disk: inside the with
    shared, tuned = result.comparison, result.tuned
    best = tuning.best_rates(runs, summary, [])
    lrs = [float(x) for x in config.first_rates()]  # both variants ran these; a search adds rates per variant
    search = config.search
    rates_text = (
        f"a learning-rate search per variant (first {', '.join(lr_text(x) for x in lrs)}, then rounds on a log lattice "
        f"{search.resolution:g}× apart around each variant's tuned rate, within {lr_text(search.limits[0])}–{lr_text(search.limits[1])})"
        if search
        else f"learning rates {', '.join(lr_text(x) for x in lrs)}"
    )
    net_epochs = runs.groupby("round")["epochs_run"].sum()

    t = config.training
    lines = [
        "### Which one trains faster?",
        "",
        f"The default sweep (`nnrun sweep`: the seed's XOR network, {len(config.seed_list())} seeds × {rates_text}, "
        f"summed full-batch gradient descent for up to {t.epochs:,} epochs, "
        f"converged when every |a − y| < {config.convergence.threshold:g}; the same seed starts every variant from the same weights). "
        "Every run counts: one that does not converge within the budget, or diverges, is censored there, so median epochs are "
        "Kaplan–Meier medians ('> budget' when fewer than half the runs converged), and the per-seed ratio counts such a run as "
        "slower than any converged one:",
        "",
        f"| learning rate | round | `{BASELINE}` success | `{BASELINE}` median epochs [95% CI] | `{OTHER}` success | `{OTHER}` median epochs [95% CI] | `{OTHER}` / `{BASELINE}` epochs, per seed [95% CI] | Wilcoxon p |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lr in sorted(summary["learning_rate"].unique()):
        cells = []
        for variant in (BASELINE, OTHER):
            row = summary[(summary["variant"] == variant) & (summary["learning_rate"] == lr)]
            cells += [pct(row.iloc[0]["success_rate"]), km_median(row.iloc[0])] if len(row) else ["", ""]
        c = shared[(shared["variant"] == OTHER) & (shared["learning_rate"] == lr)]
        cells += [ratio_text(c.iloc[0]), pvalue(c.iloc[0]["wilcoxon_p"])] if len(c) else ["", ""]
        round_ = int(runs.loc[runs["learning_rate"] == lr, "round"].min())
        lines.append(f"| {lr_text(lr)} | {round_} | " + " | ".join(cells) + " |")

    lines += [
        "",
        "Each variant at its own best learning rate, because one shared learning rate favours whichever variant's gradients",
        "happen to be larger. The rule: among the rates whose success is not below the most successful rate's (one-sided",
        "exact McNemar test at 0.05, paired by seed), the lowest Kaplan–Meier median, so one seed cannot flip the choice:",
        "",
        "| variant | tuned learning rate | rates kept by the rule | at the edge of the rates tried | success [95% CI] | median epochs [95% CI] |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for _, row in best.iterrows():
        lines.append(
            f"| `{row['variant']}` | {lr_text(round(row['learning_rate'], 3))} | {int(row['eligible'])} of {int(row['rates_tried'])} | {'yes' if row['at_edge'] else 'no'} "
            f"| {pct(row['success_rate'])}{ci(row['success_ci_low'], row['success_ci_high'])} | {km_median(row)} |"
        )
    tr = tuned[tuned["variant"] == OTHER].iloc[0]
    lines += [
        "",
        "| comparison | seeds paired | epochs ratio, median per seed [95% CI] | Wilcoxon p | faster on | success (McNemar p) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| `{OTHER}` at lr {lr_text(round(tr['learning_rate'], 3))} vs `{BASELINE}` at lr {lr_text(round(tr['baseline_learning_rate'], 3))} | {int(tr['seeds_paired'])} "
        f"| {ratio_text(tr)} | {pvalue(tr['wilcoxon_p'])} "
        f"| {pct(tr['win_rate'])} of seeds | {pct(tr['success_rate'])} vs {pct(tr['baseline_success_rate'])} ({pvalue(tr['mcnemar_p'])}) |",
    ]
    if search:
        lines += [
            "",
            f"The search took {len(net_epochs)} rounds and {net_epochs.sum():,} network-epochs, "
            f"{net_epochs.sum() / net_epochs.iloc[0]:.2f}× its first round's {net_epochs.iloc[0]:,}.",
        ]
    facts = {"summary": summary, "shared": shared, "best": best, "tuned": tr, "lrs": lrs}
    return "\n".join(lines), facts


# ----------------------------------------------------------------------------- the answer


def answer(checks: list[gradcheck.Check], facts: dict) -> str:
    exact = [c.max_rel_error for c in checks if c.variant.exact]
    mismatch = [c.max_rel_error for c in checks if not c.variant.exact]
    summary, shared, tr, lrs = facts["summary"], facts["shared"], facts["tuned"], facts["lrs"]
    worst = max(exact)
    exact_text = f"below {ERROR_FLOOR:g}" if worst < ERROR_FLOOR else f"to {gradcheck.error_text(worst)}"
    lo, hi = gradcheck.error_text(min(mismatch)), gradcheck.error_text(max(mismatch))
    off = lo if lo == hi else f"{lo}–{hi}"
    parts = [
        "**Both — for different losses.** `a − y` (Ng) is the exact gradient of cross-entropy through a sigmoid output;",
        "`(a − y)·a(1 − a)` (Mitchell) is the exact gradient of squared error through one. Every exact variant's",
        f"backprop gradient matches finite differences of its own loss {exact_text} (relative error); each formula paired",
        f"with the other's loss is off by {off}. The only wrong choice is the mix-up:",
        "`ng-on-mse` believes it minimises squared error but takes exactly `ce`'s steps.",
        "",
    ]
    speed = []
    if SHARED_LR in lrs:
        c = shared[(shared["variant"] == OTHER) & (shared["learning_rate"] == SHARED_LR)].iloc[0]
        speed.append(
            f"Which trains faster depends on the learning rate. At the seed's learning rate {lr_text(SHARED_LR)}, `{OTHER}` needed "
            f"{ratio_text(c)} the epochs of `{BASELINE}`:"
            " its delta carries the factor a(1 − a) ≤ ¼, which shrinks every step and all but stops it when the output saturates on the wrong side."
        )
    top = max(lrs)
    b_top = summary[(summary["variant"] == BASELINE) & (summary["learning_rate"] == top)].iloc[0]
    o_top = summary[(summary["variant"] == OTHER) & (summary["learning_rate"] == top)].iloc[0]
    speed.append(
        f"The same factor lets `{OTHER}` tolerate a larger learning rate: at {lr_text(top)}, `{BASELINE}` converged on "
        f"{pct(b_top['success_rate'])} of seeds and `{OTHER}` on {pct(o_top['success_rate'])}."
    )
    tuned_sentence = (
        f"Each at its own best learning rate (`{BASELINE}` {lr_text(round(tr['baseline_learning_rate'], 3))}, `{OTHER}` {lr_text(round(tr['learning_rate'], 3))}), "
        f"`{OTHER}` needed {ratio_text(tr)} the epochs of `{BASELINE}` (median per seed, 95% CI), "
        f"{faster(tr)}"
    )
    edge = [v for v, at in ((BASELINE, tr["baseline_at_edge"]), (OTHER, tr["at_edge"])) if at]
    if edge:
        tuned_sentence += f" (`{'` and `'.join(edge)}`'s tuned rate is at the edge of the rates tried, so the optimum may lie beyond it)"
    speed.append(tuned_sentence + ".")
    parts.append(" ".join(speed))
    parts += [
        "",
        "So choose the loss you want to minimise and use its exact delta; compare losses only at tuned learning rates.",
        "The derivations, and the configs that show each point, are in [docs/derivation.md](docs/derivation.md).",
    ]
    return "\n".join(parts)


def section() -> str:
    """The full text between the markers (without them)."""
    grad_text, checks = gradcheck_part()
    sweep_text, facts = sweep_part()
    return "\n".join(
        [
            "## Which delta is correct?",
            "",
            answer(checks, facts),
            "",
            grad_text,
            "",
            sweep_text,
            "",
            "<sub>Generated by `python docs/make_readme_tables.py` from nnrun's own output; a test fails when it drifts.</sub>",
        ]
    )


# ----------------------------------------------------------------------------- README splicing


def current_section(text: str) -> str | None:
    """What README.md holds between the markers (None without a closing marker)."""
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def splice(text: str, body: str) -> str:
    """README text with ``body`` between the markers; adds the closing marker if missing."""
    if START not in text:
        raise SystemExit(f"README.md has no {START} marker: add it where the section belongs")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1] if END in rest else rest
    return f"{head}{START}\n{body}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's section differs from what this script generates")
    parser.add_argument("--readme", type=Path, default=README, help="the README to update or check")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    body = section()
    if args.check:
        if current_section(text) != body:
            print(f"{args.readme}: the 'Which delta is correct?' section is out of date; run python docs/make_readme_tables.py", file=sys.stderr)
            return 1
        print(f"{args.readme}: up to date")
        return 0
    args.readme.write_text(splice(text, body), encoding="utf-8")
    print(f"{args.readme}: section regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
