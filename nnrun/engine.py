"""Trains one batch of runs that share shapes, all at once, as stacked runs-last arrays.

Layout: weights ``W[l]`` are ``(fan_in, fan_out, runs)``, biases ``b[l]`` are
``(fan_out, runs)``, activations are ``(samples, units, runs)``. Keeping the run axis last
lets one NumPy call serve every run and lets per-run learning rates broadcast.

Grouping invariance: every contraction below is either a loop of element-wise multiply
and add (exact IEEE operations, the same for each run whatever else is in the batch) or a
per-run matrix product, so a run gives bit-identical numbers trained alone or among
thousands. Never a BLAS call whose result could depend on the other runs' columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnrun import fastpath
from nnrun.optim import OPTIMIZERS
from nnrun.variants import ACTIVATIONS, DERIVATIVES, Variant, rsum, sigmoid_cross_entropy, softmax_cross_entropy, squared_error

# Contractions over at most LOOP_LIMIT terms, producing at most LOOP_CELLS numbers per run,
# run as a loop of element-wise operations over all runs at once; others as one matrix
# product per run. The choice depends on shapes only, never on the number of runs, so a
# run takes the same arithmetic alone or batched.
LOOP_LIMIT = fastpath.LOOP_LIMIT
LOOP_CELLS = fastpath.LOOP_CELLS


def _use_loop(terms: int, rows: int, cols: int) -> bool:
    return terms <= LOOP_LIMIT and rows * cols <= LOOP_CELLS


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


# ----------------------------------------------------------------------------- contractions


def _affine(a: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """z[n,o,r] = Σᵢ a[n,i,r]·W[i,o,r] + b[o,r]; ``a`` may be shared, (samples, in)."""
    n, fan_in = a.shape[0], W.shape[0]
    if _use_loop(fan_in, n, W.shape[1]):
        shared = a.ndim == 2
        z = np.empty((n,) + W.shape[1:], dtype=W.dtype)
        tmp = np.empty_like(z)
        for i in range(fan_in):
            ai = a[:, i, None, None] if shared else a[:, i, None, :]
            if i == 0:
                np.multiply(ai, W[0], out=z)
            else:
                np.multiply(ai, W[i], out=tmp)
                z += tmp
    else:
        z = np.matmul(a if a.ndim == 2 else _runs_first(a, (2, 0, 1)), _runs_first(W, (2, 0, 1))).transpose(1, 2, 0)
    if b is not None:
        z += b  # z is this function's own array
    return z


def _backprop(delta: np.ndarray, W: np.ndarray) -> np.ndarray:
    """d[n,i,r] = Σₒ delta[n,o,r]·W[i,o,r]."""
    fan_out = W.shape[1]
    if _use_loop(fan_out, delta.shape[0], W.shape[0]):
        d = delta[:, None, 0, :] * W[None, :, 0, :]
        for o in range(1, fan_out):
            d += delta[:, None, o, :] * W[None, :, o, :]
        return d
    return np.matmul(_runs_first(delta, (2, 0, 1)), _runs_first(W, (2, 1, 0))).transpose(1, 2, 0)


def _weight_grad(a: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """g[i,o,r] = Σₙ a[n,i,r]·delta[n,o,r]; ``a`` may be shared, (samples, in)."""
    n = delta.shape[0]
    shared = a.ndim == 2
    if _use_loop(n, a.shape[1], delta.shape[1]):
        g = np.empty((a.shape[1],) + delta.shape[1:], dtype=delta.dtype)
        tmp = np.empty_like(g)
        for k in range(n):
            ak = a[k, :, None, None] if shared else a[k, :, None, :]
            if k == 0:
                np.multiply(ak, delta[0, None], out=g)
            else:
                np.multiply(ak, delta[k, None], out=tmp)
                g += tmp
        return g
    d = _runs_first(delta, (2, 0, 1))
    if shared:
        return np.matmul(np.ascontiguousarray(a.T), d).transpose(1, 2, 0)
    # aᵀ as a transposed view of a contiguous runs-first a: BLAS reads it transposed, with
    # no copy; _weight_grad_rf passes the very same layout, so the two agree bit for bit.
    return np.matmul(_runs_first(a, (2, 0, 1)).transpose(0, 2, 1), d).transpose(1, 2, 0)


def _runs_first(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """A contiguous runs-first copy: np.matmul then makes the same BLAS call for every run,
    whatever the batch size (a strided view may take NumPy's own loop, which rounds
    differently)."""
    return np.ascontiguousarray(x.transpose(axes))


# ----------------------------------------------------------------------------- runs-first minibatches
#
# A minibatch gathers each run's own samples, so its activations differ per run and the
# matmul-path contractions above copy every operand to a contiguous runs-first layout and
# back, each minibatch. The functions below keep a minibatch runs-first throughout,
# ``(runs, samples, units)``, and the weights in runs-first storage (``Ws`` are runs-last
# views of it), so those copies vanish. They perform the reference's operations in the
# reference's order on the same operands: element-wise IEEE operations do not depend on the
# layout, and every matmul gets the very contiguous runs-first operands ``_runs_first``
# makes, so every number is bit-identical to ``forward``/``backward``.


def _runs_first_applies(spec: TrainSpec, X: np.ndarray, sizes: list[int]) -> bool:
    """Minibatch training with some contraction on the matmul path at the batch size
    (shapes only, never the number of runs); otherwise the runs-last loops are faster."""
    if spec.batch_size is None or spec.batch_size >= len(X):
        return False
    B = spec.batch_size
    return any(not (_use_loop(i, B, o) and _use_loop(o, B, i) and _use_loop(B, i, o)) for i, o in zip(sizes[:-1], sizes[1:]))


def _runs_first_storage(x: np.ndarray) -> np.ndarray:
    """A runs-last view of a contiguous runs-first copy of ``x`` (same shape and values)."""
    return np.ascontiguousarray(np.moveaxis(x, -1, 0)).transpose(tuple(range(1, x.ndim)) + (0,))


def _affine_rf(a: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``_affine`` runs-first: a (R, n, in), W (R, in, out), b (R, out) -> z (R, n, out)."""
    n, fan_in, fan_out = a.shape[1], W.shape[1], W.shape[2]
    if _use_loop(fan_in, n, fan_out):
        z = np.multiply(a[:, :, 0, None], W[:, None, 0, :])
        tmp = np.empty_like(z)
        for i in range(1, fan_in):
            np.multiply(a[:, :, i, None], W[:, None, i, :], out=tmp)
            z += tmp
    else:
        z = np.matmul(np.ascontiguousarray(a), W)
    if b is not None:
        z += b[:, None, :]
    return z


