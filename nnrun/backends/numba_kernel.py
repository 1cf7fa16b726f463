"""The compiled epoch: forward, convergence check, backward and SGD for a block of runs.

Layout (structure of arrays, runs innermost): every parameter, activation and delta is a
row of a 2-D array whose columns are runs, so each inner loop walks one row across a block
of runs and LLVM turns it into SIMD arithmetic (``fast_exp`` keeps the exps in it).

* ``theta`` (P, R): the parameters, layer by layer: W_l row-major (row ``ow[l] + i·fo + o``)
  then, with biases, b_l (row ``ob[l] + o``);
* ``A`` (rows, lanes): activations; layer l's (sample k, unit u) is row ``oa[l] + k·size_l + u``,
  layer 0 is the input; ``D`` holds the deltas the same way.

The arithmetic is the reference engine's in its order (sums over inputs, samples and outputs
left to right, then the bias; ``1/(1 + exp(−z))``; ``(a − y)·(a·(1 − a))``; ``w − lr·g``), only
``exp`` differs (about an ulp) and sums over ≥ 8 units or samples, which NumPy adds pairwise.
Runs are independent lanes, so a run's numbers never depend on its block or thread.
"""

from __future__ import annotations

import math

import numpy as np

from nnrun.backends.jit import njit, prange  # first: it sets numba's cache directory
from nnrun.backends.exp_kernel import fast_exp

# Codes the kernel branches on (constant over a call, so the branches are predictable).
ACT = {"sigmoid": 0, "tanh": 1, "relu": 2}
OUT = {"sigmoid": 0, "softmax": 1, "linear": 2}
# "never": cross-entropy of a linear output, NaN by design, so it is never met (nor divergence).
CRITERION = {"max_error": 0, "accuracy": 1, "mse": 2, "ce": 3, "never": 4}
ALIGN = 8  # lanes per block are a multiple of this: whole SIMD vectors (AVX-512 holds 8 doubles)
BLOCK = 256  # runs per block: long SIMD loops, few per block; rows stay in L2 (measured 32–512: 256 ≈ 512 > 128)


@njit
def _activate(a, code, one, zero):
    """A hidden activation in place over a whole layer's rows, flat (``a`` is 1-D): one long
    loop per code, so each vectorises."""
    if code == 0:
        for j in range(a.size):
            a[j] = one / (one + fast_exp(-a[j]))
    elif code == 1:
        for j in range(a.size):
            a[j] = math.tanh(a[j])
    else:
        for j in range(a.size):
            z = a[j]
            a[j] = z if (z > zero or z != z) else zero  # np.maximum(z, 0) keeps a NaN


@njit(inline="always")
def _times_derivative(D, A, row, code, lanes, one, zero):
    """D[row] ·= f'(z) from the activation a = A[row]: a(1 − a), 1 − a², [a > 0]."""
    if code == 0:
        for j in range(lanes):
            a = A[row, j]
            D[row, j] = D[row, j] * (a * (one - a))
    elif code == 1:
        for j in range(lanes):
            a = A[row, j]
            D[row, j] = D[row, j] * (one - a * a)
    else:
        for j in range(lanes):
            D[row, j] = D[row, j] * (one if A[row, j] > zero else zero)  # relu'(z) = [z > 0] = [a > 0]


@njit(inline="always")
def _dot(dst, d, U, u, us, V, v, vs, count, lanes):
    """dst[d] = Σₜ U[u + t·us] ⊙ V[v + t·vs] over rows t = 0 … count−1 (``count`` ≥ 1),
    added left to right as the reference adds them, four terms per pass over the lanes
    (one load and store of ``dst`` per four products). A pass with fewer terms left reads
    row ``u``/``v`` again for the missing ones and drops them with a select, so the loop has
    one body and stays vectorised."""
    for t in range(0, count, 4):
        left, a0, b0 = count - t, u + t * us, v + t * vs
        a1, b1 = (a0 + us, b0 + vs) if left > 1 else (u, v)
        a2, b2 = (a0 + 2 * us, b0 + 2 * vs) if left > 2 else (u, v)
        a3, b3 = (a0 + 3 * us, b0 + 3 * vs) if left > 3 else (u, v)
        for j in range(lanes):
            p = U[a0, j] * V[b0, j]
            s = p if t == 0 else dst[d, j] + p
            p = U[a1, j] * V[b1, j]
            s = s + p if left > 1 else s
            p = U[a2, j] * V[b2, j]
            s = s + p if left > 2 else s
            p = U[a3, j] * V[b3, j]
            dst[d, j] = s + p if left > 3 else s


