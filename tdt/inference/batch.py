"""Many patients in one vmapped NUTS run: :func:`fit_patients`.

For cohorts that share the imaging protocol (same organs, times, sessions and schedule; only the
measured activities differ) — simulation-based calibration, virtual cohorts, re-analysis of a
trial — compiling one PyMC model per patient dominates the run time. Here the PyMC model is
built once with the observations as an input, its log-density is compiled to JAX
(``pymc.sampling.jax.get_jaxified_graph``), and numpyro's functional NUTS kernels
(``numpyro.infer.hmc.hmc`` with ``potential_fn_gen``) run every (patient, chain) pair side by
side under ``jax.vmap``, each with its own step size and dense mass-matrix adaptation (Stan's
windowed warm-up, as in ``numpyro.infer.MCMC``). Each patient gets its own
:class:`~tdt.inference.Posterior` with its own diagnostics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc import hmc
from pymc.backends.arviz import coords_and_dims_for_inferencedata
from pymc.sampling.jax import get_jaxified_graph

from tdt.errors import InputError
from tdt.inference.bridge import nan_on_solver_error
from tdt.inference.data import PatientData
from tdt.inference.diagnostics import compute_diagnostics
from tdt.inference.measurement import MeasurementModel
from tdt.inference.models import TwinModel, resolve_model
from tdt.inference.posterior import Posterior
from tdt.inference.pymc_models import build_patient_model
from tdt.inference.sampling import GATE_VARIABLES, _check_counts


def _same_protocol(datasets: Sequence[PatientData]) -> None:
    ref = datasets[0]
    for i, d in enumerate(datasets[1:], start=1):
        same = (d.organ_names == ref.organ_names and d.sessions == ref.sessions
                and all(np.array_equal(d.organs[o].times_h, ref.organs[o].times_h)
                        and d.organs[o].sessions == ref.organs[o].sessions
                        and d.organs[o].volume_ml == ref.organs[o].volume_ml
                        and d.organs[o].recovery == ref.organs[o].recovery
                        for o in ref.organ_names)
                and d.calibration_sd == ref.calibration_sd)
        if not same:
            raise InputError(
                f"fit_patients: datasets[{i}] ({d.patient_id!r}) has another protocol (organs, "
                "times, sessions, volumes or calibration_sd) than datasets[0]; expected one "
                "protocol for a batch (use fit_patient per patient otherwise)")


def _jax_functions(model: pm.Model):
    """(logp(values, log_y), values→outputs, names) from a PyMC patient model."""
    obs_rv = model["log_activity"]
    data = model.rvs_to_values[obs_rv]
    y = pt.vector("log_y_input", dtype=data.type.dtype)
    logp = model.logp()
    logp_y = pytensor.graph.replace.graph_replace(logp, {data: y}, strict=False)
    logp_fn = get_jaxified_graph(inputs=[*model.value_vars, y], outputs=[logp_y])
    outputs = list(model.unobserved_value_vars)
    out_fn = get_jaxified_graph(inputs=model.value_vars, outputs=outputs)
    return logp_fn, out_fn, [v.name for v in outputs]


def fit_patients(datasets: Sequence[PatientData], model: str | TwinModel = "reduced",
                 draws: int = 1000, chains: int = 4, tune: int = 1000, seed: int = 0,
                 measurement: MeasurementModel | None = None, schedule=None,
                 target_accept: float = 0.9, dense_mass: bool = True,
                 max_tree_depth: int = 10) -> list[Posterior]:
    """Fit every patient of ``datasets`` (one protocol) in one vmapped NUTS run.

    Same model and measurement model as :func:`fit_patient`; returns one :class:`Posterior`
    per patient (in order), each with its own diagnostics. Deterministic for a given ``seed``.
    """
    datasets = list(datasets)
    if not datasets or not all(isinstance(d, PatientData) for d in datasets):
        raise InputError("fit_patients: datasets must be a non-empty list of PatientData")
    _check_counts(draws, chains, tune, seed)
    _same_protocol(datasets)
    measurement = measurement or MeasurementModel()
    twin = resolve_model(model, datasets[0])
    schedule = datasets[0].resolve_schedule() if schedule is None else schedule
    pm_model = build_patient_model(datasets[0], twin, measurement, schedule)
    logp_fn, out_fn, out_names = _jax_functions(pm_model)

    init_point = pm_model.initial_point()
    template = [jnp.asarray(init_point[v.name]) for v in pm_model.value_vars]
    flat0, unravel = ravel_pytree(template)
    log_y = jnp.asarray(np.stack([np.log(d.flat()["activity_mbq"]) for d in datasets]))

    def potential_gen(y):
        def potential(z):
            (value,) = logp_fn(*unravel(z), y)
            return -jnp.where(jnp.isfinite(value), value, -jnp.inf)

        return potential

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
    n_pat = len(datasets)
    key = jax.random.PRNGKey(seed)
    key_init, key_run = jax.random.split(key)
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
        zs, div, steps = jax.block_until_ready(run(inits, keys, log_y))
    wall = time.perf_counter() - start

    def outputs(z):
        return out_fn(*unravel(z))

    values = jax.jit(jax.vmap(outputs))(zs.reshape(-1, flat0.size))
    coords, dims = coords_and_dims_for_inferencedata(pm_model)
    posteriors = []
    for p, data in enumerate(datasets):
        post = {}
        for name, v in zip(out_names, values, strict=True):
            arr = np.asarray(v).reshape(n_pat, chains, draws, *np.shape(v)[1:])[p]
            post[name] = arr
        idata = az.from_dict(
            posterior=post,
            sample_stats={"diverging": np.asarray(div[p]), "n_steps": np.asarray(steps[p])},
            observed_data={"log_activity": np.asarray(log_y[p])},
            coords=coords, dims=dims,
            attrs={"sampling_time": wall, "sampler": "numpyro functional NUTS (vmapped)"},
        )
        diagnostics = compute_diagnostics(idata, GATE_VARIABLES, sampling_time_s=wall)
        posteriors.append(Posterior(idata, twin=twin, data=data, diagnostics=diagnostics,
                                    schedule=schedule, measurement=measurement))
    return posteriors
