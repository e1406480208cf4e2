"""The bridge between the JAX forward model and PyMC: ``pytensor.wrap_jax``.

The forward model is a pure JAX function; :func:`pytensor.wrap_jax` turns it into a PyTensor
Op whose gradient is JAX's vector–Jacobian product, and which the JAX NUTS backends (numpyro)
inline into the compiled log-density. A failed solve (NaN/Inf, non-positive activity) must not
crash the sampler: the outputs are replaced by a finite placeholder and a flag ``ok`` = 0 is
returned, which the PyMC model turns into a ``-inf`` potential (DESIGN.md, measured pitfalls:
a NaN passed as a distribution parameter makes numpyro raise).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import jax
import jax.numpy as jnp
import numpy as np
from pytensor import wrap_jax

from tdt.errors import SolverError
from tdt.inference._data import PatientData
from tdt.inference._models import TwinModel


def _equinox_errors():
    try:
        import equinox._errors as eqx_errors  # noqa: PLC0415 - private module: optional, may move
    except ImportError:  # pragma: no cover - equinox comes with diffrax
        return None
    return eqx_errors if hasattr(eqx_errors, "EQX_ON_ERROR") else None


@contextmanager
def nan_on_solver_error() -> Iterator[None]:
    """Inside the block, equinox runtime errors (``eqx.error_if``) return NaN instead of
    raising, unless the user chose a mode with the ``EQX_ON_ERROR`` environment variable.

    Why: diffrax's implicit solvers (Kvaerno5) call ``lineax.linear_solve`` with
    ``throw=False`` in the forward pass, but lineax's JVP/transpose rules solve the tangent and
    cotangent systems with ``throw=True`` unconditionally (lineax ``_solve.py``: "nowhere to
    pipe result to"). A singular Newton matrix in a wild warm-up proposal then raises
    "linear solver returned non-finite output" from inside the sampler's compiled gradient and
    aborts the whole fit. With ``"nan"`` the gradient becomes NaN instead: numpyro/blackjax
    treat the trajectory as divergent and reject it, and the bridge's ``ok`` flag turns a
    failed forward solve into a ``-inf`` log-density. The mode is read when the sampler's
    log-density is traced, which happens inside this block. equinox caches its jitted error
    check per shape with the mode of the first trace: :func:`use_nan_on_solver_error` (run
    at import of tdt.inference) therefore sets the mode process-wide; this block re-asserts
    it.
    """
    errors = _equinox_errors()
    if errors is None or _USER_MODE is not None:
        yield
        return
    previous = errors.EQX_ON_ERROR
    errors.EQX_ON_ERROR = "nan"
    try:
        yield
    finally:
        errors.EQX_ON_ERROR = previous


def use_nan_on_solver_error() -> None:
    """Make ``"nan"`` equinox's process-wide default error mode (called when tdt.inference is
    imported) unless the user set ``EQX_ON_ERROR``. Process-wide because equinox caches its
    jitted error checks with the mode of their first trace (a scoped switch would leak into,
    or be overridden by, traces made outside the sampler). tdt never relies on equinox
    raising inside compiled code: every solver failure is reported as ``Simulation.ok``."""
    if _USER_MODE is not None:
        return
    os.environ["EQX_ON_ERROR"] = "nan"  # for equinox imported later (and subprocesses)
    errors = _equinox_errors()
    if errors is not None:
        errors.EQX_ON_ERROR = "nan"


#: The user's own EQX_ON_ERROR (respected), read before tdt changes it.
_USER_MODE = os.environ.get("EQX_ON_ERROR")


def forward_function(twin: TwinModel, data: PatientData, schedule,
                     amounts_input: bool = False) -> Callable:
    """JAX function ``log_theta (n_params,) -> (log_pred (n_obs,), tia (n_organs,), ok ())``.

    ``log_pred`` is the log of the model activity (MBq) at every observation of ``data``
    (organ-major, as :meth:`PatientData.flat`), ``tia`` the model TIA (MBq·h) of each organ,
    ``ok`` 1.0 when every output is finite and every predicted activity positive.

    ``amounts_input=True``: the function is ``(log_theta, amounts) -> ...`` with ``amounts``
    (2, n_admin) = (activity MBq, ligand nmol) of each administration of ``schedule``, whose
    times and infusion durations stay fixed (:func:`schedule_amounts`): one compiled program
    for every patient of a protocol whatever activities and ligand amounts each received
    (:class:`tdt.inference.LaplaceProgram`).
    """
    flat = data.flat()
    organs = data.organ_names
    times = jnp.asarray(data.times_h)
    organ_idx = jnp.asarray(flat["organ_index"])
    time_idx = jnp.asarray(flat["time_index"])

    def fn(log_theta, amounts=None):
        sched = schedule if amounts is None else with_amounts(schedule, amounts)
        activity, tia, solver_ok = twin.simulate(log_theta, sched, times, organs)
        pred = activity[organ_idx, time_idx]
        bad = ~jnp.isfinite(pred) | (pred <= 0)
        bad_tia = ~jnp.isfinite(tia)
        ok = solver_ok & ~(jnp.any(bad) | jnp.any(bad_tia))
        log_pred = jnp.log(jnp.where(bad, 1.0, pred))
        tia = jnp.where(bad_tia, 0.0, tia)
        return log_pred, tia, ok.astype(log_theta.dtype)

    return fn if amounts_input else (lambda log_theta: fn(log_theta))


def schedule_amounts(schedule) -> np.ndarray:
    """(2, n_admin): activity (MBq) and ligand amount (nmol) of each administration."""
    return np.stack([np.asarray(schedule.activity_mbq, dtype=float),
                     np.asarray(schedule.ligand_nmol, dtype=float)])


def with_amounts(schedule, amounts):
    """``schedule`` with the activities and ligand amounts of ``amounts`` (2, n) — the first n
    administrations (a likelihood schedule is a prefix of the full one); times and infusion
    durations stay concrete NumPy values, so the solvers' trace-time paths still apply."""
    n = int(np.shape(schedule.time_h)[0])
    return type(schedule).tree_unflatten(None, (
        np.asarray(schedule.time_h, dtype=float), amounts[0, :n], amounts[1, :n],
        np.asarray(schedule.infusion_h, dtype=float)))


