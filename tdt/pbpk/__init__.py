"""tdt.pbpk — mechanistic twin core: JAX PBPK models of radiopharmaceutical therapy.

- :class:`Administration`, :class:`Schedule` (``Schedule.repeated``): what is given, when.
- :func:`reduced_linear` -> :class:`LinearModel`: first-order plasma <-> organ exchange, renal
  excretion, physical decay, solved exactly (matrix exponential), exact TIA to infinity.
- :func:`psma617`, :func:`psma_it`, :func:`dotatate` -> :class:`PbpkModel`: receptor PBPK (binding, saturation by
  hot + cold ligand, internalisation, release, filtration), diffrax Kvaerno5, failures reported.
- ``model.simulate(params, schedule, times_h)`` -> :class:`Simulation` (``activity_mbq``,
  ``tia_mbq_h``, mass balance, ``ok``). Pure JAX: jit / vmap / grad over the params dict.
- The one linear solver (:mod:`tdt.pbpk._linear_solve`): :func:`solve_piecewise_linear` (matrix
  exponential, any schedule) and the bolus eigen-solution :func:`bolus_exponentials` /
  :func:`bolus_response` / :func:`activity_at` (+ :func:`batched_bolus_exponentials` over draws).
- The model registry (:mod:`tdt.pbpk._registry`): :func:`get_model` (name -> :class:`ModelSpec`:
  radiopharmaceutical, factory, organs, catalog dataset, identifiable subset, dosimetry hooks),
  :func:`model_names`, :func:`register_model`.
- :func:`virtual_cohort`: lognormal population draws, one vmapped jitted solve, organ doses.

Units: h, MBq, MBq·h, nmol, mL, 1/h (docs/architecture.md). See docs/pbpk.md.
"""

from tdt.pbpk._cohort import Cohort, draw_parameters, virtual_cohort
from tdt.pbpk._description import (
    Tissue,
    fluxes,
)
from tdt.pbpk._dotatate import dotatate
from tdt.pbpk._dotatate_ga68 import dotatate_ga68
from tdt.pbpk._grid_solver import (
    MAX_SQUARINGS,
    ROS34PW2,
    frozen_occupancy_propagate,
    geometric_grid,
)
from tdt.pbpk._linear import LinearModel, reduced_linear
from tdt.pbpk._linear_solve import (
    activity_at,
    batched_bolus_exponentials,
    bolus_exponentials,
    bolus_response,
    exponential_sum,
    is_bolus_schedule,
    mammillary_indices,
    solve_piecewise_linear,
)
from tdt.pbpk._nonlinear import (
    PbpkModel,
    specific_activity_mbq_per_nmol,
    total_ligand_nmol,
)
from tdt.pbpk._organs import EXCRETED_COMPARTMENTS, TISSUE_ORGANS
from tdt.pbpk._pairs import (  # noqa: E402
    TheranosticPair,
    build_ligand_model,
    check_pair_models,
    get_pair,
    ligand_table,
    pair_names,
    register_pair,
)
from tdt.pbpk._psma11 import psma11
from tdt.pbpk._psma617 import psma617
from tdt.pbpk._psma_it import psma_it
from tdt.pbpk._registry import (
    ModelSpec,
    get_model,
    identifiable_receptor_parameters,
    model_names,
    register_model,
)
from tdt.pbpk._schedule import Administration, Schedule
from tdt.pbpk._simulation import Simulation

__all__ = [
    "activity_at", "batched_bolus_exponentials", "bolus_exponentials", "bolus_response",
    "exponential_sum", "is_bolus_schedule", "mammillary_indices", "solve_piecewise_linear",
    "Administration", "Cohort", "LinearModel", "PbpkModel", "Schedule", "Simulation",
    "EXCRETED_COMPARTMENTS", "TISSUE_ORGANS", "Tissue", "dotatate", "draw_parameters", "psma617", "psma_it",
    "reduced_linear",
    "specific_activity_mbq_per_nmol", "virtual_cohort",
    "ModelSpec", "get_model", "model_names", "register_model",
    "ROS34PW2", "fluxes", "frozen_occupancy_propagate", "geometric_grid",
    "identifiable_receptor_parameters", "total_ligand_nmol",
    "MAX_SQUARINGS",
    "TheranosticPair", "build_ligand_model", "check_pair_models", "dotatate_ga68", "get_pair",
    "ligand_table", "pair_names", "psma11", "register_pair",
]
