"""Closed-form BED for exponential dose-rate histories, acute BED and EQD2.

Linear-quadratic BED for a protracted dose rate R(t) (Gy/h), t >= 0, uses the Lea–Catcheside
dose-protraction factor G (Lea & Catcheside 1942; Dale, Br J Radiol 1985;58:515–528;
Sachs, Hahnfeldt & Brenner, Int J Radiat Biol 1997;72:351–374):

    G   = (2 / D^2) ∫_0^∞ R(t) ∫_0^t R(w) exp(-mu (t - w)) dw dt,   mu = ln 2 / T_rep,
    BED = D (1 + G D / (alpha/beta)).

For a sum of exponentials R(t) = Σ_i A_i exp(-lambda_i t) the double integral is analytic:

    ∫_0^t R(w) exp(-mu (t - w)) dw = Σ_j A_j (exp(-lambda_j t) - exp(-mu t)) / (mu - lambda_j)
    ∫_0^∞ R(t) [...] dt           = Σ_ij A_i A_j / ((lambda_i + lambda_j)(lambda_i + mu))

(the removable singularity at mu = lambda_j cancels exactly), so
BED = D + (2 / (alpha/beta)) Σ_ij A_i A_j / ((lambda_i + lambda_j)(lambda_i + mu)), D = Σ A_i/lambda_i.

Special cases (all derived from the sum above, and tested against the numerical G-factor):

* mono-exponential (instant uptake), Dale 1985 / Dale, Phys Med Biol 1996;41:1871:
  BED = D + D^2/(alpha/beta) · T_rep / (T_rep + T_eff);
* uptake + washout R(t) = K (1 - exp(-lambda_u t)) exp(-lambda_e t);
* acute (instantaneous) dose: G = 1, BED = D (1 + D/(alpha/beta));
* EQD2 = BED / (1 + 2 Gy/(alpha/beta)) (Withers, Thames & Peters 1983; Bentzen et al.,
  Radiother Oncol 2012;105:266–268).

All functions broadcast over leading axes (e.g. posterior draws), are jittable and
differentiable.
"""

from __future__ import annotations

import jax.numpy as jnp

from tdt._types import ExponentialsLike, Real, Scalar, ScalarLike
from tdt.radiobiology._validation import (
    check_dose_gy,
    check_finite,
    check_nonnegative,
    check_positive,
)
from tdt.units import half_life_to_rate


def repair_rate_per_h(repair_half_time_h: ScalarLike) -> Scalar:
    """Repair rate constant mu = ln 2 / T_rep (1/h) from the repair half-time (h)."""
    return half_life_to_rate(jnp.asarray(repair_half_time_h, dtype=float))


def quadratic_bed_coefficient(
    amplitudes_gy_per_h: ExponentialsLike,
    rates_per_h: ExponentialsLike,
    alpha_beta_gy: ScalarLike,
    repair_half_time_h: ScalarLike,
) -> Scalar:
    """Quadratic BED coefficient q of R(t) = Σ_i A_i exp(-lambda_i t): BED = D + q (Gy).

    q = (2 / (alpha/beta)) Σ_ij A_i A_j / ((lambda_i + lambda_j)(lambda_i + mu)), mu = ln 2 / T_rep
    (the Lea–Catcheside double integral, module docstring; Dale, Br J Radiol 1985;58:515).

    The dose rate is linear in the administered activity A, so with amplitudes per unit activity
    (Gy/h per MBq) q is the coefficient of A² (Gy/MBq²): BED(A) = d A + q A², d = Σ A_i/lambda_i.
    For one exponential q = d² G / (alpha/beta) with G = :func:`g_factor_monoexponential`.

    ``amplitudes_gy_per_h`` and ``rates_per_h`` (1/h, > 0) have the terms on the last axis;
    ``alpha_beta_gy`` (Gy) and ``repair_half_time_h`` (h) broadcast against the leading axes.
    No input checks (the BED functions above it check); jittable and differentiable.
    """
    amplitudes = jnp.asarray(amplitudes_gy_per_h, dtype=float)
    rates = jnp.asarray(rates_per_h, dtype=float)
    double_integral = _double_integral(amplitudes, rates, repair_half_time_h)
    return 2.0 * double_integral / jnp.asarray(alpha_beta_gy, dtype=float)


def g_factor_monoexponential(
    repair_half_time_h: ScalarLike,
    effective_half_life_h: ScalarLike,
) -> Scalar:
    """Lea–Catcheside G of R(t) = R0 exp(-ln2 t / T_eff) (instant uptake): T_rep / (T_rep + T_eff).

    (Dale, Br J Radiol 1985;58:515; the one-term case of the double integral.) Dimensionless.
    """
    t_rep = jnp.asarray(repair_half_time_h, dtype=float)
    return t_rep / (t_rep + jnp.asarray(effective_half_life_h, dtype=float))


