"""The bridge between the JAX forward model and PyMC: ``pytensor.wrap_jax``.

The forward model is a pure JAX function; :func:`pytensor.wrap_jax` turns it into a PyTensor
Op whose gradient is JAX's vector–Jacobian product, and which the JAX NUTS backends (numpyro)
inline into the compiled log-density. A failed solve (NaN/Inf, non-positive activity) must not
crash the sampler: the outputs are replaced by a finite placeholder and a flag ``ok`` = 0 is
returned, which the PyMC model turns into a ``-inf`` potential (DESIGN.md, measured pitfalls:
a NaN passed as a distribution parameter makes numpyro raise).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from pytensor import wrap_jax

from tdt.inference.data import PatientData
from tdt.inference.models import TwinModel


def forward_function(twin: TwinModel, data: PatientData, schedule) -> Callable:
    """JAX function ``log_theta (n_params,) -> (log_pred (n_obs,), tia (n_organs,), ok ())``.

    ``log_pred`` is the log of the model activity (MBq) at every observation of ``data``
    (organ-major, as :meth:`PatientData.flat`), ``tia`` the model TIA (MBq·h) of each organ,
    ``ok`` 1.0 when every output is finite and every predicted activity positive.
    """
    flat = data.flat()
    organs = data.organ_names
    times = jnp.asarray(data.times_h)
    organ_idx = jnp.asarray(flat["organ_index"])
    time_idx = jnp.asarray(flat["time_index"])

    def fn(log_theta):
        activity, tia, solver_ok = twin.simulate(log_theta, schedule, times, organs)
        pred = activity[organ_idx, time_idx]
        bad = ~jnp.isfinite(pred) | (pred <= 0)
        bad_tia = ~jnp.isfinite(tia)
        ok = solver_ok & ~(jnp.any(bad) | jnp.any(bad_tia))
        log_pred = jnp.log(jnp.where(bad, 1.0, pred))
        tia = jnp.where(bad_tia, 0.0, tia)
        return log_pred, tia, ok.astype(log_theta.dtype)

    return fn


def wrapped_forward(twin: TwinModel, data: PatientData, schedule) -> Callable:
    """The :func:`forward_function` as a PyTensor-callable (``pytensor.wrap_jax``)."""
    return wrap_jax(jax.jit(forward_function(twin, data, schedule)))


def check_forward(twin: TwinModel, data: PatientData, schedule) -> np.ndarray:
    """Evaluate the forward model at the prior median (a cheap smoke test before sampling);
    returns the predicted activities at the observations (MBq)."""
    log_pred, _, ok = forward_function(twin, data, schedule)(jnp.asarray(twin.prior_loc))
    if not bool(ok):
        from tdt.errors import SolverError

        raise SolverError(
            f"forward model {twin.kind!r}: non-finite or non-positive activity at the prior "
            "median; check the schedule and the model parameters"
        )
    return np.exp(np.asarray(log_pred))