def _backprop_rf(delta: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``_backprop`` runs-first: delta (R, n, out), W (R, in, out) -> (R, n, in)."""
    fan_out = W.shape[2]
    if _use_loop(fan_out, delta.shape[1], W.shape[1]):
        d = np.multiply(delta[:, :, None, 0], W[:, None, :, 0])
        tmp = np.empty_like(d)
        for o in range(1, fan_out):
            np.multiply(delta[:, :, None, o], W[:, None, :, o], out=tmp)
            d += tmp
        return d
    return np.matmul(delta, np.ascontiguousarray(W.transpose(0, 2, 1)))


def _weight_grad_rf(a: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``_weight_grad`` runs-first: a (R, n, in), delta (R, n, out) -> (R, in, out)."""
    n = delta.shape[1]
    if _use_loop(n, a.shape[2], delta.shape[2]):
        g = np.multiply(a[:, 0, :, None], delta[:, 0, None, :])
        tmp = np.empty_like(g)
        for k in range(1, n):
            np.multiply(a[:, k, :, None], delta[:, k, None, :], out=tmp)
            g += tmp
        return g
    return np.matmul(np.ascontiguousarray(a).transpose(0, 2, 1), delta)  # as _weight_grad


def _rl(x: np.ndarray) -> np.ndarray:
    """The runs-last view (samples, units, runs) of a runs-first array."""
    return x.transpose(1, 2, 0)


def _rf(x: np.ndarray) -> np.ndarray:
    """A contiguous runs-first array from a runs-last one (no copy if it is a view of one)."""
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _sigmoid_rf(z: np.ndarray) -> np.ndarray:
    """``variants.sigmoid``, 1.0 / (1.0 + exp(−z)), with one buffer (any layout)."""
    a = np.negative(z)
    np.exp(a, out=a)
    np.add(a, 1.0, out=a)
    return np.divide(1.0, a, out=a)


def _softmax_rf(z: np.ndarray) -> np.ndarray:
    """``variants.softmax`` over the units, the last axis here: e = exp(z − max), e / Σe (the
    sum over a contiguous last axis is the one ``rsum`` makes)."""
    if z.shape[-1] <= LOOP_LIMIT:  # the same maximum as z.max(axis=-1), in fewer cycles
        m = z[..., 0].copy()
        for o in range(1, z.shape[-1]):
            np.maximum(m, z[..., o], out=m)
        m = m[..., None]
    else:
        m = z.max(axis=-1, keepdims=True)
    e = np.subtract(z, m)
    np.exp(e, out=e)
    return np.divide(e, e.sum(axis=-1, keepdims=True), out=e)


def _minibatch_step_rf(spec: TrainSpec, Ws, bs, Xb, Yb, scale: float):
    """Gradients of one minibatch, runs-first. ``Ws``/``bs`` are runs-last views of
    runs-first storage; Xb (R, B, features), Yb (R, B, outputs). Returns runs-last views of
    the gradients, as ``backward``."""
    variant, activation = spec.variant, spec.activation
    L = len(Ws)
    Wr = [W.transpose(2, 0, 1) for W in Ws]  # (R, in, out), contiguous
    br = [None if b is None else b.T for b in bs]  # (R, out), contiguous
    zs, acts = [], [Xb]
    for l in range(L):
        z = _affine_rf(acts[-1], Wr[l], br[l])
        zs.append(z)
        if l == L - 1:
            if variant.output == "softmax":
                a = _softmax_rf(z)
            elif variant.output == "sigmoid":
                a = _sigmoid_rf(z)
            else:
                a = _rf(variant.output_fn(_rl(z)))
        elif activation == "sigmoid":
            a = _sigmoid_rf(z)
        else:
            a = _rf(ACTIVATIONS[activation](_rl(z)))
        acts.append(a)
    if variant.delta_rule.name == "a_minus_y":
        d = np.subtract(acts[-1], Yb)
        if scale != 1.0:
            np.multiply(d, scale, out=d)
    else:
        delta = variant.delta_fn(_rl(zs[-1]), _rl(acts[-1]), _rl(Yb))
        if scale != 1.0:
            delta = delta * scale
        d = _rf(delta)
    gW, gb = [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        gW[l] = _rl(_weight_grad_rf(acts[l], d))
        if bs[l] is not None:
            gb[l] = rsum(d, 1).T  # over samples, in rsum's fixed order; runs-last view
        if l > 0:
            d = _backprop_rf(d, Wr[l])
            if activation == "sigmoid":  # a·(1 − a), as variants.sigmoid_derivative
                a = acts[l]
                s = np.subtract(1.0, a)
                np.multiply(a, s, out=s)
                d *= s
            else:
                d = _rf(_rl(d) * DERIVATIVES[activation](_rl(zs[l - 1]), _rl(acts[l])))
    return gW, gb


# ----------------------------------------------------------------------------- training


def forward(Ws, bs, X, activation: str, variant: Variant):
    """Lists of pre-activations z and activations a (a[0] is the input)."""
    act = ACTIVATIONS[activation]
    zs, acts = [], [X]
    for l, (W, b) in enumerate(zip(Ws, bs)):
        z = _affine(acts[-1], W, b)
        zs.append(z)
        if l == len(Ws) - 1:
            if variant.output == "softmax" and z.transpose(2, 0, 1).flags.c_contiguous:  # runs-first memory
                acts.append(_rl(_softmax_rf(z.transpose(2, 0, 1))))
            else:
                acts.append(variant.output_fn(z))
        else:
            acts.append(_sigmoid_rf(z) if activation == "sigmoid" else act(z))  # the same bits, fewer temporaries
    return zs, acts


def backward(Ws, zs, acts, Y, activation: str, variant: Variant, scale: float):
    """Gradients of the summed (scale=1) or averaged loss: lists gW, gb (runs-last)."""
    deriv = DERIVATIVES[activation]
    delta = variant.delta_fn(zs[-1], acts[-1], Y)
    if scale != 1.0:
        delta = delta * scale
    gW, gb = [None] * len(Ws), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        gW[l] = _weight_grad(acts[l], delta)
        gb[l] = rsum(delta, 0)
        if l > 0:
            delta = _backprop(delta, Ws[l]) * deriv(zs[l - 1], acts[l])
    return gW, gb


def _cross_entropy(variant: Variant, z, a, Y) -> np.ndarray:
    if variant.output == "sigmoid":
        return sigmoid_cross_entropy(z, a, Y)
    if variant.output == "softmax":
        return softmax_cross_entropy(z, a, Y)
    return np.full(a.shape[::2], np.nan)  # cross-entropy has no meaning for a linear output


def metrics(variant: Variant, z: np.ndarray, a: np.ndarray, Y: np.ndarray, which: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-run metrics, each (runs,): mean per-sample ce and mse, accuracy, max error."""
    out = {}
    n = a.shape[0]
    if "ce" in which:
        out["ce"] = rsum(_cross_entropy(variant, z, a, Y), 0) / n
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


def _finite(z: np.ndarray, m: dict[str, np.ndarray]) -> np.ndarray:
    """Per run: are the output pre-activations and the metrics finite? A sigmoid or softmax
    maps ±inf to a finite 0 or 1, so the outputs alone cannot reveal an overflow."""
    ok = np.isfinite(z).all(axis=(0, 1))
    for k in ("max_error", "mse", "ce"):
        if k in m:
            ok &= np.isfinite(m[k]) | (np.isnan(m[k]) & (k == "ce"))  # ce is NaN by design for linear outputs
    return ok


def _criterion_met(spec: TrainSpec, m: dict[str, np.ndarray]) -> np.ndarray:
    if spec.criterion == "max_error":
        return m["max_error"] < spec.threshold
    if spec.criterion == "accuracy":
        return m["accuracy"] >= spec.threshold
    return m[spec.metric] < spec.threshold  # type: ignore[index]


def _shuffle_keys(rngs: list[np.random.Generator], epochs: int, n: int) -> np.ndarray:
    """(runs, epochs, n) sort keys; a run's keys depend on its own stream only."""
    keys = np.empty((len(rngs), epochs, n))
    for g, k in zip(rngs, keys):
        g.random(out=k)  # the same draws as g.random((epochs, n)), without np.stack's copy
    return keys


def _sample_order(keys: np.ndarray) -> np.ndarray:
    """Each row's stable argsort, ``np.argsort(keys, axis=1, kind="stable")``. Where no row has
    two equal keys the sorted permutation is unique, so the ~5× faster unstable sort gives
    the same one; a tie anywhere falls back to the stable sort."""
    order = np.argsort(keys, axis=1)
    s = np.take_along_axis(keys, order, axis=1)
    if (s[:, 1:] > s[:, :-1]).all():
        return order
    return np.argsort(keys, axis=1, kind="stable")


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
) -> TrainResult:
    """Train every run of the batch; ``Ws``/``bs`` are updated in place.

    X: (samples, features) shared by all runs; Y: (samples, outputs); lr, seeds: (runs,).
    Epoch e's check looks at the weights after e updates, so a run that meets the
    criterion at its initial weights has ``epochs_to_converge == 0``. More than
    ``RUN_BLOCK`` runs are trained a block at a time (runs are independent: same numbers).
    """
    R = len(lr)
    blocks = -(-R // RUN_BLOCK)
    with np.errstate(all="ignore"):
        if blocks <= 1:
            return _train(spec, X, Y, Ws, bs, lr, seeds, X_test, Y_test)
        lr, seeds, parts = np.asarray(lr), np.asarray(seeds), []
        bounds = np.linspace(0, R, blocks + 1).astype(int).tolist()  # blocks of equal size, ±1
        for sl in map(slice, bounds[:-1], bounds[1:]):
            Wb, bb = [W[..., sl].copy() for W in Ws], [None if b is None else b[..., sl].copy() for b in bs]
            parts.append(_train(spec, X, Y, Wb, bb, lr[sl], seeds[sl], X_test, Y_test))
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


# Runs trained together at most: beyond ~8k (float64, XOR) the working set no longer fits the
# cache and throughput falls (×0.55 at 32k); measured in benchmarks/ (scaling).
RUN_BLOCK = 8192


# Once at most this share of the working runs is still training, the frozen ones are
# dropped from the arrays (a frozen run costs as much per epoch as an active one).
COMPACT_BELOW = 0.5
COMPACT_MIN_RUNS = 64  # below this, NumPy's per-call cost dominates and copying is not worth it


def _train(spec, X, Y, Ws, bs, lr, seeds, X_test, Y_test) -> TrainResult:
    dtype = np.dtype(spec.dtype)
    X, Y = X.astype(dtype), Y.astype(dtype)
    Yr = Y[..., None]  # (n, k, 1) broadcasts over runs
    R = len(lr)
    lr = np.asarray(lr, dtype=dtype)
    n = X.shape[0]
    full_batch = spec.batch_size is None or spec.batch_size >= n
    out_W, out_b = list(Ws), list(bs)  # the caller's arrays; the final weights land here
    work = np.arange(R)  # which runs the working arrays Ws, bs hold (all, until compaction)
    lr_w = lr
    sizes = [X.shape[1]] + [W.shape[1] for W in Ws]
    runs_first = _runs_first_applies(spec, X, sizes)
    if runs_first:  # minibatches kept runs-first: the weights live in runs-first storage
        Ws = [_runs_first_storage(W) for W in Ws]
        bs = [None if b is None else _runs_first_storage(b) for b in bs]
    params = Ws + [b for b in bs if b is not None]
    opt = OPTIMIZERS[spec.optimizer](params, **dict(spec.optimizer_args))
    init_weights = _snapshot(Ws, bs, ".init") if spec.keep_weights else {}

    log_epochs = np.arange(0, spec.epochs + 1, spec.log_every)  # and the last epoch (np.unique would import numpy.ma)
    if log_epochs[-1] != spec.epochs:
        log_epochs = np.append(log_epochs, spec.epochs)
    curves = {k: np.full((R, len(log_epochs)), np.nan) for k in ("ce", "mse", "accuracy")}
    converged = np.zeros(R, bool)
    diverged = np.zeros(R, bool)
    epochs_to_converge = np.full(R, -1)
    epochs_run = np.full(R, spec.epochs)
    active = np.ones(R, bool)
    crit_metric = {"max_error": "max_error", "accuracy": "accuracy", "loss": spec.metric}[spec.criterion]
    log_i = 0
    rngs = None if full_batch else [np.random.default_rng([int(s), 1]) for s in seeds]
    keys = None
    block = 64  # epochs of shuffle keys drawn at a time

    def record(epoch: int, finite: np.ndarray, met: np.ndarray | None) -> None:
        """Divergence and convergence bookkeeping after a check (``met`` None: not a check).
        Runs outside ``work`` are inactive and done, so only the working runs can change;
        the common case (all finite, nothing new) costs a few calls."""
        nonlocal open_w, version
        if not finite.all():
            bad = np.zeros(R, bool)
            bad[work] = ~finite
            bad &= active
            if bad.any():
                diverged[bad] = True
                epochs_run[bad] = epoch
                active[bad] = False
                open_w, version = None, version + 1
        if met is not None:
            if open_w is None:  # working runs neither diverged nor converged
                open_w = ~(diverged[work] | converged[work])
            new_w = met & open_w
            if new_w.any():
                new = np.zeros(R, bool)
                new[work] = new_w
                epochs_to_converge[new] = epoch
                converged[new] = True
                open_w = None
                if spec.stop_converged:
                    frozen = new & active
                    epochs_run[frozen] = epoch
                    active[frozen] = False
                    version += 1

    def write_back() -> None:
        for l in range(len(Ws)):
            if Ws[l] is not out_W[l]:
                out_W[l][..., work] = Ws[l]
                if bs[l] is not None:
                    out_b[l][..., work] = bs[l]

    def compact() -> None:
        """Drop frozen runs from the working arrays. Each run's arithmetic is independent of
        the others, so this changes no number, only the cost of an epoch."""
        nonlocal Ws, bs, params, lr_w, work, keys, kernel, open_w, version
        open_w, version = None, version + 1
        keep = active[work]
        write_back()
        Ws = [W[..., keep] for W in Ws]
        bs = [None if b is None else b[..., keep] for b in bs]
        if runs_first:
            Ws = [_runs_first_storage(W) for W in Ws]
            bs = [None if b is None else _runs_first_storage(b) for b in bs]
        params = Ws + [b for b in bs if b is not None]
        opt.compact(keep)
        lr_w, work = lr_w[keep], work[keep]
        if keys is not None:
            keys = keys[keep]
        if kernel is not None:
            kernel = fastpath.FullBatchKernel(spec, X, Y, Ws, bs)
            Ws, bs = kernel.Ws, kernel.bs

    kernel = fastpath.FullBatchKernel(spec, X, Y, Ws, bs) if full_batch and fastpath.applies(spec, X, sizes) else None
    if kernel is not None:  # it trains its own copy of the weights (write_back returns them)
        Ws, bs = kernel.Ws, kernel.bs

    open_w = None  # cached ~(diverged | converged)[work]; None: recompute
    closed = closed_for = None  # inf where a working run is not open, 0 where it is (for open_w)
    version, seen = 0, -1  # bumped whenever `active` or `work` changes
    log_list, check_every = log_epochs.tolist(), spec.check_every  # plain ints: cheaper per epoch
    for epoch in range(spec.epochs + 1):
        is_check = epoch % check_every == 0 or epoch == spec.epochs
        is_log = log_i < len(log_list) and epoch == log_list[log_i]
        zs = acts = last = None
        if kernel is not None:
            max_error = kernel.forward(keep_z=is_log)  # NaN where the output z is not finite
            if is_log:  # the metrics from the kernel's outputs: the reference forward's very bits
                zs, acts = [kernel.z_out], [kernel.a[-1]]
                m = metrics(spec.variant, zs[-1], acts[-1], Yr, ("ce", "mse", "accuracy", "max_error"))
                record(epoch, _finite(zs[-1], m), _criterion_met(spec, m) if is_check else None)
                for k in curves:
                    curves[k][work, log_i] = np.where(diverged[work], np.nan, m[k])
                last = (zs, acts, m)
            elif is_check:
                # Two calls decide the common case: no open run under the threshold (inf marks
                # closed runs) and every run finite. max_error is |a − y| + 0·z with a in [0, 1]
                # and finite targets, so NaN is its only non-finite value, and min keeps a NaN.
                if open_w is None:
                    open_w = ~(diverged[work] | converged[work])
                if closed_for is not open_w:
                    closed, closed_for = np.where(open_w, 0, np.inf).astype(dtype), open_w
                if not (max_error + closed).min() >= spec.threshold:
                    record(epoch, np.isfinite(max_error), max_error < spec.threshold)
        elif full_batch or is_check or is_log:
            zs, acts = forward(Ws, bs, X, spec.activation, spec.variant)
            if is_check or is_log:
                which = ("ce", "mse", "accuracy", "max_error") if is_log else (crit_metric, "max_error")
                m = metrics(spec.variant, zs[-1], acts[-1], Yr, which)
                record(epoch, _finite(zs[-1], m), _criterion_met(spec, m) if is_check else None)
                if is_log:
                    for k in curves:
                        curves[k][work, log_i] = np.where(diverged[work], np.nan, m[k])
                    last = (zs, acts, m)
        if is_log:
            log_i += 1
        if epoch == spec.epochs:
            break
        if version != seen:  # `active` changed (only a check or log can change it)
            if not active.any():
                break
            if len(work) >= COMPACT_MIN_RUNS and active[work].sum() <= COMPACT_BELOW * len(work):
                compact()
                if kernel is not None:  # this epoch's forward belongs to the old working set
                    kernel.forward()
                elif zs is not None:
                    zs, acts = forward(Ws, bs, X, spec.activation, spec.variant)
            lr_active = lr_w * active[work]
            seen = version
        if kernel is not None:
            kernel.backward_step(lr_active)
            continue
        if full_batch:
            scale = 1.0 / n if spec.reduction == "mean" else 1.0
            gW, gb = backward(Ws, zs, acts, Yr, spec.activation, spec.variant, scale)
            opt.step(params, gW + [g for g, b in zip(gb, bs) if b is not None], lr_active)
            continue
        # Minibatches: each run's sample order is reshuffled every epoch from its own seed,
        # so runs sharing a seed see the same order and stay paired.
        if epoch % block == 0:
            keys = _shuffle_keys([rngs[i] for i in work], min(block, spec.epochs - epoch), n)
        order = _sample_order(keys[:, epoch % block])  # (runs, n)
        for start in range(0, n, spec.batch_size):
            idx = order[:, start : start + spec.batch_size]  # (runs, B)
            scale = 1.0 / idx.shape[1] if spec.reduction == "mean" else 1.0
            if runs_first:
                gW, gb = _minibatch_step_rf(spec, Ws, bs, np.take(X, idx, axis=0), np.take(Y, idx, axis=0), scale)  # X[idx], faster
            else:
                Xb = X[idx].transpose(1, 2, 0)  # (B, features, runs)
                Yb = Y[idx].transpose(1, 2, 0)
                zb, ab = forward(Ws, bs, Xb, spec.activation, spec.variant)
                gW, gb = backward(Ws, zb, ab, Yb, spec.activation, spec.variant, scale)
            opt.step(params, gW + [g for g, b in zip(gb, bs) if b is not None], lr_active)

    write_back()
    Ws, bs = out_W, out_b
    if last is not None and len(work) == R:  # the last epoch's logged forward, of these very weights
        zs, acts, final = last[0], last[1], dict(last[2])
    else:
        zs, acts = forward(Ws, bs, X, spec.activation, spec.variant)
        final = metrics(spec.variant, zs[-1], acts[-1], Yr, ("ce", "mse", "accuracy", "max_error"))
    # A curve ends where its run stopped: the logged epoch of the stop holds the final
    # metrics (the weights it stopped with), later ones NaN, so a median over runs at a
    # late epoch is over the runs still training, not a plateau of frozen ones.
    at_stop = (log_epochs[None, :] == epochs_run[:, None]) & ~diverged[:, None]
    after_stop = log_epochs[None, :] > epochs_run[:, None]
    for k in curves:
        curves[k] = np.where(after_stop, np.nan, np.where(at_stop, final[k][:, None], curves[k]))
    if X_test is not None and Y_test is not None:
        zt, at = forward(Ws, bs, X_test.astype(dtype), spec.activation, spec.variant)
        test = metrics(spec.variant, zt[-1], at[-1], Y_test.astype(dtype)[..., None], ("ce", "mse", "accuracy", "max_error"))
        final.update({f"test_{k}": v for k, v in test.items()})
    newly_bad = ~diverged & ~_finite(zs[-1], final)
    diverged |= newly_bad
    converged &= ~diverged
    epochs_to_converge[diverged] = -1
    for k in final:
        final[k] = np.where(diverged, np.nan, final[k]).astype(np.float64)
    weights = {**init_weights, **_snapshot(Ws, bs, "")} if spec.keep_weights else {}
    return TrainResult(converged, epochs_to_converge, epochs_run, diverged, final, log_epochs, curves, weights)


def _snapshot(Ws, bs, suffix: str) -> dict[str, np.ndarray]:
    """Weights as run-first arrays: "W1" -> (runs, fan_in, fan_out), "b1" -> (runs, fan_out)."""
    out = {}
    for l, (W, b) in enumerate(zip(Ws, bs), start=1):
        out[f"W{l}{suffix}"] = np.ascontiguousarray(W.transpose(2, 0, 1)).astype(np.float64)
        if b is not None:
            out[f"b{l}{suffix}"] = np.ascontiguousarray(b.T).astype(np.float64)
    return out