def g_factor_sum_of_exponentials(
    amplitudes_gy_per_h: ExponentialsLike,
    rates_per_h: ExponentialsLike,
    repair_half_time_h: ScalarLike,
) -> Scalar:
    """Lea–Catcheside G-factor of R(t) = Σ A_i exp(-lambda_i t) (dimensionless).

    ``amplitudes_gy_per_h`` and ``rates_per_h`` have the terms on the last axis; leading axes
    broadcast with ``repair_half_time_h``. Requires lambda_i > 0 and a non-zero total dose.
    """
    amplitudes = jnp.asarray(amplitudes_gy_per_h, dtype=float)
    rates = jnp.asarray(rates_per_h, dtype=float)
    double_integral = _double_integral(amplitudes, rates, repair_half_time_h)
    dose = jnp.sum(amplitudes / rates, axis=-1)
    return 2.0 * double_integral / dose**2


def bed_sum_of_exponentials(
    amplitudes_gy_per_h: ExponentialsLike,
    rates_per_h: ExponentialsLike,
    alpha_beta_gy: ScalarLike,
    repair_half_time_h: ScalarLike,
    *,
    validate=True,
) -> Scalar:
    """BED (Gy) of the dose-rate history R(t) = Σ_i A_i exp(-lambda_i t), t >= 0 (analytic).

    Parameters
    ----------
    amplitudes_gy_per_h : array (..., n_terms)
        A_i in Gy/h (may be negative, e.g. an uptake term, as long as R(t) >= 0).
    rates_per_h : array (..., n_terms)
        lambda_i in 1/h, > 0 (effective rates: biological + physical decay).
    alpha_beta_gy, repair_half_time_h : array (...)
        LQ alpha/beta (Gy, > 0) and repair half-time T_rep (h, > 0).

    Returns BED = D + (2/(alpha/beta)) Σ_ij A_i A_j / ((lambda_i+lambda_j)(lambda_i+mu)).
    """
    if validate:
        check_finite("amplitudes_gy_per_h", amplitudes_gy_per_h)
        check_positive("rates_per_h", rates_per_h)
        check_positive("alpha_beta_gy", alpha_beta_gy)
        check_positive("repair_half_time_h", repair_half_time_h)
    amplitudes = jnp.asarray(amplitudes_gy_per_h, dtype=float)
    rates = jnp.asarray(rates_per_h, dtype=float)
    if validate:
        check_nonnegative("dose (sum of amplitudes_gy_per_h / rates_per_h)",
                          jnp.sum(amplitudes / rates, axis=-1))
    dose = jnp.sum(amplitudes / rates, axis=-1)
    return dose + quadratic_bed_coefficient(amplitudes, rates, alpha_beta_gy, repair_half_time_h)


def _double_integral(amplitudes, rates, repair_half_time_h):
    """∫_0^∞ R(t) ∫_0^t R(w) exp(-mu (t-w)) dw dt = Σ_ij A_i A_j / ((l_i + l_j)(l_i + mu)), Gy².

    The one implementation of the double integral: :func:`quadratic_bed_coefficient` and
    :func:`g_factor_sum_of_exponentials` are both built on it.
    """
    mu = repair_rate_per_h(repair_half_time_h)[..., None, None]
    a_i, a_j = amplitudes[..., :, None], amplitudes[..., None, :]
    l_i, l_j = rates[..., :, None], rates[..., None, :]
    return jnp.sum(a_i * a_j / ((l_i + l_j) * (l_i + mu)), axis=(-2, -1))


def bed_monoexponential(
    dose_gy: ScalarLike,
    alpha_beta_gy: ScalarLike,
    repair_half_time_h: ScalarLike,
    effective_half_life_h: ScalarLike,
    *,
    validate=True,
) -> Scalar:
    """Dale's BED (Gy) for instant uptake and mono-exponential clearance.

    BED = D + D^2/(alpha/beta) · T_rep / (T_rep + T_eff)   (Dale, Br J Radiol 1985;58:515;
    exact for R(t) = R0 exp(-ln2 t / T_eff), total dose D delivered to infinity).

    Parameters (all broadcast; leading axes e.g. posterior draws):
    dose_gy (Gy, >= 0), alpha_beta_gy (Gy, > 0), repair_half_time_h (h, > 0),
    effective_half_life_h (h, > 0).

    Example (kidney, alpha/beta 2.6 Gy, T_rep 2.8 h, T_eff 50 h): 23 Gy → 33.79 Gy.
    """
    if validate:
        check_dose_gy("dose_gy", dose_gy)
        check_positive("alpha_beta_gy", alpha_beta_gy)
        check_positive("repair_half_time_h", repair_half_time_h)
        check_positive("effective_half_life_h", effective_half_life_h)
    dose = jnp.asarray(dose_gy, dtype=float)
    g = g_factor_monoexponential(repair_half_time_h, effective_half_life_h)
    return dose + dose**2 * g / jnp.asarray(alpha_beta_gy, dtype=float)


