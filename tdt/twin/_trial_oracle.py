"""The oracle arm of the PBPK virtual trial (:func:`tdt.twin.virtual_trial_pbpk`, ``oracle=True``):
a reference that knows each virtual patient's true kinetics.

The per-cycle planner :func:`tdt.twin.plan_ligand_per_cycle` is given one "draw", the patient's
*true* parameters of every cycle (drift included), for all cycles from cycle 1, so its chance
constraints become deterministic (the true dose under the limit). The planner treats each cycle
as its own bolus, while the truth carries the residual activity and peptide of earlier cycles
(after 6 weeks ~1 % of the activity): a plan at a limit can pass it by ~0.5 %. The oracle knows
the truth, so its activities are scaled by the largest common factor under which every
constraint holds on the true schedule (bisection, the true schedule solved each time).

``truth``: the trial's virtual patient (``tdt.twin._trial_pbpk._Truth``: ``params`` per cycle,
``base`` model, ``record``, ``cycles(activities, ligands, interval_h)`` and ``totals_of``).
Units: activity MBq, ligand nmol, interval h, BED and dose Gy.
"""

from __future__ import annotations

import numpy as np

from tdt.twin._plan_ligand_cycles import plan_ligand_per_cycle

__all__ = ("oracle_arm",)


def _worst_true_ratio(truth, constraints, activities, ligands, interval_h):
    """(max over ``constraints`` of the true cumulative BED or dose / its limit (Gy/Gy), the
    true per-administration doses solved for it)."""
    cycles = truth.cycles(activities, ligands, interval_h)
    ratios = [0.0]
    for c in constraints:
        field = "bed_gy" if c.quantity == "bed" else "dose_gy"
        if c.organ in getattr(cycles[0], field):
            total = sum(float(getattr(k, field)[c.organ][0]) for k in cycles)
            ratios.append(total / c.limit_gy)
    return max(ratios), cycles


def _within_true_limits(truth, constraints, activities, ligands, interval_h,
                        lowest_factor: float, iterations: int = 25):
    """``activities`` × the largest common factor in [``lowest_factor``, 1] under which every
    constraint holds on the true schedule (bisection; unchanged if they already hold, the
    lowest factor if nothing does), and their true per-administration doses."""
    def scaled(f):
        return [a * f for a in activities]

    ratio, cycles = _worst_true_ratio(truth, constraints, activities, ligands, interval_h)
    if ratio <= 1.0:
        return activities, cycles
    low, high, low_cycles = lowest_factor, 1.0, None
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        ratio, cycles = _worst_true_ratio(truth, constraints, scaled(middle), ligands,
                                          interval_h)
        if ratio <= 1.0:
            low, low_cycles = middle, cycles
        else:
            high = middle
    if low_cycles is None:  # not even the lowest factor meets the limits: solve it once
        low_cycles = truth.cycles(scaled(low), ligands, interval_h)
    return scaled(low), low_cycles


def oracle_arm(truth, constraints, n_cycles: int, plan_options: dict,
               interval_h: float) -> dict:
    """The oracle arm's columns (module docstring): the per-cycle plan on the true parameters
    of every cycle and its true totals (all zero when even the lowest activity breaks a
    constraint)."""
    record = truth.record
    cycle_draws = [{name: np.asarray(values[c], dtype=float)[None]
                    for name, values in truth.params.items()} for c in range(n_cycles)]
    best = plan_ligand_per_cycle(truth.base, cycle_draws,
                                 organ_masses_g=record.organ_masses_g or None,
                                 lesion_volumes_ml=dict(record.lesions),
                                 constraints=constraints, phantom=record.phantom, **plan_options)
    activities = [float(a) for a in best.activities_mbq]
    ligands = [float(q) for q in best.ligand_nmol]
    totals = {"kidney_bed_gy": 0.0, "tumour_bed_gy": 0.0, "marrow_dose_gy": 0.0,
              "lacrimal_dose_gy": 0.0}
    if activities:
        low = plan_options["activity_bounds_mbq"][0] / min(activities)
        activities, cycles = _within_true_limits(truth, constraints, activities, ligands,
                                                 interval_h, min(low, 1.0))
        totals = truth.totals_of(cycles)  # the doses the last check solved, not re-solved
    return ({f"oracle_{k}": v for k, v in totals.items()}
            | {"oracle_total_activity_mbq": float(sum(activities)),
               "oracle_cycles": len(activities), "oracle_activities_mbq": activities,
               "oracle_ligand_nmol": ligands})
