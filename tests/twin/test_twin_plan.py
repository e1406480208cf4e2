"""Planner tests: exact constraint handling, monotonicity, escalation / stop, gradient refinement.

Independent references: the Lea–Catcheside G-factor integrated numerically (scipy), Dale's
closed form for a mono-exponential (Br J Radiol 1985;58:515), brute-force bisection on the
empirical exceedance probability, and direct per-draw loops in the tests themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from tdt.errors import InputError
from tdt.twin import (
    Constraint,
    DoseDraws,
    Policy,
    TcpModel,
    evaluate,
    exceedance_probability,
    max_uniform_activity,
    plan,
)
from tdt.twin._draws import quadratic_bed_coefficient

ORGANS = ("kidneys", "red_marrow", "lesion_1", "lesion_2")


def make_draws(rng, n=400, kidney_gy_per_gbq=0.5, marrow_gy_per_gbq=0.03, prior_scale=0.0):
    d = np.stack([
        rng.lognormal(np.log(kidney_gy_per_gbq * 1e-3), 0.25, n),
        rng.lognormal(np.log(marrow_gy_per_gbq * 1e-3), 0.3, n),
        rng.lognormal(np.log(3e-3), 0.4, n),
        rng.lognormal(np.log(2e-3), 0.4, n),
    ], axis=1)
    teff = np.stack([rng.lognormal(np.log(h), 0.2, n) for h in (40.0, 60.0, 80.0, 90.0)], axis=1)
    draws = DoseDraws.from_monoexponential(ORGANS, d, teff)
    if prior_scale:
        # deliver prior_scale cycles of 7.4 GBq already
        dose, bed = (evaluate(draws, np.full(1, 7400.0)).cumulative_dose_gy,
                     evaluate(draws, np.full(1, 7400.0)).cumulative_bed_gy)
        draws = draws.with_prior(dose * prior_scale, bed * prior_scale)
    return draws


def lea_catcheside_bed(rate, dose, alpha_beta, t_rep, t_end=4000.0):
    """BED = D (1 + G D / (α/β)), G from the double integral done numerically (scipy)."""
    mu = math.log(2) / t_rep
    inner = integrate.dblquad(lambda w, t: rate(t) * rate(w) * math.exp(-mu * (t - w)),
                              0.0, t_end, 0.0, lambda t: t, epsabs=1e-13, epsrel=1e-9)[0]
    g = 2.0 * inner / dose**2
    return dose * (1 + g * dose / alpha_beta)


def test_quadratic_coefficient_matches_numerical_g_factor():
    # uptake then washout: R(t) = a (e^{-λ1 t} - e^{-λ2 t}) Gy/h for 1 MBq, λ2 > λ1
    a, lam1, lam2 = 2.0e-5, math.log(2) / 50.0, math.log(2) / 2.0
    amps, rates = np.array([a, -a]), np.array([lam1, lam2])
    alpha_beta, t_rep, activity = 2.6, 2.8, 7400.0
    q = float(quadratic_bed_coefficient(amps, rates, alpha_beta, t_rep))
    d = float((amps / rates).sum())
    dose = d * activity

    def rate(t):
        return activity * a * (math.exp(-lam1 * t) - math.exp(-lam2 * t))

    expected = lea_catcheside_bed(rate, dose, alpha_beta, t_rep)
    assert d * activity + q * activity**2 == pytest.approx(expected, rel=1e-6)


def test_monoexponential_matches_dale():
    d, teff = np.array([[4e-4]]), np.array([[45.0]])
    draws = DoseDraws.from_monoexponential(("kidneys",), d, teff)
    dose = 4e-4 * 7000.0
    dale = dose + dose**2 / 2.6 * 2.8 / (2.8 + 45.0)  # Dale 1985, kidney α/β 2.6, T_rep 2.8 h
    bed = evaluate(draws, [7000.0], constraints=()).cumulative_bed_gy[0, 0]
    assert bed == pytest.approx(dale, rel=1e-12)
    # from_exponentials with one exponential gives the same coefficient
    lam = math.log(2) / 45.0
    other = DoseDraws.from_exponentials(("kidneys",), np.array([[[4e-4 * lam]]]), np.array([[[lam]]]))
    assert other.bed_quadratic[0, 0, 0] == pytest.approx(draws.bed_quadratic[0, 0, 0], rel=1e-12)


def test_uniform_activity_is_exact_order_statistic(rng):
    draws = make_draws(rng, prior_scale=1.0)
    constraints = (Constraint("kidneys", "bed", 28.0, 0.05), Constraint("red_marrow", "dose", 2.0, 0.05))
    a = max_uniform_activity(draws, 4, constraints)

    # brute force: bisection on the exact empirical probability, per-draw loop
    def ok(activity):
        for c in constraints:
            j = ORGANS.index(c.organ)
            exceed = 0
            for i in range(draws.n_draws):
                dose = draws.prior_dose_gy[i, j] + 4 * activity * draws.dose_per_mbq[0, i, j]
                bed = (draws.prior_bed_gy[i, j] + 4 * activity * draws.dose_per_mbq[0, i, j]
                       + 4 * activity**2 * draws.bed_quadratic[0, i, j])
                exceed += (bed if c.quantity == "bed" else dose) > c.limit_gy
            if exceed / draws.n_draws > c.max_probability:
                return False
        return True

    lo, hi = 0.0, 1e5
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    assert a == pytest.approx(lo, rel=1e-6)
    assert ok(a) and not ok(a * 1.001)


def test_plan_respects_constraints_on_resimulation(rng):
    draws = make_draws(rng)
    p = plan(draws, 6)
    assert p.feasible
    for c in p.constraints:
        assert exceedance_probability(draws, p.activities_mbq, c) <= c.max_probability
        assert p.constraint_probabilities[c.label] == exceedance_probability(draws, p.activities_mbq, c)
    assert set(p.to_dict()) >= {"activities_mbq", "constraint_probabilities", "decision", "policy"}


def test_tighter_limits_never_give_higher_activities(rng):
    draws = make_draws(rng, prior_scale=0.5)
    policy = Policy(choose_cycles=False)
    limits = (40.0, 34.0, 28.0, 23.0, 18.0, 12.0)
    probabilities = (0.2, 0.1, 0.05, 0.01)
    totals = np.array([[sum(plan(draws, 4, constraints=(Constraint("kidneys", "bed", lim, p),),
                                 policy=policy).activities_mbq)
                        for p in probabilities] for lim in limits])
    # lower limit (down a column) or lower allowed probability (along a row): never more activity
    assert np.all(np.diff(totals, axis=0) <= 1e-9)
    assert np.all(np.diff(totals, axis=1) <= 1e-9)
    assert totals[0, 0] > totals[-1, -1]


def test_far_below_limits_escalates_and_near_limits_reduces_or_stops(rng):
    low = make_draws(rng, kidney_gy_per_gbq=0.2, marrow_gy_per_gbq=0.01)
    p = plan(low, 4, policy=Policy(choose_cycles=False))
    assert p.decision == "escalate"
    assert p.activities_mbq == (9000.0,) * 4  # capped
    near = make_draws(rng, prior_scale=4.5)  # ~4.5 standard cycles already delivered
    p = plan(near, 2, policy=Policy(choose_cycles=False))
    assert p.decision in ("reduce", "hold", "stop")
    assert p.next_activity_mbq <= 7400.0 * 1.02
    over = make_draws(rng, prior_scale=12.0)
    p = plan(over, 2)
    assert p.decision == "stop" and p.activities_mbq == ()
    assert "break a constraint" in p.reason


def test_target_reached_stops_early(rng):
    draws = make_draws(rng, kidney_gy_per_gbq=0.2, marrow_gy_per_gbq=0.01)
    free = plan(draws, 6)
    targeted = plan(draws, 6, policy=Policy(tumour_bed_target_gy=60.0))
    assert targeted.n_cycles < free.n_cycles
    ev = targeted.evaluation
    lesions = ev.cumulative_bed_gy[:, 2:].min(axis=1)
    assert np.median(lesions) >= 60.0
    done = draws.with_prior(ev.cumulative_dose_gy, ev.cumulative_bed_gy)
    assert plan(done, 3, policy=Policy(tumour_bed_target_gy=60.0)).decision == "stop"


def test_gradient_plan_is_feasible_and_not_worse(rng):
    draws = make_draws(rng).with_drift(4, drift_sd=0.15, drift_mean=-0.2, seed=1)
    uni = plan(draws, 4, policy=Policy(choose_cycles=False))
    grad = plan(draws, 4, policy=Policy(choose_cycles=False), method="gradient")
    assert grad.feasible
    assert grad.expected_objective >= uni.expected_objective
    if grad.method == "gradient":  # with falling uptake the refinement front-loads activity
        assert grad.activities_mbq[0] >= grad.activities_mbq[-1]


def test_tcp_objective_matches_poisson_formula(rng):
    draws = make_draws(rng, n=200)
    tcp = TcpModel(alpha_per_gy=0.15, clonogens={"lesion_1": 1e6, "lesion_2": 1e6})
    p = plan(draws, 3, objective="tcp", tcp=tcp)
    bed = p.evaluation.cumulative_bed_gy
    expected = np.mean([math.exp(-1e6 * math.exp(-0.15 * bed[i, 2]) - 1e6 * math.exp(-0.15 * bed[i, 3]))
                        for i in range(bed.shape[0])])
    assert p.expected_objective == pytest.approx(expected, rel=1e-10)


def test_bad_inputs_raise_clear_errors(rng):
    draws = make_draws(rng, n=20)
    with pytest.raises(InputError, match="objective"):
        plan(draws, 2, objective="cure")
    with pytest.raises(InputError, match="organ"):
        plan(draws, 2, constraints=(Constraint("kidney_left", "bed", 28.0),))
    with pytest.raises(InputError, match="limit_gy"):
        Constraint("kidneys", "bed", -1.0)
    with pytest.raises(InputError, match="n_cycles"):
        plan(draws, -1)
    with pytest.raises(InputError, match="tcp"):
        plan(draws, 2, objective="tcp")
    with pytest.raises(InputError, match="dose_per_mbq"):
        DoseDraws(ORGANS, np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(InputError, match="min_activity_mbq"):
        Policy(min_activity_mbq=9000.0, max_activity_mbq=3700.0)
