"""tdt.twin — the living twin: assimilate each cycle, predict the next, plan under risk, QA.

Public API (see docs/twin.md):

- :class:`DoseDraws` — per-draw, per-organ response of future cycles (dose/MBq, BED coefficient);
- :func:`plan`, :class:`Constraint`, :class:`Policy`, :class:`TcpModel`, :class:`Plan`,
  :func:`evaluate`, :func:`max_uniform_activity`, :func:`exceedance_probability`;
- :func:`plan_activity_and_ligand` (activity AND ligand amount through a receptor PBPK),
  :func:`plan_ligand_per_cycle` (both chosen per remaining cycle),
  :class:`LigandPlan`, :class:`LigandResponse` (per-draw d(L), q(L)), :func:`ligand_sweep`
  (the uniform plan and its constraint probabilities as functions of the ligand amount);
- :class:`Twin` (assimilate / predict / plan / save / load), :class:`PatientRecord`,
  :class:`CycleData`, :class:`Calibration`, :class:`DriftModel`, :class:`GaussianPosterior`;
- :class:`QAReport`, :class:`AuditLog`, :func:`virtual_trial`, :func:`virtual_trial_cohort`,
  :func:`virtual_trial_pbpk` (the trial on the receptor-PBPK twin, Laplace preview).
"""

from tdt.twin._assimilate import DriftModel, GaussianPosterior, assimilate_laplace
from tdt.twin._audit import AuditLog
from tdt.twin._draws import DoseDraws, quadratic_bed_coefficient
from tdt.twin._ligand_response import LigandResponse
from tdt.twin._ligand_sweep import ligand_sweep
from tdt.twin._plan import (
    DEFAULT_CONSTRAINTS,
    KIDNEY_BED_28,
    KIDNEY_BED_40,
    RED_MARROW_DOSE_2,
    Constraint,
    Plan,
    Policy,
    ScheduleEvaluation,
    TcpModel,
    evaluate,
    exceedance_probability,
    max_uniform_activity,
    plan,
)
from tdt.twin._plan_ligand import LigandPlan, plan_activity_and_ligand
from tdt.twin._plan_ligand_cycles import plan_ligand_per_cycle
from tdt.twin._predict import Prediction, credible_width
from tdt.twin._qa import QAReport
from tdt.twin._record import Calibration, CycleData, PatientRecord
from tdt.twin._tissues import LinearQuadratic, tissue_parameters
from tdt.twin._trial import TrialResult, virtual_trial, virtual_trial_cohort
from tdt.twin._trial_pbpk import virtual_trial_pbpk
from tdt.twin._twin import Twin
from tdt.twin._twin_models import default_twin_model

__all__ = [
    "AuditLog", "Calibration", "CycleData", "DriftModel", "GaussianPosterior", "Prediction",
    "PatientRecord", "QAReport", "TrialResult", "Twin", "virtual_trial_cohort", "virtual_trial",
    "virtual_trial_pbpk", "assimilate_laplace", "credible_width",
    "default_twin_model",
    "DEFAULT_CONSTRAINTS", "KIDNEY_BED_28", "KIDNEY_BED_40", "RED_MARROW_DOSE_2", "Constraint",
    "DoseDraws", "LinearQuadratic", "Plan", "Policy", "ScheduleEvaluation", "TcpModel", "evaluate",
    "exceedance_probability", "max_uniform_activity", "plan", "quadratic_bed_coefficient",
    "tissue_parameters", "LigandPlan", "LigandResponse", "plan_activity_and_ligand",
    "ligand_sweep", "plan_ligand_per_cycle",
]
