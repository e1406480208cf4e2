"""``Twin.plan()`` on the PBPK twin: activity *and* ligand amount through the receptor model.

The posterior is the PBPK twin's NUTS draws (all cycles so far, with drift); the planner is
:func:`tdt.twin.plan_activity_and_ligand` (exact chance constraints over the draws, gradient in
the ligand amount through the PBPK solve; docs/twin.md "Planning activity and ligand amount").
What the twin hands it, per draw:

- the kinetic parameters of the **next** cycle (:meth:`Twin.pbpk_parameter_draws`: the current
  posterior moved one drift step). The planner's policy is uniform (the same activity and
  ligand amount in every remaining cycle) on those parameters; the drift of later cycles is not
  in the plan — the plan is made again after each imaged cycle, when it is known;
- the absorbed dose and BED already delivered by every assimilated cycle (each cycle with its
  own drifted parameters, :func:`tdt.twin._pbpk_twin.predict_pbpk`), as the constraints'
  starting point;
- the record's organ masses and lesion volumes (dosimetry), and the constraints of the linear
  twin (P(kidney BED > the record's limit) <= 5 %, P(red-marrow dose > 2 Gy) <= 5 %, limits from
  tdt.radiobiology).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tdt.errors import InputError
from tdt.twin._pbpk_twin import predict_pbpk
from tdt.twin._plan_ligand import LigandPlan, plan_activity_and_ligand
from tdt.twin._plan_types import Constraint, TcpModel


def delivered_pbpk(twin) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Dose and BED (Gy) delivered by the assimilated cycles, organ -> (n_draws,)."""
    if not twin.cycles:
        return {}, {}
    # one nominal future cycle: only the past cycles' doses are used
    prediction = predict_pbpk(twin, [1.0], np.array([twin.ligand_nmol]))
    return prediction.delivered_dose_gy, prediction.delivered_bed_gy


def plan_pbpk(twin, objective: str = "tumour_bed",
              constraints: Sequence[Constraint] | None = None, n_cycles: int | None = None,
              tcp: TcpModel | None = None, **options) -> LigandPlan:
    """Activity (MBq) and ligand amount (nmol) for the remaining cycles of a PBPK twin (module
    docstring); ``options`` go to :func:`plan_activity_and_ligand` (bounds, tolerance, starts)."""
    n = twin.cycles_remaining if n_cycles is None else int(n_cycles)
    if n < 1:
        raise InputError(f"n_cycles: {n!r} cycles left to plan; expected >= 1")
    draws = twin.pbpk_parameter_draws(1)[0]
    dose, bed = delivered_pbpk(twin)
    constraints = twin.default_constraints() if constraints is None else tuple(constraints)
    return plan_activity_and_ligand(
        twin.pbpk, draws, n, organ_masses_g=twin.record.organ_masses_g or None,
        lesion_volumes_ml=dict(twin.record.lesions), prior_dose_gy=dose or None,
        prior_bed_gy=bed or None, constraints=constraints, objective=objective, tcp=tcp,
        phantom=twin.record.phantom, **options)