def wrapped_forward(twin: TwinModel, data: PatientData, schedule,
                    amounts_input: bool = False) -> Callable:
    """The :func:`forward_function` as a PyTensor-callable (``pytensor.wrap_jax``)."""
    return wrap_jax(jax.jit(forward_function(twin, data, schedule, amounts_input)))


def likelihood_schedule(schedule, data: PatientData):
    """The administrations of ``schedule`` that can influence the data: those given at or before
    the last observation (h after the first administration); ``None`` when that is all of them.

    Why: the activity at time t depends only on the administrations at or before t (causality of
    the piecewise solve), so the later ones are exactly unused by the likelihood. Integrating
    them anyway cost a full forward *and* reverse pass per later cycle (``lax.scan`` transposes
    every iteration; docs/inference.md, "Multi-cycle fits"). Their TIA is still reported: the
    PyMC model computes it as a deterministic of the full schedule, after sampling.
    """
    admins = getattr(schedule, "administrations", None)
    if not admins:
        return None
    last = float(np.max(data.times_h))
    kept = [a for a in admins if a.time_h <= last]
    if not kept or len(kept) == len(admins):
        return None
    return type(schedule)(kept)


def wrapped_tia(twin: TwinModel, data: PatientData, schedule,
                amounts_input: bool = False) -> Callable:
    """PyTensor-callable ``log_theta[, amounts] -> tia (n_organs,)`` (MBq·h) over the whole
    ``schedule`` (the :func:`forward_function`'s TIA output alone; failed solves give 0, as
    there)."""
    fn = forward_function(twin, data, schedule, amounts_input)
    return wrap_jax(jax.jit(lambda *args: fn(*args)[1]))


def check_forward(twin: TwinModel, data: PatientData, schedule) -> np.ndarray:
    """Evaluate the forward model at the prior median (a cheap smoke test before sampling);
    returns the predicted activities at the observations (MBq). Solved over the
    :func:`likelihood_schedule` (what the sampler solves)."""
    schedule = likelihood_schedule(schedule, data) or schedule
    # jitted: eager op-by-op dispatch of the PBPK solvers costs seconds (8 s measured)
    log_pred, _, ok = jax.jit(forward_function(twin, data, schedule))(jnp.asarray(twin.prior_loc))
    if not bool(ok):
        raise SolverError(
            f"forward model {twin.kind!r}: non-finite or non-positive activity at the prior "
            "median; check the schedule and the model parameters"
        )
    return np.exp(np.asarray(log_pred))
