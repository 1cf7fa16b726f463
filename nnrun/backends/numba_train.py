"""``engine.train`` on the compiled kernel: the same contract, arguments and results.

The kernel trains a stretch of epochs per call (up to the next logged epoch, at most
``SEGMENT``), each run recording its own convergence and divergence at every check. Logged
epochs take their metrics from the reference ``engine.forward``/``engine.metrics`` on the
current weights, and the final result is built by ``engine.result``, so only the training
arithmetic is compiled. Minibatch sample orders come from the engine's own shuffles.
"""

from __future__ import annotations

import numpy as np

from nnrun import backends, engine, signals, steppers
from nnrun.backends import numba_kernel as nk
from nnrun.backends.jit import numba
from nnrun.network import forward
from nnrun.variants import VARIANTS

# Epochs per kernel call at most: frozen runs are dropped between calls, as the engine does.
SEGMENT = 200
SHUFFLE_BLOCK = 64  # epochs of shuffle keys drawn at a time, as the engine draws them
_COMPILED: set[str] = set()  # dtypes whose kernel this process has compiled or loaded
DELTA_CODES = {"a_minus_y": 0, "times_derivative": 1, "softmax_jacobian": 2}  # by variants.Delta name
METRICS = ("ce", "mse", "accuracy", "max_error")


def loaded() -> bool:
    return bool(_COMPILED)


def warm(dtype: str) -> None:
    """Load (or compile) the kernel for ``dtype``: one epoch of four XOR runs."""
    if dtype in _COMPILED:
        return
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=dtype)
    Y = np.array([[0], [1], [1], [0]], dtype=dtype)
    seeds = np.arange(4)
    Ws, bs = engine.init_params("legacy", [3, 4, 1], seeds, dtype=dtype)
    spec = engine.TrainSpec(variant=VARIANTS["ce"], epochs=1, dtype=dtype)
    train(spec, X, Y, Ws, bs, np.ones(4), seeds)


