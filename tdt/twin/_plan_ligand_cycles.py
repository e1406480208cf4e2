"""Activity AND ligand amount chosen **per remaining cycle** through a receptor PBPK.

Problem. Over the posterior draws i, with each future cycle c's own per-draw parameters (the
PBPK twin's drifted draws, :meth:`tdt.Twin.pbpk_parameter_draws`), choose A_c (MBq) and L_c
(nmol) maximising the expected objective (mean lesion BED, Gy, or TCP) of the cumulative BED

    prior_i + Σ_c [ d_ic(L_c) A_c + q_ic(L_c) A_c² ]

subject to the chance constraints P_i(cumulative organ BED or dose > limit) <= p (exact
empirical probabilities over the draws), A_c in [A_lo, A_hi], L_c in [L_lo, L_hi]. d and q come
from the PBPK per draw and cycle (:class:`tdt.twin.LigandResponse`, one solve of all cycles'
draws at once per ligand amount: exact in A, nonlinear in L).

Method (the planner's one gradient optimiser, :mod:`tdt.twin._plan_gradient`):

1. start: the uniform plan (A, L) (:func:`tdt.twin.plan_activity_and_ligand`, exact order
   statistics) evaluated on the per-cycle draws and made exactly feasible (common scaling of
   the activities, bisection on the counted probabilities);
2. d, q are tabulated at ``n_nodes`` log-spaced ligand amounts (exact solves) and the projected
   Adam ascent of the relaxed problem (sigmoid exceedance probabilities, quadratic penalty)
   moves every cycle's A_c and log L_c together, d and q interpolated linearly in log L;
3. the result is re-solved **exactly** at its L_c, made exactly feasible by the same repair, and
   kept only if its exact expected objective beats the start's. The returned plan's
   probabilities and summaries are those of the exact per-cycle response (``Plan``).

The interpolation only steers the search; every number reported is an exact PBPK evaluation.
Checked against a brute-force grid over (A_1, L_1, A_2, L_2) in the tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np

from tdt.errors import InputError
from tdt.twin._draws import DoseDraws
from tdt.twin._ligand_response import LigandResponse
from tdt.twin._plan import _finish, _validate, hold_decision
from tdt.twin._plan_eval import evaluate
from tdt.twin._plan_gradient import _gradient_refine_ligand, _repair
from tdt.twin._plan_ligand import (
    ACTIVITY_BOUNDS_MBQ,
    LIGAND_BOUNDS_NMOL,
    LigandPlan,
    _check_bounds,
    _check_carrier_free,
    _per_draw,
    plan_activity_and_ligand,
)
from tdt.twin._plan_types import DEFAULT_CONSTRAINTS, Constraint, Policy, TcpModel

__all__ = ("plan_ligand_per_cycle",)

METHOD = ("per cycle (A_c, L_c): projected Adam on the relaxed problem, d(L), q(L) interpolated "
          "in log L between {n_nodes} exact PBPK solves; exact repair and evaluation")


def _stack(cycle_draws: Sequence[Mapping[str, np.ndarray]]) -> tuple[dict, int]:
    """All cycles' draws as one set (cycle-major), and the draws per cycle."""
    if isinstance(cycle_draws, Mapping) or not cycle_draws:
        raise InputError("cycle_draws: expected a list with one dict name -> (n_draws,) "
                         "parameter values per remaining cycle")
    names = set(cycle_draws[0])
    sizes = {np.asarray(v).size for d in cycle_draws for v in d.values()}
    if any(set(d) != names for d in cycle_draws) or len(sizes) != 1:
        raise InputError(f"cycle_draws: every cycle needs the same parameters and number of "
                         f"draws; got names {[sorted(d) for d in cycle_draws]}, sizes "
                         f"{sorted(sizes)}")
    return ({n: np.concatenate([np.asarray(d[n], dtype=float) for d in cycle_draws])
             for n in names}, sizes.pop())


