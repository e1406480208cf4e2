"""Many patients in one vmapped NUTS run: :func:`fit_patients`.

For cohorts that share the imaging protocol (same organs, times, sessions and schedule; only the
measured activities differ) — simulation-based calibration, virtual cohorts, re-analysis of a
trial — compiling one PyMC model per patient dominates the run time. Here the PyMC model is
built once with the observations as an input, its log-density is compiled to JAX
(``pymc.sampling.jax.get_jaxified_graph``), and :func:`tdt.inference._nuts.sample_vmapped_patients`
runs every (patient, chain) pair side by side under ``jax.vmap``. Each patient gets its own
:class:`~tdt.inference.Posterior` with its own diagnostics.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.sampling.jax import get_jaxified_graph

from tdt.errors import InputError
from tdt.inference._data import PatientData
from tdt.inference._diagnostics import compute_diagnostics
from tdt.inference._measurement import MeasurementModel
from tdt.inference._models import TwinModel, resolve_model
from tdt.inference._nuts import (
    constrained_draws,
    flat_initial_point,
    idata_from_values,
    sample_vmapped_patients,
)
from tdt.inference._posterior import Posterior
from tdt.inference._pymc_models import build_patient_model
from tdt.inference._sampling import GATE_VARIABLES, _check_counts


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


def _logp_with_observations(model: pm.Model):
    """JAX ``logp(*values, log_y)`` of a PyMC patient model with the observations as input."""
    obs_rv = model["log_activity"]
    data = model.rvs_to_values[obs_rv]
    y = pt.vector("log_y_input", dtype=data.type.dtype)
    logp = model.logp()
    logp_y = pytensor.graph.replace.graph_replace(logp, {data: y}, strict=False)
    return get_jaxified_graph(inputs=[*model.value_vars, y], outputs=[logp_y])


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
    logp_fn = _logp_with_observations(pm_model)
    flat0, unravel = flat_initial_point(pm_model)
    log_y = jnp.asarray(np.stack([np.log(d.flat()["activity_mbq"]) for d in datasets]))

    def potential_gen(y):
        def potential(z):
            (value,) = logp_fn(*unravel(z), y)
            return -jnp.where(jnp.isfinite(value), value, -jnp.inf)

        return potential

    zs, div, steps, wall = sample_vmapped_patients(
        potential_gen, flat0, log_y, draws=draws, tune=tune, chains=chains, seed=seed,
        target_accept=target_accept, dense_mass=dense_mass, max_tree_depth=max_tree_depth)
    values = constrained_draws(pm_model, zs, unravel)  # (n_pat, chains, draws, ...)
    posteriors = []
    for p, data in enumerate(datasets):
        idata = idata_from_values(
            pm_model, {name: v[p] for name, v in values.items()},
            {"diverging": div[p], "n_steps": steps[p]},
            {"sampling_time": wall, "sampler": "numpyro functional NUTS (vmapped)"},
            observed={"log_activity": np.asarray(log_y[p])})
        diagnostics = compute_diagnostics(idata, GATE_VARIABLES, sampling_time_s=wall)
        posteriors.append(Posterior(idata, twin=twin, data=data, diagnostics=diagnostics,
                                    schedule=schedule, measurement=measurement))
    return posteriors