@njit
def forward(A, Z, theta, sizes, oa, ow, ob, bias, act, out, nb, lanes, one, zero):
    """Layers 1..L for the ``nb`` samples in A's layer 0; the output's z is kept in Z."""
    L = len(sizes) - 1
    for l in range(1, L + 1):
        fi, fo = sizes[l - 1], sizes[l]
        for k in range(nb):
            for o in range(fo):
                z = oa[l] + k * fo + o
                _dot(A, z, A, oa[l - 1] + k * fi, 1, theta, ow[l - 1] + o, fo, fi, lanes)
                if bias:
                    for j in range(lanes):
                        A[z, j] += theta[ob[l - 1] + o, j]
                if l == L:
                    for j in range(lanes):
                        Z[k * fo + o, j] = A[z, j]
        if l < L:
            _activate(A[oa[l] : oa[l] + nb * fo].reshape(-1), act, one, zero)  # A's rows are contiguous
        else:
            _output(A, oa[L], fo, nb, out, lanes, one)


@njit
def _output(A, base, fo, nb, out, lanes, one):
    """The output layer's activation in place: sigmoid, softmax over units, or identity."""
    if out == 2:
        return
    if out == 0:
        _activate(A[base : base + nb * fo].reshape(-1), 0, one, one - one)
        return
    for k in range(nb):
        row = base + k * fo
        for j in range(lanes):
            m = A[row, j]
            for o in range(1, fo):
                z = A[row + o, j]
                m = z if (z > m or z != z) else m  # the max, NaN propagating
            s = one - one
            for o in range(fo):
                e = fast_exp(A[row + o, j] - m)
                A[row + o, j] = e
                s += e
            for o in range(fo):
                A[row + o, j] = A[row + o, j] / s


@njit
def backward(A, D, G, theta, Yb, sizes, oa, ow, ob, bias, act, delta, nb, scale, lanes, one, zero):
    """Gradients of the loss over the ``nb`` samples into G (P, lanes); Yb (nb·k, lanes)."""
    L = len(sizes) - 1
    fo = sizes[L]
    for k in range(nb):
        _output_delta(A, D, Yb, oa[L] + k * fo, k * fo, fo, delta, scale, lanes, one, zero)
    for l in range(L, 0, -1):
        fi, fo = sizes[l - 1], sizes[l]
        for i in range(fi):
            for o in range(fo):
                _dot(G, ow[l - 1] + i * fo + o, A, oa[l - 1] + i, fi, D, oa[l] + o, fo, nb, lanes)
        if bias:
            for o in range(fo):
                g = ob[l - 1] + o
                for j in range(lanes):
                    G[g, j] = D[oa[l] + o, j]
                for k in range(1, nb):
                    for j in range(lanes):
                        G[g, j] += D[oa[l] + k * fo + o, j]
        if l > 1:
            _backprop(A, D, theta, oa[l - 1], oa[l], ow[l - 1], fi, fo, nb, act, lanes, one, zero)


