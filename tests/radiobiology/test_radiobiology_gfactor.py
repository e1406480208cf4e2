"""Numerical G-factor on sampled dose rates vs closed forms and independent quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

import tdt  # noqa: F401
from tdt.radiobiology import (
    bed,
    bed_monoexponential,
    bed_multicycle,
    bed_sum_of_exponentials,
    dose_and_g_factor,
    exponential_moments,
)


@pytest.mark.parametrize("z", [0.0, 1e-9, 0.3, 1.9999, 2.0, 2.5, 7.0, 80.0, 1e4])
def test_exponential_moments_match_quadrature(z):
    ref = [integrate.quad(lambda x, n=n: x**n * math.exp(-z * x), 0, 1, epsabs=0,
                          epsrel=1e-13, limit=200)[0] for n in range(4)]
    np.testing.assert_allclose(np.asarray(exponential_moments(z)), ref, rtol=1e-12)


def test_exact_for_piecewise_linear_history():
    """The interpolant's double integral, by independent nested adaptive quadrature."""
    t = np.array([0.0, 1.0, 4.0, 24.0, 48.0, 120.0])
    r = np.array([0.0, 0.5, 0.35, 0.2, 0.12, 0.01])
    mu = math.log(2) / 1.5

    def rate(x):
        return float(np.interp(x, t, r))

    def inner(x):
        return integrate.quad(lambda w: rate(w) * math.exp(-mu * (x - w)), 0, x,
                              points=[p for p in t if 0 < p < x] or None, epsabs=0,
                              epsrel=1e-12, limit=400)[0]

    double = integrate.quad(lambda x: rate(x) * inner(x), 0, t[-1], points=t[1:-1], epsabs=0,
                            epsrel=1e-11, limit=400)[0]
    dose_ref = np.trapezoid(r, t)
    dose, g = dose_and_g_factor(t, r, 1.5)
    assert float(dose) == pytest.approx(dose_ref, rel=1e-13)
    assert float(g) == pytest.approx(2 * double / dose_ref**2, rel=1e-9)


def test_monoexponential_exact_with_exponential_tail():
    # a coarse clinical-like grid and an exponential tail reproduce Dale exactly
    t_eff, dose = 50.0, 23.0
    lam = math.log(2) / t_eff
    t = np.linspace(0, 5, 41)
    got = bed(t, dose * lam * np.exp(-lam * t), 2.6, 2.8, tail="exponential")
    # only the 5 h of linear interpolation carries error (~ (lam h)^2 / 12 over a short span)
    assert float(got) == pytest.approx(float(bed_monoexponential(dose, 2.6, 2.8, t_eff)), rel=1e-7)
    got_rate = bed(t, dose * lam * np.exp(-lam * t), 2.6, 2.8, tail=lam)
    assert float(got_rate) == pytest.approx(float(got), rel=1e-12)


def test_randomised_sums_of_exponentials_dense_grid(rng):
    """Closed forms vs numerical G-factor, rel 1e-6, on randomised two/three-term inputs."""
    # spacing 0.005 h while fast uptake terms live, then 0.02 h (linear-interpolation error
    # ~ (lambda h)^2 / 12 < 1e-7), to 4500 h where every term but the slowest is < 1e-9 of it
    t = np.concatenate([np.arange(0.0, 20.0, 0.005), np.arange(20.0, 4500.0, 0.02)])
    worst = 0.0
    for _ in range(12):
        n_terms = rng.integers(1, 4)
        rates = rng.uniform(math.log(2) / 150, math.log(2) / 20, size=n_terms)
        amps = rng.uniform(0.05, 1.0, size=n_terms)
        if n_terms > 1 and rng.uniform() < 0.5:  # an uptake term with a faster rate
            rates[-1] = rng.uniform(0.2, 1.5)
            amps[-1] = -rng.uniform(0.0, amps[:-1].sum())
        ab, t_rep = rng.uniform(1.5, 10.0), rng.uniform(0.5, 3.0)
        r = np.sum(amps[:, None] * np.exp(-rates[:, None] * t[None, :]), axis=0)
        slowest = rates.min()
        numeric = bed(t, r, ab, t_rep, tail=slowest)  # exact tail: the slowest term dominates
        closed = bed_sum_of_exponentials(amps, rates, ab, t_rep)
        worst = max(worst, abs(float(numeric) / float(closed) - 1))
    assert worst < 1e-6


def test_zero_repair_time_limit_and_acute():
    t = np.linspace(0, 200, 2001)
    r = 0.4 * np.exp(-0.03 * t)
    dose, _ = dose_and_g_factor(t, r, 1.0)
    assert float(bed(t, r, 3.0, 1e-7)) == pytest.approx(float(dose), rel=1e-6)
    # a dose delivered within 1 ms: G -> 1
    t_fast = np.linspace(0, 1e-3, 11)
    d_fast, g_fast = dose_and_g_factor(t_fast, np.full(11, 5.0 / 1e-3), 1.5)
    assert float(g_fast) == pytest.approx(1.0, rel=1e-3)
    assert float(d_fast) == pytest.approx(5.0, rel=1e-12)


def test_multicycle_additivity_assumption_holds_for_six_week_cycles():
    lam, interval, t_rep, ab = math.log(2) / 50, 1008.0, 2.8, 2.6
    # an administration is a jump in dose rate: sample just before it (1e-9 h) so the
    # piecewise-linear interpolant represents the jump
    starts = np.arange(4) * interval
    t = np.union1d(np.arange(0.0, 4 * interval, 0.1), np.concatenate([starts, starts[1:] - 1e-9]))
    r = np.zeros_like(t)
    doses = np.array([4.0, 5.0, 3.5, 4.5])
    for c, d in enumerate(doses):
        on = t >= c * interval
        r[on] += d * lam * np.exp(-lam * (t[on] - c * interval))
    numeric = bed(t, r, ab, t_rep, tail=lam)
    assert float(numeric) == pytest.approx(float(bed_multicycle(doses, ab, t_rep, 50.0)), rel=1e-6)
    # cycles 3 h apart are not independent: the BED lies between the sum over cycles and the
    # BED of one bolus of the total dose (Dale: 17 + 17^2/2.6 * 2.8/52.8 = 22.894 Gy)
    r_close = np.zeros_like(t)
    for c, d in enumerate(doses):
        on = t >= c * 3.0
        r_close[on] += d * lam * np.exp(-lam * (t[on] - c * 3.0))
    close = float(bed(t, r_close, ab, t_rep, tail=lam))
    assert float(numeric) + 3.0 < close < 17 + 17**2 / 2.6 * 2.8 / 52.8


def test_batched_dose_rates_and_parameters(rng):
    t = np.linspace(0, 300, 3001)
    lam = rng.uniform(0.01, 0.05, size=5)
    doses = rng.uniform(2, 20, size=5)
    t_rep = rng.uniform(1, 3, size=5)
    r = doses[:, None] * lam[:, None] * np.exp(-lam[:, None] * t[None, :])
    out = bed(t, r, 2.6, t_rep, tail="exponential")
    assert out.shape == (5,)
    # each row alone, through the closed form (exponential tail makes the history exact up to
    # the O(h^2) interpolation error, (lambda h)^2 / 12 <= 2.1e-6 for h = 0.1 h)
    closed = bed_monoexponential(doses, 2.6, t_rep, np.log(2) / lam)
    np.testing.assert_allclose(np.asarray(out), np.asarray(closed), rtol=3e-6)


def test_zero_dose_history_gives_zero_bed():
    t = np.linspace(0, 10, 11)
    assert float(bed(t, np.zeros(11), 2.6, 2.8)) == 0.0
