"""Population model, single-time-point dosimetry, batch fits and calibration."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from inference_biexp import LAMBDA_LU177, BiExponential

from tdt.errors import InputError
from tdt.inference import (
    MeasurementModel,
    OrganSeries,
    PatientData,
    TwinModel,
    central_interval_coverage,
    custom_model,
    fit_patients,
    fit_population,
    fit_single_time_point,
    haenscheid_tia,
    madsen_tia,
    simulate_cohort,
)

pbpk = pytest.importorskip("tdt.pbpk")
TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])


def _twin():
    return custom_model(BiExponential(("kidneys",)), sampled=("f_kidneys", "kb_kidneys"),
                        sd_log=0.4)


def _template():
    return PatientData({"kidneys": OrganSeries(TIMES, np.ones(5))}, patient_id="template")


# ------------------------------------------------------------------ single-time-point formulas
def test_madsen_is_exact_for_a_monoexponential():
    # A(t) = A0 exp(-λ t) has TIA = A0/λ (elementary integral); Madsen's formula inverts it.
    a0, t_eff = 500.0, 40.0
    lam = math.log(2) / t_eff
    for t in (24.0, 96.0, 168.0):
        assert madsen_tia(a0 * math.exp(-lam * t), t, t_eff) == pytest.approx(a0 / lam)


def test_haenscheid_against_the_monoexponential_identity():
    # For A(t) = A0 exp(-λt) the exact TIA is A0/λ, so Hänscheid's ratio estimate/exact is
    # 2x e^{-x}/ln 2 with x = λt: maximal (+6.1 %, 2/(e ln 2)) at t = 1/λ = 1.44 T_eff and
    # within ±12 % for 0.8 T_eff <= t <= 2.4 T_eff (Hänscheid et al., JNM 2018;59:75, Fig. 1).
    a0, t_eff = 500.0, 40.0
    lam = math.log(2) / t_eff
    for t in np.linspace(0.8 * t_eff, 2.4 * t_eff, 12):
        ratio = haenscheid_tia(a0 * math.exp(-lam * t), t) * lam / a0
        x = lam * t
        assert ratio == pytest.approx(2 * x * math.exp(-x) / math.log(2), rel=1e-12)
        assert abs(ratio - 1) < 0.12
    peak = haenscheid_tia(a0 * math.exp(-1.0), 1 / lam) * lam / a0
    assert peak == pytest.approx(2 / (math.e * math.log(2)), rel=1e-12)


def test_formula_input_errors():
    with pytest.raises(InputError, match="activity_mbq"):
        haenscheid_tia(-1.0, 24.0)
    with pytest.raises(InputError, match="effective_half_life_h"):
        madsen_tia(1.0, 24.0, 0.0)


def test_single_time_point_requires_one_point():
    data = _template()
    with pytest.raises(InputError, match="exactly one"):
        fit_single_time_point(data, _twin())
    with pytest.raises(InputError, match="prior"):
        fit_single_time_point(data.at_times([96.0]), "population")


def test_batch_requires_one_protocol():
    a = _template()
    b = PatientData({"kidneys": OrganSeries(TIMES[:4], np.ones(4))}, patient_id="b")
    with pytest.raises(InputError, match="protocol"):
        fit_patients([a, b], model=_twin())


def test_population_requires_same_organs():
    a = _template()
    b = PatientData({"liver": OrganSeries(TIMES, np.ones(5))}, patient_id="b")
    with pytest.raises(InputError, match="organs"):
        fit_population([a, b], model=_twin())


def test_prior_predictive_simulation_matches_prior():
    # The simulated truths follow the prior: log f ~ N(log 0.04, 0.4) (moments, 400 draws).
    cohort = simulate_cohort(_template(), _twin(), 400, seed=3,
                             measurement=MeasurementModel(fixed_noise_sd=0.05))
    log_f = cohort.true_log_theta[:, 0]
    assert np.mean(log_f) == pytest.approx(math.log(0.04), abs=4 * 0.4 / 20)
    assert np.std(log_f) == pytest.approx(0.4, rel=0.15)
    assert len(cohort.datasets) == 400


# ------------------------------------------------------------------ sampling (slow)
@pytest.mark.slow
def test_calibration_smoke_biexponential():
    # SBC smoke: 12 patients from the prior, 50 % / 90 % intervals of the TIA cover the truth
    # at roughly nominal rates (wide tolerance for n = 12: binomial SD ~ 0.14 at p = 0.5).
    meas = MeasurementModel(fixed_noise_sd=0.1)
    cohort = simulate_cohort(_template(), _twin(), 12, seed=11, measurement=meas)
    posts = fit_patients(cohort.datasets, model=_twin(), draws=300, tune=300, chains=2, seed=2,
                         measurement=meas)
    cover = central_interval_coverage([p.tia_draws["kidneys"] for p in posts],
                                      cohort.true_tia_mbq_h["kidneys"])
    assert abs(cover[0.5] - 0.5) <= 0.35
    assert cover[0.9] >= 0.6


@pytest.mark.slow
def test_population_fit_and_prior_for_new_patient():
    rng = np.random.default_rng(4)
    lam = LAMBDA_LU177
    datasets = []
    for p in range(4):
        f, kb = 0.05 * math.exp(0.2 * rng.normal()), 0.025 * math.exp(0.2 * rng.normal())
        clean = 7400 * f * (np.exp(-(kb + lam) * TIMES) - np.exp(-(0.5 + lam) * TIMES))
        datasets.append(PatientData({"kidneys": OrganSeries(
            TIMES, clean * np.exp(rng.normal(0, 0.05, 5)))}, patient_id=f"p{p}"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pop = fit_population(datasets, model=_twin(), draws=300, tune=300, chains=2, seed=1,
                             measurement=MeasurementModel(fixed_noise_sd=0.05))
    prior = pop.prior_model()
    assert isinstance(prior, TwinModel)
    loc, cov = pop.predictive_moments()
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    # population mean of f moves from the prior median 0.04 towards the truth 0.05
    assert abs(math.exp(loc[0]) - 0.05) < abs(0.04 - 0.05)
    post = pop.patient_posterior(0)
    assert post.tia_draws["kidneys"].shape == (600,)
    stp = datasets[0].at_times([96.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = fit_single_time_point(stp, pop, draws=200, tune=200, chains=2, seed=0,
                                       measurement=MeasurementModel(fixed_noise_sd=0.05))
    width_single = np.subtract(*np.percentile(single.tia_draws["kidneys"], [95, 5]))
    width_pooled = np.subtract(*np.percentile(post.tia_draws["kidneys"], [95, 5]))
    assert width_single > width_pooled