@njit(inline="always")
def _output_delta(A, D, Yb, row, yrow, fo, delta, scale, lanes, one, zero):
    """One sample's output delta, times ``scale`` unless it is 1."""
    if delta == 2:  # softmax + ½Σ(a−y)²: a ⊙ ((a − y) − Σⱼ(aⱼ − yⱼ)aⱼ)
        for j in range(lanes):
            dot = zero
            for o in range(fo):
                dot += (A[row + o, j] - Yb[yrow + o, j]) * A[row + o, j]
            for o in range(fo):
                a = A[row + o, j]
                D[row + o, j] = a * ((a - Yb[yrow + o, j]) - dot)
    elif delta == 1:  # (a − y)·(a·(1 − a)), bracketed as the reference brackets it
        for o in range(fo):
            for j in range(lanes):
                a = A[row + o, j]
                D[row + o, j] = (a - Yb[yrow + o, j]) * (a * (one - a))
    else:
        for o in range(fo):
            for j in range(lanes):
                D[row + o, j] = A[row + o, j] - Yb[yrow + o, j]
    if scale != one:
        for o in range(fo):
            for j in range(lanes):
                D[row + o, j] = D[row + o, j] * scale


@njit
def _backprop(A, D, theta, below, here, w0, fi, fo, nb, act, lanes, one, zero):
    """D[layer below] = (Σₒ D[here]·W) · f'(a below), summed in o order."""
    for k in range(nb):
        for i in range(fi):
            dst = below + k * fi + i
            _dot(D, dst, D, here + k * fo, 1, theta, w0 + i * fo, 1, fo, lanes)
            _times_derivative(D, A, dst, act, lanes, one, zero)


@njit
def _update(theta, G, lr, live, lanes):
    """w ← w − lr·g for the runs still training; the others keep their weights."""
    for p in range(G.shape[0]):
        for j in range(lanes):
            w = theta[p, j]
            theta[p, j] = w - lr[j] * G[p, j] if live[j] else w


# ----------------------------------------------------------------------------- the check


@njit
def _accumulate(A, Z, Yb, base, fo, nb, out, crit, stats, lanes, one, zero, half):
    """Add ``nb`` samples to each run's check statistics: stats[0] max|a − y| (NaN
    propagating), stats[1] 0 where some output z is not finite, stats[2] the criterion's sum
    (hits, ½Σ(a − y)², or cross-entropy). The first two in loops over runs (they vectorise)."""
    for k in range(nb):
        for o in range(fo):
            row, y = base + k * fo + o, k * fo + o
            for j in range(lanes):
                e, z, me = abs(A[row, j] - Yb[y, j]), Z[y, j], stats[0, j]
                stats[0, j] = e if (e > me or e != e) else me
                stats[1, j] = stats[1, j] if z - z == zero else zero  # z − z is 0 only for finite z
    if crit == 0 or crit == 4:
        return
    for j in range(lanes):
        s = stats[2, j]
        for k in range(nb):
            row = base + k * fo
            if crit == 1:
                s += _hit(A, Yb, row, k * fo, fo, j, one, zero, half)
            elif crit == 2:
                part = zero
                for o in range(fo):
                    d = A[row + o, j] - Yb[k * fo + o, j]
                    part += d * d
                s += half * part
            else:
                s += _cross_entropy(A, Z, Yb, k * fo, fo, j, out, zero)
        stats[2, j] = s


@njit
def _hit(A, Yb, row, yrow, fo, j, one, zero, half):
    """1 where the sample is classified right (a > ½ for one unit, else the argmax)."""
    if fo == 1:
        return one if (A[row, j] > half) == (Yb[yrow, j] > half) else zero
    ia, iy = 0, 0
    for o in range(1, fo):
        a, y = A[row + o, j], Yb[yrow + o, j]
        if a > A[row + ia, j] or (a != a and A[row + ia, j] == A[row + ia, j]):
            ia = o
        if y > Yb[yrow + iy, j]:
            iy = o
    return one if ia == iy else zero


