"""The Laplace approximation: the one home of mode + curvature of a log-density in tdt.

A log-density log p(x) is approximated by N(x̂, H⁻¹), x̂ its mode and H the Hessian of the
potential U = −log p there (Laplace 1774; Gelman et al., Bayesian Data Analysis, 3rd ed.,
§4.1 and §13.3). Exact for a linear-Gaussian model. Used twice in tdt:

* :func:`laplace_mode` — mode by BFGS (optimistix, inside ``jit``) and the exact Hessian
  (:func:`hessian_at`): the per-cycle update of the twin
  (:func:`tdt.twin._assimilate.assimilate_laplace`; a few parameters, milliseconds once
  compiled, which a virtual trial needs).
* :func:`laplace_metric` — the dense metric of the hierarchical NUTS run
  (:func:`tdt.inference._nuts.sample_laplace_nuts`): mode by SciPy's L-BFGS-B (host loop, JAX
  gradient), the same :func:`hessian_at`. Why not the jitted BFGS here: on a 59-dimensional
  reduced-model population posterior (8 simulated patients) optimistix BFGS (Armijo
  backtracking) left the interior mode and stopped at U = −214 with |∇U| ~ 3e8 (a collapsing
  noise scale), while L-BFGS-B (Wolfe line search) converged to the interior mode (U = −64.58,
  |∇U| 4e-5) — measured 2026-12-03 on ``simulate_cohort(..., 8, seed=3)`` of
  ``reduced_model(("kidneys", "liver"))``, 5 time points, default measurement model.
* :func:`spiked_correction` — that metric corrected from pooled warm-up draws where the
  posterior is not Gaussian.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from scipy.optimize import minimize

__all__ = ["LaplaceFit", "hessian_at", "laplace_fitter", "laplace_metric", "laplace_mode",
           "spiked_correction"]

#: Assumed ratio of draws to effective draws in the pooled warm-up sample (NUTS on these
#: posteriors: bulk ESS per draw ~0.3–1), which widens the Marchenko–Pastur noise bulk.
AUTOCORRELATION_FACTOR = 1.0

#: Eigenvalue floor of the Hessian relative to its largest eigenvalue (keeps the metric PD).
EIGENVALUE_FLOOR = 1e-10


class LaplaceFit(NamedTuple):
    """Mode, Hessian and gradient of the potential at the mode; optimiser status."""

    mode: jax.Array
    hessian: jax.Array
    gradient: jax.Array
    converged: jax.Array
    steps: jax.Array


def hessian_at(potential, x, args=None):
    """Exact, symmetrised Hessian of ``potential(x, args)`` at ``x`` (``jax.hessian``,
    forward-over-reverse): the precision of the Laplace approximation when ``x`` is the mode."""
    hessian = jax.hessian(potential)(x, args)
    return 0.5 * (hessian + hessian.T)


def laplace_mode(potential, x0, args=None, *, rtol: float = 1e-9, atol: float = 1e-9,
                 max_steps: int = 1000) -> LaplaceFit:
    """Mode of ``potential(x, args)`` (= −log density, a scalar) from ``x0`` by BFGS
    (optimistix; Cauchy termination at ``rtol``/``atol``) and the exact Hessian there.

    Pure JAX: call it inside ``jax.jit`` (``args`` may be traced). ``converged`` is False when
    the optimiser stopped without meeting its tolerance (e.g. ``max_steps``); the caller decides
    what that means (the twin flags the cycle, :func:`laplace_metric` still uses the point).
    """
    solver = optx.BFGS(rtol=rtol, atol=atol)
    sol = optx.minimise(potential, solver, x0, args=args, max_steps=max_steps, throw=False)
    mode = sol.value
    gradient = jax.grad(potential)(mode, args)
    return LaplaceFit(mode, hessian_at(potential, mode, args), gradient,
                      sol.result == optx.RESULTS.successful, sol.stats["num_steps"])


def laplace_metric(potential, x0, maxiter: int = 5000):
    """Dense NUTS metric from the Laplace approximation of ``potential(x)`` (= −log density):
    mode by L-BFGS-B (SciPy, ``ftol`` 1e-13, ``gtol`` 1e-8; module docstring says why), Hessian
    by :func:`hessian_at`.

    Returns ``(x_mode, inverse_hessian, chol)`` with ``chol @ chol.T = inverse_hessian`` — the
    Hessian's eigenvalues are floored at :data:`EIGENVALUE_FLOOR` × the largest (absolute
    values: positive definite) — or ``None`` when the start, the mode or its curvature is not
    finite.
    """
    return laplace_fitter(lambda x, _: potential(x))(x0, None, maxiter)


def laplace_fitter(potential):
    """:func:`laplace_metric` for ``potential(x, args)`` compiled ONCE: returns
    ``fit(x0, args, maxiter=5000)`` -> ``(x_mode, inverse_hessian, chol)`` or ``None``. The
    jitted value-and-gradient and Hessian take ``args`` (e.g. one patient's observations) as an
    input, so fitting a cohort that shares one model compiles once
    (:class:`tdt.inference.LaplaceProgram`)."""
    value_and_grad = jax.jit(jax.value_and_grad(potential))
    hessian_fn = jax.jit(lambda x, args: hessian_at(potential, x, args))

    def fit(x0, args, maxiter: int = 5000):
        def fun(x):
            value, grad = value_and_grad(jnp.asarray(x), args)
            return float(value), np.asarray(grad, dtype=float)

        x_start = np.asarray(x0, dtype=float)
        if not np.isfinite(fun(x_start)[0]):
            return None
        result = minimize(fun, x_start, jac=True, method="L-BFGS-B",
                          options={"maxiter": maxiter, "ftol": 1e-13, "gtol": 1e-8})
        x_mode = jnp.asarray(result.x)
        if not bool(jnp.all(jnp.isfinite(x_mode))) or not np.isfinite(result.fun):
            return None
        hessian = hessian_fn(x_mode, args)
        if not bool(jnp.all(jnp.isfinite(hessian))):
            return None
        w, v = jnp.linalg.eigh(hessian)
        w = jnp.maximum(jnp.abs(w), EIGENVALUE_FLOOR * jnp.max(jnp.abs(w)))
        inverse = (v / w) @ v.T
        chol = v / jnp.sqrt(w)
        return x_mode, 0.5 * (inverse + inverse.T), chol

    fit.value_and_grad = value_and_grad  # compiled: reuse it (e.g. the gradient at the mode)
    return fit


def spiked_correction(draws, x_mode, chol):
    """Correct the Laplace metric ``chol @ chol.T`` with pooled warm-up ``draws`` (n, d).

    In the whitened coordinates y = chol⁻¹ (x − x_mode) the Laplace approximation says
    Cov(y) = I. A d × d sample covariance of n draws of an identity has eigenvalues spread over
    the Marchenko–Pastur bulk [(1 − √(d/n))², (1 + √(d/n))²] (Marchenko & Pastur, Math. USSR
    Sbornik 1967;1:457) — pure noise that would shrink the step size. Only eigen-directions
    outside that bulk (computed for n / :data:`AUTOCORRELATION_FACTOR` draws; where the
    posterior really is wider or narrower than the Laplace approximation, e.g. a weakly
    identified between-patient SD) are taken from the draws; the rest of the metric stays
    Laplace. Returns ``(inverse_mass (d, d), n_corrected)``.
    """
    n, d = draws.shape
    n = n / AUTOCORRELATION_FACTOR  # warm-up draws are autocorrelated: fewer effective draws
    y = np.linalg.solve(chol, (draws - x_mode).T).T
    cov = np.cov(y, rowvar=False).reshape(d, d)
    if not np.all(np.isfinite(cov)):
        return chol @ chol.T, 0
    lam, vec = np.linalg.eigh(0.5 * (cov + cov.T))
    ratio = np.sqrt(d / n)
    hi, lo = (1 + ratio) ** 2, (1 - ratio) ** 2 if ratio < 1 else 0.0
    spike = (lam > hi) | (lam < lo)
    lam_fixed = np.where(spike, np.maximum(lam, 1e-6), 1.0)
    cov_y = (vec * lam_fixed) @ vec.T
    inverse = chol @ cov_y @ chol.T
    return jnp.asarray(0.5 * (inverse + inverse.T)), int(spike.sum())
