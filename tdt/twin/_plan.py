"""Planning the remaining cycles under probabilistic organ-at-risk constraints.

Input: :class:`~tdt.twin._draws.DoseDraws` — per posterior draw and organ, the dose per MBq and
the BED coefficient of each future cycle, plus what has been delivered. A plan chooses the
activities of the remaining cycles (and, optionally, how many) so as to maximise the expected
objective (mean tumour BED over lesions, or TCP) over all draws, subject to constraints of the
form P(cumulative organ BED or dose > limit) <= p, the probability taken over all draws.

Methods
-------
``"uniform"`` (default): the same activity A in every remaining cycle. Because each draw's
cumulative BED, prior + A Σd + A² Σq, is increasing in A, draw i exceeds the limit exactly when
A > A*_i (the positive root of the quadratic), and P(exceed | A) = #{A*_i < A} / n. The largest
admissible A is therefore an order statistic of A*: exact, no relaxation, no iteration. Tighter
limits can only lower every A*_i, so they never give higher activities.

``"gradient"``: activities per cycle, started from the uniform plan, improved by projected
gradient ascent (JAX gradients through all draws) on the expected objective with the exceedance
probabilities relaxed by a sigmoid and penalised. The result is then made exactly feasible by
bisection on a common scaling of the activities using the empirical probability, and kept only if
its exact expected objective beats the uniform plan's. (Hand-written because optimistix has no
box-constrained minimiser and optax is not a dependency.)

Layout: the types (:class:`Constraint`, :class:`Policy`, :class:`TcpModel`, :class:`Plan`...)
live in ``_plan_types``, schedule evaluation and the uniform planner in ``_plan_eval``, the
gradient refinement in ``_plan_gradient``; this module chooses the plan and re-exports them.
BED coefficients, TCP and the dose limits come from :mod:`tdt.radiobiology`.

Every plan reports the exact empirical constraint probabilities of the planned schedule,
re-simulated over all draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tdt.errors import InputError
from tdt.twin._draws import DoseDraws
from tdt.twin._plan_eval import (
    _cumulative,
    evaluate,
    exceedance_probability,
    max_uniform_activity,
)
from tdt.twin._plan_gradient import _gradient_refine, _repair
from tdt.twin._plan_types import (
    DEFAULT_CONSTRAINTS,
    KIDNEY_BED_28,
    KIDNEY_BED_40,
    RED_MARROW_DOSE_2,
    Constraint,
    Plan,
    Policy,
    ScheduleEvaluation,
    TcpModel,
    organs_without_limit,
)

OBJECTIVES = ("tumour_bed", "tcp")
METHODS = ("uniform", "gradient")

__all__ = (
    "DEFAULT_CONSTRAINTS", "KIDNEY_BED_28", "KIDNEY_BED_40", "METHODS", "OBJECTIVES",
    "RED_MARROW_DOSE_2", "Constraint", "Plan", "Policy", "ScheduleEvaluation", "TcpModel",
    "evaluate", "exceedance_probability", "max_uniform_activity", "plan",
)


def _validate(draws, n_cycles, objective, constraints, method, tcp):
    if not isinstance(draws, DoseDraws):
        raise InputError(f"draws: expected a DoseDraws, got {type(draws).__name__}")
    if not isinstance(n_cycles, (int, np.integer)) or n_cycles < 0:
        raise InputError(f"n_cycles: got {n_cycles!r}; expected an integer >= 0")
    if objective not in OBJECTIVES:
        raise InputError(f"objective: got {objective!r}; expected one of {OBJECTIVES}")
    if method not in METHODS:
        raise InputError(f"method: got {method!r}; expected one of {METHODS}")
    for c in constraints:
        if not isinstance(c, Constraint):
            raise InputError(f"constraints: expected Constraint objects, got {c!r}")
        draws.index(c.organ)
        if c.quantity == "bed" and c.organ in draws.dose_only:
            raise InputError(f"constraints: {c.describe()} — {c.organ!r} has no linear-quadratic "
                             "parameters (dose only); constrain its absorbed dose instead")
    if not draws.tumour_organs:
        raise InputError(
            f"draws.organs: no lesion (lesion_*) among {draws.organs}; the objective needs one"
        )
    if objective == "tcp":
        if tcp is None:
            raise InputError("tcp: objective 'tcp' needs a TcpModel (alpha, clonogens per lesion)")
        missing = [t for t in draws.tumour_organs if t not in tcp.clonogens]
        if missing:
            raise InputError(f"tcp.clonogens: missing lesions {missing}")


def _target_reached(draws: DoseDraws, bed: np.ndarray, target: float | None) -> bool:
    if target is None:
        return False
    idx = [draws.organs.index(t) for t in draws.tumour_organs]
    return bool(np.median(bed[:, idx].min(axis=1)) >= target)


def _finish(draws, x, decision, reason, used_method, objective, constraints, policy, tcp) -> Plan:
    """The :class:`Plan` of schedule ``x`` with its exact probabilities and summaries."""
    ev = evaluate(draws, x, constraints, objective, tcp)
    expected = float(ev.objective_draws.mean()) if ev.objective_draws is not None else 0.0
    feasible = all(ev.constraint_probabilities[c.label] <= c.max_probability + 1e-12
                   for c in constraints)
    summaries = {f"{c.organ}_{c.quantity}": ev.summary(c.organ, c.quantity) for c in constraints}
    for t in draws.tumour_organs:
        summaries[f"{t}_bed"] = ev.summary(t, "bed")
    for organ in draws.organs:  # every organ dose is reported, constrained or not
        if organ not in draws.tumour_organs:
            summaries.setdefault(f"{organ}_dose", ev.summary(organ, "dose"))
    constrained = {c.organ for c in constraints}
    notes = tuple(f"{o}: absorbed dose reported, not constrained (no limit in "
                  "tdt.radiobiology.DOSE_LIMITS)"
                  for o in organs_without_limit(draws.organs) if o not in constrained)
    return Plan(tuple(float(a) for a in x), decision, reason, used_method, objective, expected,
                ev.constraint_probabilities, constraints, feasible, policy, draws.n_draws,
                summaries, ev, notes)


def _uniform_candidates(draws, n_cycles, objective, constraints, policy, tcp) -> list[tuple]:
    """(n, activity MBq, expected objective, target reached) per admissible number of cycles."""
    lo, hi = policy.min_activity_mbq, policy.max_activity_mbq
    counts = range(1, n_cycles + 1) if policy.choose_cycles else (n_cycles,)
    candidates = []
    for n in counts:
        a = min(hi, max_uniform_activity(draws, n, constraints))
        if a < lo:
            continue
        ev = evaluate(draws, np.full(n, a), constraints, objective, tcp)
        reached = _target_reached(draws, ev.cumulative_bed_gy, policy.tumour_bed_target_gy)
        candidates.append((n, a, float(ev.objective_draws.mean()), reached))
    return candidates


def plan(
    draws: DoseDraws,
    n_cycles: int,
    objective: str = "tumour_bed",
    constraints: Sequence[Constraint] = DEFAULT_CONSTRAINTS,
    policy: Policy | None = None,
    method: str = "uniform",
    tcp: TcpModel | None = None,
) -> Plan:
    """Choose activities (MBq) for up to ``n_cycles`` remaining cycles.

    Maximises the expected ``objective`` over all posterior draws ("tumour_bed": mean cumulative
    BED of the lesions, Gy; "tcp": Poisson TCP with ``tcp``) subject to every constraint,
    within ``policy``. Returns a :class:`Plan` whose ``constraint_probabilities`` are the exact
    empirical probabilities of the planned schedule re-simulated over all draws.
    """
    policy = policy or Policy()
    constraints = tuple(constraints)
    _validate(draws, n_cycles, objective, constraints, method, tcp)
    lo, hi = policy.min_activity_mbq, policy.max_activity_mbq

    def finish(x, decision, reason, used_method):
        return _finish(draws, x, decision, reason, used_method, objective, constraints, policy, tcp)

    _, prior_bed = _cumulative(draws, np.zeros(0))
    if _target_reached(draws, prior_bed, policy.tumour_bed_target_gy):
        return finish(np.zeros(0), "stop", "tumour BED target already reached", method)
    if n_cycles == 0:
        return finish(np.zeros(0), "stop", "no cycles remaining", method)
    candidates = _uniform_candidates(draws, n_cycles, objective, constraints, policy, tcp)
    if not candidates:
        return finish(np.zeros(0), "stop",
                      f"even {lo:g} MBq per cycle would break a constraint "
                      f"({'; '.join(c.describe() for c in constraints)})", method)
    reaching = [c for c in candidates if c[3]]
    if reaching:
        n, a, _, _ = min(reaching, key=lambda c: c[0])
        why = f"fewest cycles ({n}) whose median least-treated lesion BED reaches the target"
    else:
        n, a, _, _ = max(candidates, key=lambda c: (c[2], -c[0]))
        why = f"{n} cycle(s) maximise the expected {objective}"
    x = np.full(n, a)
    used = "uniform"
    if method == "gradient" and n > 1:
        refined = _repair(draws, _gradient_refine(draws, x, lo, hi, constraints, objective, tcp),
                          lo, hi, constraints)
        if refined is not None:
            base = evaluate(draws, x, constraints, objective, tcp).objective_draws.mean()
            new = evaluate(draws, refined, constraints, objective, tcp).objective_draws.mean()
            if new > base:
                x, used = refined, "gradient"
    binding = "cap" if np.isclose(a, hi) else "constraint"
    return finish(x, hold_decision(x, policy), f"{why}; activity limited by the {binding}", used)


def hold_decision(x, policy: Policy) -> str:
    """``escalate`` / ``reduce`` / ``hold``: the next cycle's activity against the policy's
    standard activity (± its hold tolerance)."""
    std = policy.standard_activity_mbq
    if x[0] > std * (1 + policy.hold_tolerance):
        return "escalate"
    if x[0] < std * (1 - policy.hold_tolerance):
        return "reduce"
    return "hold"