class _CycleTable:
    """Exact d, q of every cycle at a ligand amount (one solve of all cycles' draws, cached)."""

    def __init__(self, response, n_cycles, n_draws, prior_dose, prior_bed):
        self.response, self.shape = response, (n_cycles, n_draws, -1)
        self.prior_dose, self.prior_bed = prior_dose, prior_bed
        self.cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def block(self, ligand: float):
        """(d, q), each (n_cycles, n_draws, n_organs), at ``ligand`` nmol."""
        if ligand not in self.cache:
            d, q = self.response.coefficients(ligand)
            self.cache[ligand] = (d.reshape(self.shape), q.reshape(self.shape))
        return self.cache[ligand]

    def exact(self, ligands) -> DoseDraws:
        """The per-cycle :class:`DoseDraws` of ligand amounts ``ligands`` (one per cycle)."""
        blocks = [self.block(float(lig)) for lig in ligands]
        d = np.stack([b[0][c] for c, b in enumerate(blocks)])
        q = np.stack([b[1][c] for c, b in enumerate(blocks)])
        return DoseDraws(self.response.organs, d, q, self.prior_dose, self.prior_bed,
                         self.response.dose_only)


def _uniform_start(forward, draws, n, activity_bounds_mbq, ligand_bounds_nmol, marrow_scale,
                   **options) -> tuple[float, float]:
    """(activity MBq, ligand nmol) of the uniform plan (:func:`plan_activity_and_ligand`) on
    the first remaining cycle's ``draws``, with the per-draw marrow factor when given."""
    response = None if marrow_scale is None else LigandResponse(
        forward, draws, organ_masses_g=options.get("organ_masses_g"),
        lesion_volumes_ml=options.get("lesion_volumes_ml"), phantom=options["phantom"],
        marrow_scale=marrow_scale)
    uniform = plan_activity_and_ligand(forward, draws, n, activity_bounds_mbq=activity_bounds_mbq,
                                       ligand_bounds_nmol=ligand_bounds_nmol, response=response,
                                       **options)
    return ((uniform.activities_mbq or (activity_bounds_mbq[0],))[0],
            (uniform.ligand_nmol or (ligand_bounds_nmol[0],))[0])


