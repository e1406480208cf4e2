"""Every NUTS-with-warm-up backend of tdt, in one module (like ``pymc/sampling/jax.py``).

All backends sample the unconstrained log-density of a PyMC model compiled to JAX
(:func:`_flat_logdensity`: the jaxify boilerplate, once) and return ArviZ InferenceData built by
one post-processing step (:func:`idata_from_flat`: constrained values and deterministics,
jitted and vmapped over draws):

* :func:`run_sampler` — the dispatcher of :func:`tdt.inference.fit_patient`: ``"blackjax"``
  (default, :func:`sample_blackjax_nuts`), ``"numpyro"`` / ``"nutpie"`` / ``"pymc"`` through
  ``pm.sample``; ``"laplace"`` (no NUTS): :mod:`tdt.inference._laplace_draws`.
* :func:`sample_blackjax_nuts` — blackjax NUTS with Stan's windowed warm-up compiled once
  (:func:`windowed_nuts_chain`), chains in threads or vectorised.
* :func:`sample_laplace_nuts` — numpyro NUTS with the Laplace dense metric
  (:func:`tdt.inference._laplace.laplace_metric`), the sampler of :func:`fit_population`.
* :func:`sample_vmapped_patients` — numpyro's functional NUTS over (patient, chain) pairs
  under ``jax.vmap``, the sampler of :func:`fit_patients`.

Every run is wrapped in :func:`tdt.inference._bridge.nan_on_solver_error` (a failed implicit
solve is a rejected proposal, not an exception).
Why a Laplace metric for the hierarchical model: ~15 parameters per patient plus the
population mean and SDs (~300 dimensions for 20 patients) with strong linear correlations inside
each patient. Diagonal adaptation left 350 leapfrog steps per draw; Stan-style windowed *dense*
adaptation needs hundreds of draws per window to estimate a 300×300 covariance and ran at tree
depth 9 (benchmarks/bench_inference.py). The inverse Hessian at the mode is the natural dense
metric of Euclidean HMC (Betancourt, arXiv:1701.02434, §4.2); it is kept fixed and warm-up adapts
only the step size (dual averaging), then pooled warm-up draws correct it where the posterior is
not Gaussian (:func:`tdt.inference._laplace.spiked_correction`). Chains start at independent
draws from the Laplace approximation. If the mode or its Hessian is not finite, NUTS falls back
to numpyro's windowed dense adaptation from the model's initial point.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import arviz as az
import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.adaptation.window_adaptation import build_schedule
from jax.flatten_util import ravel_pytree
from numpyro.infer import MCMC, NUTS
from numpyro.infer.hmc import hmc
from pymc.backends.arviz import coords_and_dims_for_inferencedata, find_observations
from pymc.sampling.jax import get_jaxified_logp

from tdt.errors import InputError
from tdt.inference._bridge import nan_on_solver_error
from tdt.inference._laplace import laplace_metric, spiked_correction
from tdt.inference._pm_graph import constrained_draws_fn

__all__ = [
    "SAMPLERS", "default_sampler", "flat_initial_point",
    "idata_from_flat", "idata_from_values", "run_sampler", "sample_blackjax_nuts",
    "sample_laplace_nuts", "sample_vmapped_patients", "windowed_nuts_chain",
]


def flat_initial_point(model: pm.Model):
    """``(flat0, unravel)``: the model's initial point as one flat vector of unconstrained
    values, and the map from such a vector back to the list of value variables."""
    init_point = model.initial_point()
    return ravel_pytree([jnp.asarray(init_point[v.name]) for v in model.value_vars])


def _flat_logdensity(model: pm.Model):
    """The jaxify boilerplate, once: ``(flat0, unravel, logdensity)`` (:func:`flat_initial_point`)
    with ``logdensity(x)`` = +log p(x) (NaN, e.g. a failed solve, mapped to −inf)."""
    flat0, unravel = flat_initial_point(model)
    logp = get_jaxified_logp(model, negative_logp=True)  # (sic) negative_logp=True gives +log p

    def logdensity(x):
        value = logp(unravel(x))
        return jnp.where(jnp.isnan(value), -jnp.inf, value)

    return flat0, unravel, logdensity


#: Backends of :func:`run_sampler` (NUTS; docs/inference.md "Sampler choices"; and "laplace").
SAMPLERS = ("numpyro", "blackjax", "nutpie", "pymc", "laplace")


def default_sampler() -> str:
    """blackjax (a hard dependency; fastest on the standard patient: 16 s, 162 min-ESS/s vs
    numpyro's 33 s, 77 min-ESS/s; benchmarks/bench_inference.py)."""
    return "blackjax"


def run_sampler(model: pm.Model, *, draws: int, tune: int, chains: int, seed: int,
                target_accept: float = 0.9, sampler: str | None = None,
                chain_method: str | None = None, progressbar: bool = False,
                dense_mass: bool = True, max_tree_depth: int = 10):
    """Sample a PyMC model; returns ``(idata, wall_time_s)`` (compilation included).

    ``sampler``: ``None`` (default: :func:`default_sampler`), ``"numpyro"``, ``"blackjax"``
    (both JAX NUTS), ``"nutpie"`` (nutpie's Rust NUTS on the JAX-compiled log-density and
    JAX gradient; chains in threads; its dense option is the low-rank modified mass matrix),
    ``"pymc"`` (PyMC's own NUTS; comparison only) or ``"laplace"`` (module docstring).

    ``chain_method``: how chains share the CPU — blackjax ``"parallel"`` (default: threads)
    or ``"vectorized"``; numpyro ``"vectorized"`` (default), ``"sequential"`` or ``"parallel"``.

    ``dense_mass``: adapt a dense mass matrix. The kinetic posteriors have strong linear
    correlations (e.g. all uptake rates against the renal clearance when the plasma phase
    is not imaged); a dense metric cut the leapfrog steps per draw from ~64 to ~12 and raised
    the ESS threefold on the standard patient (benchmarks/bench_inference.py).
    """
    sampler = default_sampler() if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise InputError(f"sampler: {sampler!r}; expected one of {SAMPLERS}")
    start = time.perf_counter()
    common = {"draws": draws, "tune": tune, "chains": chains, "random_seed": seed,
              "target_accept": target_accept, "progressbar": progressbar,
              "compute_convergence_checks": False}
    with model, warnings.catch_warnings(), nan_on_solver_error():
        warnings.filterwarnings("ignore", category=UserWarning, module="pymc")
        warnings.filterwarnings("ignore", category=FutureWarning)
        if sampler == "numpyro":
            idata = pm.sample(nuts_sampler="numpyro", nuts_sampler_kwargs={
                "chain_method": chain_method or "vectorized",
                "nuts_kwargs": {"dense_mass": dense_mass, "max_tree_depth": max_tree_depth}},
                **common)
        elif sampler == "blackjax":
            idata, _ = sample_blackjax_nuts(model, draws=draws, tune=tune, chains=chains,
                                            seed=seed, target_accept=target_accept,
                                            dense_mass=dense_mass,
                                            max_tree_depth=max_tree_depth,
                                            chain_method=chain_method or "parallel")
        elif sampler == "laplace":
            from tdt.inference._laplace_draws import sample_laplace  # (it imports this module)
            idata, _ = sample_laplace(model, draws=draws, chains=chains, seed=seed)
        elif sampler == "nutpie":
            idata = pm.sample(nuts_sampler="nutpie", nuts_sampler_kwargs={
                "backend": "jax", "gradient_backend": "jax", "maxdepth": max_tree_depth,
                "low_rank_modified_mass_matrix": dense_mass}, **common)
        else:
            idata = pm.sample(cores=1, **common)
    return idata, time.perf_counter() - start


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
    flat0, unravel, logdensity = _flat_logdensity(model)

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


def sample_laplace_nuts(model: pm.Model, *, draws: int, tune: int, chains: int, seed: int,
                        target_accept: float = 0.9, max_tree_depth: int = 10,
                        chain_method: str = "vectorized"):
    """NUTS (numpyro, vectorised chains) with the Laplace dense metric; ``(idata, wall_s)``.

    Same contract as :func:`run_sampler` (wall time includes the
    compilation, the mode search and the Hessian).
    """
    start = time.perf_counter()
    flat0, unravel, logdensity = _flat_logdensity(model)

    def potential(x):  # numpyro's convention: −log p (+inf where the model cannot be solved)
        return -logdensity(x)

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


def idata_from_values(model: pm.Model, values: dict, stats: dict, attrs: dict,
                      observed: dict | None = None):
    """InferenceData (the shared post-processing of every backend) from constrained ``values``
    (name -> (chains, draws, ...), :func:`constrained_draws_fn`), sampler statistics ``stats``
    (chains, draws), ``attrs``, and the model's observations (or ``observed``)."""
    coords, dims = coords_and_dims_for_inferencedata(model)
    if observed is None:
        observed = {k: np.asarray(v) for k, v in find_observations(model).items()}
    return az.from_dict(posterior=values,
                        sample_stats={k: np.asarray(v) for k, v in stats.items()},
                        observed_data=observed, coords=coords, dims=dims, attrs=attrs)


def idata_from_flat(model: pm.Model, samples, unravel, stats: dict, attrs: dict):
    """InferenceData from flat unconstrained draws ``samples`` (chains, draws, dim)."""
    return idata_from_values(model, constrained_draws_fn(model, unravel)(samples), stats, attrs)


def sample_vmapped_patients(potential_gen, flat0, observations, *, draws: int, tune: int,
                            chains: int, seed: int, target_accept: float, dense_mass: bool,
                            max_tree_depth: int):
    """numpyro's functional NUTS (``numpyro.infer.hmc.hmc`` with ``potential_fn_gen``) for every
    (patient, chain) pair side by side under ``jax.vmap``, each with its own step size and
    (dense) mass-matrix adaptation (Stan's windowed warm-up, as in ``numpyro.infer.MCMC``).

    ``potential_gen(y)`` -> potential of the flat unconstrained vector for observations ``y``;
    ``observations`` (n_patients, n_obs). Returns ``(draws (n_patients, chains, draws, dim),
    diverging, n_steps, wall_s)``.
    """
    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
    n_pat = observations.shape[0]
    key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
    jitter = jax.random.uniform(key_init, (n_pat, chains, flat0.size), minval=-1.0, maxval=1.0)
    inits = flat0 + jitter
    keys = jax.random.split(key_run, n_pat * chains).reshape(n_pat, chains, -1)

    def one_chain(z0, rng, y):
        state = init_kernel(z0, tune, dense_mass=dense_mass, target_accept_prob=target_accept,
                            max_tree_depth=max_tree_depth, model_args=(y,), rng_key=rng)

        def step(s, _):
            s = sample_kernel(s, model_args=(y,))
            return s, (s.z, s.diverging, s.num_steps)

        state, _ = jax.lax.scan(step, state, None, length=tune)
        _, (zs, div, steps) = jax.lax.scan(step, state, None, length=draws)
        return zs, div, steps

    run = jax.jit(jax.vmap(jax.vmap(one_chain, in_axes=(0, 0, None)), in_axes=(0, 0, 0)))
    start = time.perf_counter()
    with nan_on_solver_error():  # a failed implicit solve: rejected proposal, not an exception
        zs, div, steps = jax.block_until_ready(run(inits, keys, observations))
    return zs, div, steps, time.perf_counter() - start
