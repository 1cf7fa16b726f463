"""The learning-rate search: a fixed log lattice, and the rates each round adds.

After its ``first`` rates, a search tries rates on one lattice, 10^(k/m) with m lattice
points per decade (m from ``resolution``: 1.33 gives m = 8, neighbours 1.33× apart), so
every cell and variant share exact values. Each round adds, per (sweep cell, variant), the
untried lattice neighbours of that variant's current tuned rate (the tuned rule of
``tuning.best_rates``); a tuned rate at the top or bottom of the rates tried also reaches
half a decade further out. A search ends when no (cell, variant) has an untried neighbour
inside ``limits``, or after ``max_rounds`` rounds. Rounds are a deterministic function of
the runs so far, so a search resumes, and gives the same rows, on any worker count.
"""

from __future__ import annotations

import math

from nnrun.config import LRSearch

TOLERANCE = 1e-9  # in lattice steps: a rate within this of a lattice point is that point


def steps_per_decade(search: LRSearch) -> int:
    """m, the lattice points per decade: the spacing 10^(1/m) closest to ``resolution``."""
    return max(1, round(1 / math.log10(search.resolution)))


def lattice_rate(k: int, m: int) -> float:
    """The k-th lattice point 10^(k/m), rounded to 12 significant digits so that every
    round, cell and variant computes the very same float."""
    return float(f"{10 ** (k / m):.12g}")


def neighbours(rate: float, tried: list[float], search: LRSearch) -> list[float]:
    """The lattice points to try next around a variant's tuned ``rate``: the nearest below
    and above (the rate itself excluded), and half a decade beyond when the rate is the
    lowest or highest tried; only those not tried yet and inside the limits."""
    m = steps_per_decade(search)
    x = math.log10(rate) * m
    k = round(x)
    below, above = (k - 1, k + 1) if abs(x - k) < TOLERANCE else (math.floor(x), math.ceil(x))
    ks = [below, above]
    if rate <= min(tried):
        ks.append(below - m // 2)
    if rate >= max(tried):
        ks.append(above + m // 2)
    lo, hi = search.limits
    known = {float(f"{t:.12g}") for t in tried}
    out = []
    for j in sorted(set(ks)):
        r = lattice_rate(j, m)
        if lo <= r <= hi and r not in known and r not in out:
            out.append(r)
    return out
