"""NUTS with a Laplace (inverse-Hessian) dense metric: the sampler of :func:`fit_population`.

Why: the hierarchical posterior has ~15 parameters per patient (kinetic latents, calibration,
recovery) plus the population mean and SDs — ~300 dimensions for 20 patients — with strong
linear correlations inside each patient (uptake rates against the renal clearance when the
plasma phase is not imaged). Diagonal adaptation left 350 leapfrog steps per draw; Stan-style
windowed *dense* adaptation needs hundreds of draws per window to estimate a 300×300
covariance (its first windows of 25–100 draws are noise) and ran at tree depth 9.
Measured in benchmarks/bench_inference.py.

Here the metric comes from the curvature instead of from warm-up draws: the posterior mode of
the unconstrained log-density (BFGS) and the Hessian there (``jax.hessian``, exact, forward-over-
reverse), with eigenvalues floored to keep it positive definite. The inverse Hessian is the
covariance of the Laplace approximation (e.g. Gelman et al., Bayesian Data Analysis, 3rd ed.,
§13.3), the natural dense metric of Euclidean HMC (Betancourt, arXiv:1701.02434, §4.2); it is
kept fixed and warm-up adapts only the step size (dual averaging). Chains start at independent
draws from the Laplace approximation (over-dispersion for R-hat comes from its full width).
The non-centred parameterisation has an interior mode (``z`` ~ N(0, 1), τ's log-Jacobian sends
the log-density to −∞ as τ → 0), unlike the centred one, whose density is unbounded when one
τ collapses.

If the mode or its Hessian is not finite (e.g. a failed solve at the mode), NUTS falls back to
numpyro's windowed dense adaptation from the model's initial point.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
from jax.flatten_util import ravel_pytree
from pymc.backends.arviz import coords_and_dims_for_inferencedata, find_observations
from pymc.sampling.jax import get_jaxified_graph, get_jaxified_logp

from tdt.inference.bridge import nan_on_solver_error

#: Assumed ratio of draws to effective draws in the pooled warm-up sample (NUTS on these
#: posteriors: bulk ESS per draw ~0.3–1), which widens the Marchenko–Pastur noise bulk.
AUTOCORRELATION_FACTOR = 1.0

#: Eigenvalue floor of the Hessian relative to its largest eigenvalue (keeps the metric PD).
EIGENVALUE_FLOOR = 1e-10


def laplace_metric(potential, x0, maxiter: int = 5000):
    """Mode (L-BFGS on ``potential`` = −log density, JAX gradient) and the inverse Hessian
    there.

    Returns ``(x_mode, inverse_hessian, chol)`` with ``chol @ chol.T = inverse_hessian``, or
    ``None`` when the mode or its curvature is not finite.
    """
    from scipy.optimize import minimize

    value_and_grad = jax.jit(jax.value_and_grad(potential))

    def fun(x):
        value, grad = value_and_grad(jnp.asarray(x))
        return float(value), np.asarray(grad, dtype=float)

    x_start = np.asarray(x0, dtype=float)
    if not np.isfinite(fun(x_start)[0]):
        return None
    result = minimize(fun, x_start, jac=True, method="L-BFGS-B",
                      options={"maxiter": maxiter, "ftol": 1e-13, "gtol": 1e-8})
    x_mode = jnp.asarray(result.x)
    if not bool(jnp.all(jnp.isfinite(x_mode))) or not np.isfinite(result.fun):
        return None
    hessian = jax.jit(jax.hessian(potential))(x_mode)
    hessian = 0.5 * (hessian + hessian.T)
    if not bool(jnp.all(jnp.isfinite(hessian))):
        return None
    w, v = jnp.linalg.eigh(hessian)
    w = jnp.maximum(jnp.abs(w), EIGENVALUE_FLOOR * jnp.max(jnp.abs(w)))
    inverse = (v / w) @ v.T
    chol = v / jnp.sqrt(w)
    return x_mode, 0.5 * (inverse + inverse.T), chol


def spiked_correction(draws, x_mode, chol):
    """Correct the Laplace metric ``chol @ chol.T`` with pooled warm-up ``draws`` (n, d).

    In the whitened coordinates y = chol⁻¹ (x − x_mode) the Laplace approximation says
    Cov(y) = I. A d × d sample covariance of n draws of an identity has eigenvalues spread over
    the Marchenko–Pastur bulk [(1 − √(d/n))², (1 + √(d/n))²] (Marchenko & Pastur, Math. USSR
    Sbornik 1967;1:457) — pure noise that would shrink the step size. Only eigen-directions
    outside that bulk (computed for n / :data:`AUTOCORRELATION_FACTOR` draws; where the posterior really is wider or narrower than the Laplace
    approximation, e.g. a weakly identified between-patient SD) are taken from the draws; the
    rest of the metric stays Laplace. Returns ``(inverse_mass (d, d), n_corrected)``.
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


