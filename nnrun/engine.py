"""Trains one batch of runs that share shapes, all at once, as stacked runs-last arrays.

Layout: weights ``W[l]`` are ``(fan_in, fan_out, runs)``, biases ``b[l]`` are
``(fan_out, runs)``, activations are ``(samples, units, runs)`` (``nnrun.network``: the
passes; ``nnrun.steppers``: one epoch's updates). ``train`` reads top to bottom: each
epoch evaluates the working runs (log, convergence and divergence check), then steps them;
runs that stop are frozen, and dropped from the working arrays once they are many.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnrun import fastpath
from nnrun.network import forward
from nnrun.steppers import FullBatchStepper, FusedStepper, MinibatchStepper, runs_first_pays
from nnrun.variants import LOSSES, Variant, rsum, squared_error


@dataclass(frozen=True)
class TrainSpec:
    """Everything the engine needs that is shared by the runs of one batch."""

    variant: Variant
    activation: str = "sigmoid"
    epochs: int = 1000
    batch_size: int | None = None  # None: full batch
    reduction: str = "sum"
    optimizer: str = "sgd"
    optimizer_args: tuple[tuple[str, float], ...] = ()
    dtype: str = "float64"
    criterion: str = "max_error"
    threshold: float = 0.1
    metric: str | None = None
    check_every: int = 1
    stop_converged: bool = True
    log_every: int = 100
    keep_weights: bool = False


@dataclass(frozen=True)
class Speedups:
    """Faster ways to the same numbers, each on by default; a test turns one off to compare
    bit for bit with the reference path."""

    fused: bool = True  # the fused kernel (fastpath) where it applies
    sparse_input: bool = True  # the fused kernel skips the shared input's zero terms
    runs_first: bool = True  # minibatch weights in runs-first memory where a contraction is a matmul
    compaction: bool = True  # frozen runs leave the working arrays


REFERENCE = Speedups(fused=False, sparse_input=False, runs_first=False, compaction=False)


@dataclass
class TrainResult:
    """Per-run outcomes, each array indexed by run (axis 0)."""

    converged: np.ndarray  # bool
    epochs_to_converge: np.ndarray  # int, −1 when not converged
    epochs_run: np.ndarray  # int
    diverged: np.ndarray  # bool
    final: dict[str, np.ndarray]  # ce, mse, accuracy, max_error (+ test_*)
    log_epochs: np.ndarray  # (logged,)
    curves: dict[str, np.ndarray]  # ce, mse, accuracy: (runs, logged)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # "W1" -> (runs, in, out), "W1.init", ...


# ----------------------------------------------------------------------------- init


def init_params(
    scheme: str,
    sizes: list[int],
    seeds: np.ndarray,
    *,
    scale: float = 1.0,
    bias: bool = False,
    dtype: str = "float64",
    given: list[tuple[np.ndarray, np.ndarray | None]] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Initial weights for each run from its seed alone; returns runs-last W and b lists.

    ``legacy`` draws as the seed code does: ``RandomState(seed)``, then
    ``2*random_sample((fan_in, fan_out)) − 1`` for every layer in order, then the biases the
    same way, all times ``scale``. Other schemes use ``default_rng(seed)`` and zero biases.
    ``file`` copies ``given`` to every run.
    """
    layers = list(zip(sizes[:-1], sizes[1:]))
    unique, inverse = np.unique(np.asarray(seeds), return_inverse=True)
    R = len(unique)  # draw once per distinct seed, then give every run its seed's weights
    Ws = [np.empty((i, o, R), dtype=np.float64) for i, o in layers]
    bs = [np.zeros((o, R), dtype=np.float64) if bias else None for _, o in layers]
    rs = np.random.RandomState()  # re-seeding one instance is 50× cheaper than a new one
    if scheme == "legacy":  # one draw per seed; 2u − 1 for all of them at once below
        counts = [i * o for i, o in layers] + ([o for _, o in layers] if bias else [])
        draws = np.empty((R, sum(counts)))
    for r, seed in enumerate(unique):
        seed = int(seed)
        if scheme == "file":
            assert given is not None
            for l, (W, b) in enumerate(given):
                Ws[l][..., r] = W
                if bias:
                    bs[l][:, r] = b if b is not None else 0.0
            continue
        if scheme == "legacy":
            rs.seed(seed)  # identical stream to np.random.RandomState(seed)
            draws[r] = rs.random_sample(draws.shape[1])  # every W, then every b: the seed's order
            continue
        rng = np.random.default_rng(seed)
        for l, (i, o) in enumerate(layers):
            if scheme == "uniform":
                W = rng.uniform(-scale, scale, size=(i, o))
            elif scheme == "normal":
                W = rng.normal(0.0, scale, size=(i, o))
            elif scheme == "xavier":  # Glorot uniform
                limit = scale * np.sqrt(6.0 / (i + o))
                W = rng.uniform(-limit, limit, size=(i, o))
            elif scheme == "he":  # He normal, for relu
                W = rng.normal(0.0, scale * np.sqrt(2.0 / i), size=(i, o))
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")
            Ws[l][..., r] = W
    if scheme == "legacy":
        parts = np.split((2 * draws - 1) * scale, np.cumsum(counts)[:-1], axis=1)
        for l, (i, o) in enumerate(layers):
            Ws[l][...] = parts[l].reshape(R, i, o).transpose(1, 2, 0)
            if bias:
                bs[l][...] = parts[len(layers) + l].T
    with np.errstate(over="ignore"):  # a float32 overflow is a run that diverges at epoch 0
        Ws = [np.ascontiguousarray(W[..., inverse], dtype=dtype) for W in Ws]
        return Ws, [None if b is None else np.ascontiguousarray(b[..., inverse], dtype=dtype) for b in bs]


