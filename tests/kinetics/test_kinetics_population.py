"""Population-Bayesian batch fit, published priors and Bayesian STP, against independent references:
the generating truth of a seeded simulation (coverage), Madsen's analytic STP formula (a prior
with a known half-life), and numpyro NUTS on the same hierarchical model (slow)."""

from __future__ import annotations

import numpy as np
import pytest

import tdt
from tdt.errors import TdtError
from tdt.kinetics import BatchTacFit, PopulationTacFit, fit_tacs, load_prior
from tdt.kinetics._population import PopulationPrior, fit_population

LAM = tdt.nuclide("Lu-177").decay_constant_per_h
T5 = np.array([4.0, 24.0, 48.0, 96.0, 168.0])


def _kidney_cohort(n, noise, seed):
    """Uptake–washout TACs, log-normal population; returns (noisy y, true TIA, true θ)."""
    rng = np.random.default_rng(seed)
    a = 100 * np.exp(0.2 * rng.standard_normal(n))
    k1 = LAM + 0.012 * np.exp(0.25 * rng.standard_normal(n))
    k2 = k1 + 0.15 * np.exp(0.3 * rng.standard_normal(n))
    y = a[:, None] * (np.exp(-np.outer(k1, T5)) - np.exp(-np.outer(k2, T5)))
    return y * (1 + noise * rng.standard_normal(y.shape)), a / k1 - a / k2


def test_population_fit_covers_truth_and_recovers_noise_on_seeded_cohort():
    y, truth = _kidney_cohort(240, 0.10, seed=11)
    fit = fit_tacs(T5, y)  # default on a batch: population
    assert isinstance(fit, PopulationTacFit)
    lo, hi = fit.tia_ci95_mbq_h()
    coverage = np.mean((lo <= truth) & (truth <= hi))
    err = fit.tia_mbq_h / truth - 1
    assert np.all(np.isfinite(fit.tia_mbq_h)) and np.all(fit.tia_sd_mbq_h > 0)
    assert 0.91 <= coverage <= 0.99, coverage
    assert abs(np.median(err)) < 0.02
    assert np.median(np.abs(err)) < 0.05
    # the generating form dominates and its noise CV is recovered (truth 10 %)
    assert fit.population_weights["uptake_washout"] > 0.9
    assert fit.priors["uptake_washout"].noise_cv == pytest.approx(0.10, rel=0.15)
    # z-scores of the posterior mean are ~ N(0, 1)
    z = (fit.tia_mbq_h - truth) / fit.tia_sd_mbq_h
    assert 0.8 < np.std(z) < 1.25


@pytest.mark.slow
def test_population_beats_per_tac_least_squares_on_three_points():
    y, truth = _kidney_cohort(200, 0.10, seed=12)
    t3 = T5[[0, 2, 4]]
    y3 = y[:, [0, 2, 4]]
    pop = fit_tacs(t3, y3)
    per_tac = fit_tacs(t3, y3, method="per_tac", weights="relative")
    assert isinstance(per_tac, BatchTacFit)
    e_pop = np.abs(pop.tia_mbq_h / truth - 1)
    e_lsq = np.abs(per_tac.tia_mbq_h / truth - 1)
    assert np.quantile(e_pop, 0.9) < np.quantile(e_lsq, 0.9)
    lo, hi = pop.tia_ci95_mbq_h()
    assert 0.88 <= np.mean((lo <= truth) & (truth <= hi)) <= 0.99


def test_default_method_dispatch():
    y, _ = _kidney_cohort(24, 0.05, seed=3)
    t3, y3 = T5[[0, 2, 4]], y[:, [0, 2, 4]]  # 3 points: mono is the only per-TAC candidate
    assert isinstance(fit_tacs(t3, y3[:8]), BatchTacFit)  # < 20 TACs: per TAC
    assert isinstance(fit_tacs(t3, y3, model="mono"), BatchTacFit)  # explicit model: per TAC
    assert isinstance(fit_tacs(t3, y3, method="population", model="mono"), PopulationTacFit)
    with pytest.raises(TdtError, match="method"):
        fit_tacs(T5, y, method="bayes")


