"""Planning the remaining cycles under probabilistic organ-at-risk constraints.

Input: :class:`~tdt.twin.draws.DoseDraws` — per posterior draw and organ, the dose per MBq and
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

Every plan reports the exact empirical constraint probabilities of the planned schedule,
re-simulated over all draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from tdt.errors import InputError
from tdt.twin.draws import DoseDraws

OBJECTIVES = ("tumour_bed", "tcp")
METHODS = ("uniform", "gradient")


@dataclass(frozen=True)
class Constraint:
    """P(cumulative ``quantity`` of ``organ`` > ``limit_gy``) <= ``max_probability``.

    ``quantity`` is ``"bed"`` (Gy, cumulative BED) or ``"dose"`` (Gy, cumulative absorbed dose).
    """

    organ: str
    quantity: str = "bed"
    limit_gy: float = 28.0
    max_probability: float = 0.05

    def __post_init__(self):
        if self.quantity not in ("bed", "dose"):
            raise InputError(f"Constraint.quantity: got {self.quantity!r}; expected 'bed' or 'dose'")
        if not (math.isfinite(self.limit_gy) and self.limit_gy > 0):
            raise InputError(f"Constraint.limit_gy: got {self.limit_gy}; expected a finite value > 0 Gy")
        if not 0.0 <= self.max_probability < 1.0:
            raise InputError(
                f"Constraint.max_probability: got {self.max_probability}; expected 0 <= p < 1"
            )

    @property
    def label(self) -> str:
        word = "BED" if self.quantity == "bed" else "dose"
        return f"P({self.organ} {word} > {self.limit_gy:g} Gy)"

    def describe(self) -> str:
        return f"{self.label} <= {100 * self.max_probability:g} %"


#: P(cumulative kidney BED > 28 Gy) <= 5 % (28 Gy: limit with risk factors, Bodei et al. 2008).
KIDNEY_BED_28 = Constraint("kidneys", "bed", 28.0, 0.05)
#: P(cumulative kidney BED > 40 Gy) <= 5 % (limit without risk factors, Bodei et al. 2008).
KIDNEY_BED_40 = Constraint("kidneys", "bed", 40.0, 0.05)
#: P(cumulative red-marrow absorbed dose > 2 Gy) <= 5 %.
RED_MARROW_DOSE_2 = Constraint("red_marrow", "dose", 2.0, 0.05)
DEFAULT_CONSTRAINTS = (KIDNEY_BED_28, RED_MARROW_DOSE_2)


@dataclass(frozen=True)
class Policy:
    """The clinical rules the planner works within (all activities in MBq).

    - every planned cycle gets between ``min_activity_mbq`` and ``max_activity_mbq``; if not even
      the minimum is admissible the cycle is not given (stop);
    - ``standard_activity_mbq`` is the reference for the words escalate / hold / reduce
      (within ± ``hold_tolerance`` of it: hold);
    - with ``tumour_bed_target_gy`` set, the fewest cycles whose median (over draws) of the
      least-treated lesion's cumulative BED reaches the target are planned (stop early);
    - with ``choose_cycles`` the number of cycles (<= the remaining ones) is chosen too: the
      fewest that reach the target, else the number with the highest expected objective.
    """

    min_activity_mbq: float = 3700.0
    max_activity_mbq: float = 9000.0
    standard_activity_mbq: float = 7400.0
    tumour_bed_target_gy: float | None = None
    hold_tolerance: float = 0.02
    choose_cycles: bool = True

    def __post_init__(self):
        if not 0 < self.min_activity_mbq <= self.max_activity_mbq:
            raise InputError(
                f"Policy: expected 0 < min_activity_mbq ({self.min_activity_mbq}) <= "
                f"max_activity_mbq ({self.max_activity_mbq})"
            )
        if self.tumour_bed_target_gy is not None and self.tumour_bed_target_gy <= 0:
            raise InputError(
                f"Policy.tumour_bed_target_gy: got {self.tumour_bed_target_gy}; expected > 0 Gy"
            )


@dataclass(frozen=True)
class TcpModel:
    """Poisson TCP of each lesion, TCP = exp(-N exp(-α BED)) (Webb & Nahum, PMB 1993;38:653).

    ``alpha_per_gy``: radiosensitivity α (1/Gy); ``clonogens``: N per lesion (density × volume).
    Patient TCP is the product over lesions.
    """

    alpha_per_gy: float
    clonogens: Mapping[str, float]

    def __post_init__(self):
        if not self.alpha_per_gy > 0:
            raise InputError(f"TcpModel.alpha_per_gy: got {self.alpha_per_gy}; expected > 0 1/Gy")
        for name, value in self.clonogens.items():
            if not value > 0:
                raise InputError(f"TcpModel.clonogens[{name!r}]: got {value}; expected > 0")


@dataclass(frozen=True)
class ScheduleEvaluation:
    """Cumulative dose and BED per draw for a schedule, with exact constraint probabilities."""

    activities_mbq: tuple[float, ...]
    organs: tuple[str, ...]
    cumulative_dose_gy: np.ndarray  # (n_draws, n_organs)
    cumulative_bed_gy: np.ndarray  # (n_draws, n_organs)
    constraint_probabilities: dict[str, float]
    objective_draws: np.ndarray | None = None  # (n_draws,)

    def quantity(self, organ: str, quantity: str = "bed") -> np.ndarray:
        values = self.cumulative_bed_gy if quantity == "bed" else self.cumulative_dose_gy
        return values[:, self.organs.index(organ)]

    def summary(self, organ: str, quantity: str = "bed", interval: float = 0.9) -> dict[str, float]:
        """Mean, median and central ``interval`` credible interval over draws (Gy)."""
        values = self.quantity(organ, quantity)
        lo, hi = np.quantile(values, [(1 - interval) / 2, (1 + interval) / 2])
        return {"mean": float(values.mean()), "median": float(np.median(values)),
                "lower": float(lo), "upper": float(hi), "interval": interval}


@dataclass(frozen=True)
class Plan:
    """A planned schedule for the remaining cycles and everything needed to audit it."""

    activities_mbq: tuple[float, ...]
    decision: str
    reason: str
    method: str
    objective: str
    expected_objective: float
    constraint_probabilities: dict[str, float]
    constraints: tuple[Constraint, ...]
    feasible: bool
    policy: Policy
    n_draws: int
    summaries: dict[str, dict[str, float]] = field(default_factory=dict)
    evaluation: ScheduleEvaluation | None = field(default=None, repr=False, compare=False)

    @property
    def n_cycles(self) -> int:
        return len(self.activities_mbq)

    @property
    def next_activity_mbq(self) -> float:
        return self.activities_mbq[0] if self.activities_mbq else 0.0

    def to_dict(self) -> dict:
        """JSON-ready description (for the audit log and reports)."""
        return {
            "activities_mbq": [float(a) for a in self.activities_mbq],
            "n_cycles": self.n_cycles,
            "decision": self.decision,
            "reason": self.reason,
            "method": self.method,
            "objective": self.objective,
            "expected_objective": float(self.expected_objective),
            "constraint_probabilities": {k: float(v) for k, v in self.constraint_probabilities.items()},
            "constraints": [asdict(c) | {"text": c.describe()} for c in self.constraints],
            "feasible": bool(self.feasible),
            "policy": asdict(self.policy),
            "n_draws": int(self.n_draws),
            "summaries": self.summaries,
        }


# ---------------------------------------------------------------------------------- evaluation

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
    n0 = np.array([tcp.clonogens[t] for t in tumours])
    return np.exp(-(n0 * np.exp(-tcp.alpha_per_gy * bed[:, idx])).sum(axis=1))


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


# ---------------------------------------------------------------------------------- uniform

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


# ---------------------------------------------------------------------------------- gradient

def _gradient_refine(draws, x0, lo, hi, constraints, objective, tcp, steps=300, lr=0.02):
    """Projected Adam ascent on the relaxed problem (see module docstring); returns MBq."""
    import jax.numpy as jnp  # noqa: PLC0415

    n = len(x0)
    d, q = draws.coefficients(n)
    cidx = np.array([draws.index(c.organ) for c in constraints], dtype=int)
    is_bed = np.array([c.quantity == "bed" for c in constraints])
    limits = np.array([c.limit_gy for c in constraints], dtype=float)
    # aim a little inside each limit so the exact repair step rarely has to scale down
    targets = np.array([0.8 * c.max_probability for c in constraints], dtype=float)
    tidx = np.array([draws.organs.index(t) for t in draws.tumour_organs], dtype=int)
    n0 = (np.array([tcp.clonogens[t] for t in draws.tumour_organs], dtype=float)
          if objective == "tcp" else np.ones(len(tidx)))
    alpha = tcp.alpha_per_gy if objective == "tcp" else 1.0
    ev = evaluate(draws, x0, constraints=(), objective=objective, tcp=tcp)
    f0 = float(ev.objective_draws.mean()) or 1.0
    # the problem is symmetric in cycles with equal coefficients: start off the symmetric point
    # (front-loaded, which is where falling uptake makes activity most useful)
    ramp = np.linspace(0.1, -0.1, n) if n > 1 else np.zeros(1)
    z0 = np.clip(np.asarray(x0) * (1.0 + ramp) / hi, lo / hi, 1.0)
    z = _refine_core()(jnp.asarray(d), jnp.asarray(q), jnp.asarray(draws.prior_dose_gy),
                       jnp.asarray(draws.prior_bed_gy), cidx, is_bed, limits, targets, tidx, n0,
                       float(alpha), float(f0), float(hi), float(lo / hi), jnp.asarray(z0),
                       float(lr), objective=objective, steps=int(steps))
    return np.asarray(z) * hi


_REFINE = []


def _refine_core():
    """The jitted optimiser (compiled once per shape / objective, cached)."""
    if _REFINE:
        return _REFINE[0]
    import functools  # noqa: PLC0415

    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    @functools.partial(jax.jit, static_argnames=("objective", "steps"))
    def core(d, q, pd, pb, cidx, is_bed, limits, targets, tidx, n0, alpha, f0, scale, zlo, z0,
             lr, objective, steps):
        def per_draw_objective(bed):
            tb = bed[:, tidx]
            if objective == "tumour_bed":
                return tb.mean(axis=1)
            return jnp.exp(-(n0 * jnp.exp(-alpha * tb)).sum(axis=1))

        def loss(z):
            x = z * scale
            lin = jnp.einsum("c,cdo->do", x, d)
            dose, bed = pd + lin, pb + lin + jnp.einsum("c,cdo->do", x**2, q)
            values = jnp.where(is_bed, bed[:, cidx], dose[:, cidx])
            prob = jax.nn.sigmoid((values - limits) / (0.03 * limits)).mean(axis=0)
            penalty = jnp.sum(jax.nn.relu(prob - targets) ** 2)
            return -per_draw_objective(bed).mean() / f0 + 1e3 * penalty

        grad = jax.grad(loss)

        def step(state, i):
            z, m, v = state
            g = grad(z)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            mhat = m / (1 - 0.9 ** (i + 1))
            vhat = v / (1 - 0.999 ** (i + 1))
            z = jnp.clip(z - lr * mhat / (jnp.sqrt(vhat) + 1e-12), zlo, 1.0)  # box projection
            return (z, m, v), None

        zeros = jnp.zeros_like(z0)
        (z, _, _), _ = jax.lax.scan(step, (z0, zeros, zeros), jnp.arange(steps))
        return z

    _REFINE.append(core)
    return core


def _feasible(draws, x, constraints) -> bool:
    ev = evaluate(draws, x, constraints)
    return all(ev.constraint_probabilities[c.label] <= c.max_probability + 1e-12 for c in constraints)


def _repair(draws, x, lo, hi, constraints):
    """Largest s with clip(s x, lo, hi) feasible (bisection on the exact probabilities).

    Every cumulative quantity is non-decreasing in s, so feasibility is monotone in s.
    """
    def at(s):
        return np.clip(s * x, lo, hi)

    s_max = hi / max(float(np.min(x)), 1e-300)
    if _feasible(draws, at(s_max), constraints):
        return at(s_max)
    if not _feasible(draws, at(0.0), constraints):
        return None
    a, b = 0.0, s_max
    for _ in range(50):
        mid = 0.5 * (a + b)
        a, b = (mid, b) if _feasible(draws, at(mid), constraints) else (a, mid)
    return at(a)


# ---------------------------------------------------------------------------------- plan

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
        ev = evaluate(draws, x, constraints, objective, tcp)
        expected = float(ev.objective_draws.mean()) if ev.objective_draws is not None else 0.0
        feasible = all(ev.constraint_probabilities[c.label] <= c.max_probability + 1e-12
                       for c in constraints)
        summaries = {f"{c.organ}_{c.quantity}": ev.summary(c.organ, c.quantity) for c in constraints}
        for t in draws.tumour_organs:
            summaries[f"{t}_bed"] = ev.summary(t, "bed")
        return Plan(tuple(float(a) for a in x), decision, reason, used_method, objective, expected,
                    ev.constraint_probabilities, constraints, feasible, policy, draws.n_draws,
                    summaries, ev)

    _, prior_bed = _cumulative(draws, np.zeros(0))
    if _target_reached(draws, prior_bed, policy.tumour_bed_target_gy):
        return finish(np.zeros(0), "stop", "tumour BED target already reached", method)
    if n_cycles == 0:
        return finish(np.zeros(0), "stop", "no cycles remaining", method)

    counts = range(1, n_cycles + 1) if policy.choose_cycles else (n_cycles,)
    candidates = []  # (n, activity, expected objective, target reached)
    for n in counts:
        a = min(hi, max_uniform_activity(draws, n, constraints))
        if a < lo:
            continue
        x = np.full(n, a)
        ev = evaluate(draws, x, constraints, objective, tcp)
        reached = _target_reached(draws, ev.cumulative_bed_gy, policy.tumour_bed_target_gy)
        candidates.append((n, a, float(ev.objective_draws.mean()), reached))
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
    std = policy.standard_activity_mbq
    if x[0] > std * (1 + policy.hold_tolerance):
        decision = "escalate"
    elif x[0] < std * (1 - policy.hold_tolerance):
        decision = "reduce"
    else:
        decision = "hold"
    return finish(x, decision, f"{why}; activity limited by the {binding}", used)