@njit
def _cross_entropy(A, Z, Yb, zrow, fo, j, out, zero):
    """A sample's cross-entropy from z, as ``variants`` computes it (finite for any z)."""
    s = zero
    if out == 0:  # Σ softplus(z) − y·z
        for o in range(fo):
            z = Z[zrow + o, j]
            s += (max(z, zero) + math.log1p(math.exp(-abs(z)))) - Yb[zrow + o, j] * z
        return s
    m = Z[zrow, j]
    for o in range(1, fo):
        m = max(m, Z[zrow + o, j])
    e = zero
    for o in range(fo):
        e += math.exp(Z[zrow + o, j] - m)
    lse = m + math.log(e)
    for o in range(fo):
        s += Yb[zrow + o, j] * (lse - Z[zrow + o, j])
    return s


@njit
def _decide(stats, n, crit, epoch, stop, threshold, state, work, settled, verdict, lanes):
    """Divergence and convergence at a check epoch, per run (``state`` rows: active,
    converged, diverged, epochs_to_converge, epochs_run). ``settled`` keeps each lane's
    outcome so far (0 open, 1 converged, 2 diverged); a first loop over all lanes (it
    vectorises) finds the few with news, and only those look up and change their run's state.
    Returns whether any lane had news."""
    for j in range(lanes):
        me, metric = stats[0, j], stats[2, j] / n
        finite = stats[1, j] != 0 and math.isfinite(me) and (crit < 2 or crit == 4 or math.isfinite(metric))
        met = me < threshold if crit == 0 else (metric >= threshold if crit == 1 else (crit < 4 and metric < threshold))
        verdict[j] = (0 if finite else 1) + (2 if met else 0)
    news = False
    for j in range(lanes):
        v = verdict[j]
        if (v & 1 and settled[j] != 2) or (v & 2 and settled[j] == 0):
            news, r = True, work[j]
            if state[0, r] and v & 1:
                state[2, r], state[4, r], state[0, r] = 1, epoch, 0
            if v & 2 and not state[2, r] and not state[1, r]:
                state[1, r], state[3, r] = 1, epoch
                if stop and state[0, r]:
                    state[4, r], state[0, r] = epoch, 0
            settled[j] = 2 if state[2, r] else (1 if state[1, r] else 0)
    return news


@njit
def _live(live, settled, state, work, lanes):
    """Each lane's run still training (``live``), and whether any is; with ``settled`` set
    from the runs' states."""
    anyone = False
    for j in range(lanes):
        r = work[j]
        live[j] = state[0, r] != 0
        settled[j] = 2 if state[2, r] else (1 if state[1, r] else 0)
        anyone = anyone or live[j]
    return anyone


# ----------------------------------------------------------------------------- epochs


@njit(parallel=True)
def run_epochs(X, Y, theta, lr, state, work, order, inv, layout, codes, consts, epochs_span, flags):
    """Train runs ``theta``'s columns from epoch ``epochs_span[0]`` up to, not including,
    ``epochs_span[1]``: at each, the check (not at the first unless ``flags[0]``, every
    ``epochs_span[2]`` epochs and at the last, ``epochs_span[3]``), then an update of the
    runs still active. Full batch when ``order`` is empty, else one epoch of minibatches of
    ``flags[2]`` samples in ``order`` (runs, samples); blocks of runs shared between
    ``flags[4]`` threads. ``layout`` = (sizes, oa, ow, ob); ``codes`` = (act, out, delta,
    crit); ``consts`` = (1, 0, ½, threshold, samples) in the dtype."""
    sizes, oa, ow, ob = layout
    R, n, L = theta.shape[1], X.shape[0], len(sizes) - 1
    batch = flags[2]
    blocks, width = _blocks(R, flags[4])
    for blk in prange(blocks):
        r0 = blk * width
        lanes = min(width, R - r0)
        runs = slice(r0, r0 + lanes)
        W = np.ascontiguousarray(theta[:, runs])  # the block's parameters, contiguous rows of its lanes
        _block(X, Y, W, lr[runs], state, work[runs], order[runs], inv, sizes, oa, ow, ob, codes, consts, epochs_span, flags, lanes, n, L, batch)
        theta[:, runs] = W


