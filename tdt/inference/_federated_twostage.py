"""The coordinator of federated priors from site aggregate statistics (issue #26, the default).

Input: :class:`tdt.inference._federated_stats.SiteStatistics` of S sites — n_s, x̄_s, W_s,
S_s (mean per-patient estimation covariance). Model (exact for Gaussian per-patient estimates
with a common S within a site; two-stage ≡ one-stage, Morris et al., Stat Med 2018,
doi:10.1002/sim.7589):

    x_i ~ N(μ + b_s, Σ + S_s),  b_s ~ N(0, T),  Σ = A diag(τ_w²) Aᵀ,  T = diag(η²)
    ⇒ x̄_s ~ N(μ, T + (Σ + S_s)/n_s),  W_s ~ Wishart(Σ + S_s, n_s − 1), independent.

Priors as :func:`tdt.inference.fit_population`: μ ~ N(prior_loc, diag prior_sd²),
τ_w ~ HalfNormal(tau_scale). μ enters linearly and is integrated out in closed form
(:func:`_log_marginal`: μ | τ_w, η Gaussian).

1. **Between-site SD** η: restricted maximum likelihood of (τ_w, η) with μ flat (the REML
   estimator recommended by Veroniki et al., Res Synth Methods 2016;7:55–79), then held fixed
   (empirical Bayes). ``heterogeneity="none"``: η = 0 — then, with equal S per site, the
   posterior is exactly the pooled hierarchical posterior of the per-patient estimates.
2. **Posterior of τ_w** (P dimensions) by importance sampling from a Student-t (4 d.o.f.)
   around the Laplace approximation in log τ_w (:func:`tdt.inference.laplace_mode`), weights
   Pareto-smoothed (PSIS; Vehtari, Simpson, Gelman, Yao & Gabry, JMLR 2024;25(72)) with the
   k̂ diagnostic recorded (> 0.7: unreliable, warned); μ's conditional moments averaged.
3. **New patient at a new site**: log θ ~ N(E μ, Cov μ + diag η² + A diag E[τ_w²] Aᵀ) —
   :meth:`PopulationPosterior.predictive_moments` plus the site effect.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize, stats

from tdt.errors import InputError
from tdt.inference._federated import FederatedPrior
from tdt.inference._federated_stats import SiteStatistics
from tdt.inference._laplace import laplace_mode

METHOD = ("site aggregate statistics (n, mean, scatter, mean estimation covariance) -> exact "
          "Gaussian hierarchical likelihood; between-site SD by REML; posterior of (mu, tau_w) "
          "by Laplace + Pareto-smoothed importance sampling")
CITATIONS = (
    "Morris TP, Fisher DJ, Kenward MG, Carpenter JR. Meta-analysis of Gaussian individual "
    "patient data: two-stage or not two-stage? Stat Med 2018. doi:10.1002/sim.7589",
    "Gaye A, Marcon Y, Isaeva J, et al. DataSHIELD: taking the analysis to the data, not the "
    "data to the analysis. Int J Epidemiol 2014;43(6):1929-1944. doi:10.1093/ije/dyu188",
    "Veroniki AA, Jackson D, Viechtbauer W, et al. Methods to estimate the between-study "
    "variance and its uncertainty in meta-analysis. Res Synth Methods 2016;7:55-79.",
    "Vehtari A, Simpson D, Gelman A, Yao Y, Gabry J. Pareto smoothed importance sampling. "
    "J Mach Learn Res 2024;25(72):1-58.",
)
#: bounds of log τ_w and log η in the REML search
_LOG_BOUNDS = (math.log(1e-4), math.log(5.0))
#: Pareto k̂ above which importance-sampling moments are unreliable (Vehtari et al. 2024)
PARETO_K_MAX = 0.7


def _log_marginal(log_tau, eta2, data, prior_prec, prior_mean, a):
    """log p(x̄, W | τ_w, η) with μ ~ N(prior_mean, diag 1/prior_prec) integrated out
    (prior_prec = 0: flat μ, the REML criterion), up to a constant. Returns (value, E[μ|·],
    Cov[μ|·]). ``data`` = (x̄, W, S, n, mask): sites with mask 0 are padding (fewer compiled
    shapes, :func:`site_arrays`) and contribute nothing."""
    xbar, scatter, s_cov, n, mask = data
    sigma = (a * jnp.exp(2 * log_tau)) @ a.T
    c = sigma + s_cov
    v = jnp.diag(eta2) + c / n[:, None, None]
    v_chol = jnp.linalg.cholesky(v)
    vinv = jax.vmap(lambda ch: jax.scipy.linalg.cho_solve((ch, True), jnp.eye(ch.shape[0])))(
        v_chol) * mask[:, None, None]
    q = jnp.diag(prior_prec) + vinv.sum(axis=0)
    b = prior_prec * prior_mean + jnp.einsum("sij,sj->i", vinv, xbar)
    q_chol = jnp.linalg.cholesky(q)
    q_inv = jax.scipy.linalg.cho_solve((q_chol, True), jnp.eye(q.shape[0]))
    mu_mean = q_inv @ b
    quad = (jnp.einsum("si,sij,sj->", xbar, vinv, xbar) + jnp.sum(prior_prec * prior_mean**2)
            - b @ mu_mean)
    logdet_v = 2 * jnp.sum(mask[:, None] * jnp.log(jnp.diagonal(v_chol, axis1=-2, axis2=-1)))
    logdet_q = 2 * jnp.sum(jnp.log(jnp.diag(q_chol)))
    c_chol = jnp.linalg.cholesky(c)
    logdet_c = 2 * jnp.sum(jnp.log(jnp.diagonal(c_chol, axis1=-2, axis2=-1)), axis=-1)
    trace = jax.vmap(lambda ch, w: jnp.trace(jax.scipy.linalg.cho_solve((ch, True), w)))(
        c_chol, scatter)
    wishart = jnp.sum(mask * (-0.5 * (n - 1) * logdet_c - 0.5 * trace))
    return -0.5 * (logdet_v + logdet_q + quad) + wishart, mu_mean, q_inv


def _neg_restricted(z, args):
    data, a = args
    p = a.shape[0]
    value, _, _ = _log_marginal(z[:p], jnp.exp(2 * z[p:]), data, jnp.zeros(p), jnp.zeros(p), a)
    return -value


_restricted_and_grad = jax.jit(jax.value_and_grad(_neg_restricted))


def _log_posterior(log_tau, args):
    """log p(log τ_w | x̄, W, η) + const (HalfNormal prior of τ_w, Jacobian of log τ_w) and
    μ's conditional mean and covariance."""
    data, eta2, prior_prec, prior_mean, a, tau_scale = args
    value, mu_mean, mu_cov = _log_marginal(log_tau, eta2, data, prior_prec, prior_mean, a)
    tau = jnp.exp(log_tau)
    return value + jnp.sum(-0.5 * (tau / tau_scale) ** 2 + log_tau), mu_mean, mu_cov