def sample_laplace_nuts(model: pm.Model, *, draws: int, tune: int, chains: int, seed: int,
                        target_accept: float = 0.9, max_tree_depth: int = 10,
                        chain_method: str = "vectorized"):
    """NUTS (numpyro, vectorised chains) with the Laplace dense metric; ``(idata, wall_s)``.

    Same contract as :func:`tdt.inference.sampling.run_sampler` (wall time includes the
    compilation, the mode search and the Hessian).
    """
    from numpyro.infer import MCMC, NUTS

    start = time.perf_counter()
    init_point = model.initial_point()
    template = [jnp.asarray(init_point[v.name]) for v in model.value_vars]
    flat0, unravel = ravel_pytree(template)
    logp = get_jaxified_logp(model, negative_logp=False)  # (sic) returns −log p

    def potential(x):
        value = logp(unravel(x))
        return jnp.where(jnp.isnan(value), jnp.inf, value)

    key = jax.random.PRNGKey(seed)
    key_init, key_run = jax.random.split(key)
    with nan_on_solver_error():
        potential_jit = jax.jit(potential)
        laplace = laplace_metric(potential, flat0)
        extra_fields = ("diverging", "num_steps", "accept_prob", "energy")
        if laplace is not None:
            x_mode, inverse_mass, chol = laplace
            eps = jax.random.normal(key_init, (chains, flat0.size))
            inits = x_mode + eps @ chol.T
            finite = jax.vmap(potential_jit)(inits)
            inits = jnp.where(jnp.isfinite(finite)[:, None], inits, x_mode)
            # stage A: Laplace metric; step size adapted, then draws for the pooled covariance
            warm_a, draws_a = max(tune // 4, 1), max(tune // 2, 1)
            kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept,
                          max_tree_depth=max_tree_depth, dense_mass=True,
                          inverse_mass_matrix=inverse_mass, adapt_mass_matrix=False)
            stage_a = MCMC(kernel, num_warmup=warm_a, num_samples=draws_a, num_chains=chains,
                           chain_method=chain_method, progress_bar=False)
            key_a, key_run = jax.random.split(key_run)
            stage_a.run(key_a, init_params=inits if chains > 1 else inits[0])
            pooled = np.asarray(stage_a.get_samples()).reshape(-1, flat0.size)
            inverse_mass, n_spikes = spiked_correction(pooled, np.asarray(x_mode),
                                                       np.asarray(chol))
            metric = (f"dense: Laplace (inverse Hessian at the mode), {n_spikes} directions "
                      f"corrected from {pooled.shape[0]} pooled warm-up draws")
            step = float(np.median(np.asarray(stage_a.last_state.adapt_state.step_size)))
            inits = stage_a.last_state.z
            kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept,
                          max_tree_depth=max_tree_depth, dense_mass=True, step_size=step,
                          inverse_mass_matrix=inverse_mass, adapt_mass_matrix=False)
            warm_b = max(tune - warm_a - draws_a, 1)
        else:
            jitter = jax.random.uniform(key_init, (chains, flat0.size), minval=-1, maxval=1)
            inits = flat0 + jitter
            kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept,
                          max_tree_depth=max_tree_depth, dense_mass=True)
            metric = "windowed dense adaptation (Laplace failed)"
            warm_b = tune
        mcmc = MCMC(kernel, num_warmup=warm_b, num_samples=draws, num_chains=chains,
                    chain_method=chain_method, progress_bar=False)
        mcmc.run(key_run, init_params=inits if chains > 1 else inits[0],
                 extra_fields=extra_fields)
        samples = mcmc.get_samples(group_by_chain=True)  # (chains, draws, dim)
        extra = mcmc.get_extra_fields(group_by_chain=True)
        jax.block_until_ready(samples)
    wall = time.perf_counter() - start

    idata = idata_from_flat(model, samples, unravel, {
        "diverging": extra["diverging"], "n_steps": extra["num_steps"],
        "acceptance_rate": extra["accept_prob"], "energy": extra["energy"]},
        {"sampling_time": wall, "sampler": f"numpyro NUTS, metric: {metric}"})
    return idata, wall


