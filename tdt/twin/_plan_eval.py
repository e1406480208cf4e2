"""Re-simulating a schedule over all draws, and the exact uniform-activity planner.

Cumulative BED of a schedule per draw: prior + Σ_c (d_c A_c + q_c A_c²), with d and q from
:class:`~tdt.twin._draws.DoseDraws` (built on :func:`tdt.radiobiology.quadratic_bed_coefficient`).
The uniform planner's order statistic is explained in :mod:`tdt.twin.plan`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tdt.errors import InputError
from tdt.twin._draws import DoseDraws
from tdt.twin._plan_types import DEFAULT_CONSTRAINTS, Constraint, ScheduleEvaluation, TcpModel


def _cumulative(draws: DoseDraws, activities: np.ndarray):
    n = len(activities)
    if n == 0:
        return draws.prior_dose_gy.copy(), draws.prior_bed_gy.copy()
    d, q = draws.coefficients(n)
    linear = np.einsum("c,cdo->do", activities, d)
    quad = np.einsum("c,cdo->do", activities**2, q)
    return draws.prior_dose_gy + linear, draws.prior_bed_gy + linear + quad


def _check_activities(activities_mbq) -> np.ndarray:
    x = np.atleast_1d(np.asarray(activities_mbq, dtype=float))
    if x.ndim != 1 or not np.all(np.isfinite(x)) or np.any(x < 0):
        raise InputError(
            f"activities_mbq: expected a 1-D sequence of finite activities >= 0 MBq, got {activities_mbq!r}"
        )
    return x


def exceedance_probability(draws: DoseDraws, activities_mbq, constraint: Constraint) -> float:
    """Exact empirical P(cumulative quantity > limit) over all draws for a schedule."""
    x = _check_activities(activities_mbq)
    dose, bed = _cumulative(draws, x)
    values = (bed if constraint.quantity == "bed" else dose)[:, draws.index(constraint.organ)]
    return float(np.mean(values > constraint.limit_gy))


def _objective_draws(draws: DoseDraws, bed: np.ndarray, objective: str, tcp: TcpModel | None):
    tumours = draws.tumour_organs
    idx = [draws.organs.index(t) for t in tumours]
    if objective == "tumour_bed":
        return bed[:, idx].mean(axis=1)
    return np.asarray(tcp.patient_tcp(tumours, bed[:, idx]))


def evaluate(
    draws: DoseDraws,
    activities_mbq,
    constraints: Sequence[Constraint] = DEFAULT_CONSTRAINTS,
    objective: str | None = None,
    tcp: TcpModel | None = None,
) -> ScheduleEvaluation:
    """Re-simulate a schedule over all draws: cumulative dose/BED and exact probabilities."""
    x = _check_activities(activities_mbq)
    dose, bed = _cumulative(draws, x)
    probabilities = {}
    for c in constraints:
        values = (bed if c.quantity == "bed" else dose)[:, draws.index(c.organ)]
        probabilities[c.label] = float(np.mean(values > c.limit_gy))
    obj = None
    if objective is not None and draws.tumour_organs:
        obj = _objective_draws(draws, bed, objective, tcp)
    return ScheduleEvaluation(tuple(float(a) for a in x), draws.organs, dose, bed, probabilities, obj)


def _threshold_activity(draws: DoseDraws, n_cycles: int, constraint: Constraint) -> np.ndarray:
    """Per draw, the uniform activity A*_i at which the draw reaches the limit (MBq)."""
    d, q = draws.coefficients(n_cycles)
    j = draws.index(constraint.organ)
    lin = d[:, :, j].sum(axis=0)
    if constraint.quantity == "bed":
        quad = q[:, :, j].sum(axis=0)
        remaining = constraint.limit_gy - draws.prior_bed_gy[:, j]
    else:
        quad = np.zeros_like(lin)
        remaining = constraint.limit_gy - draws.prior_dose_gy[:, j]
    remaining = np.maximum(remaining, 0.0)
    # stable positive root of quad A² + lin A - remaining = 0
    disc = np.sqrt(lin**2 + 4.0 * quad * remaining)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(lin + disc > 0, 2.0 * remaining / (lin + disc), np.inf)
    return np.where(remaining > 0, root, 0.0)


def max_uniform_activity(draws: DoseDraws, n_cycles: int,
                         constraints: Sequence[Constraint] = DEFAULT_CONSTRAINTS) -> float:
    """Largest activity per cycle (MBq) for ``n_cycles`` equal cycles meeting every constraint.

    Exact on the empirical distribution of draws: an order statistic of the per-draw threshold
    activities (see module docstring). Returns ``inf`` when no constraint binds.
    """
    if n_cycles < 1:
        raise InputError(f"n_cycles: got {n_cycles}; expected >= 1")
    best = np.inf
    n = draws.n_draws
    for c in constraints:
        thresholds = np.sort(_threshold_activity(draws, n_cycles, c))
        allowed = int(math.floor(c.max_probability * n + 1e-9))  # draws that may exceed
        if allowed < n:
            # at A = thresholds[allowed] exactly `allowed` draws (ties aside) are above the limit
            best = min(best, thresholds[allowed] * (1.0 - 1e-12))
    return float(best)
