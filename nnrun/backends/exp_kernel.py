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


# float64: exp(x) is inf above ~709.78 and 0 below ~−745.13.
_HI64, _LO64 = 710.0, -746.0
_LOG2E64 = 1.4426950408889634
_LN2_HI64 = 6.93147180369123816490e-01  # fdlibm's: 32 trailing zero bits, so k·_LN2_HI64 is exact
_LN2_LO64 = 1.90821492927058770002e-10
_C64 = tuple(1.0 / float(np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(14))  # 1/k!

# float32: inf above ~88.72, 0 below ~−103.97.
_HI32, _LO32 = np.float32(89.0), np.float32(-104.0)
_LOG2E32 = np.float32(1.44269504)
_LN2_HI32 = np.float32(0.693359375)  # 9 significant bits: k·_LN2_HI32 exact for |k| < 2¹⁵
_LN2_LO32 = np.float32(-2.12194440e-4)
_C32 = tuple(np.float32(c) for c in _C64[:8])
_HALF32, _ZERO32 = np.float32(0.5), np.float32(0.0)


def fast_exp(x):
    """e**x for a float64 or float32 scalar (compiled code only)."""
    raise NotImplementedError("fast_exp is for numba-compiled code")


def _exp64(x):
    x = _HI64 if x > _HI64 else x  # NaN compares false and passes through both clamps
    x = _LO64 if x < _LO64 else x
    k = np.floor(x * _LOG2E64 + 0.5)
    k = k if k == k else 0.0  # NaN: any k will do, r is NaN
    r = (x - k * _LN2_HI64) - k * _LN2_LO64
    c = _C64
    p = c[13]
    p = p * r + c[12]
    p = p * r + c[11]
    p = p * r + c[10]
    p = p * r + c[9]
    p = p * r + c[8]
    p = p * r + c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    ki = np.int64(k)
    k1 = ki >> 1
    return p * _float64_from_bits((k1 + 1023) << 52) * _float64_from_bits((ki - k1 + 1023) << 52)


def _exp32(x):
    x = _HI32 if x > _HI32 else x
    x = _LO32 if x < _LO32 else x
    k = np.floor(x * _LOG2E32 + _HALF32)
    k = k if k == k else _ZERO32
    r = (x - k * _LN2_HI32) - k * _LN2_LO32
    c = _C32
    p = c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    ki = np.int32(k)
    k1 = ki >> np.int32(1)
    return p * _float32_from_bits((k1 + np.int32(127)) << np.int32(23)) * _float32_from_bits((ki - k1 + np.int32(127)) << np.int32(23))


@overload(fast_exp)  # small: LLVM inlines it into the caller's loop, which then vectorises
def _fast_exp(x):
    if x == types.float64:
        return _exp64
    if x == types.float32:
        return _exp32
    return None