def plan_ligand_per_cycle(
    forward,
    cycle_draws: Sequence[Mapping[str, np.ndarray]],
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
    n_nodes: int = 9,
    steps: int = 300,
    start: tuple[float, float] | None = None,
    marrow_scale: np.ndarray | None = None,
    **uniform_options,
) -> LigandPlan:
    """Activity (MBq) and ligand amount (nmol) for each remaining cycle (module docstring).

    ``cycle_draws``: per remaining cycle, name -> (n_draws,) PBPK parameters (model units; the
    same draws index the same patient path in every cycle; parameters not given are fixed at
    the model defaults). ``start``: the uniform (activity MBq, ligand nmol) to start from
    (default: :func:`tdt.twin.plan_activity_and_ligand` on the first cycle's draws, with
    ``uniform_options``). ``n_nodes``: log-spaced ligand amounts of the interpolation table;
    ``steps``: Adam steps. ``marrow_scale``: optional (n_draws,) per-draw factor on the model's
    red-marrow TIA (blood- or L2–L4-based marrow, :func:`tdt.twin._plan_marrow.pbpk_blood_marrow`),
    the same for every cycle. Other arguments as :func:`tdt.twin.plan_activity_and_ligand`.
    """
    began = time.perf_counter()
    a_lo, a_hi = _check_bounds("activity_bounds_mbq", activity_bounds_mbq, "MBq")
    l_lo, l_hi = _check_bounds("ligand_bounds_nmol", ligand_bounds_nmol, "nmol")
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 2:
        raise InputError(f"n_nodes: got {n_nodes!r}; expected an integer >= 2")
    stacked, n_draws = _stack(cycle_draws)
    n = len(cycle_draws)
    scale = None if marrow_scale is None else np.tile(np.asarray(marrow_scale, float), n)
    response = LigandResponse(forward, stacked, organ_masses_g=organ_masses_g,
                              lesion_volumes_ml=lesion_volumes_ml, phantom=phantom,
                              marrow_scale=scale)
    _check_carrier_free(response, a_hi, l_lo)
    organs = response.organs
    prior_dose = _per_draw("prior_dose_gy", prior_dose_gy, organs, n_draws)
    prior_bed = _per_draw("prior_bed_gy", prior_bed_gy, organs, n_draws)
    constraints = tuple(constraints)
    policy = Policy(min_activity_mbq=a_lo, max_activity_mbq=a_hi,
                    standard_activity_mbq=standard_activity_mbq, choose_cycles=False)
    table = _CycleTable(response, n, n_draws, prior_dose, prior_bed)
    block, exact = table.block, table.exact
    _validate(exact([l_lo] * n), n, objective, constraints, "uniform", tcp)
    if start is None:  # the uniform plan on the first cycle's draws
        start = _uniform_start(forward, cycle_draws[0], n, (a_lo, a_hi), (l_lo, l_hi),
                               marrow_scale, organ_masses_g=organ_masses_g,
                               lesion_volumes_ml=lesion_volumes_ml, prior_dose_gy=prior_dose_gy,
                               prior_bed_gy=prior_bed_gy, constraints=constraints,
                               objective=objective, tcp=tcp,
                               standard_activity_mbq=standard_activity_mbq, phantom=phantom,
                               **uniform_options)
    a0, l0 = float(start[0]), min(max(float(start[1]), l_lo), l_hi)
    candidates = []  # (exact objective, activities, ligands, method)

    def consider(x, ligands, method):
        draws = exact(ligands)
        x = _repair(draws, np.asarray(x, dtype=float), a_lo, a_hi, constraints)
        if x is not None and np.all(x >= a_lo - 1e-9):
            value = evaluate(draws, x, constraints, objective, tcp).objective_draws.mean()
            candidates.append((float(value), x, tuple(float(v) for v in ligands), method))

    consider(np.full(n, a0), [l0] * n, "uniform start")
    nodes = np.geomspace(l_lo, l_hi, n_nodes)
    d_nodes = np.stack([block(float(v))[0] for v in nodes])
    q_nodes = np.stack([block(float(v))[1] for v in nodes])
    span = math.log(l_hi / l_lo)
    x_start = candidates[0][1] if candidates else np.full(n, a0)
    x, u = _gradient_refine_ligand(exact([l0] * n), d_nodes, q_nodes, x_start,
                                   np.full(n, math.log(l0 / l_lo) / span), a_lo, a_hi,
                                   constraints, objective, tcp, steps=steps)
    consider(x, np.clip(l_lo * np.exp(u * span), l_lo, l_hi), "gradient")
    if not candidates:
        chosen = _finish(exact([l0] * n), np.zeros(0), "stop",
                         f"even {a_lo:g} MBq per cycle would break a constraint", "gradient",
                         objective, constraints, policy, tcp)
        ligands: tuple[float, ...] = ()
    else:
        _, x, ligands, used = max(candidates, key=lambda c: c[0])
        chosen = _finish(exact(ligands), x, hold_decision(x, policy),
                         f"{n} cycle(s), activity and ligand per cycle ({used})",
                         "gradient" if used == "gradient" else "uniform", objective,
                         constraints, policy, tcp)
    return LigandPlan(
        activities_mbq=chosen.activities_mbq, ligand_nmol=ligands, plan=chosen,
        method=METHOD.format(n_nodes=n_nodes), activity_bounds_mbq=(a_lo, a_hi),
        ligand_bounds_nmol=(l_lo, l_hi), n_solves=len(table.cache),
        seconds=time.perf_counter() - began,
        trace=tuple({"ligand_nmol": list(c[2]), "activities_mbq": c[1].tolist(),
                     "objective": c[0], "method": c[3]} for c in candidates))
