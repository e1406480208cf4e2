"""Simulation-based calibration (SBC) of the Bayesian twin.

Patients are simulated from the *prior predictive* of the very PyMC model that is fitted
(``pymc.sample_prior_predictive``: kinetic parameters, calibration factors, recovery
coefficients, noise SD and noisy activities), fitted with :func:`fit_patients`, and the truth is
compared with the posterior: if inference is correct, the p % central credible interval covers
the truth in p % of patients (Talts, Betancourt, Simpson, Vehtari, Gelman, arXiv:1804.06788;
Cook, Gelman, Rubin, JCGS 2006;15:675).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm

from tdt.inference._batch import fit_patients
from tdt.inference._data import OrganSeries, PatientData
from tdt.inference._measurement import MeasurementModel
from tdt.inference._models import TwinModel, reduced_model
from tdt.inference._predictive import doses_from_tia, effective_half_life_h
from tdt.inference._pymc_models import build_patient_model
from tdt.inference._single_time_point import haenscheid_tia, madsen_tia


@dataclass
class SimulatedCohort:
    """Patients simulated from the prior predictive, with their true values.

    datasets: list of :class:`PatientData`; true_tia_mbq_h: organ → (n_patients,);
    true_log_theta: (n_patients, n_params); true_activity_mbq: organ → (n_patients, n_times)
    (noise-free, true activity).
    """

    datasets: list[PatientData]
    true_tia_mbq_h: dict[str, np.ndarray]
    true_log_theta: np.ndarray
    extra: dict = field(default_factory=dict)


def simulate_cohort(template: PatientData, twin: TwinModel, n_patients: int, seed: int = 0,
                    measurement: MeasurementModel | None = None, schedule=None
                    ) -> SimulatedCohort:
    """Simulate ``n_patients`` with ``template``'s protocol (organs, times, volumes, sessions)
    from the prior predictive of the patient model (activities of ``template`` are ignored)."""
    measurement = measurement or MeasurementModel()
    schedule = template.resolve_schedule() if schedule is None else schedule
    model = build_patient_model(template, twin, measurement, schedule)
    with model, warnings.catch_warnings():
        # The only Potential is the solver-failure guard (0 when the solve succeeds), so
        # ignoring it in prior predictive sampling changes nothing for successful solves; a
        # failed solve would show as non-finite activities, rejected by PatientData.
        warnings.filterwarnings("ignore", message="The effect of Potentials")
        prior = pm.sample_prior_predictive(draws=n_patients, random_seed=seed,
                                           var_names=["log_theta", "tia_mbq_h", "log_activity"])
    log_y = prior.prior_predictive["log_activity"].values[0]  # (n, n_obs)
    tia = prior.prior["tia_mbq_h"].values[0]  # (n, n_organs)
    log_theta = prior.prior["log_theta"].values[0]
    flat = template.flat()
    datasets = []
    for p in range(n_patients):
        organs = {}
        for i, (name, series) in enumerate(template.organs.items()):
            rows = flat["organ_index"] == i
            organs[name] = OrganSeries(series.times_h, np.exp(log_y[p, rows]), series.volume_ml,
                                       series.recovery, series.sessions)
        datasets.append(template._replace(organs=organs, patient_id=f"sim-{p:03d}"))
    return SimulatedCohort(
        datasets=datasets,
        true_tia_mbq_h={o: tia[:, i] for i, o in enumerate(template.organ_names)},
        true_log_theta=log_theta,
    )


def central_interval_coverage(draws: Sequence[np.ndarray], truth: np.ndarray,
                              levels: Sequence[float] = (0.5, 0.9)) -> dict[float, float]:
    """Fraction of patients whose central ``level`` credible interval contains the truth."""
    out = {}
    for level in levels:
        lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
        hits = [np.percentile(d, lo_q) <= t <= np.percentile(d, hi_q)
                for d, t in zip(draws, truth, strict=True)]
        out[float(level)] = float(np.mean(hits))
    return out


def rank_statistics(draws: Sequence[np.ndarray], truth: np.ndarray) -> np.ndarray:
    """SBC rank of the truth among the draws, scaled to [0, 1] (uniform when calibrated)."""
    return np.asarray([np.mean(np.asarray(d) < t) for d, t in zip(draws, truth, strict=True)])


def interval_width(draws: Sequence[np.ndarray], level: float = 0.9,
                   relative: bool = True) -> np.ndarray:
    """Width of the central credible interval per patient (relative to the median)."""
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
    widths = []
    for d in draws:
        lo, med, hi = np.percentile(d, [lo_q, 50, hi_q])
        widths.append((hi - lo) / med if relative else hi - lo)
    return np.asarray(widths)


#: The standard patient of the issue: kidneys, salivary glands, liver and two lesions, five
#: SPECT/CT time points, 7.4 GBq (lesion VOI volumes 10 and 4 mL → recovery < 1).
STANDARD_ORGANS = ("kidneys", "salivary_glands", "liver", "lesion_1", "lesion_2")
STANDARD_TIMES_H = (4.0, 24.0, 48.0, 96.0, 168.0)
STANDARD_LESION_VOLUMES_ML = {"lesion_1": 10.0, "lesion_2": 4.0}


def standard_template(organs=STANDARD_ORGANS, times_h=STANDARD_TIMES_H,
                      administered_activity_mbq: float = 7400.0) -> PatientData:
    """A :class:`PatientData` protocol template (activities are placeholders)."""
    return PatientData(
        {o: OrganSeries(list(times_h), [1.0] * len(times_h),
                        volume_ml=STANDARD_LESION_VOLUMES_ML.get(o)) for o in organs},
        administered_activity_mbq=administered_activity_mbq, patient_id="template")


def run_sbc(n_patients: int = 50, twin: TwinModel | None = None, template=None,
            draws: int = 500, tune: int = 500, chains: int = 2, seed: int = 0,
            organ: str = "kidneys", stp_time_h: float | None = 96.0,
            measurement: MeasurementModel | None = None) -> dict:
    """SBC of ``organ``'s TIA and absorbed dose (multi- and single-time-point).

    Returns a dict with coverage of the 50 % / 90 % central intervals, the median absolute
    relative error of the posterior-median dose, the relative 90 % interval width, the share of
    converged fits and (single time point) the errors of the Hänscheid and Madsen formulas.
    """
    template = template or standard_template()
    twin = twin or reduced_model(template.organ_names, nuclide=template.nuclide)
    cohort = simulate_cohort(template, twin, n_patients, seed=seed, measurement=measurement)
    volumes = {o: s.volume_ml for o, s in template.organs.items() if s.volume_ml is not None}
    true_dose = doses_from_tia(cohort.true_tia_mbq_h, template.nuclide, "adult-male", None,
                               volumes)[organ]
    true_tia = cohort.true_tia_mbq_h[organ]

    def evaluate(posteriors):
        tia = [p.tia_draws[organ] for p in posteriors]
        dose = [p.dose_draws()[organ] for p in posteriors]
        med = np.asarray([np.median(d) for d in dose])
        return {
            "coverage_tia": central_interval_coverage(tia, true_tia),
            "coverage_dose": central_interval_coverage(dose, true_dose),
            "median_abs_rel_error_dose": float(np.median(np.abs(med / true_dose - 1))),
            "median_rel_width90_dose": float(np.median(interval_width(dose))),
            "ranks_dose": rank_statistics(dose, true_dose).tolist(),
            "converged_fraction": float(np.mean([p.converged for p in posteriors])),
            "max_rhat": float(max(p.diagnostics.max_rhat for p in posteriors)),
            "min_ess_bulk": float(min(p.diagnostics.min_ess_bulk for p in posteriors)),
            "divergences": int(sum(p.diagnostics.divergences for p in posteriors)),
            "sampling_time_s": float(posteriors[0].diagnostics.sampling_time_s),
        }

    result = {"n_patients": n_patients, "organ": organ, "times_h": list(template.times_h),
              "draws": draws, "tune": tune, "chains": chains, "seed": seed}
    posts = fit_patients(cohort.datasets, model=twin, draws=draws, tune=tune, chains=chains,
                         seed=seed, measurement=measurement)
    result["multi"] = evaluate(posts)
    if stp_time_h is not None:
        stp_data = [d.at_times([stp_time_h]) for d in cohort.datasets]
        stp_posts = fit_patients(stp_data, model=twin, draws=draws, tune=tune, chains=chains,
                                 seed=seed + 1, measurement=measurement)
        result["single"] = evaluate(stp_posts)
        result["single"]["time_h"] = stp_time_h
        # classical formulas on the same measured activity (kidney dose ∝ TIA for self-dose;
        # compared on the TIA)
        measured = np.asarray([d.organs[organ].activity_mbq[0] for d in stp_data])
        grid = np.linspace(24.0, 168.0, 13)
        def tac(lt):
            act, _, _ = twin.simulate(lt, template.resolve_schedule(), jnp.asarray(grid),
                                      (organ,))
            return act[0]

        true_tacs = np.asarray(jax.vmap(tac)(jnp.asarray(cohort.true_log_theta)))
        t_eff_pop = float(np.median(effective_half_life_h(grid, true_tacs, 24.0, 168.0)))
        h = haenscheid_tia(measured, stp_time_h)
        m = madsen_tia(measured, stp_time_h, t_eff_pop)
        bayes = np.asarray([np.median(p.tia_draws[organ]) for p in stp_posts])
        result["single"]["population_t_eff_h"] = t_eff_pop
        for name, est in (("haenscheid", h), ("madsen", m), ("bayes_median", bayes)):
            err = est / true_tia - 1
            result["single"][f"{name}_median_abs_rel_error_tia"] = float(np.median(np.abs(err)))
            result["single"][f"{name}_median_rel_error_tia"] = float(np.median(err))
    return result
