"""The engine against independent oracles: the seed's own loop, hand-worked optimiser
steps, and itself trained one run at a time (grouping invariance)."""

from __future__ import annotations

import numpy as np
import pytest

from nnrun.engine import REFERENCE, Speedups, TrainSpec, init_params, train
from nnrun.optim import Adam, Momentum, SGD
from nnrun.variants import VARIANTS

X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)
Y = np.array([[0, 1, 1, 0]], dtype=float).T


def seed_loop(seed: int, epochs: int, delta: str) -> tuple[np.ndarray, np.ndarray]:
    """The seed's code, ported to Python 3 with RandomState(seed)."""
    rs = np.random.RandomState(seed)
    syn0 = 2 * rs.random_sample((3, 4)) - 1
    syn1 = 2 * rs.random_sample((4, 1)) - 1
    for _ in range(epochs):
        l1 = 1 / (1 + np.exp(-(np.dot(X, syn0))))
        l2 = 1 / (1 + np.exp(-(np.dot(l1, syn1))))
        l2_delta = (Y - l2) * (l2 * (1 - l2)) if delta == "mse" else Y - l2
        l1_delta = l2_delta.dot(syn1.T) * (l1 * (1 - l1))
        syn1 += l1.T.dot(l2_delta)
        syn0 += X.T.dot(l1_delta)
    return syn0, syn1


def test_legacy_init_draws_exactly_like_the_seed():
    Ws, bs = init_params("legacy", [3, 4, 1], np.array([0, 7]))
    for r, seed in enumerate([0, 7]):
        rs = np.random.RandomState(seed)
        assert np.array_equal(Ws[0][..., r], 2 * rs.random_sample((3, 4)) - 1)
        assert np.array_equal(Ws[1][..., r], 2 * rs.random_sample((4, 1)) - 1)
    assert bs == [None, None]


def test_legacy_init_with_biases_and_scale_draws_every_w_then_every_b():
    sizes, seeds = [3, 5, 2, 1], np.array([4, 0, 4, 9])  # a repeated seed gets the same weights
    Ws, bs = init_params("legacy", sizes, seeds, bias=True, scale=0.5)
    for r, seed in enumerate(seeds):
        rs = np.random.RandomState(seed)
        for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
            assert np.array_equal(Ws[l][..., r], (2 * rs.random_sample((i, o)) - 1) * 0.5)
        for l, o in enumerate(sizes[1:]):
            assert np.array_equal(bs[l][:, r], (2 * rs.random_sample(o) - 1) * 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["mse", "ce"])
def test_seed_replication_60000_epochs(variant):
    """nnrun train on the seed's network gives the seed loop's final weights (1e-9 rel)."""
    seeds = np.array([0, 1, 2])
    spec = TrainSpec(VARIANTS[variant], epochs=60000, stop_converged=False, keep_weights=True, log_every=10000)
    Ws, bs = init_params("legacy", [3, 4, 1], seeds)
    res = train(spec, X, Y, Ws, bs, np.ones(3), seeds)
    for r, seed in enumerate(seeds):
        syn0, syn1 = seed_loop(int(seed), 60000, variant)
        np.testing.assert_allclose(res.weights["W1"][r], syn0, rtol=1e-9, atol=0)
        np.testing.assert_allclose(res.weights["W2"][r], syn1, rtol=1e-9, atol=0)
        np.testing.assert_array_equal(res.weights["W1.init"][r], init_params("legacy", [3, 4, 1], np.array([seed]))[0][0][..., 0])


def _grads(shape_list, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) for s in shape_list]


def test_sgd_step_hand_worked():
    w = np.array([[1.0, 2.0]])  # runs last: 2 runs
    SGD([w]).step([w], [np.array([[0.5, -1.0]])], np.array([0.1, 2.0]))
    np.testing.assert_allclose(w, [[1.0 - 0.05, 2.0 + 2.0]])



