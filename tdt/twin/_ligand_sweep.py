"""How the uniform plan moves with the ligand amount: a sweep over L through the receptor PBPK.

At each ligand amount L (nmol) every draw's one-cycle response d(L), q(L) is solved
(:class:`tdt.twin.LigandResponse`); the admissible activity per cycle is the exact order
statistic of :func:`tdt.twin.max_uniform_activity` (capped at the activity bounds), and the
uniform schedule is evaluated with :func:`tdt.twin.evaluate`: the expected mean tumour BED, the
constraint probabilities at that activity and at a fixed reference activity (the standard
7.4 GBq), and the median salivary-gland dose. What docs/figures/ligand_plan.png and notebook 03
show (:func:`tdt.plotting.plot_ligand_sweep`); the optimum itself is
:func:`tdt.twin.plan_activity_and_ligand`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tdt.errors import InputError
from tdt.twin._ligand_response import LigandResponse
from tdt.twin._plan_eval import evaluate, max_uniform_activity
from tdt.twin._plan_ligand import ACTIVITY_BOUNDS_MBQ, _per_draw
from tdt.twin._plan_types import DEFAULT_CONSTRAINTS, Constraint

__all__ = ("ligand_sweep",)


def ligand_sweep(response: LigandResponse, ligands_nmol: Sequence[float], n_cycles: int,
                 constraints: Sequence[Constraint] = DEFAULT_CONSTRAINTS, *,
                 prior_dose_gy: Mapping[str, np.ndarray] | None = None,
                 prior_bed_gy: Mapping[str, np.ndarray] | None = None,
                 fixed_activity_mbq: float = 7400.0,
                 activity_bounds_mbq: tuple[float, float] = ACTIVITY_BOUNDS_MBQ) -> list[dict]:
    """One row per ligand amount: ``ligand_nmol``, ``activity_mbq`` (admissible, MBq; below the
    lower bound: infeasible, ``tumour_bed_gy`` nan), ``tumour_bed_gy`` (expected mean lesion BED
    of the uniform plan, Gy), ``salivary_dose_gy`` (median cumulative dose, Gy; nan without
    salivary glands), ``probabilities`` (constraint label -> P at the admissible activity) and
    ``probabilities_fixed`` (at ``fixed_activity_mbq`` in every cycle). ``prior_*``: organ ->
    (n_draws,) dose / BED already delivered (Gy)."""
    if isinstance(n_cycles, bool) or not isinstance(n_cycles, (int, np.integer)) or n_cycles < 1:
        raise InputError(f"n_cycles: got {n_cycles!r}; expected an integer >= 1")
    ligands = np.asarray(ligands_nmol, dtype=float)
    if ligands.ndim != 1 or ligands.size < 1 or not np.all(np.isfinite(ligands) & (ligands > 0)):
        raise InputError(f"ligands_nmol: got {ligands_nmol!r}; expected amounts > 0 nmol")
    organs, n = response.organs, response.n_draws
    prior_dose = _per_draw("prior_dose_gy", prior_dose_gy, organs, n)
    prior_bed = _per_draw("prior_bed_gy", prior_bed_gy, organs, n)
    constraints = tuple(constraints)
    lo, hi = (float(b) for b in activity_bounds_mbq)
    rows = []
    for ligand in ligands:
        draws = response.draws(float(ligand), prior_dose, prior_bed)
        a = min(hi, max_uniform_activity(draws, int(n_cycles), constraints))
        feasible = a >= lo
        ev = evaluate(draws, np.full(int(n_cycles), max(a, 0.0)), constraints, "tumour_bed")
        fixed = evaluate(draws, np.full(int(n_cycles), float(fixed_activity_mbq)), constraints,
                         "tumour_bed")
        salivary = (float(np.median(ev.quantity("salivary_glands", "dose")))
                    if "salivary_glands" in organs else float("nan"))
        rows.append({"ligand_nmol": float(ligand), "activity_mbq": float(a),
                     "tumour_bed_gy": float(ev.objective_draws.mean()) if feasible
                     else float("nan"),
                     "salivary_dose_gy": salivary,
                     "probabilities": dict(ev.constraint_probabilities),
                     "probabilities_fixed": dict(fixed.constraint_probabilities),
                     "fixed_activity_mbq": float(fixed_activity_mbq)})
    return rows
