"""A branch-free ``exp`` that LLVM can vectorise, for the compiled backend's kernels.

Scalar libm ``exp`` stops a loop from vectorising. This one is Cody–Waite range reduction
(x = k·ln2 + r, |r| ≤ ln2/2, ln2 split in a high part exact for every k and a low part),
a Taylor polynomial in Horner form (degree 13 for float64, 7 for float32: truncation below
half an ulp), and 2ᵏ built from its bits as 2^⌊k/2⌋·2^⌈k/2⌉, so the final products overflow to
inf and underflow through the subnormals to 0 exactly where ``np.exp`` does. Inputs are
clamped first (beyond the clamp exp is already inf or 0) and NaN stays NaN. It differs from
``np.exp`` by about an ulp, no more.
"""

from __future__ import annotations

import math

import numpy as np

import nnrun.backends.jit  # noqa: F401  (first: it sets numba's cache directory)
from numba import types
from numba.core.extending import intrinsic, overload


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (an LLVM bitcast)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


def fast_exp(x):
    """e**x for a float64 or float32 scalar (compiled code only)."""
    raise NotImplementedError("fast_exp is for numba-compiled code")


def _exp_for(dtype, hi: float, lo: float, ln2_hi: float, ln2_lo: float, degree: int, from_bits, itype, bias: int, mantissa: int):
    """The exp of one float type: clamps (beyond them exp is already inf or 0), ln2 split
    as ``ln2_hi`` (few significant bits, so k·ln2_hi is exact) + ``ln2_lo``, Taylor
    coefficients 1/k! up to ``degree``, and 2ᵏ from ``from_bits`` of ``itype`` exponents
    (``bias``, ``mantissa`` bits). Closure constants are compile-time constants to numba."""
    t = dtype.type
    hi, lo, log2e, ln2_hi, ln2_lo, half, zero = map(t, (hi, lo, 1.4426950408889634, ln2_hi, ln2_lo, 0.5, 0.0))
    coeffs = tuple(t(1.0 / math.factorial(k)) for k in range(degree, -1, -1))  # highest first, for Horner
    one_i, bias, mantissa = itype(1), itype(bias), itype(mantissa)

    def exp(x):
        x = hi if x > hi else x  # NaN compares false and passes through both clamps
        x = lo if x < lo else x
        k = np.floor(x * log2e + half)
        k = k if k == k else zero  # NaN: any k will do, r is NaN
        r = (x - k * ln2_hi) - k * ln2_lo
        p = coeffs[0]
        for i in range(1, len(coeffs)):
            p = p * r + coeffs[i]
        ki = itype(k)
        k1 = ki >> one_i
        return p * from_bits((k1 + bias) << mantissa) * from_bits((ki - k1 + bias) << mantissa)

    return exp


# float64: exp is inf above ~709.78 and 0 below ~−745.13; fdlibm's ln2 split (32 trailing
# zero bits); degree 13 leaves a truncation error below 1e-17.
_exp64 = _exp_for(np.dtype(np.float64), 710.0, -746.0, 6.93147180369123816490e-01, 1.90821492927058770002e-10, 13, _float64_from_bits, np.int64, 1023, 52)
# float32: inf above ~88.72, 0 below ~−103.97; ln2_hi has 9 significant bits; degree 7.
_exp32 = _exp_for(np.dtype(np.float32), 89.0, -104.0, 0.693359375, -2.12194440e-4, 7, _float32_from_bits, np.int32, 127, 23)


@overload(fast_exp)  # small: LLVM inlines it into the caller's loop, which then vectorises
def _fast_exp(x):
    if x == types.float64:
        return _exp64
    if x == types.float32:
        return _exp32
    return None
