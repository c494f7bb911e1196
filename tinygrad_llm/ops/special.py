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

The GELU needs the normal CDF, Phi(x) = (1 + erf(x / sqrt 2)) / 2, and for its backward the normal
density phi(x) = e^{-x^2/2} / sqrt(2 pi): ``normal_cdf_and_pdf`` gives both. In float64 Phi uses
Cody's erf, so it matches torch to float64 rounding. In float32, where Cody's three branches cost
about 80 array passes, it writes the tail through the density it computes anyway:

    Phi(-a) = phi(a) R(a),   a = |x|,   R the Mills ratio (1 - Phi(a)) / phi(a)
    R(a) ~ t (m_0 + m_1 t + ... + m_9 t^9),   t = 1 / (1 + a/4)  in (0, 1]
    Phi(x) = Phi(-a) for x < 0,   1 - Phi(-a) for x >= 0

R(a) / t is smooth on t in (0, 1]: it is sqrt(pi/2) at t = 1 (a = 0) and tends to 1/4 as t -> 0
(R(a) ~ 1/a = t / (4 (1 - t))), so ten coefficients suffice. ``_MILLS`` is a weighted
least-squares fit in float64 of R(a(t)) / t on Chebyshev points of t, reweighted (Lawson's
algorithm) to minimise the largest *relative* error, 3.3e-8. Evaluated in float32, Phi is within
2e-7 of the exact value everywhere and within 4e-6 *relative* in the negative tail (where ``1 +
erf`` in float32 would cancel to nothing); Phi and phi share the one exp. About 25 in-place passes.
"""

import math

from tinygrad_llm import backend

__all__ = ["erf", "normal_cdf", "normal_cdf_and_pdf"]

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


# Phi(-a) / phi(a) ~ t sum_k _MILLS[k] t^k,  t = 1 / (1 + a/4),  a >= 0   (fitted as said above)
_MILLS = (0.24999998944, 0.25000230594, 0.23428242865, 0.20457586072, 0.14769602105,
          0.16004619096, -0.080141692036, 0.24026277231, -0.20307389331, 0.049664112089)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def normal_cdf(x):
    r"""Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF, in x's dtype."""
    return normal_cdf_and_pdf(x)[0]


def normal_cdf_and_pdf(x):
    r"""(Phi(x), phi(x)): the standard normal CDF and density, phi(x) = e^{-x^2/2} / sqrt(2 pi).

    float64: Phi through Cody's erf (float64-exact). float32 (and float16, via float32):
    Phi(-|x|) = phi(x) R(|x|) with the Mills-ratio fit above, and Phi(|x|) = 1 - Phi(-|x|).
    """
    xp = backend.get_xp(x)
    if x.dtype == xp.float64:
        return 0.5 * (1 + erf(x * (1 / math.sqrt(2)))), xp.exp(-0.5 * x * x) * _INV_SQRT_2PI
    xf = x if x.dtype == xp.float32 else x.astype(xp.float32)
    pdf = xf * xf                                       # in place from here: fewer temporaries
    pdf *= -0.5
    xp.exp(pdf, out=pdf)
    pdf *= _INV_SQRT_2PI                                # phi(x)
    t = xp.abs(xf)
    t *= 0.25
    t += 1
    xp.divide(1, t, out=t)                              # t = 1 / (1 + |x|/4)
    cdf = t * _MILLS[9]                                 # Horner: R = t (m_0 + t (m_1 + ...))
    for m in _MILLS[8::-1]:
        cdf += m
        cdf *= t
    cdf *= pdf                                          # q = Phi(-|x|) = phi(x) R(|x|)
    # Phi(x) = [x >= 0] + (1 - 2 [x >= 0]) q: q for x < 0 and 1 - q for x >= 0, each rounded
    # once (so the tail keeps its relative accuracy and Phi stays monotone). Four cheap passes
    # instead of where(x < 0, q, 1 - q), which costs as much as ten multiplies here.
    upper = xf >= 0                                     # [x >= 0]
    phi_cdf = cdf * upper
    phi_cdf *= -2.0
    phi_cdf += cdf                                      # -q or q, exactly
    phi_cdf += upper
    return phi_cdf.astype(x.dtype, copy=False), pdf.astype(x.dtype, copy=False)