@jax.jit
def _laplace(x0, args):
    return laplace_mode(lambda x, arg: -_log_posterior(x, arg)[0], x0, args)


_batched_posterior = jax.jit(jax.vmap(_log_posterior, in_axes=(0, None)))


def site_arrays(statistics) -> tuple:
    """(x̄, W, S, n, mask) of the sites, padded with empty sites (mask 0) to a multiple of 8,
    so that 1–8 sites share one compiled likelihood."""
    n_sites = len(statistics)
    padded = 8 * math.ceil(n_sites / 8)
    p = len(statistics[0].mean)
    pad = padded - n_sites
    stack = [np.concatenate([np.stack(v), np.broadcast_to(fill, (pad, *fill.shape))]) for v, fill in (
        ([s.mean for s in statistics], np.zeros(p)),
        ([s.scatter for s in statistics], np.zeros((p, p))),
        ([s.estimation_cov for s in statistics], np.eye(p)),
        ([float(s.n_patients) for s in statistics], np.ones(())),
        ([1.0] * n_sites, np.zeros(())))]
    return tuple(jnp.asarray(v) for v in stack)


def reml_heterogeneity(data, a) -> tuple[np.ndarray, np.ndarray]:
    """REML estimates (τ_w, η) of the model in the module docstring (μ flat); η = 0 where
    the optimum is at the lower bound."""
    p = a.shape[0]
    start = np.concatenate([np.full(p, math.log(0.3)), np.full(p, math.log(0.1))])

    def fun(z):
        value, grad = _restricted_and_grad(jnp.asarray(z), (data, a))
        return float(value), np.asarray(grad, dtype=float)

    res = optimize.minimize(fun, start, jac=True, method="L-BFGS-B", bounds=[_LOG_BOUNDS] * 2 * p)
    z = res.x
    eta = np.exp(z[p:])
    eta[z[p:] <= _LOG_BOUNDS[0] + 1e-3] = 0.0
    return np.exp(z[:p]), eta


