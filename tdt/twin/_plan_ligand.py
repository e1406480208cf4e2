"""Planning activity AND ligand amount of the remaining cycles through a receptor PBPK.

Problem (uniform policy: the same activity A and ligand amount L in each of the n remaining
cycles). Over the posterior draws i, maximise the expected objective (mean lesion BED, Gy, or
Poisson TCP) of the cumulative BED prior_i + n (d_i(L) A + q_i(L) A²) subject to chance
constraints P_i(cumulative organ BED or dose > limit) <= p, A in [A_lo, A_hi] (MBq), L in
[L_lo, L_hi] (nmol). d(L), q(L) come from the PBPK per draw (:mod:`tdt.twin._ligand_response`:
exact in A, nonlinear in L through receptor saturation).

Constraint method — exact elimination of A (no relaxation). For a fixed L every draw's
cumulative quantity is increasing in A, so draw i exceeds a limit exactly when A > A*_i(L)
(root of its quadratic) and the empirical chance constraint holds iff A <= the
(floor(p n) + 1)-th smallest A*_i(L) (an order statistic / empirical quantile reformulation of
the chance constraint). The best activity at L is therefore
A(L) = min(A_hi, min over constraints of that order statistic) (:func:`tdt.twin.max_uniform_activity`,
the planner's one home), and the problem becomes one-dimensional: maximise
F(L) = E_i[objective_i(A(L), L)].

Gradient. F is piecewise smooth; between the points where the binding draw changes its
derivative follows from the implicit function theorem on the binding draw k of the binding
constraint (organ j): V_kj(A, L) = limit, so

    dA/dlog L = -(∂d_kj A + ∂q_kj A²) / (d_kj + 2 q_kj A)     (q = 0 for a dose constraint),

0 when the cap A_hi binds, and dF/dlog L = E_i[Σ ∂objective/∂BED · n (∂d A + ∂q A² + (d + 2 q A)
dA/dlog L)]. ∂d, ∂q are JAX forward-mode derivatives (``jax.jvp``) through the PBPK solve, all
draws at once (vmap): one tangent solve per evaluation.

Optimiser (hand-written; 1-D, so neither optax's first-order steps nor optimistix's unbounded
minimisers are a better fit): on x = log L, bracketing from the standard amount in the ascent
direction (steps doubling, projected onto the bounds), then a safeguarded secant iteration on
dF/dx (bisection whenever the secant leaves the bracket) until the bracket is narrower than
``tol_log`` (default 0.01: 1 % in L). Points where even A_lo breaks a constraint count as
infeasible (F = -inf) and close the bracket. F can have several local maxima (kinks where the
binding draw or constraint changes: with 100 draws and a 500 mL lesion, maxima at ~74 and ~160
nmol); the ascent is local, ``starts_nmol`` adds starting points (the best point seen wins), and
the tests compare it with a grid search. The final L is evaluated exactly by
:func:`tdt.twin.plan` (its ``Plan``: exact empirical probabilities, summaries, notes), and the
best of the candidates seen (including both bounds) is returned.

Salivary and lacrimal glands: no limit in :data:`tdt.radiobiology.DOSE_LIMITS`, so they are
reported (``Plan.summaries`` ``<organ>_dose``, ``Plan.notes``), not constrained; a user
:class:`Constraint` on them is honoured like any other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.pbpk import specific_activity_mbq_per_nmol
from tdt.radiobiology import is_lesion
from tdt.twin._draws import DoseDraws
from tdt.twin._ligand_response import LigandResponse
from tdt.twin._plan import _validate, plan
from tdt.twin._plan_eval import _threshold_activity, evaluate, max_uniform_activity
from tdt.twin._plan_types import DEFAULT_CONSTRAINTS, Constraint, Plan, Policy, TcpModel

__all__ = ("LigandPlan", "plan_activity_and_ligand")

#: Default bounds: activity 1–12 GBq per cycle; ligand 20–1000 nmol per cycle (the lower end is
#: above the carrier-free amount of 12 GBq 177Lu, 12000 / 727 = 16.5 nmol). Standard 177Lu-PSMA-617:
#: 7.4 GBq with 100–200 µg of PSMA-617 (M = 1042 g/mol: 96–192 nmol); 150 nmol is the model's
#: standard patient (data_catalog/pbpk/psma617.yaml).
ACTIVITY_BOUNDS_MBQ = (1000.0, 12000.0)
LIGAND_BOUNDS_NMOL = (20.0, 1000.0)
STANDARD_LIGAND_NMOL = 150.0


@dataclass(frozen=True)
class LigandPlan:
    """Activity (MBq) and ligand amount (nmol) per remaining cycle, and how they were found.

    ``plan``: the :class:`Plan` of the chosen activities at the chosen ligand amount (exact
    empirical constraint probabilities, summaries of every organ's dose/BED, notes).
    ``trace``: every evaluation of the optimiser (ligand_nmol, activity_mbq, objective,
    derivative per log L). ``n_solves``: PBPK solves of all draws (one per evaluation).
    """

    activities_mbq: tuple[float, ...]
    ligand_nmol: tuple[float, ...]
    plan: Plan
    method: str
    activity_bounds_mbq: tuple[float, float]
    ligand_bounds_nmol: tuple[float, float]
    n_solves: int
    seconds: float
    trace: tuple[dict, ...] = field(default=(), repr=False)

    @property
    def expected_objective(self) -> float:
        return self.plan.expected_objective

    @property
    def constraint_probabilities(self) -> dict[str, float]:
        return self.plan.constraint_probabilities

    @property
    def feasible(self) -> bool:
        return self.plan.feasible and bool(self.activities_mbq)

    def to_dict(self) -> dict:
        """JSON-ready description (audit log, reports)."""
        return {"activities_mbq": list(self.activities_mbq), "ligand_nmol": list(self.ligand_nmol),
                "method": self.method, "activity_bounds_mbq": list(self.activity_bounds_mbq),
                "ligand_bounds_nmol": list(self.ligand_bounds_nmol), "n_solves": self.n_solves,
                "seconds": self.seconds, "trace": list(self.trace), "plan": self.plan.to_dict()}


class _Objective:
    """F(log L) and dF/dlog L for the uniform policy (module docstring)."""

    def __init__(self, response, n_cycles, constraints, objective, tcp, prior_dose, prior_bed,
                 activity_bounds):
        self.response, self.n = response, n_cycles
        self.constraints, self.objective, self.tcp = constraints, objective, tcp
        self.prior_dose, self.prior_bed = prior_dose, prior_bed
        self.lo, self.hi = activity_bounds
        self.lesions = tuple(o for o in response.organs if is_lesion(o))
        self.tidx = np.array([response.organs.index(t) for t in self.lesions])
        self.trace: list[dict] = []
        self.draws_at: dict[float, DoseDraws] = {}

    def _objective_fn(self, bed_lesions):
        if self.objective == "tumour_bed":
            return bed_lesions.mean(axis=1).mean()
        return self.tcp.patient_tcp(self.lesions, bed_lesions).mean()

    def __call__(self, x: float) -> tuple[float, float, float]:
        """(F, dF/dx, A) at x = log L; F = -inf where no activity >= A_lo is admissible."""
        d, q, dd, dq = self.response.coefficients_and_derivatives(math.exp(x))
        draws = DoseDraws(self.response.organs, d, q, self.prior_dose, self.prior_bed,
                          self.response.dose_only)
        self.draws_at[x] = draws
        a = min(self.hi, max_uniform_activity(draws, self.n, self.constraints))
        if a < self.lo:
            self.trace.append({"ligand_nmol": math.exp(x), "activity_mbq": a,
                               "objective": -math.inf, "derivative": math.nan})
            return -math.inf, math.nan, a
        da = 0.0 if a >= self.hi else self._activity_derivative(draws, a, d, q, dd, dq)
        t = self.tidx
        bed = self.prior_bed[:, t] + self.n * (d[:, t] * a + q[:, t] * a**2)
        dbed = self.n * (dd[:, t] * a + dq[:, t] * a**2 + (d[:, t] + 2 * q[:, t] * a) * da)
        f, df = jax.jvp(self._objective_fn, (jnp.asarray(bed),), (jnp.asarray(dbed),))
        f, df = float(f), float(df)
        self.trace.append({"ligand_nmol": math.exp(x), "activity_mbq": a, "objective": f,
                           "derivative": df})
        return f, df, a

    def _activity_derivative(self, draws, a, d, q, dd, dq) -> float:
        """dA/dlog L of the binding order statistic (implicit function theorem)."""
        n = draws.n_draws
        best = (math.inf, None, None)
        for c in self.constraints:
            thresholds = _threshold_activity(draws, self.n, c)
            allowed = int(math.floor(c.max_probability * n + 1e-9))
            if allowed >= n:
                continue
            k = int(np.argsort(thresholds, kind="stable")[allowed])
            if thresholds[k] < best[0]:
                best = (thresholds[k], c, k)
        _, c, k = best
        if c is None:
            return 0.0
        j = draws.index(c.organ)
        if c.quantity == "bed":
            return -(dd[k, j] * a + dq[k, j] * a**2) / (d[k, j] + 2.0 * q[k, j] * a)
        return -dd[k, j] * a / d[k, j]


def _optimise(fun: _Objective, x0: float, a: float, b: float, tol: float, max_evals: int,
              points: dict | None = None):
    """Maximise fun on [a, b] from x0: bracketing + safeguarded secant on the derivative.
    ``points`` (x -> fun(x)) caches evaluations across starts; ``max_evals`` counts new ones."""
    points = {} if points is None else dict(points)
    budget = len(points) + max_evals

    def at(x):
        x = float(min(max(x, a), b))
        if x not in points:
            points[x] = fun(x)
        return x, points[x]

    x, (f, g, _) = at(x0)
    if not math.isfinite(f):  # start infeasible: move towards the bound where A(L) is largest
        fa, fb = at(a)[1][0], at(b)[1][0]
        if not (math.isfinite(fa) or math.isfinite(fb)):
            return points
        x = a if fa >= fb else b
        f, g, _ = points[x]
    direction = 1.0 if g > 0 else -1.0
    step = 0.25
    left = x  # last point with the derivative pointing in `direction`
    right = None  # first point past the maximum (derivative turned, or infeasible)
    while len(points) < budget:
        xn, (fn, gn, _) = at(left + direction * step)
        if xn == left:  # at a bound with the derivative pointing outwards: the bound is it
            return points
        if math.isfinite(fn) and gn * direction > 0:
            left = xn
            step *= 2.0
            continue
        right = xn
        break
    if right is None:
        return points
    lo, hi = sorted((left, right))
    while hi - lo > tol and len(points) < budget:
        flo, glo, _ = points[lo]
        fhi, ghi, _ = points[hi]
        mid = 0.5 * (lo + hi)
        if math.isfinite(fhi) and math.isfinite(flo) and math.isfinite(glo) \
                and math.isfinite(ghi) and glo != ghi:
            secant = lo - glo * (hi - lo) / (ghi - glo)
            if lo + 0.1 * (hi - lo) < secant < hi - 0.1 * (hi - lo):
                mid = secant
        xm, (fm, gm, _) = at(mid)
        # keep the sub-interval that still holds the maximum: right of mid when F rises there;
        # an infeasible mid lies on the side we were travelling to
        go_right = gm > 0 if math.isfinite(fm) else direction < 0
        if go_right:
            lo = xm
        else:
            hi = xm
    return points


def _per_draw(name: str, values, organs, n_draws) -> np.ndarray | None:
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise InputError(f"{name}: expected a dict organ -> (n_draws,) Gy, got "
                         f"{type(values).__name__}")
    out = np.zeros((n_draws, len(organs)))
    for organ, v in values.items():
        if organ not in organs:
            raise InputError(f"{name}: organ {organ!r} is not planned; expected one of {organs}")
        v = np.asarray(v, dtype=float)
        if v.shape != (n_draws,) or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise InputError(f"{name}[{organ!r}]: expected {n_draws} finite values >= 0 Gy, "
                             f"got shape {v.shape}")
        out[:, organs.index(organ)] = v
    return out


def _check_bounds(name, bounds, unit):
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise InputError(f"{name}: got {tuple(bounds)!r}; expected (low, high) with "
                         f"0 < low < high {unit}")
    return lo, hi


def _check_carrier_free(response, a_hi: float, l_lo: float) -> None:
    carrier_free = a_hi / specific_activity_mbq_per_nmol(response.forward.decay_constant_per_h)
    if l_lo < carrier_free:
        raise InputError(
            f"ligand_bounds_nmol: lower bound {l_lo:g} nmol is below the labelled atoms of "
            f"{a_hi:g} MBq ({carrier_free:.1f} nmol, carrier-free); expected >= that")


def plan_activity_and_ligand(
    forward,
    parameter_draws: Mapping[str, np.ndarray],
    n_cycles: int,
    *,
    organ_masses_g: Mapping[str, float] | None = None,
    lesion_volumes_ml: Mapping[str, float] | None = None,
    prior_dose_gy: Mapping[str, np.ndarray] | None = None,
    prior_bed_gy: Mapping[str, np.ndarray] | None = None,
    constraints: Sequence[Constraint] = DEFAULT_CONSTRAINTS,
    objective: str = "tumour_bed",
    tcp: TcpModel | None = None,
    activity_bounds_mbq: tuple[float, float] = ACTIVITY_BOUNDS_MBQ,
    ligand_bounds_nmol: tuple[float, float] = LIGAND_BOUNDS_NMOL,
    standard_activity_mbq: float = 7400.0,
    phantom: str = "adult-male",
    tol_log: float = 0.01,
    max_evaluations: int = 30,
    starts_nmol: Sequence[float] = (STANDARD_LIGAND_NMOL,),
    response: LigandResponse | None = None,
) -> LigandPlan:
    """Choose activity (MBq) and ligand amount (nmol) for each of ``n_cycles`` remaining cycles
    (the same in every cycle) through the receptor PBPK ``forward`` (``method="grid"``).

    ``parameter_draws``: name -> (n_draws,) PBPK parameters (posterior or prior draws; the rest
    fixed at the model's defaults). ``prior_dose_gy`` / ``prior_bed_gy``: organ -> (n_draws,)
    delivered absorbed dose / BED (Gy). ``constraints``: chance constraints over the draws
    (default P(kidney BED > 28 Gy) <= 5 %, P(red-marrow dose > 2 Gy) <= 5 %). ``objective``:
    ``"tumour_bed"`` (expected mean lesion BED) or ``"tcp"`` (with ``tcp``). ``response``: a
    prebuilt :class:`LigandResponse` (its compiled solves are reused). ``starts_nmol``: starting
    ligand amounts of the local ascent (default the standard 150 nmol). Bounds: activity
    ``activity_bounds_mbq`` (default 1–12 GBq), ligand ``ligand_bounds_nmol`` (20–1000 nmol).
    Method: module docstring.
    """
    start = time.perf_counter()
    if isinstance(n_cycles, bool) or not isinstance(n_cycles, (int, np.integer)) or n_cycles < 1:
        raise InputError(f"n_cycles: got {n_cycles!r}; expected an integer >= 1")
    a_lo, a_hi = _check_bounds("activity_bounds_mbq", activity_bounds_mbq, "MBq")
    l_lo, l_hi = _check_bounds("ligand_bounds_nmol", ligand_bounds_nmol, "nmol")
    if not tol_log > 0:
        raise InputError(f"tol_log: got {tol_log!r}; expected > 0")
    if response is None:
        response = LigandResponse(forward, parameter_draws, organ_masses_g=organ_masses_g,
                                  lesion_volumes_ml=lesion_volumes_ml, phantom=phantom)
    _check_carrier_free(response, a_hi, l_lo)
    organs, n = response.organs, response.n_draws
    prior_dose = _per_draw("prior_dose_gy", prior_dose_gy, organs, n)
    prior_bed = _per_draw("prior_bed_gy", prior_bed_gy, organs, n)
    constraints = tuple(constraints)
    policy = Policy(min_activity_mbq=a_lo, max_activity_mbq=a_hi,
                    standard_activity_mbq=standard_activity_mbq, choose_cycles=False)
    shape_only = DoseDraws(organs, np.zeros((1, len(organs))), np.zeros((1, len(organs))),
                           dose_only=response.dose_only)  # names only, for the shared checks
    _validate(shape_only, n_cycles, objective, constraints, "uniform", tcp)
    zeros = np.zeros((n, len(organs)))
    fun = _Objective(response, int(n_cycles), constraints, objective, tcp,
                     zeros if prior_dose is None else prior_dose,
                     zeros if prior_bed is None else prior_bed, (a_lo, a_hi))
    a, b = math.log(l_lo), math.log(l_hi)
    points: dict = {}
    for start_nmol in starts_nmol:  # local ascent from each start; the best point seen wins
        points |= _optimise(fun, math.log(min(max(float(start_nmol), l_lo), l_hi)), a, b,
                            float(tol_log), int(max_evaluations), points)
    feasible = {x: v for x, v in points.items() if math.isfinite(v[0])}
    # best point evaluated; none feasible: the plan at the largest-activity point says "stop"
    x_best = (max(feasible, key=lambda x: feasible[x][0]) if feasible
              else max(points, key=lambda x: points[x][2]))
    ligand = min(max(math.exp(x_best), l_lo), l_hi)  # exp(log(bound)) may round past it
    chosen = plan(fun.draws_at[x_best], int(n_cycles), objective, constraints, policy,
                  "uniform", tcp)
    return LigandPlan(
        activities_mbq=chosen.activities_mbq,
        ligand_nmol=tuple(ligand for _ in chosen.activities_mbq),
        plan=chosen,
        method="uniform (A, L): exact order-statistic activity at each L; L by bracketing + "
               "safeguarded secant on dF/dlog L (JAX jvp through the PBPK solve)",
        activity_bounds_mbq=(a_lo, a_hi), ligand_bounds_nmol=(l_lo, l_hi),
        n_solves=len(points), seconds=time.perf_counter() - start, trace=tuple(fun.trace))


def evaluate_activity_and_ligand(response: LigandResponse, activity_mbq: float,
                                 ligand_nmol: float, n_cycles: int,
                                 constraints: Sequence[Constraint] = DEFAULT_CONSTRAINTS,
                                 objective: str = "tumour_bed", tcp: TcpModel | None = None,
                                 prior_dose_gy=None, prior_bed_gy=None):
    """Exact re-simulation of the uniform schedule (A, L) × ``n_cycles`` over all draws
    (:func:`tdt.twin.evaluate` on the PBPK response at L)."""
    organs, n = response.organs, response.n_draws
    draws = response.draws(ligand_nmol, _per_draw("prior_dose_gy", prior_dose_gy, organs, n),
                           _per_draw("prior_bed_gy", prior_bed_gy, organs, n))
    return evaluate(draws, np.full(int(n_cycles), float(activity_mbq)), tuple(constraints),
                    objective, tcp)