def idata_from_flat(model: pm.Model, samples, unravel, stats: dict, attrs: dict):
    """InferenceData from flat unconstrained draws ``samples`` (chains, draws, dim): every
    free variable (constrained) and deterministic of ``model``, jitted and vmapped."""
    chains, draws, dim = samples.shape
    outputs = [v for v in model.unobserved_value_vars if not v.name.endswith("__")]
    out_fn = get_jaxified_graph(inputs=model.value_vars, outputs=outputs)
    flat_samples = jnp.reshape(samples, (chains * draws, dim))
    values = jax.jit(jax.vmap(lambda x: out_fn(*unravel(x))))(flat_samples)
    posterior = {v.name: np.asarray(val).reshape(chains, draws, *np.shape(val)[1:])
                 for v, val in zip(outputs, values, strict=True)}
    coords, dims = coords_and_dims_for_inferencedata(model)
    observed = {k: np.asarray(v) for k, v in find_observations(model).items()}
    return az.from_dict(posterior=posterior,
                        sample_stats={k: np.asarray(v) for k, v in stats.items()},
                        observed_data=observed, coords=coords, dims=dims, attrs=attrs)


def sample_blackjax_nuts(model: pm.Model, *, draws: int, tune: int, chains: int, seed: int,
                         target_accept: float = 0.9, dense_mass: bool = True,
                         max_tree_depth: int = 10, chain_method: str = "parallel"):
    """blackjax NUTS with Stan's window adaptation (:func:`windowed_nuts_chain`);
    ``(idata, wall_s)``. (PyMC 5.28's own blackjax wrapper passes ``progress_bar`` to blackjax
    1.7's kernel and fails; this is the same algorithm.)

    ``chain_method``: ``"parallel"`` (default) compiles one chain once and runs the chains in
    threads, one per CPU core (XLA releases the GIL); ``"vectorized"`` runs them under
    ``jax.vmap``. Vectorised chains advance in lockstep: every draw waits for the chain with
    the longest NUTS trajectory, and the two cores share one thread. On the 2-core CPU the
    PBPK standard patient, 4 × (1000 + 1000) with compilation, took 56 s in threads vs 110 s
    vectorised (benchmarks/bench_inference.py). Each chain depends only on its own key, so
    the result does not depend on the thread schedule.
    """

    start = time.perf_counter()
    init_point = model.initial_point()
    template = [jnp.asarray(init_point[v.name]) for v in model.value_vars]
    flat0, unravel = ravel_pytree(template)
    logp = get_jaxified_logp(model, negative_logp=True)  # (sic) returns +log p

    def logdensity(x):
        value = logp(unravel(x))
        return jnp.where(jnp.isnan(value), -jnp.inf, value)

    key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
    inits = flat0 + jax.random.uniform(key_init, (chains, flat0.size), minval=-1, maxval=1)

    def one_chain(x0, key):
        # a jittered start where the model cannot be solved (log density -inf) would never
        # move: start that chain at the model's initial point instead (the prior median,
        # checked). Inside the jitted run: a separate jit would compile the model once more.
        x0 = jnp.where(jnp.isfinite(logdensity(x0)), x0, flat0)
        return windowed_nuts_chain(logdensity, x0, key, tune=tune, draws=draws,
                                   target_accept=target_accept, dense_mass=dense_mass,
                                   max_tree_depth=max_tree_depth)

    chain_keys = jax.random.split(key_run, chains)
    with nan_on_solver_error():
        if chain_method == "vectorized":
            run = jax.jit(jax.vmap(one_chain))
            out = jax.block_until_ready(run(inits, chain_keys))
        else:  # "parallel": one compiled chain, the chains in threads (see docstring)
            compiled = jax.jit(one_chain).lower(inits[0], chain_keys[0]).compile()
            workers = max(1, min(chains, os.cpu_count() or 1))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(
                    lambda c: jax.block_until_ready(compiled(inits[c], chain_keys[c])),
                    range(chains)))
            out = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *results)
        positions, div, steps, acc, energy = out
    wall = time.perf_counter() - start
    idata = idata_from_flat(model, positions, unravel, {
        "diverging": div, "n_steps": steps, "acceptance_rate": acc, "energy": energy},
        {"sampling_time": wall,
         "sampler": f"blackjax NUTS (Stan window adaptation, chains {chain_method})"})
    return idata, wall


