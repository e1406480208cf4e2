"""Population-Bayesian fit of many time–activity curves (TACs) of one tissue class.

Hierarchical model, per exponential form m (``mono``, ``uptake_washout``, ``bi``, ...):

    y_ij ~ N(f_m(t_j; θ_i), (σ f_m(t_j; θ_i))²)                       (constant-CV error model)
    θ_i ~ N(μ, Ω)                                                      (population distribution)

with y divided by the batch's median TAC maximum (by each TAC's maximum when a fixed literature
prior is used, whose amplitude prior is then broad) and θ the unconstrained parameters of
:class:`tdt.kinetics._models.ExponentialModel` (log amplitudes, log rate increments above λ_phys).

Estimation is empirical Bayes with the Laplace approximation (the first-order conditional
estimation idea of NLME: Lindstrom & Bates, Biometrics 1990;46:673; Wang, J Pharmacokinet
Pharmacodyn 2007;34:575), as an EM iteration jitted and vmapped over TACs:

1. E-step: every TAC's posterior mode θ̂_i (Levenberg–Marquardt on the data and prior residuals
   stacked, :func:`tdt.kinetics._solver.levenberg_marquardt`) and its Gauss–Newton precision
   H_i = J_iᵀ J_i; posterior ≈ N(θ̂_i, H_i⁻¹).
2. M-step: μ = mean θ̂_i, Ω = mean[(θ̂_i − μ)(θ̂_i − μ)ᵀ + H_i⁻¹], σ² = mean over TACs and time
   points of (ê_ij² + (G_i H_i⁻¹ G_iᵀ)_jj) with G the Jacobian of log f.

Forms are averaged per TAC with posterior model probabilities from the Laplace marginal
likelihood log p(y_i | m) ≈ −½|r̂_i|² − n log σ − ½ log det Ω − ½ log det H_i and population
form proportions π_m estimated by EM over the mixture (Bayesian model averaging; Hoeting et al.,
Stat Sci 1999;14:382). The per-TAC TIA posterior (mean, SD, 95 % credible interval) is computed
from draws of the mixture of Laplace approximations; TIA = Σ c_j/k_j (MIRD Pamphlet 21).
With a fixed ``prior`` (:class:`PopulationPrior`) step 2 is skipped: one patient's 1–4 points
are fitted with an informative literature prior (used by single-time-point dosimetry).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from tdt._types import CurveLike, TimesLike
from tdt.errors import InputError
from tdt.kinetics._models import MODELS
from tdt.kinetics._solver import fit_model_batch, levenberg_marquardt

#: Forms averaged by default (the shapes seen in clinical 177Lu organ and lesion TACs).
POPULATION_MODELS: tuple[str, ...] = ("mono", "uptake_washout", "bi")

#: Floor of activities and model values relative to each TAC's maximum (log of zero).
_REL_FLOOR = 1e-3


@dataclass(frozen=True)
class PopulationPrior:
    """Population distribution of one form's normalised parameters: θ ~ N(mean, cov), noise CV.

    ``mean``/``cov`` are in the unconstrained coordinates of ``MODELS[model]``, amplitudes in
    units of ``scale_mbq`` MBq (or relative to each TAC's maximum when ``scale_mbq`` is NaN);
    ``noise_cv`` is the CV σ of the constant-CV error model.
    """

    model: str
    mean: np.ndarray
    cov: np.ndarray
    noise_cv: float
    source: str = ""
    #: MBq per unit amplitude when the amplitudes are absolute (a population fit: the batch's
    #: median TAC maximum); NaN when they are relative to each TAC's maximum (literature priors).
    scale_mbq: float = float("nan")


@dataclass(frozen=True)
class PopulationTacFit:
    """Per-TAC TIA posteriors from a population fit (arrays with a leading axis n_tacs).

    ``tia_mbq_h`` posterior mean, ``tia_sd_mbq_h`` posterior SD (also as ``tia_se_mbq_h``),
    ``tia_q025_mbq_h``/``tia_q975_mbq_h`` the 95 % credible interval (MBq·h);
    ``model_probabilities``: form → (n_tacs,) posterior probability; ``model``: the most probable
    form per TAC; ``priors``: form → fitted :class:`PopulationPrior` (population mean, covariance
    and noise CV); ``population_weights``: form → proportion π_m; ``map_tia_mbq_h``: form → TIA
    at each TAC's posterior mode.
    """

    times_h: np.ndarray
    tia_mbq_h: np.ndarray
    tia_sd_mbq_h: np.ndarray
    tia_q025_mbq_h: np.ndarray
    tia_q975_mbq_h: np.ndarray
    model_probabilities: dict[str, np.ndarray]
    priors: dict[str, PopulationPrior]
    population_weights: dict[str, float]
    map_tia_mbq_h: dict[str, np.ndarray]
    n_iterations: int
    method: str = "population"
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.tia_mbq_h.shape[0])

    @property
    def tia_se_mbq_h(self) -> np.ndarray:
        return self.tia_sd_mbq_h

    @property
    def model(self) -> np.ndarray:
        names = list(self.model_probabilities)
        best = np.argmax(np.stack([self.model_probabilities[m] for m in names]), axis=0)
        return np.asarray(names, dtype=object)[best]

    def tia_ci95_mbq_h(self) -> tuple[np.ndarray, np.ndarray]:
        """95 % equal-tailed credible interval of the TIA (MBq·h)."""
        return self.tia_q025_mbq_h, self.tia_q975_mbq_h


def _log_model(model, theta, t_h, lam):
    f = model.predict(theta, t_h, lam)
    return jnp.log(jnp.maximum(f, 1e-300))


#: Scale of the importance proposal N(θ̂, (s·L)(s·L)ᵀ) around the Laplace approximation.
_PROPOSAL_SCALE = 1.3


def _posterior_one(model, t_h, lam, n_iter, y, mu, chol_inv, sigma, theta0, z):
    """One TAC: importance sampling of p(θ | y) ∝ Π N(y_j; f_j, (σ f_j)²) · N(θ; μ, Ω).

    The proposal is centred at the mode of the observed-weight approximation (residuals
    (y − f)/(σ y), the NUKFIT relative weighting) found by Levenberg–Marquardt, with the inflated
    Gauss–Newton covariance; the weights use the exact constant-CV likelihood, so the
    approximation only affects efficiency. Returns mode, draws (S, p), normalised log-weights,
    posterior mean and covariance of θ, expected squared relative residuals per time point and
    the log marginal likelihood (up to a constant common to all forms)."""
    y_safe = jnp.maximum(y, _REL_FLOOR)

    def residuals(theta):
        data = (y - model.predict(theta, t_h, lam)) / (sigma * y_safe)
        return jnp.concatenate([data, chol_inv @ (theta - mu)])

    def log_post(theta):
        f = jnp.maximum(model.predict(theta, t_h, lam), 1e-12)
        rel = (y - f) / f
        prior = chol_inv @ (theta - mu)
        return (-0.5 * jnp.sum(rel**2) / sigma**2 - jnp.sum(jnp.log(sigma * f))
                - 0.5 * prior @ prior), rel

    theta, _, _ = levenberg_marquardt(residuals, theta0, n_iter)
    theta = jnp.where(jnp.all(jnp.isfinite(theta)), theta, mu)
    jac = jax.jacfwd(residuals)(theta)
    hess = jac.T @ jac + 1e-9 * jnp.eye(theta.shape[0])
    chol_cov = _PROPOSAL_SCALE * jnp.linalg.cholesky(jnp.linalg.inv(hess))
    draws = theta + z @ chol_cov.T
    lp, rel = jax.vmap(log_post)(draws)
    lp = lp + jnp.sum(jnp.log(jnp.abs(jnp.diag(chol_inv))))
    log_q = -0.5 * jnp.sum(z**2, axis=1) - jnp.sum(jnp.log(jnp.diag(chol_cov)))
    lw = jnp.where(jnp.isfinite(lp), lp - log_q, -jnp.inf)
    log_ev = jax.scipy.special.logsumexp(lw) - jnp.log(z.shape[0])
    lw = lw - jax.scipy.special.logsumexp(lw)
    w = jnp.exp(lw)
    mean = w @ draws
    d = draws - mean
    cov = (w[:, None] * d).T @ d
    e2 = w @ jnp.where(jnp.isfinite(rel), rel, 0.0) ** 2
    return theta, draws, lw, mean, cov, e2, log_ev


@functools.partial(jax.jit, static_argnames=("model_name", "n_em", "n_lm", "fixed"))
def _em(model_name, t_h, lam, y_rel, theta0, mu0, omega0, sigma0, z_em, z_out, n_em, n_lm,
        fixed):
    model = MODELS[model_name]
    p = model.n_params
    one = functools.partial(_posterior_one, model, t_h, lam, n_lm)
    solve = jax.vmap(one, in_axes=(0, None, None, None, 0, None))

    def e_step(mu, omega, sigma, theta, z):
        chol_inv = jnp.linalg.inv(jnp.linalg.cholesky(omega))
        return solve(y_rel, mu, chol_inv, sigma, theta, z)

    def body(_, state):
        mu, omega, sigma, theta = state
        theta, _, _, mean, cov, e2, _ = e_step(mu, omega, sigma, theta, z_em)
        if fixed:
            return mu, omega, sigma, theta
        mu = jnp.mean(mean, axis=0)
        d = mean - mu
        omega = jnp.mean(d[:, :, None] * d[:, None, :] + cov, axis=0)
        omega = 0.5 * (omega + omega.T) + 1e-6 * jnp.eye(p)
        sigma = jnp.sqrt(jnp.maximum(jnp.mean(e2), 1e-8))
        return mu, omega, sigma, theta

    mu, omega, sigma, theta = jax.lax.fori_loop(0, n_em, body, (mu0, omega0, sigma0, theta0))
    theta, draws, lw, _, _, _, log_ev = e_step(mu, omega, sigma, theta, z_out)
    tia = jax.vmap(jax.vmap(lambda th: model.tia(th, lam)))(draws)
    tia_mode = jax.vmap(lambda th: model.tia(th, lam))(theta)
    return mu, omega, sigma, tia_mode, tia, lw, log_ev


def _initial_population(model_name, t, y_norm, lam):
    """Start values: per-TAC least-squares fits (relative weights), robust mean and spread."""
    n_tacs = y_norm.shape[0]
    p = MODELS[model_name].n_params
    if t.size >= p and n_tacs > 1:
        fit = fit_model_batch(model_name, jnp.asarray(t), jnp.asarray(y_norm),
                              jnp.asarray(1.0 / np.maximum(y_norm, _REL_FLOOR)**2), lam)
        theta = np.asarray(fit["theta"])
        theta = np.where(np.isfinite(theta), theta, np.nan)
        mu = np.nanmedian(theta, axis=0)
        sd = 1.4826 * np.nanmedian(np.abs(theta - mu), axis=0)
    else:
        theta = np.full((n_tacs, p), np.nan)
        mu = np.zeros(p)
        sd = np.zeros(p)
    mu = np.where(np.isfinite(mu), mu, 0.0)
    sd = np.clip(np.where(np.isfinite(sd), sd, 1.0), 0.1, 1.5)
    theta = np.where(np.isfinite(theta), np.clip(theta, mu - 3 * sd, mu + 3 * sd), mu)
    return theta, mu, np.diag(sd**2)


def fit_population(
    times_h: TimesLike,
    activity_mbq: CurveLike,
    models=POPULATION_MODELS,
    lam: float = 0.0,
    prior: dict | None = None,
    n_em: int = 15,
    n_lm: int = 12,
    n_draws: int = 256,
    n_draws_em: int = 48,
    seed: int = 0,
    form_weights: dict | None = None,
) -> PopulationTacFit:
    """Population-Bayesian TIA of every TAC (checked arrays: ``times_h`` > 0 h, activities MBq).

    ``models``: forms to average. ``lam``: physical decay constant (1/h). ``prior``: form →
    :class:`PopulationPrior` held fixed (no population update), else the population is estimated
    by ``n_em`` Monte Carlo EM iterations (``n_draws_em`` importance draws per TAC each).
    ``n_draws`` importance draws per TAC and form give the mean, SD and interval.
    ``form_weights``: prior probabilities of the forms with a fixed ``prior`` (default equal).
    """
    t = np.asarray(times_h, dtype=float)
    y = np.asarray(activity_mbq, dtype=float)
    if t[0] <= 0:
        raise InputError(f"times_h: the population fit needs times > 0 h, got {t.tolist()}")
    scale = np.max(y, axis=1)
    if np.any(scale <= 0):
        raise InputError("activity_mbq: a TAC with all activities 0; expected some activity > 0")
    fixed_scales = {float(pr.scale_mbq) for pr in prior.values()} if prior else set()
    if prior is None:
        # one scale for the whole batch: a per-TAC scale taken from the noisy data would make
        # the normalised amplitudes depend on the noise, which the population model excludes
        scale = np.full_like(scale, np.median(scale))
    elif len(fixed_scales) == 1 and np.isfinite(next(iter(fixed_scales))):
        scale = np.full_like(scale, next(iter(fixed_scales)))  # absolute-amplitude prior
    y_norm = y / scale[:, None]
    y_rel = jnp.asarray(y_norm)
    if prior is not None:
        models = tuple(prior)
    fits, priors = {}, {}
    rng = np.random.default_rng(seed)
    for name in models:
        p = MODELS[name].n_params
        if prior is not None:
            pr = prior[name]
            mu0, omega0, sigma0 = pr.mean, pr.cov, pr.noise_cv
            theta0 = np.repeat(np.asarray(mu0)[None], y.shape[0], axis=0)
        else:
            theta0, mu0, omega0 = _initial_population(name, t, y_norm, lam)
            sigma0 = 0.1
        z_em = rng.standard_normal((n_draws_em, p))
        z_out = rng.standard_normal((n_draws, p))
        out = _em(name, jnp.asarray(t), lam, y_rel, jnp.asarray(theta0), jnp.asarray(mu0),
                  jnp.asarray(omega0), jnp.asarray(float(sigma0)), jnp.asarray(z_em),
                  jnp.asarray(z_out), n_em=n_em if prior is None else 1,
                  n_lm=n_lm if prior is None else 40, fixed=prior is not None)
        fits[name] = [np.asarray(v) for v in out]
        mu, omega, sigma = fits[name][:3]
        priors[name] = PopulationPrior(name, mu, omega, float(sigma),
                                       prior[name].source if prior else "estimated",
                                       float(scale[0]) if prior is None
                                       else prior[name].scale_mbq)
    names = list(models)
    log_ev = np.stack([fits[m][6] for m in names])
    log_ev = np.where(np.isfinite(log_ev), log_ev, -np.inf)
    pi = np.full(len(names), 1.0 / len(names))
    if form_weights is not None:
        pi = np.asarray([float(form_weights.get(m, 0.0)) for m in names])
        pi = pi / pi.sum()
    for _ in range(50 if prior is None else 0):  # EM for the population form proportions
        post = _normalise(log_ev + np.log(np.maximum(pi, 1e-12))[:, None])
        pi = post.mean(axis=1)
    post = _normalise(log_ev + np.log(np.maximum(pi, 1e-12))[:, None])
    # mixture of the forms' importance samples: weight = P(form | y_i) · w_is
    values = np.concatenate([fits[m][4] for m in names], axis=1) * scale[:, None]
    weights = np.concatenate([post[i][:, None] * np.exp(fits[m][5])
                              for i, m in enumerate(names)], axis=1)
    mean, sd, q, weights = _weighted_summary(values, weights)
    return PopulationTacFit(
        times_h=t,
        tia_mbq_h=mean,
        tia_sd_mbq_h=sd,
        tia_q025_mbq_h=q[0],
        tia_q975_mbq_h=q[1],
        model_probabilities={m: post[i] for i, m in enumerate(names)},
        priors=priors,
        population_weights={m: float(pi[i]) for i, m in enumerate(names)},
        map_tia_mbq_h={m: fits[m][3] * scale for m in names},
        n_iterations=n_em if prior is None else 0,
        extra={"effective_sample_size": 1.0 / np.sum(weights**2, axis=1)},
    )


def _weighted_summary(values, weights):
    """Mean, SD and 2.5/97.5 % quantiles of weighted samples (last axis); non-finite samples get
    weight 0. Returns ``(mean, sd, [q025, q975], normalised weights)``."""
    weights = np.where(np.isfinite(values), weights, 0.0)
    values = np.where(np.isfinite(values), values, 0.0)
    weights /= np.sum(weights, axis=1, keepdims=True)
    mean = np.sum(weights * values, axis=1)
    sd = np.sqrt(np.sum(weights * (values - mean[:, None]) ** 2, axis=1))
    order = np.argsort(values, axis=1)
    sorted_values = np.take_along_axis(values, order, axis=1)
    cum = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    q = [sorted_values[np.arange(len(mean)), np.argmax(cum >= level, axis=1)]
         for level in (0.025, 0.975)]
    return mean, sd, q, weights


def _normalise(log_w):
    log_w = log_w - np.max(log_w, axis=0, keepdims=True)
    w = np.exp(log_w)
    return w / np.sum(w, axis=0, keepdims=True)
