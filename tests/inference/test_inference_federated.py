"""Federated population priors: site summaries, combination, validation against pooling."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from inference_biexp import BiExponential

from tdt.errors import InputError
from tdt.inference import _federated_sim as fs
from tdt.inference import custom_model
from tdt.inference._federated import (
    FederatedPrior,
    SiteSummary,
    combine_site_summaries,
    estimate_heterogeneity,
    site_summary_from_draws,
)

TRUE_SHIFT = np.array([0.2, -0.1])
TAU = np.array([0.3, 0.25])


def _twin():
    return custom_model(BiExponential(("kidneys",)), sampled=("f_kidneys", "kb_kidneys"),
                        sd_log=0.4)


def _prior_sd(twin):
    return np.sqrt(np.sum(twin.prior_chol**2, axis=1))


def _summaries(sites, twin, seed=0):
    out = []
    for s in sites:
        mu, tau = fs.grid_population_draws(s.x, s.sigma, twin.prior_loc, _prior_sd(twin),
                                           seed=seed)
        out.append(site_summary_from_draws(
            mu, tau, site=s.name, n_patients=len(s.x), twin=twin, tau_scale=0.5,
            radiopharmaceutical="177Lu-PSMA-617", organs=("kidneys",),
            times_h=(4.0, 24.0, 96.0)))
    return out


def _pooled(sites, twin, seed=0):
    x = np.concatenate([s.x for s in sites])
    sig = np.concatenate([np.full(len(s.x), s.sigma) for s in sites])
    mu, tau = fs.grid_population_draws(x, sig, twin.prior_loc, _prior_sd(twin), seed=seed)
    return fs.predictive_from_draws(mu, tau)


def _gaussian_summary(twin, mean, cov, site="A"):
    p = twin.n_params
    return SiteSummary(site=site, n_patients=5, radiopharmaceutical="177Lu-PSMA-617",
                       model_kind="custom", params=twin.sampled, params_w=twin.sampled,
                       coordinates=np.eye(p), mean=mean, cov=cov, prior_loc=twin.prior_loc,
                       prior_sd=_prior_sd(twin), tau_scale=0.5)


# ------------------------------------------------------------------ combination identities
def test_consensus_is_product_of_posteriors_divided_by_prior():
    # Independent reference: for Gaussian site posteriors N(m_s, C_s) under a Gaussian prior
    # N(p0, P0), the full-data posterior is ∝ Π_s N(m_s, C_s) / N(p0, P0)^(S-1): precision
    # Σ C_s⁻¹ − (S−1) P0⁻¹, information Σ C_s⁻¹ m_s − (S−1) P0⁻¹ p0 (Gaussian algebra).
    twin = _twin()
    rng = np.random.default_rng(0)
    sums = []
    for s in range(3):
        a = rng.normal(size=(4, 4)) * 0.05
        cov = a @ a.T + np.diag([0.01, 0.02, 0.005, 0.004])
        sums.append(_gaussian_summary(twin, rng.normal(0, 0.2, 4) + [-3, -4, 0.3, 0.2], cov,
                                      site=f"S{s}"))
    p0, P0 = sums[0].prior_moments()
    prec = sum(np.linalg.inv(s.cov) for s in sums) - 2 * np.linalg.inv(P0)
    info = sum(np.linalg.inv(s.cov) @ s.mean for s in sums) - 2 * np.linalg.inv(P0) @ p0
    fed = combine_site_summaries(sums, heterogeneity="none")
    np.testing.assert_allclose(fed.phi_cov, np.linalg.inv(prec), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fed.phi_mean, np.linalg.solve(prec, info), rtol=1e-8)
    # new-patient covariance: Cov(μ) + diag(E[τ]² + Var τ) (identity coordinates)
    tau_m, tau_v = fed.phi_mean[2:], np.diag(fed.phi_cov)[2:]
    np.testing.assert_allclose(fed.cov, fed.phi_cov[:2, :2] + np.diag(tau_m**2 + tau_v))


def test_moment_matched_tau_prior_a_site_without_data_adds_nothing():
    # tau_prior="moments": a site whose posterior is exactly the prior (μ ~ N(prior_loc,
    # prior_sd); τ ~ HalfNormal(0.5): mean 0.5·sqrt(2/π), variance 0.25(1 − 2/π)) adds nothing.
    twin = _twin()
    sd = _prior_sd(twin)
    tau_mean, tau_var = 0.5 * np.sqrt(2 / np.pi), 0.25 * (1 - 2 / np.pi)
    empty = _gaussian_summary(twin, np.concatenate([twin.prior_loc, [tau_mean] * 2]),
                              np.diag(np.concatenate([sd**2, [tau_var] * 2])), site="empty")
    informed = _gaussian_summary(twin, [-3.0, -4.0, 0.35, 0.3],
                                 np.diag([0.01, 0.01, 0.003, 0.003]), site="informed")
    kw = dict(heterogeneity="none", tau_prior="moments")
    alone = combine_site_summaries([informed], **kw)
    both = combine_site_summaries([informed, empty], **kw)
    np.testing.assert_allclose(both.phi_mean, alone.phi_mean, atol=1e-6)
    np.testing.assert_allclose(both.phi_cov, alone.phi_cov, rtol=1e-4, atol=1e-9)
    # 8 sites of 2 patients: "moments" stays near the pooled SD, "gaussian" is wider
    args = ([2] * 8, [0.2] * 8, TRUE_SHIFT, TAU, [0.1, 0.1])
    out = fs.compare_methods(twin, *args, seed=0, methods=("summaries", "summaries-moments"))
    moments, gaussian = out["summaries-moments"], out["summaries"]
    assert np.all(np.abs(moments["sd_ratio"] - 1) < 0.5)
    assert np.all(gaussian["sd_ratio"] > moments["sd_ratio"])


def test_reml_recovers_between_site_sd():
    # 400 simulated sites with known within-site covariances and between-site SDs (truth).
    rng = np.random.default_rng(1)
    eta = np.array([0.3, 0.0, 0.6])
    covs = [np.diag(rng.uniform(0.01, 0.2, 3)) for _ in range(400)]
    ys = [np.array([1.0, 2.0, 3.0]) + eta * rng.standard_normal(3)
          + rng.multivariate_normal(np.zeros(3), c) for c in covs]
    est = estimate_heterogeneity(ys, covs)
    assert est[0] == pytest.approx(0.3, abs=0.06)
    assert est[1] < 0.06
    assert est[2] == pytest.approx(0.6, abs=0.08)


# ------------------------------------------------------------------ validation (reduced model)
@pytest.mark.parametrize("seed", [0, 1])
def test_federated_matches_pooled_on_simulated_sites(seed):
    # 5 sites of 4–12 patients, protocols of different precision, a real between-site SD of
    # 0.1; pooled = the hierarchical posterior of all patients (grid, the same priors).
    r = fs.run_scenario(_twin(), [4, 6, 8, 10, 12], [0.1, 0.15, 0.2, 0.25, 0.3], TRUE_SHIFT,
                        TAU, [0.1, 0.1], seed=seed, method="summaries")
    assert np.all(r["mean_diff_sd"] < 0.1), r
    assert np.all(np.abs(r["sd_ratio"] - 1) <= 0.15), r
    assert np.all(np.abs(r["coverage_federated"] - r["coverage_pooled"]) <= 0.05), r


def test_heterogeneity_is_estimated_and_widens_the_prior():
    # strong between-site SD (0.5): REML finds a site effect; ignoring it (consensus) is
    # narrower and covers new patients at new sites worse.
    twin = _twin()
    mean = twin.prior_loc + TRUE_SHIFT
    eta = np.array([0.5, 0.5])
    sites = fs.simulate_sites([8] * 8, [0.15] * 8, mean, TAU, eta, seed=2)
    sums = _summaries(sites, twin)
    reml = combine_site_summaries(sums)
    none = combine_site_summaries(sums, heterogeneity="none")
    assert np.all(reml.site_sd > 0.2)
    assert np.all(np.diag(reml.cov) > np.diag(none.cov))
    new = fs.new_patients(20000, mean, TAU, eta, seed=3)
    cover_reml = fs.interval_coverage(reml.loc, reml.cov, new)
    cover_none = fs.interval_coverage(none.loc, none.cov, new)
    assert np.all(cover_reml > cover_none)


# ------------------------------------------------------------------ file, provenance, use
def test_summary_file_has_no_patient_data(tmp_path):
    twin = _twin()
    sites = fs.simulate_sites([6, 7], [0.1, 0.2], twin.prior_loc, TAU, [0.1, 0.1], seed=4)
    ids = [f"PAT-{i:04d}" for i in range(13)]
    summary = _summaries(sites[:1], twin)[0]
    path = summary.save(tmp_path / "site.json")
    text = path.read_text()
    data = json.loads(text)
    allowed = {"format", "format_version", "site", "n_patients", "radiopharmaceutical", "model",
               "protocol", "prior", "posterior"}
    assert set(data) == allowed
    p = twin.n_params

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            # only parameter-sized vectors / matrices and the protocol's nominal times
            assert len(node) in (p, 2 * p, len(summary.times_h), len(summary.organs)), key
            assert len(node) != 6 or key == "times_h"
            for v in node:
                walk(v, key)

    walk(data)
    assert not any(i in text for i in ids)
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\b(19|20)\d{6}\b", text)  # no dates
    # no measured value of any patient appears in the file
    values = set(np.round(sites[0].x.ravel(), 6))
    numbers = {round(float(v), 6) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text)}
    assert not values & numbers
    loaded = SiteSummary.load(path)
    np.testing.assert_array_equal(loaded.cov, summary.cov)
    assert loaded.sha256 == summary.sha256


def test_provenance_and_prior_usable_by_fit_patient_and_twin(tmp_path):
    twin = _twin()
    sites = fs.simulate_sites([5, 6, 7], [0.1, 0.2, 0.3], twin.prior_loc, TAU, [0.1, 0.1], seed=5)
    paths = [s.save(tmp_path / f"{s.site}.json") for s in _summaries(sites, twin)]
    fed = combine_site_summaries(paths)
    assert isinstance(fed, FederatedPrior)
    prov = fed.provenance
    import hashlib

    assert [s["sha256"] for s in prov["sites"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert prov["n_patients"] == 18 and prov["n_sites"] == 3
    json.dumps(prov)  # JSON-serialisable for results / manifests
    new = fed.prior_model(twin)
    np.testing.assert_allclose(new.prior_chol @ new.prior_chol.T, fed.cov, atol=1e-12)
    gauss = fed.gaussian()
    assert gauss.diagnostics["provenance"] == prov


def test_input_errors(tmp_path):
    twin = _twin()
    a = _gaussian_summary(twin, [-3, -4, 0.3, 0.2], np.eye(4) * 0.01)
    b = _gaussian_summary(twin, [-3, -4, 0.3, 0.2], np.eye(4) * 0.01, site="B")
    with pytest.raises(InputError, match="heterogeneity"):
        combine_site_summaries([a, b], heterogeneity="fixed")
    with pytest.raises(InputError, match="tau_prior"):
        combine_site_summaries([a, b], tau_prior="log")
    with pytest.raises(InputError, match="unique"):
        combine_site_summaries([a, a])
    other = SiteSummary(**{**a.__dict__, "site": "C", "tau_scale": 1.0})
    with pytest.raises(InputError, match="prior"):
        combine_site_summaries([a, other])
    with pytest.raises(InputError, match="cov"):
        _gaussian_summary(twin, [0, 0, 0, 0], -np.eye(4))
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="format"):
        SiteSummary.load(bad)
    with pytest.raises(InputError, match="draws"):
        site_summary_from_draws(np.zeros((3, 2)), np.zeros((3, 2)), site="A", n_patients=3,
                                twin=twin, tau_scale=0.5, radiopharmaceutical="x")


# ------------------------------------------------------------------ NUTS checks (slow)
def _biexp_sites():
    """3 sites (3, 4, 5 patients; 5-, 4- and 3-scan protocols) of the bi-exponential model with
    a between-site SD of 0.1, proportional noise SD 0.1."""
    from tdt.inference import OrganSeries, PatientData

    twin = _twin()
    rng = np.random.default_rng(7)
    protocols = [[4.0, 24.0, 48.0, 96.0, 168.0], [4.0, 24.0, 96.0, 168.0], [24.0, 96.0, 168.0]]
    sites = []
    for s, (n, times) in enumerate(zip([3, 4, 5], protocols, strict=True)):
        site_shift = 0.1 * rng.standard_normal(2)
        data = []
        for p in range(n):
            log_theta = twin.prior_loc + TRUE_SHIFT + site_shift + TAU * rng.standard_normal(2)
            f, kb = np.exp(log_theta)
            t = np.asarray(times)
            lam = 0.6931471805599453 / (6.647 * 24.0)
            clean = 7400 * f * (np.exp(-(kb + lam) * t) - np.exp(-(0.5 + lam) * t))
            data.append(PatientData({"kidneys": OrganSeries(t, clean * np.exp(
                rng.normal(0, 0.1, t.size)))}, patient_id=f"s{s}p{p}"))
        sites.append(data)
    return twin, sites


@pytest.mark.slow
def test_federated_nuts_sites_match_pooled_fit_population():
    # moment-matched site posteriors (combine_site_summaries), each site fitted with
    # fit_population (NUTS), vs fit_population on all 12 patients.
    from tdt.inference import MeasurementModel, fit_population
    from tdt.inference._federated import site_summary

    twin, sites = _biexp_sites()
    kw = dict(model=twin, draws=500, tune=500, chains=2, seed=1,
              measurement=MeasurementModel(fixed_noise_sd=0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sums = [site_summary(fit_population(d, **kw), site=f"S{i}", radiopharmaceutical="x")
                for i, d in enumerate(sites)]
        pooled = fit_population([d for site in sites for d in site], **kw)
    fed = combine_site_summaries(sums)
    loc, cov = pooled.predictive_moments()
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(fed.loc - loc) / sd < 0.25)
    assert np.all(np.abs(np.sqrt(np.diag(fed.cov)) / sd - 1) < 0.3)


@pytest.mark.slow
def test_federated_statistics_nuts_match_pooled_fit_population():
    # site aggregate statistics of per-patient NUTS fits (fit_patients, one run per site and
    # protocol; each posterior divided by the patient prior) vs fit_population on all 12
    # patients (the one-stage pooled fit), on the new-patient prior.
    from tdt.inference import (
        MeasurementModel,
        combine_site_statistics,
        fit_patients,
        fit_population,
        site_statistics,
    )

    twin, sites = _biexp_sites()
    meas = MeasurementModel(fixed_noise_sd=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats_ = [site_statistics(fit_patients(d, model=twin, draws=1000, tune=1000, chains=2,
                                               seed=1, measurement=meas),
                                  site=f"S{i}", radiopharmaceutical="x")
                  for i, d in enumerate(sites)]
        pooled = fit_population([d for site in sites for d in site], model=twin, draws=1000,
                                tune=1000, chains=2, seed=1, measurement=meas)
    loc, cov = pooled.predictive_moments()
    sd = np.sqrt(np.diag(cov))
    # η = 0 (the pooled model's assumption): the exchange itself — criteria of issue #26
    same = combine_site_statistics(stats_, heterogeneity="none")
    print("no site effect", same.loc, np.sqrt(np.diag(same.cov)), "pooled", loc, sd)
    assert np.all(np.abs(same.loc - loc) / sd < 0.1)
    assert np.all(np.abs(np.sqrt(np.diag(same.cov)) / sd - 1) < 0.15)
    # default (REML site effect, 3 sites: η̂ noisy — docs/inference.md): looser
    fed = combine_site_statistics(stats_)
    print("REML", fed.loc, np.sqrt(np.diag(fed.cov)), "eta", fed.site_sd)
    assert np.all(np.abs(fed.loc - loc) / sd < 0.25)
    assert np.all(np.abs(np.sqrt(np.diag(fed.cov)) / sd - 1) < 0.3)


def test_reduced_model_coordinates_carry_into_the_new_patient_covariance():
    # reduced model: log θ = A w; the between-patient covariance is A diag E[τ_w²] Aᵀ
    # (PopulationPosterior.predictive_moments), here with identical sites (η = 0 forced).
    from tdt.inference import reduced_model

    twin = reduced_model(("kidneys", "liver"))
    rng = np.random.default_rng(6)
    p = twin.n_params
    mu = twin.prior_loc + 0.05 * rng.standard_normal((4000, p))
    tau = 0.3 + 0.02 * rng.standard_normal((4000, p))
    sums = [site_summary_from_draws(mu, tau, site=f"S{i}", n_patients=8, twin=twin,
                                    tau_scale=0.5, radiopharmaceutical="177Lu-PSMA-617")
            for i in range(2)]
    fed = combine_site_summaries(sums, heterogeneity="none")
    a = sums[0].coordinates
    tau_m, tau_v = fed.phi_mean[p:], np.diag(fed.phi_cov)[p:]
    expected = fed.phi_cov[:p, :p] + a @ np.diag(tau_m**2 + tau_v) @ a.T
    np.testing.assert_allclose(fed.cov, expected, rtol=1e-10)
    assert not np.allclose(a, np.eye(p))
    assert fed.prior_model(twin).n_params == p