def uptake_washout_terms(
    dose_gy: ScalarLike,
    uptake_half_time_h: ScalarLike,
    effective_half_life_h: ScalarLike,
) -> tuple[Real, Real]:
    """Amplitudes (Gy/h) and rates (1/h) of R(t) = K (1 - exp(-lambda_u t)) exp(-lambda_e t).

    K is fixed by the total dose: D = K lambda_u / (lambda_e (lambda_e + lambda_u)).
    Returns ``(amplitudes, rates)`` with the two terms on the last axis.
    """
    dose = jnp.asarray(dose_gy, dtype=float)
    lam_e = half_life_to_rate(jnp.asarray(effective_half_life_h, dtype=float))
    lam_u = half_life_to_rate(jnp.asarray(uptake_half_time_h, dtype=float))
    dose, lam_e, lam_u = jnp.broadcast_arrays(dose, lam_e, lam_u)
    k = dose * lam_e * (lam_e + lam_u) / lam_u
    amplitudes = jnp.stack([k, -k], axis=-1)
    rates = jnp.stack([lam_e, lam_e + lam_u], axis=-1)
    return amplitudes, rates


def bed_uptake_washout(
    dose_gy: ScalarLike,
    alpha_beta_gy: ScalarLike,
    repair_half_time_h: ScalarLike,
    uptake_half_time_h: ScalarLike,
    effective_half_life_h: ScalarLike,
    *,
    validate=True,
) -> Scalar:
    """BED (Gy) for an uptake phase followed by washout (analytic).

    Dose rate R(t) = K (1 - exp(-ln2 t / T_up)) exp(-ln2 t / T_eff), t >= 0, scaled to the total
    dose D; the G-factor follows from the sum-of-exponentials formula (two terms, amplitudes K
    and -K, rates lambda_e and lambda_e + lambda_u). As T_up → 0 this tends to
    :func:`bed_monoexponential` (less repair-sparing when uptake is slow).

    Units: dose Gy; alpha/beta Gy; half-times h.
    """
    if validate:
        check_dose_gy("dose_gy", dose_gy)
        check_positive("alpha_beta_gy", alpha_beta_gy)
        check_positive("repair_half_time_h", repair_half_time_h)
        check_positive("uptake_half_time_h", uptake_half_time_h)
        check_positive("effective_half_life_h", effective_half_life_h)
    amplitudes, rates = uptake_washout_terms(dose_gy, uptake_half_time_h, effective_half_life_h)
    return bed_sum_of_exponentials(
        amplitudes, rates, alpha_beta_gy, repair_half_time_h, validate=False
    )


def bed_acute(dose_gy: ScalarLike, alpha_beta_gy: ScalarLike, *, validate=True) -> Scalar:
    """BED (Gy) of an instantaneous (acute, G = 1) dose: D (1 + D / (alpha/beta))."""
    if validate:
        check_dose_gy("dose_gy", dose_gy)
        check_positive("alpha_beta_gy", alpha_beta_gy)
    dose = jnp.asarray(dose_gy, dtype=float)
    return dose * (1.0 + dose / jnp.asarray(alpha_beta_gy, dtype=float))


def eqd2(bed_gy: ScalarLike, alpha_beta_gy: ScalarLike, *, validate=True) -> Scalar:
    """Equivalent dose in 2-Gy fractions (Gy): EQD2 = BED / (1 + 2 Gy / (alpha/beta)).

    (Bentzen et al., Radiother Oncol 2012;105:266.) Broadcasts; jittable; differentiable.
    """
    if validate:
        check_dose_gy("bed_gy", bed_gy)
        check_positive("alpha_beta_gy", alpha_beta_gy)
    ab = jnp.asarray(alpha_beta_gy, dtype=float)
    return jnp.asarray(bed_gy, dtype=float) / (1.0 + 2.0 / ab)


def bed_from_eqd2(eqd2_gy: ScalarLike, alpha_beta_gy: ScalarLike, *, validate=True) -> Scalar:
    """Inverse of :func:`eqd2`: BED = EQD2 (1 + 2 Gy / (alpha/beta)) (Gy)."""
    if validate:
        check_dose_gy("eqd2_gy", eqd2_gy)
        check_positive("alpha_beta_gy", alpha_beta_gy)
    ab = jnp.asarray(alpha_beta_gy, dtype=float)
    return jnp.asarray(eqd2_gy, dtype=float) * (1.0 + 2.0 / ab)
