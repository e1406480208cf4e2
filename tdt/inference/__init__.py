"""tdt.inference — the Bayesian twin: PyMC inference on the JAX forward models.

- :class:`PatientData` / :class:`OrganSeries`: image-derived time–activity data, validated.
- :class:`MeasurementModel`: proportional (lognormal / Student-t) noise, calibration factor per
  camera session, partial-volume recovery (:func:`sphere_recovery_coefficient`).
- :class:`TwinModel` and :func:`reduced_model`, :func:`pbpk_model`, :func:`custom_model`:
  forward model + lognormal prior on its identifiable parameters.
- :func:`fit_patient` → :class:`Posterior` (ArviZ InferenceData, :class:`Diagnostics` with the
  convergence gate, ``tia_draws``, ``dose_draws``, ``predict``, ``predict_doses``,
  ``summary``, ``to_netcdf`` / ``from_netcdf``).
- :func:`fit_patients`: many patients of one protocol in one vmapped NUTS run.
- :func:`run_sbc` / :func:`simulate_cohort`: simulation-based calibration;
  :func:`run_sbc_pbpk` (+ :func:`summarise_sbc_records`): the same for the receptor PBPK.
- :func:`fit_population` (hierarchical, partial pooling) → :class:`PopulationPosterior`, whose
  ``prior_model()`` is the prior of a new patient; :func:`site_statistics` /
  :func:`combine_site_statistics` (default; site aggregate statistics) or :func:`site_summary` /
  :func:`combine_site_summaries` (site posteriors) → :class:`FederatedPrior`: the same prior
  learned by several sites without sharing patient data (:mod:`tdt.inference._federated_stats`,
  :mod:`tdt.inference._federated`); :func:`fit_single_time_point` and the
  Hänscheid / Madsen single-time-point formulas.

The forward model enters PyMC through ``pytensor.wrap_jax``; sampling uses numpyro's NUTS
(vectorised chains, float64). See docs/inference.md.

Importing tdt.inference sets equinox's runtime-error mode to ``"nan"`` (unless ``EQX_ON_ERROR``
is set): a failed implicit ODE solve inside the sampler's gradient must reject the proposal,
not raise (:func:`tdt.inference._bridge.use_nan_on_solver_error`).
"""

from tdt.inference._bridge import use_nan_on_solver_error

use_nan_on_solver_error()  # a failed implicit solve inside NUTS: rejected, not an exception

from tdt.inference._batch import fit_patients  # noqa: E402
from tdt.inference._bridge import schedule_amounts, with_amounts  # noqa: E402
from tdt.inference._data import BloodSamples, OrganSeries, PatientData  # noqa: E402
from tdt.inference._diagnostics import (  # noqa: E402
    LAPLACE_LABEL,
    Diagnostics,
    compute_diagnostics,
    gate_flag,
)
from tdt.inference._fast_pbpk import solve_boluses  # noqa: E402
from tdt.inference._federated import (  # noqa: E402
    FederatedPrior,
    SiteSummary,
    combine_site_summaries,
    site_summary,
)
from tdt.inference._federated_sim import compare_methods as compare_federated_methods  # noqa: E402
from tdt.inference._federated_sim import run_scenario as run_federated_scenario  # noqa: E402
from tdt.inference._federated_sim import two_parameter_twin  # noqa: E402
from tdt.inference._federated_stats import SiteStatistics, site_statistics  # noqa: E402
from tdt.inference._federated_twostage import combine_site_statistics  # noqa: E402
from tdt.inference._gaussian_state import DriftModel, GaussianPosterior  # noqa: E402
from tdt.inference._laplace import laplace_mode  # noqa: E402
from tdt.inference._laplace_program import LaplaceProgram  # noqa: E402
from tdt.inference._measurement import (  # noqa: E402
    GTM_RECOVERY_SD,
    MeasurementModel,
    recovery_coefficients,
    sphere_recovery_coefficient,
)
from tdt.inference._models import TwinModel, custom_model, pbpk_model, reduced_model  # noqa: E402
from tdt.inference._population import PopulationPosterior, fit_population  # noqa: E402
from tdt.inference._posterior import (  # noqa: E402
    DosePrediction,
    Posterior,
    is_dose_bearing,
    summarise_draws,
)
from tdt.inference._predictive import (  # noqa: E402
    L2_L4_TIA_SD_LOG,
    blood_marrow_tia_draws,
    dose_prediction,
    doses_from_tia,
    effective_half_life_h,
    l2_l4_marrow_tia_draws,
)
from tdt.inference._pretherapy import (  # noqa: E402
    TherapyPosterior,
    lesion_geometry,
    predict_therapy_from_pet,
    with_draws,
)
from tdt.inference._sampling import fit_patient  # noqa: E402
from tdt.inference._sbc import (  # noqa: E402
    central_interval_coverage,
    rank_statistics,
    run_sbc,
    simulate_cohort,
    standard_template,
)
from tdt.inference._sbc_pbpk import (  # noqa: E402
    read_sbc_records,
    run_sbc_pbpk,
    summarise_sbc_records,
)
from tdt.inference._single_time_point import (  # noqa: E402
    bayesian_stp_tia,
    fit_single_time_point,
    haenscheid_tia,
    madsen_tia,
)

__all__ = [
    "GTM_RECOVERY_SD", "Diagnostics", "DosePrediction", "FederatedPrior", "MeasurementModel",
    "OrganSeries", "PatientData", "PopulationPosterior", "Posterior", "TwinModel",
    "central_interval_coverage", "rank_statistics", "compute_diagnostics", "custom_model", "fit_patient", "fit_patients",
    "fit_population", "fit_single_time_point", "haenscheid_tia", "madsen_tia", "pbpk_model",
    "reduced_model", "recovery_coefficients", "SiteSummary", "combine_site_summaries", "run_sbc",
    "simulate_cohort", "site_summary", "sphere_recovery_coefficient", "standard_template",
    "summarise_draws", "bayesian_stp_tia", "effective_half_life_h", "run_federated_scenario",
    "two_parameter_twin", "doses_from_tia", "SiteStatistics", "site_statistics",
    "combine_site_statistics", "compare_federated_methods",
    "DriftModel", "GaussianPosterior", "laplace_mode",
    "is_dose_bearing", "dose_prediction", "solve_boluses",
    "TherapyPosterior", "predict_therapy_from_pet", "BloodSamples", "blood_marrow_tia_draws",
    "l2_l4_marrow_tia_draws", "L2_L4_TIA_SD_LOG",
    "run_sbc_pbpk", "summarise_sbc_records", "read_sbc_records", "lesion_geometry", "with_draws",
    "LAPLACE_LABEL", "gate_flag", "LaplaceProgram", "schedule_amounts", "with_amounts",
]