def test_stp_with_sharp_half_life_prior_equals_madsen():
    # a mono-exponential prior with a (nearly) known T_eff and a flat level: the posterior TIA is
    # Madsen's analytic A(t) e^{λt}/λ (Med Phys 2018;45:2318)
    from tdt.inference._single_time_point import bayesian_stp_tia, madsen_tia

    t_eff = 40.0
    k = np.log(2) / t_eff
    prior = {"mono": PopulationPrior("mono", np.array([0.0, np.log(k - LAM)]),
                                     np.diag([9.0, 1e-8]), 0.05)}
    activity = np.array([12.0, 30.0, 55.0])
    post = bayesian_stp_tia(activity, 72.0, prior)
    np.testing.assert_allclose(post.tia_mbq_h, madsen_tia(activity, 72.0, t_eff), rtol=2e-3)
    lo, hi = post.tia_ci95_mbq_h()
    assert np.all(lo < post.tia_mbq_h) and np.all(post.tia_mbq_h < hi)


def test_published_prior_loads_and_fits_two_points():
    prior = load_prior("psma617:kidneys")
    k = LAM + np.exp(prior["mono"].mean[1])
    assert np.log(2) / k == pytest.approx(35.5, rel=1e-12)  # the published median T_eff
    t = np.array([24.0, 96.0])
    y = 10 * np.exp(-k * t)[None, :]
    fit = fit_tacs(t, y, prior="psma617:kidneys")
    assert fit.tia_mbq_h[0] == pytest.approx(10 / k, rel=0.03)
    with pytest.raises(TdtError, match="prior"):
        load_prior("psma617:kidney")
    with pytest.raises(TdtError, match="prior"):
        load_prior("kidneys")


def test_population_input_errors():
    y, _ = _kidney_cohort(24, 0.05, seed=4)
    with pytest.raises(TdtError, match="times_h"):
        fit_population(np.array([0.0, 4.0, 24.0, 48.0, 96.0]), y, lam=LAM)
    y[3] = 0.0
    with pytest.raises(TdtError, match="activity_mbq"):
        fit_population(T5, y, lam=LAM)


@pytest.mark.slow
def test_importance_sampling_posterior_matches_nuts():
    # same hierarchical model with the population fixed at the empirical-Bayes estimate; per-TAC
    # TIA posterior mean and SD from numpyro NUTS vs tdt's importance sampling
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS, init_to_value

    from tdt.kinetics import MODELS

    y, _ = _kidney_cohort(12, 0.10, seed=21)
    pop = fit_tacs(T5, y, method="population", model="uptake_washout")
    pr = pop.priors["uptake_washout"]
    model = MODELS["uptake_washout"]
    y_rel = jnp.asarray(y / pr.scale_mbq)

    def numpyro_model():
        theta = numpyro.sample("theta", dist.MultivariateNormal(jnp.asarray(pr.mean),
                                                                jnp.asarray(pr.cov)).expand([12]))
        f = jax.vmap(lambda th: model.predict(th, jnp.asarray(T5), LAM))(theta)
        f = jnp.maximum(f, 1e-12)
        numpyro.sample("y", dist.Normal(f, pr.noise_cv * f), obs=y_rel)
        numpyro.deterministic("tia", jax.vmap(lambda th: model.tia(th, LAM))(theta))

    start = {"theta": jnp.tile(jnp.asarray(pr.mean), (12, 1))}
    mcmc = MCMC(NUTS(numpyro_model, init_strategy=init_to_value(values=start)), num_warmup=500, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0))
    tia = np.asarray(mcmc.get_samples()["tia"]) * pr.scale_mbq
    fixed = fit_population(T5, y, lam=LAM, prior={"uptake_washout": pr}, n_draws=2000)
    np.testing.assert_allclose(fixed.tia_mbq_h, tia.mean(axis=0), rtol=0.01)
    np.testing.assert_allclose(fixed.tia_sd_mbq_h, tia.std(axis=0), rtol=0.15)