# ----------------------------------------------------------------------------- training

# Runs trained together at most: beyond ~8k (float64, XOR) the working set no longer fits the
# cache and throughput falls (×0.55 at 32k); measured in benchmarks/ (scaling).
RUN_BLOCK = 8192

# Once at most this share of the working runs is still training, the frozen ones are
# dropped from the arrays (a frozen run costs as much per epoch as an active one).
COMPACT_BELOW = 0.5
COMPACT_MIN_RUNS = 64  # below this, NumPy's per-call cost dominates and copying is not worth it

METRICS = ("ce", "mse", "accuracy", "max_error")


def train(
    spec: TrainSpec,
    X: np.ndarray,
    Y: np.ndarray,
    Ws: list[np.ndarray],
    bs: list[np.ndarray | None],
    lr: np.ndarray,
    seeds: np.ndarray,
    X_test: np.ndarray | None = None,
    Y_test: np.ndarray | None = None,
    *,
    speedups: Speedups = Speedups(),
) -> TrainResult:
    """Train every run of the batch; ``Ws``/``bs`` are updated in place.

    X: (samples, features) shared by all runs; Y: (samples, outputs); lr, seeds: (runs,).
    Epoch e's check looks at the weights after e updates, so a run that meets the
    criterion at its initial weights has ``epochs_to_converge == 0``. More than
    ``RUN_BLOCK`` runs are trained a block at a time (runs are independent: same numbers).
    ``speedups=REFERENCE`` takes the plain path: the same numbers, slower.
    """
    R = len(lr)
    blocks = -(-R // RUN_BLOCK)
    with np.errstate(all="ignore"):
        if blocks <= 1:
            return _train(spec, X, Y, Ws, bs, lr, seeds, X_test, Y_test, speedups)
        lr, seeds, parts = np.asarray(lr), np.asarray(seeds), []
        bounds = np.linspace(0, R, blocks + 1).astype(int).tolist()  # blocks of equal size, ±1
        for sl in map(slice, bounds[:-1], bounds[1:]):
            Wb, bb = [W[..., sl].copy() for W in Ws], [None if b is None else b[..., sl].copy() for b in bs]
            parts.append(_train(spec, X, Y, Wb, bb, lr[sl], seeds[sl], X_test, Y_test, speedups))
            for W, w in zip(Ws + bs, Wb + bb):
                if W is not None:
                    W[..., sl] = w

    def join(key: str) -> dict[str, np.ndarray]:
        return {k: np.concatenate([getattr(p, key)[k] for p in parts]) for k in getattr(parts[0], key)}

    return TrainResult(
        *(np.concatenate([getattr(p, name) for p in parts]) for name in ("converged", "epochs_to_converge", "epochs_run", "diverged")),
        final=join("final"),
        log_epochs=parts[0].log_epochs,
        curves=join("curves"),
        weights=join("weights"),
    )


def _train(spec, X, Y, Ws, bs, lr, seeds, X_test, Y_test, speedups: Speedups) -> TrainResult:
    """One block of runs, epoch by epoch: evaluate (log, check), then step."""
    dtype = np.dtype(spec.dtype)
    X, Y, lr = X.astype(dtype), Y.astype(dtype), np.asarray(lr, dtype=dtype)
    Yr = Y[..., None]  # (n, k, 1) broadcasts over runs
    R = len(lr)
    init_weights = snapshot(Ws, bs, ".init") if spec.keep_weights else {}
    state, curves = RunState.start(R, spec), Curves.start(spec, R)
    stepper = _stepper(spec, X, Y, Ws, bs, seeds, speedups)
    check_metrics = ({"max_error": "max_error", "accuracy": "accuracy", "loss": spec.metric}[spec.criterion], "max_error")
    seen = -1  # the state version lr_active was computed for
    for epoch in range(spec.epochs + 1):
        is_log = curves.due(epoch)
        is_check = epoch % spec.check_every == 0 or epoch == spec.epochs
        last = None  # this epoch's logged (z, metrics), if it logs
        if is_check and not is_log and isinstance(stepper, FusedStepper):
            state.check_max_error(epoch, stepper.max_error(), spec.threshold)
        elif is_check or is_log:
            z, a = stepper.outputs()
            m = metrics(spec.variant, z, a, Yr, METRICS if is_log else check_metrics)
            state.record(epoch, finite(z, m, spec.variant.output), criterion_met(spec, m) if is_check else None)
            if is_log:
                curves.write(m, state)
                last = (z, m)
        if epoch == spec.epochs:
            break
        if state.version != seen:  # a check stopped some run
            if not state.active.any():
                break
            if speedups.compaction and state.worth_compacting():
                _write_back(stepper, Ws, bs, state.work)  # the dropped runs' weights are final
                stepper.compact(state.compact())
            lr_active = lr[state.work] * state.active[state.work]
            seen = state.version
        stepper.step(epoch, lr_active)
    _write_back(stepper, Ws, bs, state.work)
    if last is None or len(state.work) < R:  # the logged forward pass was not of these very weights
        zs, acts = forward(Ws, bs, X, spec.activation, spec.variant)
        last = (zs[-1], metrics(spec.variant, zs[-1], acts[-1], Yr, METRICS))
    return result(spec, state, curves, last, Ws, bs, X_test, Y_test, init_weights)


def _stepper(spec: TrainSpec, X, Y, Ws, bs, seeds, speedups: Speedups):
    """How this block's epochs are computed: the one place a way is chosen (a compiled
    backend would be one more stepper here, with the same three methods)."""
    sizes = [X.shape[1]] + [W.shape[1] for W in Ws]
    if spec.batch_size is not None and spec.batch_size < len(X):
        return MinibatchStepper(spec, X, Y, Ws, bs, seeds, runs_first=speedups.runs_first and runs_first_pays(spec.batch_size, sizes))
    if speedups.fused and fastpath.applies(spec, X, sizes):
        return FusedStepper(spec, X, Y, Ws, bs, sparse=speedups.sparse_input)
    return FullBatchStepper(spec, X, Y, Ws, bs)


def _write_back(stepper, Ws, bs, work: np.ndarray) -> None:
    """The working runs' weights into the caller's arrays (unless they are those arrays)."""
    for l in range(len(Ws)):
        if stepper.Ws[l] is not Ws[l]:
            Ws[l][..., work] = stepper.Ws[l]
            if bs[l] is not None:
                bs[l][..., work] = stepper.bs[l]


def result(spec: TrainSpec, state: RunState, curves: Curves, last, Ws, bs, X_test, Y_test, init_weights) -> TrainResult:
    """The TrainResult from the final weights ``Ws``/``bs`` and the output z and metrics of
    their forward pass (``last``); the compiled backend ends its runs here too."""
    z, final = last[0], dict(last[1])
    curves.end(state.epochs_run, state.diverged, final)
    if X_test is not None and Y_test is not None:
        dtype = np.dtype(spec.dtype)
        zt, at = forward(Ws, bs, X_test.astype(dtype), spec.activation, spec.variant)
        test = metrics(spec.variant, zt[-1], at[-1], Y_test.astype(dtype)[..., None], METRICS)
        final.update({f"test_{k}": v for k, v in test.items()})
    diverged = state.diverged | ~finite(z, final, spec.variant.output)
    converged = state.converged & ~diverged
    epochs_to_converge = np.where(diverged, -1, state.epochs_to_converge)
    for k in final:
        final[k] = np.where(diverged, np.nan, final[k]).astype(np.float64)
    weights = {**init_weights, **snapshot(Ws, bs, "")} if spec.keep_weights else {}
    return TrainResult(converged, epochs_to_converge, state.epochs_run, diverged, final, curves.epochs, curves.values, weights)


@dataclass
class RunState:
    """Each run's verdicts so far, and which runs the working arrays hold (``work``)."""

    converged: np.ndarray  # bool, (runs,)
    diverged: np.ndarray
    epochs_to_converge: np.ndarray  # −1 until converged
    epochs_run: np.ndarray  # the epoch a run stopped at, or the budget
    active: np.ndarray  # still training
    work: np.ndarray  # run indices, all until compaction
    stop_converged: bool  # a converged run stops training
    version: int = 0  # bumped whenever `active` or `work` changes
    open_w: np.ndarray | None = None  # cached ~(diverged | converged)[work]; None: recompute
    closed_w: np.ndarray | None = None  # cached: inf where a working run is not open, else 0

    @classmethod
    def start(cls, R: int, spec: TrainSpec) -> RunState:
        return cls(np.zeros(R, bool), np.zeros(R, bool), np.full(R, -1), np.full(R, spec.epochs), np.ones(R, bool), np.arange(R), spec.stop_converged)

    def _changed(self) -> None:
        self.open_w = self.closed_w = None
        self.version += 1

    def _open(self) -> np.ndarray:
        if self.open_w is None:
            self.open_w = ~(self.diverged[self.work] | self.converged[self.work])
            self.closed_w = None
        return self.open_w

    def record(self, epoch: int, finite: np.ndarray, met: np.ndarray | None) -> None:
        """Divergence (``finite``) and convergence (``met``; None: not a check) of the working
        runs after ``epoch`` updates; the common case (all finite, nothing new) costs a few calls."""
        if not finite.all():
            bad = np.zeros(len(self.active), bool)
            bad[self.work] = ~finite
            bad &= self.active
            if bad.any():
                self.diverged[bad] = True
                self.epochs_run[bad] = epoch
                self.active[bad] = False
                self._changed()
        if met is None:
            return
        new_w = met & self._open()
        if new_w.any():
            new = np.zeros(len(self.active), bool)
            new[self.work] = new_w
            self.epochs_to_converge[new] = epoch
            self.converged[new] = True
            self.open_w = None
            if self.stop_converged:
                frozen = new & self.active
                self.epochs_run[frozen] = epoch
                self.active[frozen] = False
                self._changed()

    def check_max_error(self, epoch: int, max_error: np.ndarray, threshold: float) -> None:
        """``record`` for the criterion max_error < threshold from max_error alone (the fused
        kernel's check). Two calls decide the common case: no open run
        under the threshold (inf marks closed runs) and every run finite. max_error is
        |a − y| + 0·z with a in [0, 1] and finite targets, so NaN is its only non-finite
        value, and min keeps a NaN."""
        if self.closed_w is None:
            self.closed_w = np.where(self._open(), 0, np.inf).astype(max_error.dtype)
        if not (max_error + self.closed_w).min() >= threshold:
            self.record(epoch, np.isfinite(max_error), max_error < threshold)

    def worth_compacting(self) -> bool:
        n = len(self.work)
        return n >= COMPACT_MIN_RUNS and self.active[self.work].sum() <= COMPACT_BELOW * n

    def compact(self) -> np.ndarray:
        """Drop the frozen runs from ``work``; returns which working runs stay."""
        keep = self.active[self.work]
        self.work = self.work[keep]
        self._changed()
        return keep


@dataclass
class Curves:
    """The logged epochs and each run's ce, mse and accuracy at them."""

    epochs: np.ndarray  # (logged,): every log_every-th epoch, and the last
    values: dict[str, np.ndarray]  # (runs, logged), NaN where not logged
    due_list: list[int]  # epochs as plain ints: cheaper to compare each epoch
    i: int = 0  # the next logged epoch's index

    @classmethod
    def start(cls, spec: TrainSpec, R: int) -> Curves:
        epochs = np.arange(0, spec.epochs + 1, spec.log_every)  # and the last epoch (np.unique would import numpy.ma)
        if epochs[-1] != spec.epochs:
            epochs = np.append(epochs, spec.epochs)
        return cls(epochs, {k: np.full((R, len(epochs)), np.nan) for k in ("ce", "mse", "accuracy")}, epochs.tolist())

    def due(self, epoch: int) -> bool:
        return self.i < len(self.due_list) and epoch == self.due_list[self.i]

    def write(self, m: dict[str, np.ndarray], state: RunState) -> None:
        w = state.work
        for k, curve in self.values.items():
            curve[w, self.i] = np.where(state.diverged[w], np.nan, m[k])
        self.i += 1

    def end(self, epochs_run: np.ndarray, diverged: np.ndarray, final: dict[str, np.ndarray]) -> None:
        """A curve ends where its run stopped: the logged epoch of the stop holds the final
        metrics (the weights it stopped with), later ones NaN, so a median over runs at a
        late epoch is over the runs still training, not a plateau of frozen ones."""
        at_stop = (self.epochs[None, :] == epochs_run[:, None]) & ~diverged[:, None]
        after_stop = self.epochs[None, :] > epochs_run[:, None]
        for k in self.values:
            self.values[k] = np.where(after_stop, np.nan, np.where(at_stop, final[k][:, None], self.values[k]))


# ----------------------------------------------------------------------------- metrics


def metrics(variant: Variant, z: np.ndarray, a: np.ndarray, Y: np.ndarray, which: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-run metrics, each (runs,): mean per-sample ce and mse, accuracy, max error."""
    out = {}
    n = a.shape[0]
    if "ce" in which:
        ce = LOSSES.get((variant.output, "ce"))  # cross-entropy has no meaning for a linear output
        out["ce"] = rsum(ce(z, a, Y), 0) / n if ce is not None else np.full(a.shape[2], np.nan)
    if "mse" in which:
        out["mse"] = rsum(squared_error(z, a, Y), 0) / n
    if "max_error" in which:
        out["max_error"] = np.abs(a - Y).max(axis=(0, 1))
    if "accuracy" in which:
        if a.shape[1] == 1:
            hit = (a[:, 0, :] > 0.5) == (Y[:, 0, :] > 0.5)
        else:
            hit = a.argmax(axis=1) == Y.argmax(axis=1)  # (samples, runs) vs (samples, 1)
        out["accuracy"] = rsum(hit.astype(np.float64), 0) / n
    return out


def finite(z: np.ndarray, m: dict[str, np.ndarray], output: str) -> np.ndarray:
    """Per run: are the output pre-activations and the metrics finite? A sigmoid or softmax
    maps ±inf to a finite 0 or 1, so the outputs alone cannot reveal an overflow; nor can
    finite logits near ±1.8e308, whose softmax cross-entropy overflows to NaN (0 · ∞)."""
    ok = np.isfinite(z).all(axis=(0, 1))
    for k in ("max_error", "mse", "ce"):
        if k in m:
            ok &= np.isfinite(m[k]) | (np.isnan(m[k]) & (k == "ce") & (output == "linear"))  # ce is NaN by design for linear outputs
    return ok


def criterion_met(spec: TrainSpec, m: dict[str, np.ndarray]) -> np.ndarray:
    if spec.criterion == "max_error":
        return m["max_error"] < spec.threshold
    if spec.criterion == "accuracy":
        return m["accuracy"] >= spec.threshold
    return m[spec.metric] < spec.threshold  # type: ignore[index]


def snapshot(Ws, bs, suffix: str) -> dict[str, np.ndarray]:
    """Weights as run-first arrays: "W1" -> (runs, fan_in, fan_out), "b1" -> (runs, fan_out)."""
    out = {}
    for l, (W, b) in enumerate(zip(Ws, bs), start=1):
        out[f"W{l}{suffix}"] = np.ascontiguousarray(W.transpose(2, 0, 1)).astype(np.float64)
        if b is not None:
            out[f"b{l}{suffix}"] = np.ascontiguousarray(b.T).astype(np.float64)
    return out
