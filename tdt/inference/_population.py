"""Hierarchical population model (partial pooling) across patients: :func:`fit_population`.

log θ_p = A w_p, w_p = A⁻¹μ + τ_w ⊙ z_p, in the population coordinates of
:func:`tdt.inference._pymc_models.population_coordinates` (A = I except for the reduced model,
whose identified uptake ratios and washouts are centred effects and the clearance scale a
non-centred one; :func:`tdt.inference._pymc_models.build_population_model`).
The population posterior becomes the prior of a new patient through its posterior-predictive
distribution of log θ_new = A(A⁻¹μ + τ_w ⊙ z), z ~ N(0, I), approximated by a multivariate
normal with matched moments (mean E[μ], covariance Cov(μ) + A diag E[τ_w²] Aᵀ) — the standard Gaussian summary of
a hierarchical posterior used as an informative prior (Gelman et al., Bayesian Data Analysis,
3rd ed., §5.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import arviz as az
import numpy as np

from tdt.errors import InputError
from tdt.inference._data import PatientData
from tdt.inference._diagnostics import Diagnostics, compute_diagnostics
from tdt.inference._measurement import MeasurementModel
from tdt.inference._models import TwinModel, resolve_model
from tdt.inference._nuts import run_sampler, sample_laplace_nuts
from tdt.inference._posterior import Posterior, _flatten
from tdt.inference._pymc_models import build_population_model, population_coordinates
from tdt.inference._sampling import _check_counts, _gate


@dataclass
class PopulationPosterior:
    """Posterior of the hierarchical model.

    idata: InferenceData with ``mu``, ``tau`` (param), ``log_theta`` (patient, param),
    ``tia_mbq_h_<p>`` per patient; diagnostics: the gate over mu, tau, z and the TIAs.
    """

    idata: object
    diagnostics: Diagnostics
    twin: TwinModel
    datasets: list[PatientData]
    schedules: list
    measurement: MeasurementModel

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    @property
    def mu_draws(self) -> np.ndarray:
        """(n_draws, n_params) population mean of log θ."""
        return _flatten(self.idata.posterior["mu"])

    @property
    def tau_draws(self) -> np.ndarray:
        """(n_draws, n_params) between-patient SD of log θ."""
        return _flatten(self.idata.posterior["tau"])

    def predictive_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of log θ of a new patient (see module docstring).

        With the hierarchy in coordinates w (log θ = A w, ``tau_w`` sampled;
        :func:`~tdt.inference._pymc_models.population_coordinates`) the between-patient
        covariance is A diag(E[tau_w²]) Aᵀ."""
        mu = self.mu_draws
        loc = mu.mean(axis=0)
        cov_mu = np.cov(mu, rowvar=False).reshape(loc.size, loc.size)
        if "tau_w" in self.idata.posterior:
            a, _, _ = population_coordinates(self.twin)
            tau_w = _flatten(self.idata.posterior["tau_w"])
            return loc, cov_mu + a @ np.diag(np.mean(tau_w**2, axis=0)) @ a.T
        return loc, cov_mu + np.diag(np.mean(self.tau_draws**2, axis=0))

    def prior_model(self) -> TwinModel:
        """The twin model with the population posterior-predictive as its prior (for new
        patients, e.g. :func:`fit_single_time_point`)."""
        loc, cov = self.predictive_moments()
        return self.twin.with_prior(loc, cov)

    def patient_posterior(self, index: int) -> Posterior:
        """The (partially pooled) posterior of patient ``index`` as a :class:`Posterior`."""
        if not 0 <= index < len(self.datasets):
            raise InputError(f"patient index {index}; expected 0..{len(self.datasets) - 1}")
        post = self.idata.posterior
        log_theta = post["log_theta"].isel(patient=index).values
        if "tia_mbq_h" in post:  # vectorised model: (chain, draw, patient, organ)
            tia = post["tia_mbq_h"].isel(patient=index)
        else:
            tia = post[f"tia_mbq_h_{index}"]
        organs = [str(o) for o in tia.coords[tia.dims[-1]].values]
        idata = az.from_dict(
            posterior={"log_theta": log_theta, "theta": np.exp(log_theta),
                       "tia_mbq_h": tia.values},
            coords={"param": list(self.twin.sampled), "organ": organs},
            dims={"log_theta": ["param"], "theta": ["param"], "tia_mbq_h": ["organ"]},
        )
        if hasattr(self.idata, "sample_stats"):
            idata.add_groups(sample_stats=self.idata.sample_stats)
        return Posterior(idata, twin=self.twin, data=self.datasets[index],
                         diagnostics=self.diagnostics, schedule=self.schedules[index],
                         measurement=self.measurement)


