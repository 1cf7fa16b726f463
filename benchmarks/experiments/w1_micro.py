"""Contention-robust timing of one W1 epoch: the minimum over many short trials.

The machine is shared, so long best-of-3 runs are noisy; here every formulation trains
``E`` epochs per trial, trials are interleaved across formulations, and the minimum
per-epoch time over ``--trials`` is reported as network-epochs/s.

Run: python benchmarks/experiments/w1_micro.py [--runs 1000 10000] [--trials 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from w1_epoch import Fused, init, run_engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, nargs="*", default=[1000, 4000, 10_000, 30_000])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    args = ap.parse_args()
    print(f"{'runs':>6s} {'dtype':8s} {'variant':7s} " + " ".join(f"{n:>10s}" for n in ("engine", "fused", "sparse")) + "   (network-epochs/s, min over trials)   fused/engine sparse/engine")
    for R in args.runs:
        E = max(10, 200_000 // R)
        E_engine = max(100, 1_000_000 // R)  # engine.train has per-call setup and logging: amortise it
        W0, W1 = init(R)
        lr = np.ones(R)
        for dtype in args.dtypes:
            for v in ("ce", "mse"):
                w0 = W0.astype(dtype)
                w1 = np.ascontiguousarray(W1[:, 0, :]).astype(dtype)
                l = lr.astype(dtype)
                f = Fused(R, v, dtype)
                s = Fused(R, v, dtype, sparse=True)
                best = {"engine": np.inf, "fused": np.inf, "sparse": np.inf}
                with np.errstate(all="ignore"):
                    for trial in range(args.trials):
                        if trial % 3 == 0:
                            t = time.perf_counter()
                            run_engine(W0.astype(dtype), W1.astype(dtype), lr, E_engine, v, dtype)
                            best["engine"] = min(best["engine"], (time.perf_counter() - t) / E_engine)
                        for name, k in (("fused", f), ("sparse", s)):
                            a, b = w0.copy(), w1.copy()
                            t = time.perf_counter()
                            for _ in range(E):
                                k.epoch(a, b, l)
                                (k.m < 0.1).any()  # the per-epoch check's bookkeeping
                            best[name] = min(best[name], (time.perf_counter() - t) / E)
                rate = {k: R / t for k, t in best.items()}
                print(f"{R:6d} {dtype:8s} {v:7s} " + " ".join(f"{rate[n]:10.2e}" for n in ("engine", "fused", "sparse")) + f"   {'':37s}{rate['fused'] / rate['engine']:6.2f} {rate['sparse'] / rate['engine']:6.2f}", flush=True)


if __name__ == "__main__":
    main()