def _load(statistics) -> tuple[list[SiteStatistics], list]:
    loaded, hashes = [], []
    for i, s in enumerate(statistics):
        if isinstance(s, (str, Path)):
            path = Path(s)
            hashes.append(hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file()
                          else None)
            s = SiteStatistics.load(path)
        elif isinstance(s, SiteStatistics):
            hashes.append(s.sha256)
        else:
            raise InputError(f"statistics[{i}]: {type(s).__name__}; expected a SiteStatistics "
                             "or path")
        loaded.append(s)
    if not loaded:
        raise InputError("statistics: empty; expected >= 1 site statistics")
    ref = loaded[0]
    for i, s in enumerate(loaded):
        for attr in ("model_kind", "params"):
            if getattr(s, attr) != getattr(ref, attr):
                raise InputError(f"statistics[{i}].{attr}: {getattr(s, attr)!r}; expected "
                                 f"{getattr(ref, attr)!r} (the model of statistics[0])")
        if not (np.allclose(s.prior_loc, ref.prior_loc) and np.allclose(s.prior_sd, ref.prior_sd)
                and np.allclose(s.coordinates, ref.coordinates)):
            raise InputError(f"statistics[{i}] (site {s.site!r}): prior differs from site "
                             f"{ref.site!r}'s; every site must divide out the same prior")
    names = [s.site for s in loaded]
    if len(set(names)) != len(names):
        raise InputError(f"statistics: site names {names} must be unique")
    return loaded, hashes


def _importance_weights(loc, shape, args, n_draws: int, seed: int):
    """PSIS-normalised weights of draws of log τ_w from a Student-t (4 d.o.f.) proposal."""
    proposal = stats.multivariate_t(loc=loc, shape=shape, df=4, seed=seed)
    psi = np.atleast_2d(proposal.rvs(size=n_draws)).reshape(n_draws, loc.size)
    log_p, mu_mean, mu_cov = (np.asarray(v) for v in _batched_posterior(jnp.asarray(psi), args))
    log_w = np.where(np.isfinite(log_p), log_p - proposal.logpdf(psi), -np.inf)
    log_w, k_hat = az.psislw(log_w - np.max(log_w))
    w = np.exp(log_w - np.max(log_w))
    return psi, w / w.sum(), mu_mean, mu_cov, float(k_hat)


def _importance_moments(mode, hessian, args, n_draws: int, seed: int):
    """Moments of (μ, τ_w) under the posterior of log τ_w: importance sampling from a
    Student-t around the Laplace approximation, then once more from a Student-t with the
    weighted mean and covariance of the first pass (adaptive importance sampling; the tails of
    a small site's τ posterior are not Laplace-shaped). Returns (mean, cov, Pareto k̂)."""
    vals, vecs = np.linalg.eigh(0.5 * (hessian + hessian.T))
    shape = (vecs / np.maximum(vals, 1e-6 * max(vals.max(), 1e-12))) @ vecs.T
    psi, w, mu_mean, mu_cov, k_hat = _importance_weights(mode, shape, args, n_draws, seed)
    loc = w @ psi
    shape = 1.2**2 * ((psi - loc).T @ ((psi - loc) * w[:, None]))
    if np.all(np.isfinite(shape)) and np.all(np.linalg.eigvalsh(shape) > 0):
        psi, w, mu_mean, mu_cov, k_hat = _importance_weights(loc, shape, args, n_draws, seed + 1)
    tau = np.exp(psi)
    phi = np.concatenate([mu_mean, tau], axis=1)
    mean = w @ phi
    cov = (phi - mean).T @ ((phi - mean) * w[:, None])
    p = mode.size
    cov[:p, :p] += np.einsum("k,kij->ij", w, mu_cov)
    return mean, 0.5 * (cov + cov.T), k_hat


