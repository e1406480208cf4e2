"""``Twin.plan()`` on the PBPK twin: activity *and* ligand amount through the receptor model.

The posterior is the PBPK twin's NUTS draws (all cycles so far, with drift); the planner is
:func:`tdt.twin.plan_activity_and_ligand` (exact chance constraints over the draws, gradient in
the ligand amount through the PBPK solve; docs/twin.md "Planning activity and ligand amount").
What the twin hands it, per draw:

- ``method="uniform"`` (default): the kinetic parameters of the **next** cycle
  (:meth:`Twin.pbpk_parameter_draws`: the current posterior moved one drift step); the policy
  is uniform (the same activity and ligand amount in every remaining cycle) on those
  parameters; the drift of later cycles is not in this plan — it is made again after each
  imaged cycle, when it is known;
- ``method="gradient"``: activity *and* ligand amount **per remaining cycle**
  (:func:`tdt.twin.plan_ligand_per_cycle`), each cycle with its own drifted parameters
  (``pbpk_parameter_draws(n)``: the same drift paths as :meth:`Twin.predict`), started from the
  uniform plan and kept only if exactly better;
- the absorbed dose and BED already delivered by every assimilated cycle (each cycle with its
  own drifted parameters, :func:`tdt.twin._pbpk_twin.predict_pbpk`), as the constraints'
  starting point;
- the record's organ masses and lesion volumes (dosimetry), and the constraints of the linear
  twin (P(kidney BED > the record's limit) <= 5 %, P(red-marrow dose > 2 Gy) <= 5 %, limits from
  tdt.radiobiology);
- the red marrow: with blood samples in any assimilated cycle, the blood-based marrow per draw
  (delivered: each sampled cycle's own samples; planned cycles: the model's marrow × the
  per-draw factor calibrated on the latest sampled cycle, :func:`tdt.twin._plan_marrow.
  pbpk_blood_marrow`, the same helper as the linear twin's), else the PBPK ``red_marrow``
  compartment. The plan's notes say which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tdt.errors import InputError
from tdt.twin._ligand_response import LigandResponse
from tdt.twin._pbpk_twin import predict_pbpk
from tdt.twin._plan_ligand import LigandPlan, plan_activity_and_ligand
from tdt.twin._plan_ligand_cycles import plan_ligand_per_cycle
from tdt.twin._plan_marrow import PbpkMarrow
from tdt.twin._plan_types import Constraint, TcpModel


def plan_pbpk(twin, objective: str = "tumour_bed",
              constraints: Sequence[Constraint] | None = None, n_cycles: int | None = None,
              tcp: TcpModel | None = None, method: str = "uniform", **options) -> LigandPlan:
    """Activity (MBq) and ligand amount (nmol) for the remaining cycles of a PBPK twin (module
    docstring). ``method="uniform"``: ``options`` go to :func:`plan_activity_and_ligand`
    (bounds, tolerance, starts); ``"gradient"``: per cycle, started from the uniform plan,
    ``options`` go to :func:`tdt.twin.plan_ligand_per_cycle` (``n_nodes``, ``steps``; the
    others to the uniform start)."""
    if method not in ("uniform", "gradient"):
        raise InputError(f"method: got {method!r}; expected 'uniform' (the same activity and "
                         "ligand amount every cycle) or 'gradient' (per cycle)")
    n = twin.cycles_remaining if n_cycles is None else int(n_cycles)
    if n < 1:
        raise InputError(f"n_cycles: {n!r} cycles left to plan; expected >= 1")
    per_cycle = {k: options.pop(k) for k in ("n_nodes", "steps") if k in options}
    if per_cycle and method != "gradient":
        raise InputError(f"{sorted(per_cycle)}: options of method='gradient' only")
    draws = twin.pbpk_parameter_draws(n if method == "gradient" else 1)
    # one nominal future cycle: the past cycles' doses and the blood-based marrow factor
    past = predict_pbpk(twin, [1.0], np.array([twin.ligand_nmol])) if twin.cycles else None
    dose, bed = (past.delivered_dose_gy, past.delivered_bed_gy) if past else ({}, {})
    scale = None if past is None else past.marrow_scale
    constraints = twin.default_constraints() if constraints is None else tuple(constraints)
    common = {"organ_masses_g": twin.record.organ_masses_g or None,
              "lesion_volumes_ml": dict(twin.record.lesions), "prior_dose_gy": dose or None,
              "prior_bed_gy": bed or None, "constraints": constraints, "objective": objective,
              "tcp": tcp, "phantom": twin.record.phantom}
    response = LigandResponse(
        twin.pbpk, draws[0], organ_masses_g=common["organ_masses_g"],
        lesion_volumes_ml=common["lesion_volumes_ml"], phantom=twin.record.phantom,
        marrow_scale=scale)
    result = plan_activity_and_ligand(twin.pbpk, draws[0], n, **common, response=response,
                                      **options)
    if method == "gradient":
        start = (result.activities_mbq[0] if result.activities_mbq else 0.0,
                 result.ligand_nmol[0] if result.ligand_nmol else twin.ligand_nmol)
        bounds = {k: options[k] for k in ("activity_bounds_mbq", "ligand_bounds_nmol",
                                          "standard_activity_mbq") if k in options}
        result = plan_ligand_per_cycle(twin.pbpk, draws, **common, **bounds, **per_cycle,
                                       start=start, marrow_scale=scale)
    note = next((x for x in (past.notes if past else ()) if x.startswith("red marrow:")),
                PbpkMarrow((), (), None).note())  # which marrow the plan used
    return replace(result, plan=replace(result.plan, notes=(*result.plan.notes, note)))
