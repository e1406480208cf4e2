"""Many patients with one compiled NUTS program: :func:`fit_patients`.

For cohorts that share the imaging protocol (same organs, times, sessions and schedule; only the
measured activities differ) — simulation-based calibration, virtual cohorts, re-analysis of a
trial — compiling one PyMC model per patient dominates the run time. Here the PyMC model is
built once with the observations as an input, its log-density is compiled to JAX
(``pymc.sampling.jax.get_jaxified_graph``), and :func:`tdt.inference._nuts.sample_vmapped_patients`
runs every (patient, chain) pair side by side under ``jax.vmap`` — or (``chain_method=
"parallel"``, :func:`_threaded_patients`) one blackjax chain is compiled once and run for every
pair in threads. Each patient gets its own :class:`~tdt.inference.Posterior` with its own
diagnostics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.inference._bridge import nan_on_solver_error
from tdt.inference._data import PatientData
from tdt.inference._diagnostics import compute_diagnostics
from tdt.inference._laplace_program import LaplaceProgram, logp_with_inputs
from tdt.inference._measurement import MeasurementModel, free_recovery, recovery_sds
from tdt.inference._models import TwinModel, resolve_model
from tdt.inference._nuts import (
    flat_initial_point,
    idata_from_values,
    sample_vmapped_patients,
    windowed_nuts_chain,
)
from tdt.inference._pm_graph import constrained_draws_fn
from tdt.inference._posterior import Posterior
from tdt.inference._pymc_models import build_patient_model
from tdt.inference._sampling import GATE_VARIABLES, _check_counts


def _same_protocol(datasets: Sequence[PatientData], measurement: MeasurementModel) -> None:
    ref = datasets[0]
    ref_free = free_recovery(ref, measurement)
    for i, d in enumerate(datasets[1:], start=1):
        same = (d.organ_names == ref.organ_names and d.sessions == ref.sessions
                and all(np.array_equal(d.organs[o].times_h, ref.organs[o].times_h)
                        and d.organs[o].sessions == ref.organs[o].sessions
                        and d.organs[o].volume_ml == ref.organs[o].volume_ml
                        and d.organs[o].recovery == ref.organs[o].recovery
                        for o in ref.organ_names)
                and np.array_equal(free_recovery(d, measurement), ref_free)
                and d.calibration_sd == ref.calibration_sd)
        if not same:
            raise InputError(
                f"fit_patients: datasets[{i}] ({d.patient_id!r}) has another protocol (organs, "
                "times, sessions, volumes, recovery VOIs or calibration_sd) than datasets[0]; "
                "expected one protocol for a batch (use fit_patient per patient otherwise)")


#: ``chain_method`` of :func:`fit_patients`.
CHAIN_METHODS = ("vectorized", "parallel")


def _threaded_patients(potential_gen, flat0, observations, *, draws: int, tune: int,
                       chains: int, seed: int, target_accept: float, dense_mass: bool,
                       max_tree_depth: int, on_patient: Callable):
    """blackjax NUTS (Stan's windowed warm-up, :func:`windowed_nuts_chain`) compiled ONCE for
    one chain with the observations as an input, then run for every (patient, chain) pair in
    threads, one per CPU core (XLA releases the GIL). Unlike the vmapped run no chain waits
    for the longest NUTS trajectory of the batch. ``on_patient(p, draws (chains, draws, dim),
    diverging, n_steps, wall_s)`` is called, in patient order, as soon as patient ``p``'s chains
    are done (checkpointing of long cohorts). Each chain depends only on its own key."""
    n_pat = observations.shape[0]
    key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
    inits = flat0 + jax.random.uniform(key_init, (n_pat, chains, flat0.size), minval=-1.0,
                                       maxval=1.0)
    keys = jax.random.split(key_run, n_pat * chains).reshape(n_pat, chains, -1)

    def one_chain(x0, key, y):
        potential = potential_gen(y)

        def logdensity(x):
            return -potential(x)

        # a jittered start where the model cannot be solved would never move: prior median
        x0 = jnp.where(jnp.isfinite(logdensity(x0)), x0, flat0)
        positions, div, steps, _, _ = windowed_nuts_chain(
            logdensity, x0, key, tune=tune, draws=draws, target_accept=target_accept,
            dense_mass=dense_mass, max_tree_depth=max_tree_depth)
        return positions, div, steps

    start = time.perf_counter()
    with nan_on_solver_error():
        compiled = jax.jit(one_chain).lower(inits[0, 0], keys[0, 0], observations[0]).compile()
        workers = max(1, min(n_pat * chains, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [[pool.submit(lambda p, c: jax.block_until_ready(
                compiled(inits[p, c], keys[p, c], observations[p])), p, c)
                for c in range(chains)] for p in range(n_pat)]
            for p in range(n_pat):
                zs, div, steps = (np.stack(x) for x in zip(
                    *(f.result() for f in futures[p]), strict=True))
                on_patient(p, zs, div, steps, time.perf_counter() - start)


def _laplace_patients(datasets, twin, measurement, schedule, draws, chains, seed,
                      on_posterior) -> list[Posterior]:
    """``fit_patients(sampler="laplace")``: one :class:`LaplaceProgram` for the cohort."""
    program = LaplaceProgram(datasets[0], twin, measurement, schedule)
    posteriors = []
    for p, data in enumerate(datasets):
        posteriors.append(program.fit(data, schedule, draws=draws, chains=chains, seed=seed + p))
        if on_posterior is not None:
            on_posterior(p, posteriors[-1])
    return posteriors


def fit_patients(datasets: Sequence[PatientData], model: str | TwinModel = "reduced",
                 draws: int = 1000, chains: int = 4, tune: int = 1000, seed: int = 0,
                 measurement: MeasurementModel | None = None, schedule=None,
                 target_accept: float = 0.9, dense_mass: bool = True,
                 max_tree_depth: int = 10, chain_method: str = "vectorized",
                 on_posterior: Callable[[int, Posterior], None] | None = None,
                 sampler: str = "nuts") -> list[Posterior]:
    """Fit every patient of ``datasets`` (one protocol) with one compiled NUTS program.

    Same model and measurement model as :func:`fit_patient`; returns one :class:`Posterior`
    per patient (in order), each with its own diagnostics. Deterministic for a given ``seed``.

    ``chain_method``: ``"vectorized"`` (default; numpyro's NUTS over every (patient, chain)
    pair under ``jax.vmap``, one program for the cohort) or ``"parallel"`` (blackjax NUTS
    compiled once for one chain, every (patient, chain) pair run in threads: no lockstep wait
    for the longest trajectory, the better choice for the PBPK model on a CPU;
    :func:`_threaded_patients`). ``on_posterior(index, posterior)``: called as each patient's
    posterior is ready (``"parallel"``: while the others still run — checkpoint long runs);
    its ``sampling_time_s`` is then the wall time since the start of the run.

    ``sampler="laplace"``: instead of NUTS, each patient's Laplace preview (what
    ``fit_patient(..., sampler="laplace")`` gives: mode by L-BFGS-B, exact Hessian, iid draws,
    Pareto-k̂ gate, labelled LAPLACE PREVIEW), with the log-density, gradient and Hessian
    compiled once for the cohort (:class:`tdt.inference.LaplaceProgram`);
    patient ``p`` uses seed ``seed + p``; ``tune``, ``chain_method`` and the NUTS options are
    unused.
    """
    if sampler not in ("nuts", "laplace"):
        raise InputError(f"fit_patients: sampler {sampler!r}; expected 'nuts' or 'laplace'")
    if chain_method not in CHAIN_METHODS:
        raise InputError(f"fit_patients: chain_method {chain_method!r}; expected one of "
                         f"{list(CHAIN_METHODS)}")
    datasets = list(datasets)
    if not datasets or not all(isinstance(d, PatientData) for d in datasets):
        raise InputError("fit_patients: datasets must be a non-empty list of PatientData")
    _check_counts(draws, chains, tune, seed)
    measurement = measurement or MeasurementModel()
    _same_protocol(datasets, measurement)
    twin = resolve_model(model, datasets[0])
    schedule = datasets[0].resolve_schedule() if schedule is None else schedule
    if sampler == "laplace":
        return _laplace_patients(datasets, twin, measurement, schedule, draws, chains, seed,
                                 on_posterior)
    pm_model = build_patient_model(datasets[0], twin, measurement, schedule)
    logp_fn = logp_with_inputs(pm_model)
    flat0, unravel = flat_initial_point(pm_model)
    log_y = np.stack([np.log(d.flat()["activity_mbq"]) for d in datasets])
    n_obs = log_y.shape[1]
    # each patient's own per-VOI recovery SDs travel with its observations (one array, split)
    free = free_recovery(datasets[0], measurement)
    with_sd = "log_recovery" in pm_model.named_vars
    sds = np.stack([recovery_sds(d, measurement)[free] for d in datasets])
    observations = jnp.asarray(np.concatenate([log_y, sds], axis=1) if with_sd else log_y)

    def potential_gen(obs):
        extra = (obs[n_obs:],) if with_sd else ()

        def potential(z):
            (value,) = logp_fn(*unravel(z), obs[:n_obs], *extra)
            return -jnp.where(jnp.isfinite(value), value, -jnp.inf)

        return potential

    posteriors: list[Posterior] = []
    constrained_draws = constrained_draws_fn(pm_model, unravel)  # compiled once

    def finish(p, zs, div, steps, wall, sampler):
        finish_idata(p, zs, {"diverging": div, "n_steps": steps},
                     {"sampling_time": wall, "sampler": sampler})

    def finish_idata(p, zs, stats, attrs):
        wall = attrs["sampling_time"]
        values = constrained_draws(jnp.asarray(zs))  # (chains, draws, ...)
        idata = idata_from_values(pm_model, values, stats, attrs,
                                  observed={"log_activity": np.asarray(log_y[p])})
        diagnostics = compute_diagnostics(idata, GATE_VARIABLES, sampling_time_s=wall)
        posterior = Posterior(idata, twin=twin, data=datasets[p], diagnostics=diagnostics,
                              schedule=schedule, measurement=measurement)
        posteriors.append(posterior)
        if on_posterior is not None:
            on_posterior(p, posterior)

    options = {"draws": draws, "tune": tune, "chains": chains, "seed": seed,
               "target_accept": target_accept, "dense_mass": dense_mass,
               "max_tree_depth": max_tree_depth}
    if chain_method == "parallel":
        _threaded_patients(
            potential_gen, flat0, observations, **options,
            on_patient=lambda p, zs, div, steps, wall: finish(
                p, zs, div, steps, wall, "blackjax NUTS (one compiled chain, threads)"))
        return posteriors
    zs, div, steps, wall = sample_vmapped_patients(potential_gen, flat0, observations,
                                                   **options)
    for p in range(len(datasets)):
        finish(p, zs[p], div[p], steps[p], wall, "numpyro functional NUTS (vmapped)")
    return posteriors