@njit
def _blocks(R, threads):
    """(blocks, lanes per block): at most BLOCK lanes each, as many blocks as it takes
    rounded up to a multiple of the threads, and the runs spread evenly over them, so every
    thread gets the same share (600 runs on 2 threads: 4 blocks of 152, not 256 + 256 + 88).
    Widths are multiples of ALIGN lanes: a loop over 250 lanes ends in a scalar remainder at
    every pass (measured 8% slower than 256)."""
    if R == 0:
        return 0, 1
    blocks = (R + BLOCK - 1) // BLOCK
    blocks = min(R, (blocks + threads - 1) // threads * threads)
    width = ((R + blocks - 1) // blocks + ALIGN - 1) // ALIGN * ALIGN
    return (R + width - 1) // width, width  # 20 runs on 4 threads: 3 blocks of 8, none empty


@njit
def _block(X, Y, theta, lr, state, work, order, inv, sizes, oa, ow, ob, codes, consts, epochs_span, flags, lanes, n, L, batch):
    act, out, delta, crit = codes
    one, zero, half, threshold, nf = consts
    e_from, e_to, check_every, last = epochs_span
    check_first, bias, stop = flags[0], flags[1] != 0, flags[3] != 0
    fo = sizes[L]
    nbmax = min(batch, n)
    A = np.empty((oa[L] + nbmax * fo, lanes), theta.dtype)
    D = np.empty_like(A)
    Z = np.empty((nbmax * fo, lanes), theta.dtype)
    Yb = np.empty_like(Z)
    G = np.empty((theta.shape[0], lanes), theta.dtype)
    stats = np.empty((3, lanes), theta.dtype)
    live = np.empty(lanes, np.bool_)
    settled, verdict = np.empty(lanes, np.int8), np.empty(lanes, np.int8)
    full = order.shape[1] == 0
    if full:
        _load(A, Yb, X, Y, order, 0, n, sizes[0], fo, lanes, True)
    anyone = _live(live, settled, state, work, lanes)
    for e in range(e_from, e_to):
        if not anyone:
            return
        if (e > e_from or check_first) and (e % check_every == 0 or e == last):
            stats[0, :], stats[1, :], stats[2, :] = zero, one, zero
            for start in range(0, n, nbmax):
                nb = min(nbmax, n - start)
                if not full:
                    _load(A, Yb, X, Y, order, start, nb, sizes[0], fo, lanes, True)
                forward(A, Z, theta, sizes, oa, ow, ob, bias, act, out, nb, lanes, one, zero)
                _accumulate(A, Z, Yb, oa[L], fo, nb, out, crit, stats, lanes, one, zero, half)
            if _decide(stats, nf, crit, e, stop, threshold, state, work, settled, verdict, lanes):
                anyone = _live(live, settled, state, work, lanes)
        elif full:
            forward(A, Z, theta, sizes, oa, ow, ob, bias, act, out, n, lanes, one, zero)
        for start in range(0, n, nbmax):
            nb = min(nbmax, n - start)
            if not full:
                _load(A, Yb, X, Y, order, start, nb, sizes[0], fo, lanes, False)
                forward(A, Z, theta, sizes, oa, ow, ob, bias, act, out, nb, lanes, one, zero)
            backward(A, D, G, theta, Yb, sizes, oa, ow, ob, bias, act, delta, nb, inv[nb], lanes, one, zero)
            _update(theta, G, lr, live, lanes)


@njit
def _load(A, Yb, X, Y, order, start, nb, fi, fo, lanes, in_order):
    """Samples start … start+nb−1 into layer 0 and Yb: in order (``in_order``, the full data
    for a check), else each run's own ``order`` (a minibatch)."""
    for k in range(nb):
        for j in range(lanes):
            s = start + k if in_order else order[j, start + k]
            for i in range(fi):
                A[k * fi + i, j] = X[s, i]
            for o in range(fo):
                Yb[k * fo + o, j] = Y[s, o]