def _tree_where(condition, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(condition, a, b), new, old)


def windowed_nuts_chain(logdensity, x0, key, *, tune: int, draws: int, target_accept: float,
                        dense_mass: bool = True, max_tree_depth: int = 10):
    """One NUTS chain: Stan's windowed warm-up then ``draws`` draws, in ONE ``lax.scan``.

    The warm-up is Stan's (Stan Reference Manual, "HMC algorithm parameters": a fast
    step-size window, doubling slow windows that estimate the (dense) mass matrix, a final
    fast window; dual averaging, Hoffman & Gelman JMLR 2014;15:1593) and uses blackjax's own
    pieces (``build_schedule``, ``mass_matrix_adaptation``, ``dual_averaging_adaptation``,
    ``nuts.build_kernel``), as ``blackjax.window_adaptation`` does. Why not call that: it runs
    the warm-up in its own scan, so the compiled program holds the NUTS kernel — with the
    model's gradient inside — twice (warm-up and sampling). For the PBPK model that doubled
    the XLA compilation (~10 s of a ~2 min fit); here the kernel is compiled once and the
    adaptation state is masked off after the warm-up.

    Returns per draw: position, divergence, integration steps, acceptance rate, energy.
    """
    import blackjax
    from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
    from blackjax.adaptation.step_size import dual_averaging_adaptation
    from blackjax.adaptation.window_adaptation import build_schedule

    kernel = blackjax.nuts.build_kernel()
    mm_init, mm_update, mm_final = mass_matrix_adaptation(not dense_mass)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)
    with jax.ensure_compile_time_eval():  # a static schedule, also when called under jit
        schedule = (np.asarray(build_schedule(tune), dtype=int).reshape(-1, 2) if tune > 0
                    else np.zeros((0, 2), dtype=int))
    stage = np.concatenate([schedule[:, 0], np.full(draws, 2)])  # 0 fast, 1 slow, 2 sampling
    window_end = np.concatenate([schedule[:, 1], np.zeros(draws, dtype=int)]).astype(bool)
    last_warmup = np.zeros(tune + draws, dtype=bool)
    if tune > 0:
        last_warmup[tune - 1] = True

    mm_state, da_state = mm_init(x0.size), da_init(1.0)
    carry0 = (blackjax.nuts.init(x0, logdensity), mm_state, da_state, jnp.asarray(1.0),
              mm_state.inverse_mass_matrix)

    def body(carry, inputs):
        state, mm, da, step_size, inverse_mass = carry
        key_i, stage_i, end_i, last_i = inputs
        state, info = kernel(key_i, state, logdensity, step_size, inverse_mass,
                             max_num_doublings=max_tree_depth)
        adapting = stage_i < 2
        da = _tree_where(adapting, da_update(da, info.acceptance_rate), da)
        mm = _tree_where(stage_i == 1, mm_update(mm, state.position), mm)
        step_size = jnp.where(adapting, jnp.exp(da.log_step_size), step_size)
        # end of a slow window: new mass matrix, dual averaging restarted near the average
        def close_window(args):
            mm, da, _, _ = args
            mm, da = mm_final(mm), da_init(da_final(da))
            return mm, da, mm.inverse_mass_matrix, jnp.exp(da.log_step_size)

        mm, da, inverse_mass, step_size = jax.lax.cond(
            end_i, close_window, lambda args: args, (mm, da, inverse_mass, step_size))
        step_size = jnp.where(last_i, da_final(da), step_size)  # sampling: averaged step
        return (state, mm, da, step_size, inverse_mass), (
            state.position, info.is_divergent, info.num_integration_steps,
            info.acceptance_rate, info.energy)

    keys = jax.random.split(key, tune + draws)
    _, out = jax.lax.scan(body, carry0, (keys, jnp.asarray(stage), jnp.asarray(window_end),
                                         jnp.asarray(last_warmup)))
    return jax.tree_util.tree_map(lambda a: a[tune:], out)