def combine_site_statistics(statistics: Sequence[SiteStatistics | str | Path],
                            heterogeneity: str = "reml", tau_scale: float = 0.5,
                            n_draws: int = 4000, seed: int = 0) -> FederatedPrior:
    """Combine site aggregate statistics (objects or saved files) into a
    :class:`FederatedPrior` (module docstring). ``heterogeneity``: ``"reml"`` (default;
    between-site SD estimated) or ``"none"`` (η = 0). ``tau_scale``: the HalfNormal scale of
    τ_w (as :func:`fit_population`, default 0.5)."""
    if heterogeneity not in ("reml", "none"):
        raise InputError(f"heterogeneity: {heterogeneity!r}; expected 'reml' or 'none'")
    if not (tau_scale > 0) or int(n_draws) < 100:
        raise InputError(f"tau_scale {tau_scale}, n_draws {n_draws}; expected > 0 and >= 100")
    loaded, hashes = _load(statistics)
    ref = loaded[0]
    p = len(ref.params)
    a = jnp.asarray(ref.coordinates)
    data = site_arrays(loaded)
    tau_reml, eta = reml_heterogeneity(data, a) if heterogeneity == "reml" else (
        np.full(p, 0.3), np.zeros(p))
    args = (data, jnp.asarray(eta**2), jnp.asarray(1 / ref.prior_sd**2),
            jnp.asarray(ref.prior_loc), a, float(tau_scale))
    fit = _laplace(jnp.log(jnp.maximum(jnp.asarray(tau_reml), 0.02)), args)
    phi_mean, phi_cov, k_hat = _importance_moments(
        np.asarray(fit.mode), np.asarray(fit.hessian), args, int(n_draws), seed)
    if not k_hat <= PARETO_K_MAX:
        warnings.warn(f"combine_site_statistics: Pareto k {k_hat:.2f} > {PARETO_K_MAX}: the "
                      "importance-sampling moments are unreliable", RuntimeWarning, stacklevel=2)
    coords = np.asarray(a)
    mean_tau_sq = phi_mean[p:] ** 2 + np.diag(phi_cov)[p:]
    cov = phi_cov[:p, :p] + np.diag(eta**2) + coords @ np.diag(mean_tau_sq) @ coords.T
    provenance = {
        "method": METHOD, "exchange": "site aggregate statistics", "heterogeneity": heterogeneity,
        "tau_scale": float(tau_scale), "citations": list(CITATIONS),
        "model": {"kind": ref.model_kind, "params": list(ref.params),
                  "tdt_versions": sorted({s.tdt_version for s in loaded})},
        "n_sites": len(loaded), "n_patients": int(sum(s.n_patients for s in loaded)),
        "sites": [{"site": s.site, "n_patients": int(s.n_patients),
                   "radiopharmaceutical": s.radiopharmaceutical, "organs": list(s.organs),
                   "times_h": list(s.times_h), "sha256": h,
                   "below_disclosure_threshold": bool(s.below_threshold),
                   "clipped_directions": int(s.clipped_directions)}
                  for s, h in zip(loaded, hashes, strict=True)],
        "site_sd_mu": dict(zip(ref.params, map(float, eta), strict=True)),
        "pareto_k": k_hat, "laplace_converged": bool(fit.converged),
    }
    return FederatedPrior(ref.params, phi_mean, phi_cov, np.concatenate([eta, np.zeros(p)]),
                          phi_mean[:p].copy(), 0.5 * (cov + cov.T), provenance)