@pytest.mark.parametrize("rate", [1.0, 0.3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_learning_rate_for_all_runs_updates_as_the_broadcast_formula(rate, dtype):
    """A rate shared by every run is applied as a scalar (or not at all at 1): the weights
    must still be w − lr·g, and w − lr·v for momentum, bit for bit, NaN included."""
    rng = np.random.default_rng(3)
    w0 = [rng.normal(size=(3, 4, 5)).astype(dtype), rng.normal(size=(4, 5)).astype(dtype)]
    gs = [[rng.normal(size=w.shape).astype(dtype) for w in w0] for _ in range(3)]
    gs[1][0][0, 0, 2] = np.nan
    lr = np.full(5, rate, dtype=dtype)
    w_sgd, w_mom = [w.copy() for w in w0], [w.copy() for w in w0]
    sgd, mom = SGD(w_sgd), Momentum(w_mom, beta=0.9)
    want_sgd, want_mom, v = [w.copy() for w in w0], [w.copy() for w in w0], [np.zeros_like(w) for w in w0]
    for g in gs:
        sgd.step(w_sgd, [x.copy() for x in g], lr)
        mom.step(w_mom, [x.copy() for x in g], lr)
        for l in range(2):
            want_sgd[l] = want_sgd[l] - g[l] * lr
            v[l] = v[l] * dtype(0.9) + g[l]
            want_mom[l] = want_mom[l] - lr * v[l]
    for got, want in zip(w_sgd + w_mom, want_sgd + want_mom):
        assert got.dtype == dtype and np.array_equal(got, want, equal_nan=True)

def test_momentum_steps_hand_worked():
    # v1 = g1 = 1; w1 = 0 − 0.1·1 = −0.1; v2 = 0.9·1 + 2 = 2.9; w2 = −0.1 − 0.29 = −0.39
    w = np.array([0.0])
    opt = Momentum([w], beta=0.9)
    opt.step([w], [np.array([1.0])], np.array([0.1]))
    opt.step([w], [np.array([2.0])], np.array([0.1]))
    np.testing.assert_allclose(w, [-0.39], rtol=1e-15)


def test_adam_steps_hand_worked():
    # step 1: m = 0.1·g, v = 0.001·g², m̂ = g, v̂ = g² → w −= lr·g/(|g| + eps) ≈ lr·sign(g)
    w = np.array([1.0])
    opt = Adam([w], beta1=0.9, beta2=0.999, eps=1e-8)
    opt.step([w], [np.array([4.0])], np.array([0.01]))
    np.testing.assert_allclose(w, [1.0 - 0.01 * 4.0 / (4.0 + 1e-8)], rtol=1e-14)
    # step 2 with g = 2: m = 0.09·4·... computed by hand
    m = 0.9 * 0.4 + 0.1 * 2.0  # 0.56
    v = 0.999 * 0.016 + 0.001 * 4.0  # 0.019984
    mhat, vhat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    expected = w[0] - 0.01 * mhat / (np.sqrt(vhat) + 1e-8)
    opt.step([w], [np.array([2.0])], np.array([0.01]))
    np.testing.assert_allclose(w, [expected], rtol=1e-12)


def test_adam_matches_torch_if_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=(5,))
    grads = [rng.normal(size=(5,)) for _ in range(20)]
    w = w0.copy()[:, None]
    opt = Adam([w], beta1=0.8, beta2=0.99, eps=1e-6)
    tw = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    topt = torch.optim.Adam([tw], lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    for g in grads:
        opt.step([w], [g[:, None].copy()], np.array([0.05]))
        tw.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
    np.testing.assert_allclose(w[:, 0], tw.detach().numpy(), rtol=1e-12)


def _train_rows(spec, seeds, lrs, sizes, X_, Y_, scheme="uniform", bias=False, speedups=Speedups()):
    Ws, bs = init_params(scheme, sizes, seeds, bias=bias, dtype=spec.dtype)
    res = train(spec, X_, Y_, Ws, bs, lrs, seeds, speedups=speedups)
    return res


def assert_same_results(got, want) -> None:
    """Two TrainResults bit for bit (NaN where NaN): verdicts, log epochs, final metrics,
    curves and weights, with the same keys."""
    for name in ("converged", "epochs_to_converge", "epochs_run", "diverged", "log_epochs"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    for group in ("final", "curves", "weights"):
        assert getattr(got, group).keys() == getattr(want, group).keys(), group
        for k, v in getattr(want, group).items():
            assert np.array_equal(getattr(got, group)[k], v, equal_nan=True), (group, k)


@pytest.mark.parametrize(
    "spec_kwargs",
    [
        {},
        {"batch_size": 2, "optimizer": "adam", "optimizer_args": (("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8))},
        {"optimizer": "momentum", "optimizer_args": (("beta", 0.9),), "reduction": "mean", "activation": "tanh"},
        {"dtype": "float32"},
    ],
)
def test_grouping_invariance(spec_kwargs):
    """The same runs trained one at a time and all together give identical numbers."""
    spec = TrainSpec(VARIANTS["mse"], epochs=400, keep_weights=True, log_every=50, **spec_kwargs)
    seeds = np.arange(12)
    lrs = np.repeat([0.5, 2.0, 8.0], 4)
    together = _train_rows(spec, seeds, lrs, [3, 4, 1], X, Y, bias=True)
    for r in range(12):
        alone = _train_rows(spec, seeds[r : r + 1], lrs[r : r + 1], [3, 4, 1], X, Y, bias=True)
        assert alone.epochs_to_converge[0] == together.epochs_to_converge[r]
        assert alone.converged[0] == together.converged[r]
        for k in together.final:
            assert np.array_equal(alone.final[k][0], together.final[k][r], equal_nan=True), k
        for k in together.weights:
            assert np.array_equal(alone.weights[k][0], together.weights[k][r]), k


@pytest.mark.parametrize("spec_kwargs", [{}, {"batch_size": 3, "optimizer": "momentum", "optimizer_args": (("beta", 0.9),)}])
def test_more_runs_than_a_block_train_in_blocks_with_the_same_numbers(monkeypatch, spec_kwargs):
    """Past RUN_BLOCK runs, train() splits the batch; every result and final weight must be
    what one batch gives, divergence and test metrics included."""
    import nnrun.engine as engine

    spec = TrainSpec(VARIANTS["ce"], epochs=400, keep_weights=True, log_every=30, **spec_kwargs)
    seeds = np.arange(23) % 17
    lrs = np.tile([0.5, 2.0, 1e30], 8)[:23]
    out = {}
    for label, block in (("blocks", 5), ("one batch", 10**6)):
        monkeypatch.setattr(engine, "RUN_BLOCK", block)
        Ws, bs = init_params("uniform", [3, 4, 1], seeds, bias=True)
        Ws[0][0, 0, ::7] = np.inf  # runs that diverge
        out[label] = (train(spec, X, Y, Ws, bs, lrs, seeds, X[:3], Y[:3]), Ws, bs)
    (a, aW, ab), (b, bW, bb) = out["blocks"], out["one batch"]
    assert a.diverged.any() and a.converged.any()
    assert_same_results(a, b)
    for x, y in zip(aW + ab, bW + bb):
        assert np.array_equal(x, y, equal_nan=True)

def test_grouping_invariance_wide_layers():
    """Contractions over more than LOOP_LIMIT terms take the per-run matmul path."""
    rng = np.random.default_rng(0)
    Xw = rng.normal(size=(40, 20))
    Yw = np.eye(3)[rng.integers(0, 3, size=40)]
    spec = TrainSpec(VARIANTS["ce-softmax"], epochs=30, batch_size=17, keep_weights=True, stop_converged=False)
    seeds = np.arange(5)
    lrs = np.full(5, 0.1)
    together = _train_rows(spec, seeds, lrs, [20, 24, 3], Xw, Yw, scheme="xavier", bias=True)
    for r in range(5):
        alone = _train_rows(spec, seeds[r : r + 1], lrs[r : r + 1], [20, 24, 3], Xw, Yw, scheme="xavier", bias=True)
        for k in together.weights:
            assert np.array_equal(alone.weights[k][0], together.weights[k][r]), k


def test_same_seed_same_minibatch_order_across_learning_rates():
    """Runs with one seed see one sample order: at lr → 0 both stay at the shared start,
    and two runs with equal seed and lr are identical even inside a larger batch."""
    spec = TrainSpec(VARIANTS["ce"], epochs=50, batch_size=1, keep_weights=True, stop_converged=False)
    seeds = np.array([3, 3, 4])
    res = _train_rows(spec, seeds, np.array([1.0, 1.0, 1.0]), [3, 4, 1], X, Y)
    assert np.array_equal(res.weights["W1"][0], res.weights["W1"][1])
    assert not np.array_equal(res.weights["W1"][0], res.weights["W1"][2])


def test_minibatch_sgd_with_batch_one_matches_a_per_sample_loop():
    """batch_size 1: an independent per-sample loop in the order the run's seed draws."""
    spec = TrainSpec(VARIANTS["ce"], epochs=3, batch_size=1, keep_weights=True, stop_converged=False)
    seed = 5
    res = _train_rows(spec, np.array([seed]), np.array([0.7]), [3, 4, 1], X, Y)
    W1, W2 = res.weights["W1.init"][0].copy(), res.weights["W2.init"][0].copy()
    rng = np.random.default_rng([seed, 1])
    keys = rng.random((3, 4))
    for epoch in range(3):
        for i in np.argsort(keys[epoch], kind="stable"):
            x, y = X[i : i + 1], Y[i : i + 1]
            a1 = 1 / (1 + np.exp(-x @ W1))
            a2 = 1 / (1 + np.exp(-a1 @ W2))
            d2 = a2 - y
            d1 = (d2 @ W2.T) * a1 * (1 - a1)
            W2 -= 0.7 * a1.T @ d2
            W1 -= 0.7 * x.T @ d1
    np.testing.assert_allclose(res.weights["W1"][0], W1, rtol=1e-12)
    np.testing.assert_allclose(res.weights["W2"][0], W2, rtol=1e-12)


def test_convergence_epoch_is_the_first_check_that_meets_the_criterion():
    """Recompute max |a − y| epoch by epoch with the seed loop; the first epoch below 0.1."""
    seed = 4
    spec = TrainSpec(VARIANTS["ce"], epochs=2000, log_every=100)
    Ws, bs = init_params("legacy", [3, 4, 1], np.array([seed]))
    res = train(spec, X, Y, Ws, bs, np.array([1.0]), np.array([seed]))
    rs = np.random.RandomState(seed)
    syn0 = 2 * rs.random_sample((3, 4)) - 1
    syn1 = 2 * rs.random_sample((4, 1)) - 1
    for epoch in range(2001):
        l1 = 1 / (1 + np.exp(-(X @ syn0)))
        l2 = 1 / (1 + np.exp(-(l1 @ syn1)))
        if np.abs(l2 - Y).max() < 0.1:
            break
        d2 = Y - l2
        d1 = d2.dot(syn1.T) * (l1 * (1 - l1))
        syn1 += l1.T.dot(d2)
        syn0 += X.T.dot(d1)
    assert res.converged[0] and res.epochs_to_converge[0] == epoch == res.epochs_run[0]
    assert res.final["max_error"][0] < 0.1


def test_divergence_is_data_not_a_crash():
    """Absurd learning rates on a linear output blow up: diverged rows, no warnings."""
    spec = TrainSpec(VARIANTS["mse-linear"], epochs=200, log_every=10)
    seeds = np.arange(4)
    Ws, bs = init_params("uniform", [3, 4, 1], seeds)
    with np.errstate(all="raise"):  # the engine must contain its own floating-point errors
        res = train(spec, X, Y, Ws, bs, np.array([1e-3, 1e3, 1e6, 1e300]), seeds)
    assert not res.diverged[0]
    assert res.diverged[1:].all()
    assert not res.converged[1:].any()
    assert np.isnan(res.final["ce"]).all()  # no cross-entropy for a linear output
    assert np.isnan(res.final["mse"][1:]).all() and np.isfinite(res.final["mse"][0])


def test_saturated_sigmoid_losses_stay_finite():
    spec = TrainSpec(VARIANTS["ce"], epochs=5, log_every=1, stop_converged=False)
    Ws, bs = init_params("uniform", [3, 4, 1], np.arange(2), scale=1e6)
    res = train(spec, X, Y, Ws, bs, np.array([1.0, 1.0]), np.arange(2))
    assert np.isfinite(res.final["ce"]).all() and np.isfinite(res.curves["ce"]).all()


def test_float32_runs_in_float32_and_agrees_roughly():
    spec64 = TrainSpec(VARIANTS["ce"], epochs=300, keep_weights=True, stop_converged=False)
    spec32 = TrainSpec(VARIANTS["ce"], epochs=300, keep_weights=True, stop_converged=False, dtype="float32")
    seeds = np.arange(3)
    r64 = _train_rows(spec64, seeds, np.ones(3), [3, 4, 1], X, Y, scheme="legacy")
    r32 = _train_rows(spec32, seeds, np.ones(3), [3, 4, 1], X, Y, scheme="legacy")
    np.testing.assert_allclose(r32.weights["W1"], r64.weights["W1"], rtol=1e-3, atol=1e-4)


def test_curves_end_where_each_run_stopped():
    """Issue case 7: a run that converged and stopped has no curve after its stop (NaN), so
    late medians are over the runs still training, not a plateau of frozen values."""
    spec = TrainSpec(VARIANTS["ce"], epochs=5000, log_every=100)
    Ws, bs = init_params("legacy", [3, 4, 1], np.arange(3))
    res = train(spec, X, Y, Ws, bs, np.full(3, 3.0), np.arange(3))
    assert res.converged.all() and res.epochs_run.max() < 5000
    for k in ("ce", "mse", "accuracy"):
        after = res.log_epochs[None, :] > res.epochs_run[:, None]
        assert np.isnan(res.curves[k][after]).all() and np.isfinite(res.curves[k][~after]).all(), k
    assert res.log_epochs[0] == 0 and res.log_epochs[-1] == 5000
    # A run that never stops early ends at the budget with its final metrics.
    full = train(TrainSpec(VARIANTS["ce"], epochs=300, log_every=100, stop_converged=False), X, Y, *init_params("legacy", [3, 4, 1], np.arange(3)), np.full(3, 3.0), np.arange(3))
    np.testing.assert_allclose(full.curves["ce"][:, -1], full.final["ce"], rtol=1e-12)


@pytest.mark.parametrize(
    "variant, outputs, n, hidden",
    [("ce", 1, 37, 5), ("mse-softmax", 10, 30, 20), ("ce-softmax", 10, 45, 3)],
)
def test_grouping_invariance_long_sample_and_unit_axes(variant, outputs, n, hidden):
    """Sums over more than 8 samples or units: NumPy sums a contiguous axis pairwise and a
    strided one sequentially, so a run alone (run axis of length 1) must still match."""
    rng = np.random.default_rng(1)
    Xn = np.column_stack([rng.normal(size=(n, 6)), np.ones(n)])
    labels = rng.integers(0, max(outputs, 2), size=n)
    Yn = labels[:, None].astype(float) if outputs == 1 else np.eye(outputs)[labels]
    spec = TrainSpec(VARIANTS[variant], epochs=25, keep_weights=True, stop_converged=False, reduction="mean", log_every=5)
    seeds = np.arange(4)
    lrs = np.array([0.1, 0.5, 1.0, 2.0])
    sizes = [7, hidden, outputs]
    together = _train_rows(spec, seeds, lrs, sizes, Xn, Yn, scheme="xavier", bias=True)
    for r in range(4):
        alone = _train_rows(spec, seeds[r : r + 1], lrs[r : r + 1], sizes, Xn, Yn, scheme="xavier", bias=True)
        for k in together.weights:
            assert np.array_equal(alone.weights[k][0], together.weights[k][r]), k
        for k in together.final:
            assert np.array_equal(alone.final[k][0], together.final[k][r], equal_nan=True), k
        for k in together.curves:
            assert np.array_equal(alone.curves[k][0], together.curves[k][r], equal_nan=True), k


@pytest.mark.parametrize("variant", ["ce", "mse", "ng-on-mse", "mitchell-on-ce"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias, reduction, sizes", [(False, "sum", [3, 4, 1]), (True, "mean", [3, 5, 3, 1])])
def test_fused_fast_path_is_bit_identical_to_the_reference_path(variant, dtype, bias, reduction, sizes):
    """nnrun.fastpath must reproduce network.forward/backward + SGD exactly, divergence included."""
    from nnrun import fastpath

    spec = TrainSpec(VARIANTS[variant], epochs=300, dtype=dtype, reduction=reduction, log_every=50, keep_weights=True, stop_converged=False)
    seeds = np.arange(60)
    lr = np.where(seeds % 3 == 0, 0.5, 2.0) * np.where(seeds % 17 == 0, 1e30, 1.0)
    X3 = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0.5, 0.2, 1]], dtype=float)
    Y3 = np.array([[0, 1, 1, 0, 1]], dtype=float).T
    assert fastpath.applies(spec, X3, sizes)
    runs = {}
    for label, fast in (("fast", True), ("reference", False)):
        Ws, bs = init_params("uniform", sizes, seeds, bias=bias, dtype=dtype)
        Ws[0][0, 0, ::11] = np.inf  # runs that diverge at once
        runs[label] = train(spec, X3, Y3, Ws, bs, lr, seeds, speedups=Speedups() if fast else REFERENCE)
    f, r = runs["fast"], runs["reference"]
    assert r.diverged.any() and not r.diverged.all()
    assert_same_results(f, r)



@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rate", [1.0, 0.7])
@pytest.mark.parametrize("stop_converged", [False, True])
def test_fused_fast_path_with_one_learning_rate_is_bit_identical(dtype, rate, stop_converged):
    """One learning rate for every run makes the kernel's SGD multiply by a scalar (or skip
    the multiply at 1); runs that stop later make the rates differ again. Same bits as the
    reference path either way."""
    from nnrun import fastpath

    spec = TrainSpec(VARIANTS["mse"], epochs=700, dtype=dtype, log_every=50, keep_weights=True, stop_converged=stop_converged)
    seeds = np.arange(40)
    runs = {}
    assert fastpath.applies(spec, X, [3, 4, 1])
    for fast in (True, False):
        runs[fast] = _train_rows(spec, seeds, np.full(40, rate), [3, 4, 1], X, Y, scheme="legacy", speedups=Speedups(fused=fast))
    f, r = runs[True], runs[False]
    assert r.converged.any() and (stop_converged or not r.converged.all() or rate == 1.0)
    assert_same_results(f, r)

@pytest.mark.parametrize(
    "variant, spec_kwargs",
    [
        ("mse", {}),  # the fused kernel
        ("mse-linear", {}),  # the reference path, with runs that diverge
        ("mse", {"activation": "tanh", "optimizer": "momentum", "optimizer_args": (("beta", 0.9),)}),
        ("mse", {"batch_size": 2, "optimizer": "adam", "optimizer_args": (("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8))}),
    ],
)
def test_dropping_frozen_runs_changes_no_number(variant, spec_kwargs):
    """Compaction (frozen runs leave the working arrays) against a run without it."""
    spec = TrainSpec(VARIANTS[variant], epochs=1500, keep_weights=True, log_every=25, **spec_kwargs)
    seeds = np.arange(150)
    lrs = np.tile([0.3, 1.0, 4.0, 1e30, 0.05], 30)  # staggered convergence, some divergence
    results = {}
    for label, compaction in (("compacting", True), ("never", False)):
        results[label] = _train_rows(spec, seeds, lrs, [3, 4, 1], X, Y, scheme="legacy", speedups=Speedups(compaction=compaction))
    a, b = results["compacting"], results["never"]
    assert a.converged.any() and (~a.converged).any() and (a.diverged.any() or variant != "mse-linear")
    assert_same_results(a, b)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "variant, activation, optimizer",
    [
        ("ce-softmax", "sigmoid", "sgd"),
        ("mse-softmax", "tanh", "momentum"),
        ("ce-softmax", "relu", "adam"),
        ("mse", "sigmoid", "momentum"),
        ("mse-linear", "sigmoid", "sgd"),
    ],
)
def test_runs_first_minibatches_are_bit_identical_to_the_reference_path(dtype, variant, activation, optimizer):
    """The runs-first minibatch path (weights in runs-first storage, no per-minibatch
    transposes) against forward/backward on runs-last weights: same bits, divergence,
    the loop-path contractions of the short last minibatch and compaction included."""
    from nnrun.steppers import runs_first_pays

    rng = np.random.default_rng(2)
    n, outputs = 83, 1 if variant in ("mse", "mse-linear") else 4
    Xm = rng.normal(size=(n, 20)) * 3
    labels = rng.integers(0, max(outputs, 2), size=n)
    Ym = labels[:, None].astype(float) if outputs == 1 else np.eye(outputs)[labels]
    args = {"sgd": (), "momentum": (("beta", 0.9),), "adam": (("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8))}[optimizer]
    spec = TrainSpec(
        VARIANTS[variant], activation=activation, optimizer=optimizer, optimizer_args=args, epochs=12, batch_size=20,
        reduction="mean" if optimizer != "sgd" else "sum", dtype=dtype, log_every=4, keep_weights=True,
        criterion="loss", metric="mse", threshold=0.2,
    )  # fmt: skip
    sizes = [20, 18, outputs]
    assert runs_first_pays(spec.batch_size, sizes)
    seeds = np.arange(70)
    lrs = np.tile([0.01, 0.05, 0.2, 1e300, 0.002, 1e30, 0.1], 10)
    runs = {}
    for label, runs_first in (("runs-first", True), ("reference", False)):
        Ws, bs = init_params("xavier", sizes, seeds, bias=True, dtype=dtype)
        Ws[0][0, 0, ::11] = np.inf  # runs that diverge at once
        Ws[1][2, 0, 5::17] = np.nan
        runs[label] = train(spec, Xm, Ym, Ws, bs, lrs, seeds, X_test=Xm[:30], Y_test=Ym[:30], speedups=Speedups(runs_first=runs_first))
    f, r = runs["runs-first"], runs["reference"]
    assert r.diverged.any() and not r.diverged.all()
    assert_same_results(f, r)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias", [False, True])
def test_sparse_shared_input_is_bit_identical_to_the_dense_loop(dtype, bias):
    """The fused kernel's skipping of exact-zero inputs and ±1 multiplications against its
    dense loop: same weights (NaN and ±inf where they were), verdicts and metrics, with runs
    that start at inf/NaN weights and runs whose learning rate overflows later."""
    Xs = np.array([[0, 0, 1, 0], [0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0.5, -1, 1, 0], [-2, 0, 1, 0]], dtype=float)
    Ys = np.array([[0, 1, 1, 0, 1, 0]], dtype=float).T
    spec = TrainSpec(VARIANTS["ce"], epochs=400, dtype=dtype, reduction="mean" if bias else "sum", log_every=97, keep_weights=True, stop_converged=False)
    seeds = np.arange(90)
    lr = np.where(seeds % 3 == 0, 0.5, 2.0) * np.where(seeds % 13 == 0, 1e30, 1.0) * np.where(seeds % 29 == 5, 1e18, 1.0)
    runs = {}
    for sparse in (True, False):
        Ws, bs = init_params("uniform", [4, 5, 1], seeds, bias=bias, dtype=dtype)
        Ws[0][3, 0, ::11] = np.inf  # the all-zero input's weight: only 0·inf = NaN reveals it
        Ws[0][0, 1, 7::19] = np.nan
        runs[sparse] = train(spec, Xs, Ys, Ws, bs, lr, seeds, speedups=Speedups(sparse_input=sparse))
    f, r = runs[True], runs[False]
    assert r.diverged.any() and not r.diverged.all()
    assert_same_results(f, r)


def test_sample_order_equals_the_stable_argsort_with_and_without_ties():
    from nnrun.steppers import sample_order

    keys = np.random.default_rng(0).random((5, 300))
    assert np.array_equal(sample_order(keys), np.argsort(keys, axis=1, kind="stable"))
    keys[2, ::7] = 0.5  # ties: the stable order decides
    assert np.array_equal(sample_order(keys), np.argsort(keys, axis=1, kind="stable"))
