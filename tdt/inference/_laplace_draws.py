"""Laplace draws of a PyMC model: the fast, labelled *preview* of a posterior.

``fit_patient(..., sampler="laplace")`` (and the PBPK twin's ``engine="laplace"``) replaces
NUTS by the Laplace approximation N(x̂, H⁻¹) of the posterior in the model's unconstrained
coordinates (mode and Hessian by :func:`tdt.inference._laplace.laplace_metric`, the one home
of the approximation in tdt) and draws from it: ``chains × draws`` independent draws, mapped
to every free variable and deterministic by the same post-processing as the NUTS backends
(:func:`tdt.inference._nuts.idata_from_flat`), so everything downstream (TIAs, doses, BED,
plans) runs unchanged.

Is the approximation good enough? The draws carry their importance log-weights
log w = log p(x) − log q(x) (q the Gaussian); Pareto-smoothed importance sampling fits a
generalised Pareto distribution to the largest weights, and its shape k̂ says how far q is from
the posterior: k̂ ≤ 0.7 → the importance-sampling estimate is reliable, q is a usable proposal
(Vehtari, Simpson, Gelman, Yao, Gabry, "Pareto smoothed importance sampling", JMLR
2024;25(72):1-58, §3; the same diagnostic for variational approximations: Yao, Vehtari,
Simpson, Gelman, ICML 2018, "Yes, but did it work?"). k̂ is computed by ArviZ
(:func:`arviz.psislw`). The draws are *not* reweighted: the preview is the Gaussian itself,
and k̂ > :data:`PARETO_K_MAX` fails the preview's gate (``converged`` False, "NOT CONVERGED"
wherever shown). Every summary is labelled :data:`LAPLACE_LABEL` (tdt.inference._diagnostics).

Why hand-written and not PyMC's ``pymc_extras.fit_laplace``: tdt's posteriors are compiled to
JAX once for the NUTS backends (`get_jaxified_logp`); this reuses that log-density, the
Hessian of :func:`tdt.inference._laplace.hessian_at` and the NUTS post-processing, with no
second compilation path and no extra dependency.
"""

from __future__ import annotations

import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm

from tdt.errors import ConvergenceError
from tdt.inference._bridge import nan_on_solver_error
from tdt.inference._diagnostics import LAPLACE_LABEL, PARETO_K_MAX
from tdt.inference._laplace import laplace_fitter
from tdt.inference._nuts import _flat_logdensity, idata_from_flat

__all__ = ["LAPLACE_LABEL", "PARETO_K_MAX", "sample_laplace"]


def sample_laplace(model: pm.Model, *, draws: int, chains: int, seed: int):
    """``chains × draws`` independent draws of the Laplace approximation of ``model``'s
    posterior (module docstring); ``(idata, wall_s)``, the contract of the NUTS backends.

    ``idata.attrs``: ``method`` ``"laplace"``, ``pareto_k`` (k̂ of the importance weights),
    ``importance_ess`` (1 / Σ w̃², the normalised PSIS weights w̃), ``mode_gradient_norm``
    (|∇ log p| at the mode, a check of the optimiser). ``sample_stats.laplace_log_weight``:
    each draw's log p(x) − log q(x) (up to a constant). Raises :class:`ConvergenceError` when
    the mode or its curvature is not finite.
    """
    start = time.perf_counter()
    flat0, unravel, logdensity = _flat_logdensity(model)
    draw = _laplace_drawer(lambda x, _: -logdensity(x), draws=draws, chains=chains)
    with nan_on_solver_error():
        result = draw(flat0, None, seed)
    if result is None:
        raise ConvergenceError(_NOT_FINITE)
    samples, stats, attrs = _finish_draws(*result, wall=time.perf_counter() - start)
    idata = idata_from_flat(model, samples, unravel, stats, attrs)
    return idata, time.perf_counter() - start


_NOT_FINITE = ("sampler='laplace': the posterior's mode or its curvature is not finite (model "
               "cannot be solved there); use NUTS")


def _laplace_drawer(potential, *, draws: int, chains: int):
    """``draw(x0, args, seed)`` -> ``(samples (chains, draws, d), log_p, eps, gradient_norm)``
    or ``None`` (mode or curvature not finite), for ``potential(x, args)`` = −log p; every JAX
    function compiled once for all ``args`` (:func:`tdt.inference._laplace.laplace_fitter`)."""
    fit = laplace_fitter(potential)
    log_p_fn = jax.jit(jax.vmap(lambda x, args: -potential(x, args), in_axes=(0, None)))

    def draw(x0, args, seed):
        laplace = fit(x0, args)
        if laplace is None:
            return None
        x_mode, _, chol = laplace
        eps = jax.random.normal(jax.random.PRNGKey(seed), (chains, draws, x_mode.size))
        samples = x_mode + eps @ chol.T
        log_p = log_p_fn(samples.reshape(-1, x_mode.size), args)
        gradient = fit.value_and_grad(x_mode, args)[1]
        return samples, log_p, eps, float(jnp.linalg.norm(gradient))

    return draw


def _finish_draws(samples, log_p, eps, gradient_norm: float, *, wall: float):
    """Importance log-weights, Pareto k̂ (ArviZ PSIS) and the ``(samples, stats, attrs)`` of the
    InferenceData of one Laplace fit (attrs and stats as :func:`sample_laplace` documents)."""
    chains, draws = samples.shape[:2]
    log_q = -0.5 * jnp.sum(eps ** 2, axis=-1).reshape(-1)  # + const: cancels in k̂
    log_w = np.asarray(log_p - log_q, dtype=float)
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    smoothed, pareto_k = az.psislw(log_w - np.max(log_w[np.isfinite(log_w)], initial=0.0))
    weights = np.exp(np.asarray(smoothed))
    weights = weights / weights.sum() if np.isfinite(weights).all() and weights.sum() > 0 \
        else np.full(weights.size, np.nan)
    pareto_k = float(pareto_k) if np.all(np.isfinite(log_w)) else float("inf")
    attrs = {"sampling_time": wall, "method": "laplace", "pareto_k": pareto_k,
             "importance_ess": float(1.0 / np.sum(weights ** 2)),
             "mode_gradient_norm": gradient_norm,
             "sampler": "Laplace approximation (mode by L-BFGS-B, inverse Hessian; iid draws, "
                        f"preview, not NUTS), Pareto k-hat {pareto_k:.2f}"}
    stats = {"laplace_log_weight": log_w.reshape(chains, draws),
             "diverging": np.zeros((chains, draws), dtype=bool)}
    return samples, stats, attrs
