"""Closed-form BED: worked values, limits, and agreement with independent integrals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

import tdt  # noqa: F401  (turns on x64)
from tdt.radiobiology import (
    bed_acute,
    bed_from_eqd2,
    bed_monoexponential,
    bed_sum_of_exponentials,
    bed_uptake_washout,
    eqd2,
    g_factor_sum_of_exponentials,
)

KIDNEY = dict(alpha_beta_gy=2.6, repair_half_time_h=2.8, effective_half_life_h=50.0)


def test_kidney_worked_values_dale_arithmetic():
    # Dale: BED = D + D^2/(a/b) * T_rep/(T_rep + T_eff); T_rep/(T_rep+T_eff) = 2.8/52.8
    g = 2.8 / 52.8  # 0.0530303...
    assert g == pytest.approx(0.05303030303)
    # 5 Gy: 5 + 25/2.6 * 0.0530303 = 5 + 9.6153846 * 0.0530303 = 5 + 0.5099068 = 5.5099
    assert 5 + 25 / 2.6 * g == pytest.approx(5.5099068, abs=1e-6)
    assert float(bed_monoexponential(5.0, **KIDNEY)) == pytest.approx(5.510, abs=5e-4)
    # 23 Gy single: 23 + 529/2.6 * 0.0530303 = 23 + 203.461538 * 0.0530303 = 23 + 10.789627
    assert 23 + 529 / 2.6 * g == pytest.approx(33.789627, abs=1e-6)
    assert float(bed_monoexponential(23.0, **KIDNEY)) == pytest.approx(33.79, abs=5e-3)


def test_limits_repair_fast_and_acute():
    dose = 12.0
    # repair half-time -> 0: no sublethal damage survives, BED -> D
    assert float(bed_monoexponential(dose, 3.0, 1e-9, 60.0)) == pytest.approx(dose, rel=1e-9)
    # effective half-life -> 0 (acute delivery): BED -> D (1 + D/(a/b))
    acute = dose * (1 + dose / 3.0)
    assert float(bed_monoexponential(dose, 3.0, 1.5, 1e-9)) == pytest.approx(acute, rel=1e-8)
    assert float(bed_acute(dose, 3.0)) == pytest.approx(acute, rel=1e-15)
    # very fast dose-rate decay in the sum-of-exponentials form: G -> 1
    assert float(g_factor_sum_of_exponentials([1e6], [1e6], 1.5)) == pytest.approx(1.0, rel=1e-5)


def test_sum_of_exponentials_reduces_to_dale(rng):
    for _ in range(20):
        dose = rng.uniform(0.5, 40)
        ab, t_rep, t_eff = rng.uniform(1, 12), rng.uniform(0.3, 4), rng.uniform(5, 200)
        lam = math.log(2) / t_eff
        closed = bed_sum_of_exponentials([dose * lam], [lam], ab, t_rep)
        assert float(closed) == pytest.approx(float(bed_monoexponential(dose, ab, t_rep, t_eff)),
                                              rel=1e-12)


def _g_factor_quad(rate_fn, mu, upper):
    """Independent reference: G from nested adaptive quadrature of the Lea–Catcheside integral."""
    def inner(t):
        return integrate.quad(lambda w: rate_fn(w) * math.exp(-mu * (t - w)), 0, t,
                              epsabs=0, epsrel=1e-11, limit=200)[0]
    double = integrate.quad(lambda t: rate_fn(t) * inner(t), 0, upper, epsabs=0, epsrel=1e-10,
                            limit=200)[0]
    dose = integrate.quad(rate_fn, 0, upper, epsabs=0, epsrel=1e-12, limit=200)[0]
    return dose, 2 * double / dose**2


def test_uptake_washout_matches_nested_quadrature():
    dose, ab, t_rep, t_up, t_eff = 10.0, 2.6, 2.8, 3.0, 40.0
    lam_e, lam_u = math.log(2) / t_eff, math.log(2) / t_up
    k = dose * lam_e * (lam_e + lam_u) / lam_u
    ref_dose, ref_g = _g_factor_quad(
        lambda t: k * (1 - math.exp(-lam_u * t)) * math.exp(-lam_e * t), math.log(2) / t_rep,
        upper=3000.0,
    )
    assert ref_dose == pytest.approx(dose, rel=1e-9)
    expected = ref_dose * (1 + ref_g * ref_dose / ab)
    assert float(bed_uptake_washout(dose, ab, t_rep, t_up, t_eff)) == pytest.approx(expected,
                                                                                    rel=1e-7)
    # slow uptake spreads the dose: less BED than instant uptake; fast uptake -> Dale
    assert float(bed_uptake_washout(dose, ab, t_rep, t_up, t_eff)) < float(
        bed_monoexponential(dose, ab, t_rep, t_eff))
    assert float(bed_uptake_washout(dose, ab, t_rep, 1e-6, t_eff)) == pytest.approx(
        float(bed_monoexponential(dose, ab, t_rep, t_eff)), rel=1e-7)


def test_three_term_sum_matches_nested_quadrature():
    amps, rates = np.array([0.3, 0.1, -0.35]), np.array([0.2, 0.01, 0.8])
    mu = math.log(2) / 1.5
    ref_dose, ref_g = _g_factor_quad(
        lambda t: float(np.sum(amps * np.exp(-rates * t))), mu, upper=4000.0)
    expected = ref_dose * (1 + ref_g * ref_dose / 10.0)
    assert float(bed_sum_of_exponentials(amps, rates, 10.0, 1.5)) == pytest.approx(expected,
                                                                                   rel=1e-7)


def test_eqd2_definition_and_inverse():
    # EQD2 of 2-Gy fractions equals their physical dose: BED of n x 2 Gy = 2n (1 + 2/(a/b))
    for ab in (1.5, 2.6, 10.0):
        bed_of_30x2 = 60.0 * (1 + 2.0 / ab)
        assert float(eqd2(bed_of_30x2, ab)) == pytest.approx(60.0, rel=1e-14)
        assert float(bed_from_eqd2(60.0, ab)) == pytest.approx(bed_of_30x2, rel=1e-14)


def test_broadcasts_over_draws(rng):
    doses = rng.uniform(1, 30, size=7)
    out = bed_monoexponential(doses, 2.6, 2.8, rng.uniform(20, 80, size=7))
    assert out.shape == (7,)
    amps = rng.uniform(0.1, 1, size=(7, 2))
    rates = rng.uniform(0.01, 0.5, size=(7, 2))
    assert bed_sum_of_exponentials(amps, rates, 2.6, 2.8).shape == (7,)