def _layout(sizes: list[int], bias: bool, nb: int) -> tuple[np.ndarray, ...]:
    """(sizes, oa, ow, ob): first rows of each layer's activations (for ``nb`` samples),
    weights and biases in the kernel's row layout."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    oa = np.cumsum([0] + [nb * s for s in sizes[:-1]])
    ow = np.cumsum([0] + [i * o for i, o in pairs])
    ob = ow[-1] + np.cumsum([0] + [o for _, o in pairs])[:-1] if bias else np.zeros(len(pairs), np.int64)
    return tuple(np.asarray(x, dtype=np.int64) for x in (sizes, oa, ow[:-1], ob))


def _views(theta: np.ndarray, sizes: list[int], bias: bool) -> tuple[list, list]:
    """Runs-last W (in, out, runs) and b (out, runs) views of the parameter rows."""
    _, _, ow, ob = _layout(sizes, bias, 1)
    R = theta.shape[1]
    Ws = [theta[w : w + i * o].reshape(i, o, R) for w, i, o in zip(ow, sizes[:-1], sizes[1:])]
    bs = [theta[b : b + o] if bias else None for b, o in zip(ob, sizes[1:])]
    return Ws, bs


def _codes(spec) -> tuple[int, int, int, int]:
    crit = spec.metric if spec.criterion == "loss" else spec.criterion
    if crit == "ce" and spec.variant.output == "linear":
        crit = "never"
    return nk.ACT[spec.activation], nk.OUT[spec.variant.output], DELTA_CODES[spec.variant.delta_rule.name], nk.CRITERION[crit]


def train(spec, X, Y, Ws, bs, lr, seeds, X_test=None, Y_test=None) -> engine.TrainResult:
    """Train every run of the batch; ``Ws``/``bs`` are updated in place (``engine.train``)."""
    numba.set_num_threads(min(backends.threads(), numba.config.NUMBA_NUM_THREADS))
    with np.errstate(all="ignore"):
        return _Training(spec, X, Y, Ws, bs, lr, seeds).run(X_test, Y_test)


class _Training:
    """The state of one batch: its parameter rows, which runs they hold, each run's status."""

    def __init__(self, spec, X, Y, Ws, bs, lr, seeds) -> None:
        dt = np.dtype(spec.dtype)
        self.spec, self.dt = spec, dt
        self.X, self.Y = np.ascontiguousarray(X, dtype=dt), np.ascontiguousarray(Y, dtype=dt)
        self.out_W, self.out_b = Ws, bs
        self.sizes = [X.shape[1]] + [W.shape[1] for W in Ws]
        self.bias = bs[0] is not None
        n, R = len(X), len(lr)
        self.n = n
        self.batch = n if spec.batch_size is None else min(spec.batch_size, n)
        self.layout = _layout(self.sizes, self.bias, self.batch)
        self.theta = np.concatenate([W.reshape(-1, R) for W in Ws] + (list(bs) if self.bias else []), dtype=dt)
        self.lr = np.asarray(lr, dtype=dt)
        self.work = np.arange(R)
        # rows: active, converged, diverged, epochs_to_converge (−1: not), epochs_run
        self.state = np.zeros((5, R), np.int64)
        self.state[0], self.state[3], self.state[4] = 1, -1, spec.epochs
        inv = np.ones(n + 1, dtype=dt)
        if spec.reduction == "mean":
            inv[1:] = 1.0 / np.arange(1, n + 1)
        self.inv = inv
        self.codes = _codes(spec)
        self.consts = tuple(dt.type(v) for v in (1.0, 0.0, 0.5, spec.threshold, n))
        self.init_weights = engine.snapshot(Ws, bs, ".init") if spec.keep_weights else {}
        self.rngs = None if self.batch == n else [np.random.default_rng([int(s), 1]) for s in seeds]
        self.keys = None

    def run(self, X_test, Y_test) -> engine.TrainResult:
        spec = self.spec
        log_epochs = np.arange(0, spec.epochs + 1, spec.log_every)
        if log_epochs[-1] != spec.epochs:
            log_epochs = np.append(log_epochs, spec.epochs)
        curves = {k: np.full((len(self.work), len(log_epochs)), np.nan) for k in ("ce", "mse", "accuracy")}
        logs, epoch, i = log_epochs.tolist(), 0, 0
        while True:
            logged = epoch == logs[i]
            if logged:
                self._log(epoch, i, curves)
                i += 1
            if epoch == spec.epochs or not self.state[0].any():
                break
            self._compact()
            stop = epoch + 1 if self.rngs is not None else min(logs[i], epoch + SEGMENT)
            self._epochs(epoch, stop, check_first=not logged)
            epoch = stop
        self._write_back()
        s, R = self.state, self.state.shape[1]
        state = engine.RunState(s[1] != 0, s[2] != 0, s[3].copy(), s[4].copy(), s[0] != 0, np.arange(R), spec.stop_converged)
        zs, acts = forward(self.out_W, self.out_b, self.X, spec.activation, spec.variant)
        last = (zs[-1], engine.metrics(spec.variant, zs[-1], acts[-1], self.Y[..., None], METRICS))
        logged = engine.Curves(log_epochs, curves, log_epochs.tolist())
        return engine.result(spec, state, logged, last, self.out_W, self.out_b, X_test, Y_test, self.init_weights)

    def _epochs(self, start: int, stop: int, check_first: bool) -> None:
        spec = self.spec
        order = np.empty((0, 0), np.int64)
        if self.rngs is not None:
            if start % SHUFFLE_BLOCK == 0:
                self.keys = steppers.shuffle_keys([self.rngs[r] for r in self.work], min(SHUFFLE_BLOCK, spec.epochs - start), self.n)
            order = np.ascontiguousarray(steppers.sample_order(self.keys[:, start % SHUFFLE_BLOCK]), dtype=np.int64)
        span = (start, stop, spec.check_every, spec.epochs)
        flags = (int(check_first), int(self.bias), self.batch, int(spec.stop_converged), numba.get_num_threads())
        args = (self.X, self.Y, self.theta, self.lr, self.state, self.work, order, self.inv, self.layout, self.codes, self.consts, span, flags)
        if self.dt.name in _COMPILED:
            nk.run_epochs(*args)
            return
        with signals.deferred():  # numba compiles (or loads) in Python: a signal must not cut that in half
            nk.run_epochs(*args)
        _COMPILED.add(self.dt.name)

    def _log(self, epoch: int, i: int, curves: dict) -> None:
        """A logged epoch, on the reference path: all metrics, divergence, convergence."""
        spec, w, s = self.spec, self.work, self.state
        Ws, bs = _views(self.theta, self.sizes, self.bias)
        zs, acts = forward(Ws, bs, self.X, spec.activation, spec.variant)
        m = engine.metrics(spec.variant, zs[-1], acts[-1], self.Y[..., None], METRICS)
        bad = w[~engine.finite(zs[-1], m, spec.variant.output) & (s[0, w] != 0)]
        s[2, bad], s[4, bad], s[0, bad] = 1, epoch, 0
        if epoch % spec.check_every == 0 or epoch == spec.epochs:
            new = w[engine.criterion_met(spec, m) & (s[2, w] == 0) & (s[1, w] == 0)]
            s[1, new], s[3, new] = 1, epoch
            if spec.stop_converged:
                frozen = new[s[0, new] != 0]
                s[4, frozen], s[0, frozen] = epoch, 0
        for k in curves:
            curves[k][w, i] = np.where(s[2, w] != 0, np.nan, m[k])

    def _compact(self) -> None:
        """Drop frozen runs from the parameter rows once at most half are still training
        (runs are independent lanes: no number changes, only the cost of an epoch)."""
        live = self.state[0, self.work] != 0
        if len(self.work) < engine.COMPACT_MIN_RUNS or live.sum() > engine.COMPACT_BELOW * len(self.work):
            return
        self._write_back()
        self.theta = np.ascontiguousarray(self.theta[:, live])
        self.lr, self.work = self.lr[live], self.work[live]
        if self.keys is not None:
            self.keys = self.keys[live]

    def _write_back(self) -> None:
        Ws, bs = _views(self.theta, self.sizes, self.bias)
        for l, (W, b) in enumerate(zip(Ws, bs)):
            self.out_W[l][..., self.work] = W
            if b is not None:
                self.out_b[l][..., self.work] = b
