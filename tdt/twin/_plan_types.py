"""The planner's vocabulary: constraints, policy, TCP model, schedule evaluation and plan.

Dose limits come from :mod:`tdt.radiobiology._limits` (cited there); a :class:`Constraint` makes one
probabilistic: P(cumulative quantity > limit) <= p over the posterior draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from tdt.errors import InputError
from tdt.radiobiology import (
    DOSE_LIMITS,
    KIDNEY_BED_LIMIT_GY,
    KIDNEY_BED_LIMIT_RISK_GY,
    DoseLimit,
    dose_limit,
    is_lesion,
    tcp_poisson_fixed_alpha,
)


@dataclass(frozen=True)
class Constraint:
    """P(cumulative ``quantity`` of ``organ`` > ``limit_gy``) <= ``max_probability``.

    ``quantity`` is ``"bed"`` (Gy, cumulative BED) or ``"dose"`` (Gy, cumulative absorbed dose).
    """

    organ: str
    quantity: str = "bed"
    limit_gy: float = KIDNEY_BED_LIMIT_RISK_GY
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

    @classmethod
    def from_limit(cls, limit: DoseLimit, max_probability: float = 0.05) -> Constraint:
        """P(quantity > ``limit``) <= ``max_probability`` for a :class:`tdt.radiobiology.DoseLimit`."""
        return cls(limit.organ, limit.quantity, limit.limit_gy, max_probability)


#: P(cumulative kidney BED > 28 Gy) <= 5 % (28 Gy: limit with risk factors, Bodei et al. 2008).
KIDNEY_BED_28 = Constraint("kidneys", "bed", KIDNEY_BED_LIMIT_RISK_GY, 0.05)
#: P(cumulative kidney BED > 40 Gy) <= 5 % (limit without risk factors, Bodei et al. 2008).
KIDNEY_BED_40 = Constraint("kidneys", "bed", KIDNEY_BED_LIMIT_GY, 0.05)
#: P(cumulative red-marrow absorbed dose > 2 Gy) <= 5 % (``dose_limit("red_marrow_dose")``,
#: Benua 1962). Built from ``DoseDraws.from_dose_prediction`` the marrow draws are those of
#: ``Posterior.predict_doses`` (blood- or image-based, remainder cross-dose included).
RED_MARROW_DOSE_2 = Constraint.from_limit(dose_limit("red_marrow_dose"), 0.05)
DEFAULT_CONSTRAINTS = (KIDNEY_BED_28, RED_MARROW_DOSE_2)


def organs_without_limit(organs) -> tuple[str, ...]:
    """Organs at risk (not lesions) with no published limit in :data:`tdt.radiobiology.DOSE_LIMITS`
    (e.g. the lacrimal glands of PSMA therapy): reported by the planner, never constrained."""
    limited = {limit.organ for limit in DOSE_LIMITS.values()}
    return tuple(o for o in organs if o not in limited and not is_lesion(o))


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
    """Poisson TCP of each lesion, TCP = exp(-N exp(-α BED)) (Webb & Nahum, PMB 1993;38:653),
    evaluated by :func:`tdt.radiobiology.tcp_poisson_fixed_alpha`.

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

    def patient_tcp(self, lesions, lesion_bed_gy):
        """Patient TCP per draw: product over ``lesions`` (names, last axis of ``lesion_bed_gy``,
        BED in Gy, shape (n_draws, n_lesions)). NumPy or JAX (traced) input."""
        n0 = np.array([self.clonogens[t] for t in lesions], dtype=float)
        return tcp_poisson_fixed_alpha(lesion_bed_gy, self.alpha_per_gy, n0, axis=-1,
                                       validate=False)


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
    notes: tuple[str, ...] = ()

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
            "notes": list(self.notes),
        }


