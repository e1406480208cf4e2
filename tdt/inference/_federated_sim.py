"""Simulated multi-site cohorts for validating federated priors (:mod:`tdt.inference._federated`).

The *reduced* validation model: each patient's log θ (P parameters, independent coordinates)
is measured with Gaussian error of known SD σ (σ differs by site protocol — fewer scans, larger
σ), x_pj ~ N(log θ_pj, σ_s²); log θ_pj = M_j + δ_sj + τ_j z_pj with a real between-site effect
δ_sj ~ N(0, η_j²). The hierarchical posterior of (μ_j, τ_j) under fit_population's priors
(μ ~ N(prior_loc, prior_sd), τ ~ HalfNormal(tau_scale)) is computed on a grid for each
coordinate (exact up to the grid: the marginal likelihood of a patient is N(x; μ, τ² + σ²)),
so that a site fit and the pooled fit cost milliseconds. It is a stand-in for
:func:`fit_population` (labelled as such wherever shown); the NUTS check is the slow test and
benchmarks/bench_federated.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from tdt.errors import InputError
from tdt.inference._federated import combine_site_summaries, site_summary_from_draws
from tdt.inference._federated_stats import site_statistics_from_estimates
from tdt.inference._federated_twostage import combine_site_statistics
from tdt.inference._models import custom_model
from tdt.inference._pymc_models import population_coordinates


@dataclass(frozen=True)
class SimulatedSite:
    """x (n_patients, P): measured log θ; sigma: its SD (the site's protocol)."""

    name: str
    x: np.ndarray
    sigma: float
    true_log_theta: np.ndarray


def simulate_sites(sizes: Sequence[int], sigmas: Sequence[float], mean, tau, eta,
                   seed: int = 0) -> list[SimulatedSite]:
    """Sites with ``sizes[s]`` patients, measurement SD ``sigmas[s]``; population ``mean`` (P,),
    between-patient SD ``tau`` (P,) and between-site SD ``eta`` (P,) of log θ."""
    if len(sizes) != len(sigmas) or min(sizes) < 1 or min(sigmas) <= 0:
        raise InputError(f"simulate_sites: sizes {list(sizes)}, sigmas {list(sigmas)}; expected "
                         "equal lengths, sizes >= 1, sigmas > 0")
    rng = np.random.default_rng(seed)
    mean, tau, eta = (np.asarray(v, dtype=float) for v in (mean, tau, eta))
    sites = []
    for s, (n, sigma) in enumerate(zip(sizes, sigmas, strict=True)):
        site_mean = mean + eta * rng.standard_normal(mean.size)
        truth = site_mean + tau * rng.standard_normal((n, mean.size))
        x = truth + sigma * rng.standard_normal(truth.shape)
        sites.append(SimulatedSite(f"site-{chr(65 + s)}", x, float(sigma), truth))
    return sites


def new_patients(n: int, mean, tau, eta, seed: int = 1) -> np.ndarray:
    """log θ of ``n`` new patients, each at a new site (n, P)."""
    rng = np.random.default_rng(seed)
    mean, tau, eta = (np.asarray(v, dtype=float) for v in (mean, tau, eta))
    return (mean + eta * rng.standard_normal((n, mean.size))
            + tau * rng.standard_normal((n, mean.size)))


def grid_population_draws(x, sigma, prior_loc, prior_sd, tau_scale: float = 0.5,
                          n_draws: int = 4000, seed: int = 0, n_grid: int = 240):
    """Posterior draws of (μ, τ) (each (n_draws, P)) of the hierarchical model on a grid.

    ``x`` (n, P) measured log θ; ``sigma`` scalar or (n,) measurement SD per patient."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (x.shape[0],))
    rng = np.random.default_rng(seed)
    mu_out = np.empty((n_draws, x.shape[1]))
    tau_out = np.empty_like(mu_out)
    for j in range(x.shape[1]):
        centre, spread = np.mean(x[:, j]), np.std(x[:, j]) + sig.max() + tau_scale
        mu_grid = np.linspace(centre - 4 * spread, centre + 4 * spread, n_grid)
        tau_grid = np.linspace(1e-3, 4 * tau_scale, n_grid)
        m, t = np.meshgrid(mu_grid, tau_grid, indexing="ij")
        sd = np.sqrt(t[..., None] ** 2 + sig**2)
        logp = (np.sum(stats.norm.logpdf(x[:, j], m[..., None], sd), axis=-1)
                + stats.norm.logpdf(m, prior_loc[j], prior_sd[j])
                + stats.halfnorm.logpdf(t, scale=tau_scale))
        prob = np.exp(logp - logp.max()).ravel()
        idx = rng.choice(prob.size, size=n_draws, p=prob / prob.sum())
        dm, dt = mu_grid[1] - mu_grid[0], tau_grid[1] - tau_grid[0]
        mu_out[:, j] = m.ravel()[idx] + dm * (rng.random(n_draws) - 0.5)
        tau_out[:, j] = np.abs(t.ravel()[idx] + dt * (rng.random(n_draws) - 0.5))
    return mu_out, tau_out


def predictive_from_draws(mu_draws, tau_draws) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of log θ of a new patient from (μ, τ) draws, as
    :meth:`PopulationPosterior.predictive_moments` (identity coordinates)."""
    loc = mu_draws.mean(axis=0)
    cov = np.cov(mu_draws, rowvar=False).reshape(loc.size, loc.size)
    return loc, cov + np.diag(np.mean(tau_draws**2, axis=0))


def interval_coverage(loc, cov, log_theta, level: float = 0.9) -> np.ndarray:
    """Share of ``log_theta`` (n, P) inside the central ``level`` interval of N(loc, diag cov),
    per parameter."""
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(np.diag(cov))
    return np.mean(np.abs(np.asarray(log_theta) - loc) <= half, axis=0)


def compare_priors(fed_loc, fed_cov, pooled_loc, pooled_cov, new_log_theta) -> dict:
    """Federated vs pooled: mean difference in pooled SDs, SD ratio, 90 % coverage of each."""
    sd_pooled = np.sqrt(np.diag(pooled_cov))
    return {
        "mean_diff_sd": np.abs(np.asarray(fed_loc) - pooled_loc) / sd_pooled,
        "sd_ratio": np.sqrt(np.diag(fed_cov)) / sd_pooled,
        "coverage_federated": interval_coverage(fed_loc, fed_cov, new_log_theta),
        "coverage_pooled": interval_coverage(pooled_loc, pooled_cov, new_log_theta),
    }


class _TwoParameterModel:
    """Forward-model stub of :func:`two_parameter_twin` (only its prior is used here)."""

    parameter_names = ("f_kidneys", "kb_kidneys")
    organs = ("kidneys",)

    def default_params(self):
        return {"f_kidneys": 0.04, "kb_kidneys": 0.02}

    def simulate(self, params, schedule, times_h):
        raise InputError("two_parameter_twin: a prior-only model for federated_sim; "
                         "expected no forward simulation")


def two_parameter_twin(sd_log: float = 0.4):
    """A :class:`TwinModel` with two log-parameters (kidney uptake fraction 0.04, washout
    0.02 1/h; prior log-SD ``sd_log``) and identity population coordinates, for the reduced
    validation (its forward model is never evaluated)."""
    return custom_model(_TwoParameterModel(), sampled=("f_kidneys", "kb_kidneys"),
                        sd_log=sd_log)


#: the ways of building a federated prior :func:`run_scenario` compares
METHODS = ("statistics", "statistics-no-site-effect", "summaries", "summaries-moments")


def _federated_prior(method, twin, sites, prior_sd, tau_scale, heterogeneity, seed,
                     radiopharmaceutical):
    """(FederatedPrior, exchanged objects) of one method for the simulated sites."""
    if method.startswith("statistics"):
        if method == "statistics-no-site-effect":
            heterogeneity = "none"
        exchanged = [site_statistics_from_estimates(
            site.x, np.eye(twin.n_params) * site.sigma**2, site=site.name, twin=twin,
            radiopharmaceutical=radiopharmaceutical, organs=twin.organs,
            allow_small=True) for site in sites]
        return combine_site_statistics(exchanged, heterogeneity=heterogeneity,
                                       tau_scale=tau_scale, seed=seed), exchanged
    exchanged = []
    for site in sites:
        mu, tau_draws = grid_population_draws(site.x, site.sigma, twin.prior_loc, prior_sd,
                                              tau_scale, seed=seed)
        exchanged.append(site_summary_from_draws(
            mu, tau_draws, site=site.name, n_patients=len(site.x), twin=twin,
            tau_scale=tau_scale, radiopharmaceutical=radiopharmaceutical, organs=twin.organs))
    tau_prior = "moments" if method == "summaries-moments" else "gaussian"
    return combine_site_summaries(exchanged, heterogeneity=heterogeneity,
                                  tau_prior=tau_prior), exchanged


def compare_methods(twin, sizes: Sequence[int], sigmas: Sequence[float], shift, tau, eta,
                    seed: int = 0, n_new: int = 20000, tau_scale: float = 0.5,
                    heterogeneity: str = "reml", methods: Sequence[str] = METHODS,
                    radiopharmaceutical: str = "177Lu-PSMA-617") -> dict:
    """One validation scenario of the reduced model, several federated methods against one
    pooled fit: simulate the sites (population mean ``twin.prior_loc + shift``), build each
    method's federated prior — ``"statistics"``: site aggregate statistics of the per-patient
    estimates (:func:`combine_site_statistics`; sites of < 3 patients exported with
    ``allow_small``, marked); ``"statistics-no-site-effect"``: the same with η = 0 (the pooled
    model's assumption); ``"summaries"`` / ``"summaries-moments"``: moment-matched site
    posteriors of (μ, τ) from the grid (:func:`combine_site_summaries`, ``tau_prior``
    "gaussian" / "moments") —, fit the pooled hierarchical model (grid) and compare the
    new-patient priors on ``n_new`` new patients at new sites.

    Returns ``{method: {"federated": FederatedPrior, "exchanged": [...], "pooled": (loc, cov),
    **compare_priors}}``."""
    if not np.array_equal(population_coordinates(twin)[0], np.eye(twin.n_params)):
        raise InputError(f"run_scenario: twin of kind {twin.kind!r} has non-identity population "
                         "coordinates; expected independent coordinates (e.g. a custom model)")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"methods: {unknown}; expected some of {METHODS}")
    prior_sd = np.sqrt(np.sum(np.asarray(twin.prior_chol) ** 2, axis=1))
    mean = np.asarray(twin.prior_loc) + np.asarray(shift, dtype=float)
    sites = simulate_sites(sizes, sigmas, mean, tau, eta, seed=seed)
    x = np.concatenate([s.x for s in sites])
    sig = np.concatenate([np.full(len(s.x), s.sigma) for s in sites])
    mu, tau_draws = grid_population_draws(x, sig, twin.prior_loc, prior_sd, tau_scale, seed=seed)
    loc, cov = predictive_from_draws(mu, tau_draws)
    new = new_patients(n_new, mean, tau, eta, seed=seed + 10_000)
    out = {}
    for method in methods:
        fed, exchanged = _federated_prior(method, twin, sites, prior_sd, tau_scale,
                                          heterogeneity, seed, radiopharmaceutical)
        out[method] = {"federated": fed, "exchanged": exchanged, "pooled": (loc, cov),
                       **compare_priors(fed.loc, fed.cov, loc, cov, new)}
    return out


def run_scenario(twin, sizes: Sequence[int], sigmas: Sequence[float], shift, tau, eta,
                 seed: int = 0, n_new: int = 20000, tau_scale: float = 0.5,
                 heterogeneity: str = "reml", method: str = "statistics",
                 radiopharmaceutical: str = "177Lu-PSMA-617") -> dict:
    """One method of :func:`compare_methods` (default: site aggregate statistics).

    Returns ``{"federated": FederatedPrior, "exchanged", "pooled": (loc, cov), **compare}``."""
    return compare_methods(twin, sizes, sigmas, shift, tau, eta, seed=seed, n_new=n_new,
                           tau_scale=tau_scale, heterogeneity=heterogeneity, methods=(method,),
                           radiopharmaceutical=radiopharmaceutical)[method]
