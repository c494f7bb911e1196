r"""The error function, for the exact GELU.

NumPy has no erf, and a low-order approximation (such as Abramowitz and Stegun's 7.1.26, good to
about 1e-7) fails a float64 comparison with torch. We use W. J. Cody's rational Chebyshev
approximations ("Rational Chebyshev Approximations for the Error Function", Mathematics of
Computation 23, 1969, 631-637), accurate to about 1e-16 in float64, over three ranges of |x|:

- |x| <= 0.46875:      erf(x)  = x A(x^2) / B(x^2)
- 0.46875 < |x| <= 4:  erfc(x) = e^{-x^2} C(|x|) / D(|x|)
- |x| > 4:             erfc(x) = e^{-x^2} / |x| (1/sqrt(pi) - z P(z) / Q(z)),  z = 1/x^2

with A..Q polynomials whose coefficients are Cody's. Written with ``xp`` ufuncs only, so it runs
unchanged on NumPy and CuPy.

The GELU needs the normal CDF, Phi(x) = (1 + erf(x / sqrt 2)) / 2 (``normal_cdf``). In float64 it
uses Cody's erf, so it matches torch to float64 rounding. In float32, where Cody's three branches
cost about 80 array passes, it uses one rational Chebyshev fit of erfc instead (Numerical Recipes,
2nd ed., section 6.2, ``erfcc``; fractional error below 1.2e-7 everywhere), in about 30 in-place
passes: Phi(x) = erfc(-x / sqrt 2) / 2. Being a *fractional* bound on erfc, it also keeps the
negative tail accurate, where ``1 + erf`` in float32 cancels to nothing.
"""

import math

from tinygrad_llm import backend

__all__ = ["erf", "normal_cdf"]

_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_SQRT_PI_INV = 5.6418958354775628695e-1


def erf(x):
    """erf(x) elementwise, computed in x's dtype (float32 or float64; float16 goes via float32).

    Computing in float32 for float32 input keeps float64 off GPUs (slow on most) and is exact
    to float32 rounding; float64 input gets Cody's full float64 accuracy.
    """
    xp = backend.get_xp(x)
    xf = x if x.dtype in (xp.float32, xp.float64) else x.astype(xp.float32)
    y = xp.abs(xf)

    # |x| <= 0.46875: erf directly, a rational function of x^2.
    z = y * y
    num, den = _A[4] * z, z
    for i in range(3):
        num, den = (num + _A[i]) * z, (den + _B[i]) * z
    small = xf * (num + _A[3]) / (den + _B[3])

    # 0.46875 < |x| <= 4: erfc as e^{-x^2} times a rational function of |x|.
    num, den = _C[8] * y, y
    for i in range(7):
        num, den = (num + _C[i]) * y, (den + _D[i]) * y
    erfc_mid = (num + _C[7]) / (den + _D[7])

    # |x| > 4: the asymptotic form in z = 1/x^2 (y clamped to avoid dividing by zero).
    y_big = xp.maximum(y, 4.0)
    z = 1.0 / (y_big * y_big)
    num, den = _P[5] * z, z
    for i in range(4):
        num, den = (num + _P[i]) * z, (den + _Q[i]) * z
    erfc_big = (_SQRT_PI_INV - z * (num + _P[4]) / (den + _Q[4])) / y_big

    erfc = xp.where(y <= 4.0, erfc_mid, erfc_big) * xp.exp(-y * y)
    large = xp.sign(xf) * (1.0 - erfc)
    return xp.where(y <= 0.46875, small, large).astype(x.dtype, copy=False)


# erfc(z) = t exp(-z^2 + sum_k _NR[k] t^k),  t = 1 / (1 + z/2),  z >= 0   (Numerical Recipes)
_NR = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
       1.48851587, -0.82215223, 0.17087277)


def normal_cdf(x):
    r"""Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF, in x's dtype.

    float64: through Cody's erf (float64-exact). float32 (and float16, via float32):
    Phi(-|x|) = erfc(|x| / sqrt 2) / 2 from the erfc fit above, and Phi(|x|) = 1 - Phi(-|x|).
    """
    xp = backend.get_xp(x)
    if x.dtype == xp.float64:
        return 0.5 * (1 + erf(x * (1 / math.sqrt(2))))
    xf = x if x.dtype == xp.float32 else x.astype(xp.float32)
    z = xp.abs(xf) * (1 / math.sqrt(2))                 # z >= 0
    t = 1.0 / (1.0 + 0.5 * z)
    p = t * _NR[9]                                      # Horner, in place: fewer temporaries
    for c in _NR[8:0:-1]:
        p += c
        p *= t
    p += _NR[0]
    z *= z
    p -= z                                              # -z^2 + poly(t)
    p = xp.exp(p)
    p *= 0.5 * t                                        # erfc(z) / 2 = Phi(-|x|)
    return xp.where(xf < 0, p, 1 - p).astype(x.dtype, copy=False)
