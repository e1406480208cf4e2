"""Laplace draws: ``fit_patient(sampler="laplace")`` (tdt.inference._laplace_draws), the label and
the Pareto-k̂ gate (tdt.inference._diagnostics.gate_flag), and the PBPK twin's QA of a preview.

Independent references: the conjugate normal–normal posterior (closed form: precision
1/s0² + n/σ², mean (m0/s0² + Σy/σ²) / precision; Gelman et al., Bayesian Data Analysis, 3rd ed.,
§2.5), for which the Laplace approximation is exact; a bimodal posterior (y ~ N(x², 0.1²),
y = 1: modes at x = ±1), which a single Gaussian cannot represent (importance weights of a
Gaussian at one mode miss half the mass: Pareto k̂ far above 0.7)."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest
from inference_biexp import BiExponential

from tdt.errors import InputError
from tdt.inference import (
    LAPLACE_LABEL,
    OrganSeries,
    PatientData,
    Posterior,
    compute_diagnostics,
    custom_model,
    fit_patient,
    fit_patients,
    gate_flag,
    simulate_cohort,
)
from tdt.inference._laplace_draws import sample_laplace
from tdt.twin._qa import fit_check

TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])


def test_laplace_draws_reproduce_the_conjugate_normal_posterior():
    y = np.array([0.3, 1.1, -0.2, 0.8])
    m0, s0, sigma = 1.0, 2.0, 0.5
    with pm.Model() as model:
        mu = pm.Normal("mu", m0, s0)
        pm.Normal("y", mu, sigma, observed=y)
    idata, _ = sample_laplace(model, draws=4000, chains=2, seed=1)
    precision = 1 / s0**2 + y.size / sigma**2
    mean, sd = (m0 / s0**2 + y.sum() / sigma**2) / precision, precision ** -0.5
    draws = idata.posterior["mu"].values
    assert draws.shape == (2, 4000)
    # Monte-Carlo SE of the mean of 8000 iid draws: sd/89; of the sd: sd/126
    assert np.mean(draws) == pytest.approx(mean, abs=4 * sd / 89)
    assert np.std(draws) == pytest.approx(sd, abs=4 * sd / 126)
    diagnostics = compute_diagnostics(idata)
    assert diagnostics.method == "laplace" and diagnostics.pareto_k < 0.7
    assert diagnostics.converged and diagnostics.flag == LAPLACE_LABEL
    assert "LAPLACE PREVIEW" in str(diagnostics)


def test_a_bimodal_posterior_fails_the_pareto_gate_and_is_flagged():
    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0)
        pm.Normal("y", x**2, 0.1, observed=[1.0])
    idata, _ = sample_laplace(model, draws=1000, chains=2, seed=1)
    diagnostics = compute_diagnostics(idata)
    assert diagnostics.pareto_k > 0.7
    assert not diagnostics.converged
    assert diagnostics.flag == f"{LAPLACE_LABEL}, NOT CONVERGED"


def test_gate_flag_labels_every_method():
    assert gate_flag(True) == "" and gate_flag(False) == "NOT CONVERGED"
    assert gate_flag(True, "laplace") == "LAPLACE PREVIEW"
    assert gate_flag(False, "laplace") == "LAPLACE PREVIEW, NOT CONVERGED"


def test_fit_patient_laplace_is_labelled_everywhere_and_round_trips(tmp_path):
    lam = 0.6931471805599453 / (6.647 * 24.0)
    clean = 7400 * 0.04 * (np.exp(-(0.026 + lam) * TIMES) - np.exp(-(0.5 + lam) * TIMES))
    rng = np.random.default_rng(0)
    data = PatientData({"kidneys": OrganSeries(TIMES, clean * np.exp(rng.normal(0, .05, 5)))})
    twin = custom_model(BiExponential(("kidneys",)), sampled=("f_kidneys", "kb_kidneys"),
                        prior_median={"kb_kidneys": 0.026}, sd_log=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = fit_patient(data, model=twin, draws=500, chains=2, seed=0, sampler="laplace")
    assert post.diagnostics.method == "laplace"
    assert post.flag.startswith(LAPLACE_LABEL)
    rows = post.predict_doses(radiobiology=False).summary()
    assert rows and all(r["flag"].startswith(LAPLACE_LABEL) for r in rows)
    assert LAPLACE_LABEL in post.report()
    back = Posterior.from_netcdf(post.to_netcdf(tmp_path / "p.nc"), forward=twin.forward)
    assert back.diagnostics.method == "laplace"
    assert back.diagnostics.pareto_k == pytest.approx(post.diagnostics.pareto_k)
    # the TIA is identified by 5 points: the preview agrees with the data's own scale
    tia = np.median(post.tia_draws["kidneys"])
    true_tia = 7400 * 0.04 * (1 / (0.026 + lam) - 1 / (0.5 + lam))
    assert tia == pytest.approx(true_tia, rel=0.1)


def test_fit_patients_laplace_equals_fit_patient_laplace_per_patient():
    """The cohort path (one compilation, observations as an input) gives each patient the draws
    of the per-patient preview with seed ``seed + p`` — an independent second construction of
    the same log density (data embedded as constants, its own jit)."""
    twin = custom_model(BiExponential(("kidneys",)), sampled=("f_kidneys", "kb_kidneys"),
                        sd_log=0.4)
    template = PatientData({"kidneys": OrganSeries(TIMES, np.ones(5))}, patient_id="template")
    cohort = simulate_cohort(template, twin, 3, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = fit_patients(cohort.datasets, model=twin, draws=200, chains=2, seed=5,
                             sampler="laplace")
        singles = [fit_patient(d, model=twin, draws=200, chains=2, seed=5 + p, sampler="laplace")
                   for p, d in enumerate(cohort.datasets)]
    assert len(batch) == 3
    for b, s in zip(batch, singles, strict=True):
        assert b.diagnostics.method == "laplace" and b.flag.startswith(LAPLACE_LABEL)
        assert b.diagnostics.pareto_k == pytest.approx(s.diagnostics.pareto_k, abs=1e-3)
        for name in ("theta", "noise_sd", "tia_mbq_h"):
            np.testing.assert_allclose(b.idata.posterior[name].values,
                                       s.idata.posterior[name].values, rtol=1e-5)
    with pytest.raises(InputError, match="sampler"):
        fit_patients(cohort.datasets, model=twin, sampler="metropolis")


def test_qa_fit_check_of_a_laplace_preview_warns_or_fails():
    ok = fit_check({"converged": True, "method": "laplace", "pareto_k": 0.3})
    assert ok.status == "warn" and "LAPLACE PREVIEW" in ok.message
    bad = fit_check({"converged": False, "method": "laplace", "pareto_k": 1.2})
    assert bad.status == "fail" and "NOT usable" in bad.message
    assert fit_check({"converged": True, "method": "nuts"}).status == "pass"