def fit_population(datasets: Sequence[PatientData], model: str | TwinModel = "reduced",
                   draws: int = 1000, chains: int = 4, tune: int = 1000, seed: int = 0,
                   measurement: MeasurementModel | None = None, schedules=None,
                   tau_scale: float = 0.5, target_accept: float = 0.95,
                   dense_mass: bool = True, require_convergence: bool = False,
                   centred: bool = False, metric: str = "laplace",
                   max_tree_depth: int = 10) -> PopulationPosterior:
    """Fit the hierarchical (partial-pooling) model to several patients.

    Every patient must have the same organs (the model's); times, sessions, schedules and
    volumes may differ. ``tau_scale``: HalfNormal scale of the between-patient SD of log θ.

    Sampler: numpyro NUTS, vectorised chains. ``metric="laplace"`` (default): dense metric =
    inverse Hessian at the posterior mode, fixed; warm-up adapts the step size only
    (:func:`tdt.inference._nuts.sample_laplace_nuts`). ``metric="adapt"``: numpyro's windowed adaptation
    (dense when ``dense_mass``). ``centred=True`` centres every coordinate (not recommended:
    a weakly identified between-patient SD collapses; measured).
    Measured on 20 standard patients, 4 × (1000 + 1000): 166 s, converged (docs/inference.md).
    """
    datasets = list(datasets)
    if len(datasets) < 2 or not all(isinstance(d, PatientData) for d in datasets):
        raise InputError("fit_population: datasets must be a list of >= 2 PatientData")
    _check_counts(draws, chains, tune, seed)
    organs = datasets[0].organ_names
    for i, d in enumerate(datasets):
        if d.organ_names != organs:
            raise InputError(f"fit_population: datasets[{i}].organs {d.organ_names}; expected "
                             f"the organs of datasets[0] {organs}")
    ids = [d.patient_id for d in datasets]
    if len(set(ids)) != len(ids):
        raise InputError(f"fit_population: patient_id values must be unique; got {ids}")
    measurement = measurement or MeasurementModel()
    twin = resolve_model(model, datasets[0])
    schedules = list(schedules) if schedules is not None else [d.resolve_schedule()
                                                               for d in datasets]
    if metric not in ("laplace", "adapt"):
        raise InputError(f"metric: {metric!r}; expected 'laplace' or 'adapt'")
    pm_model = build_population_model(datasets, twin, measurement, schedules,
                                      tau_scale=tau_scale, centred=centred)
    if metric == "laplace":
        idata, wall = sample_laplace_nuts(pm_model, draws=draws, tune=tune, chains=chains,
                                          seed=seed, target_accept=target_accept,
                                          max_tree_depth=max_tree_depth)
    else:
        idata, wall = run_sampler(pm_model, draws=draws, tune=tune, chains=chains, seed=seed,
                                  target_accept=target_accept, dense_mass=dense_mass,
                                  max_tree_depth=max_tree_depth)
    gate_vars = (["mu", "tau", "tau_w", "z", "noise_sd", "log_calibration", "log_recovery",
                  "tia_mbq_h"]
                 + [f"tia_mbq_h_{p}" for p in range(len(datasets))])
    diagnostics = compute_diagnostics(idata, gate_vars, sampling_time_s=wall)
    _gate(diagnostics, require_convergence, "fit_population")
    return PopulationPosterior(idata, diagnostics, twin, datasets, schedules, measurement)
