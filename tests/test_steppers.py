"""The minibatch stepper's storage: parameters in one runs-first buffer, steps (and optimiser
updates) that reuse their buffers instead of allocating activations and gradients anew."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from nnrun.engine import TrainSpec, init_params
from nnrun.network import use_loop
from nnrun.optim import Adam, Momentum
from nnrun.steppers import MinibatchStepper, flat_storage
from nnrun.variants import VARIANTS


def test_flat_storage_holds_the_parameters_as_views_of_one_runs_first_buffer():
    Ws, bs = init_params("xavier", [5, 3, 2], np.arange(7), bias=True)
    params = Ws + bs
    flat, views = flat_storage(params)
    assert flat.shape == (7, 5 * 3 + 3 * 2 + 3 + 2) and flat.flags.c_contiguous
    for v, p in zip(views, params):
        assert v.shape == p.shape and np.array_equal(v, p) and np.shares_memory(v, flat)
    views[1][2, 1, 4] = 123.0  # run 4's W1[2, 1]: in run 4's row of the buffer
    assert (flat == 123.0).sum() == 1 and flat[4, 5 * 3 + 2 * 2 + 1] == 123.0


def test_a_minibatch_epoch_allocates_less_than_one_activation_buffer():
    """Once the first epoch has made the buffers, an epoch of minibatches whose contractions
    are all matrix products allocates only the shuffle (a few numbers per sample and run),
    far less than one minibatch's hidden activations."""
    runs, B, sizes = 40, 32, [20, 24, 6]
    assert not any(use_loop(*s) for i, o in zip(sizes[:-1], sizes[1:]) for s in ((i, B, o), (o, B, i), (B, i, o)))
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3 * B, sizes[0])), np.eye(sizes[-1])[rng.integers(0, sizes[-1], 3 * B)]
    spec = TrainSpec(VARIANTS["ce-softmax"], epochs=3, batch_size=B, reduction="mean")
    Ws, bs = init_params("xavier", sizes, np.arange(runs), bias=True)
    stepper = MinibatchStepper(spec, X, Y, Ws, bs, np.arange(runs), runs_first=True)
    lr = np.full(runs, 0.1)
    stepper.step(0, lr)
    tracemalloc.start()
    try:
        stepper.step(1, lr)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < runs * B * sizes[1] * 8  # fresh activations and gradients: ~16 of them


@pytest.mark.parametrize("lr", [np.full(5, 0.3), np.array([0.3, 0.01, 0.2, 1.0, 0.05])])
def test_in_place_updates_round_float32_weights_as_the_plain_formulas(lr):
    """float32 weights with float64 rates: the rate times a float32 term is float64 in NumPy,
    so w − lr·v is rounded once, at the end; a scratch buffer of the weights' type would round
    lr·v first. Several steps, compared with the formulas written out, bit for bit."""
    f32 = np.float32
    rng = np.random.default_rng(4)
    w0 = rng.normal(size=(3, 4, 5)).astype(f32)
    gs = [rng.normal(size=w0.shape).astype(f32) for _ in range(4)]
    w_mom, w_adam = w0.copy(), w0.copy()
    mom, adam = Momentum([w_mom], beta=0.9), Adam([w_adam], beta1=0.9, beta2=0.999, eps=1e-8)
    want_mom, want_adam, v, m, s = w0.copy(), w0.copy(), np.zeros_like(w0), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(gs, start=1):
        mom.step([w_mom], [g.copy()], lr)
        adam.step([w_adam], [g.copy()], lr)
        v = v * f32(0.9) + g
        want_mom = (want_mom - lr * v).astype(f32)
        m = m * 0.9 + (1 - 0.9) * g
        s = s * 0.999 + (1 - 0.999) * (g * g)
        denom = np.sqrt(s) / math.sqrt(1 - 0.999**t) + 1e-8  # a Python float: float32 stays
        want_adam = (want_adam - lr / (1 - 0.9**t) * (m / denom)).astype(f32)
    for got, want in ((w_mom, want_mom), (w_adam, want_adam)):
        assert got.dtype == f32 and np.array_equal(got, want)
