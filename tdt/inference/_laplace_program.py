"""One compiled Laplace preview for every patient of a protocol: :class:`LaplaceProgram`.

The Laplace preview of a patient (:mod:`tdt.inference._laplace_draws`: mode by L-BFGS-B, exact
Hessian, iid Gaussian draws, Pareto-k̂ gate, labelled LAPLACE PREVIEW) costs little to run but a
lot to compile: the PyMC model folds the patient's data *and schedule* into the log-density as
constants, so every patient — and, for a twin, every cycle of every patient — compiles its own
XLA programs (measured for the two-cycle PBPK twin, docs/twin.md: ~60 s of ~108 s per patient
are XLA compilation).

A :class:`LaplaceProgram` builds the PyMC model once from a *template* patient with three
inputs instead of constants — the observed log activities, the per-VOI recovery SDs (when the
model has free recoveries), and the schedule's activities and ligand amounts (``(2, n_admin)``,
:func:`tdt.inference._bridge.forward_function` with ``amounts_input``) — and compiles the
log-density, its gradient and Hessian (:func:`tdt.inference._laplace.laplace_fitter`) and the
draws-to-variables map once. :meth:`LaplaceProgram.fit` then fits any patient of the same
protocol: same organs, imaging times and sessions, recovery coefficients and free-recovery VOIs,
calibration SD, and the same administration *times* (activities and ligand amounts free). Its
posterior equals ``fit_patient(data, model, sampler="laplace", seed=seed)``'s up to floating
point (tests/inference/test_inference_laplace_program.py, a second construction with the data
and schedule as constants).
"""

from __future__ import annotations

import time
import warnings

import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.sampling.jax import get_jaxified_graph

from tdt.errors import ConvergenceError, InputError
from tdt.inference._bridge import nan_on_solver_error, schedule_amounts
from tdt.inference._data import PatientData
from tdt.inference._diagnostics import NOT_CONVERGED, compute_diagnostics
from tdt.inference._laplace_draws import _NOT_FINITE, _finish_draws, _laplace_drawer
from tdt.inference._measurement import (
    MeasurementModel,
    free_recovery,
    recovery_coefficients,
    recovery_sds,
)
from tdt.inference._models import TwinModel, resolve_model
from tdt.inference._nuts import flat_initial_point, idata_from_values
from tdt.inference._pm_graph import constrained_draws_fn, data_inputs
from tdt.inference._posterior import Posterior
from tdt.inference._pymc_models import SCHEDULE_AMOUNTS, build_patient_model
from tdt.inference._sampling import GATE_VARIABLES

__all__ = ["LaplaceProgram", "logp_with_inputs"]


def logp_with_inputs(model: pm.Model):
    """JAX ``logp(*values, log_y[, recovery_sd][, schedule_amounts])`` of a PyMC patient model
    with the observations, (when the model has ``log_recovery``) its per-VOI SDs and (when it
    has the data ``schedule_amounts``, ``build_patient_model(..., schedule_input=True)``) the
    schedule's activities and ligand amounts as inputs."""
    obs_rv = model["log_activity"]
    data = model.rvs_to_values[obs_rv]
    y = pt.vector("log_y_input", dtype=data.type.dtype)
    replace, inputs = {data: y}, [y]
    if "log_recovery" in model.named_vars:
        sigma = model["log_recovery"].owner.inputs[-1]  # Normal(mu, sigma): per-patient SDs
        sd = pt.vector("recovery_sd_input", dtype=sigma.type.dtype)
        replace[sigma] = sd
        inputs.append(sd)
    more, more_inputs = data_inputs(model, (SCHEDULE_AMOUNTS,))
    replace |= more
    inputs += more_inputs
    logp = model.logp()
    logp_y = pytensor.graph.replace.graph_replace(logp, replace, strict=False)
    return get_jaxified_graph(inputs=[*model.value_vars, *inputs], outputs=[logp_y])


class LaplaceProgram:
    """The Laplace preview of every patient of one protocol, compiled once (module docstring).

    ``template``: a patient of the protocol (its activities are not used); ``model`` and
    ``measurement`` as :func:`tdt.inference.fit_patient`; ``schedule`` the template's schedule
    (default ``template.resolve_schedule()``): its administration times are the protocol's.
    """

    def __init__(self, template: PatientData, model: str | TwinModel = "reduced",
                 measurement: MeasurementModel | None = None, schedule=None):
        if not isinstance(template, PatientData):
            raise InputError(f"template: {type(template).__name__}; expected a PatientData")
        self.measurement = measurement or MeasurementModel()
        self.twin = resolve_model(model, template)
        self.template = template
        self.schedule = template.resolve_schedule() if schedule is None else schedule
        self.pm_model = build_patient_model(template, self.twin, self.measurement,
                                            self.schedule, schedule_input=True)
        self._logp = logp_with_inputs(self.pm_model)
        self.flat0, self.unravel = flat_initial_point(self.pm_model)
        self._with_sd = "log_recovery" in self.pm_model.named_vars
        self._free = free_recovery(template, self.measurement)
        self._n_obs = int(template.flat()["activity_mbq"].size)
        self._values = constrained_draws_fn(self.pm_model, self.unravel, (SCHEDULE_AMOUNTS,))
        self._drawers: dict[tuple[int, int], object] = {}

    def _potential(self, x, args):
        (value,) = self._logp(*self.unravel(x), *args)
        return -jnp.where(jnp.isfinite(value), value, -jnp.inf)

    def check(self, data: PatientData, schedule) -> None:
        """Raise :class:`InputError` unless ``data`` and ``schedule`` follow the protocol."""
        ref, m = self.template, self.measurement
        same = (isinstance(data, PatientData) and data.organ_names == ref.organ_names
                and data.sessions == ref.sessions
                and all(np.array_equal(data.organs[o].times_h, ref.organs[o].times_h)
                        and data.organs[o].sessions == ref.organs[o].sessions
                        for o in ref.organ_names)
                and np.array_equal(recovery_coefficients(data, m),
                                   recovery_coefficients(ref, m))
                and np.array_equal(free_recovery(data, m), self._free)
                and data.calibration_sd == ref.calibration_sd)
        if not same:
            raise InputError(
                f"LaplaceProgram.fit: data ({getattr(data, 'patient_id', data)!r}) has another "
                "protocol (organs, times, sessions, recovery coefficients or VOIs, "
                "calibration_sd) than the program's template; expected the same protocol")
        ref_s = self.schedule
        if not (np.shape(schedule.time_h) == np.shape(ref_s.time_h)
                and np.array_equal(np.asarray(schedule.time_h), np.asarray(ref_s.time_h))
                and np.array_equal(np.asarray(schedule.infusion_h),
                                   np.asarray(ref_s.infusion_h))):
            raise InputError(
                f"LaplaceProgram.fit: schedule times {np.asarray(schedule.time_h).tolist()} h "
                f"(infusions {np.asarray(schedule.infusion_h).tolist()} h); expected the "
                f"program's {np.asarray(ref_s.time_h).tolist()} h "
                f"({np.asarray(ref_s.infusion_h).tolist()} h): only activities and ligand "
                "amounts may differ")

    def inputs(self, data: PatientData, schedule) -> tuple:
        """The program's inputs for one patient: (log y[, recovery SDs], amounts)."""
        log_y = jnp.log(jnp.asarray(data.flat()["activity_mbq"], dtype=float))
        sds = (jnp.asarray(recovery_sds(data, self.measurement)[self._free]),) \
            if self._with_sd else ()
        return (log_y, *sds, jnp.asarray(schedule_amounts(schedule)))

    def fit(self, data: PatientData, schedule=None, *, draws: int = 1000, chains: int = 4,
            seed: int = 0, require_convergence: bool = False) -> Posterior:
        """The Laplace preview of ``data`` (``schedule``: default ``data.resolve_schedule()``);
        what ``fit_patient(data, model, sampler="laplace", draws=, chains=, seed=)`` returns."""
        schedule = data.resolve_schedule() if schedule is None else schedule
        self.check(data, schedule)
        start = time.perf_counter()
        key = (int(draws), int(chains))
        if key not in self._drawers:
            self._drawers[key] = _laplace_drawer(self._potential, draws=key[0], chains=key[1])
        args = self.inputs(data, schedule)
        with nan_on_solver_error():
            result = self._drawers[key](self.flat0, args, int(seed))
        if result is None:
            raise ConvergenceError(f"{data.patient_id!r}: {_NOT_FINITE}")
        samples, stats, attrs = _finish_draws(*result, wall=time.perf_counter() - start)
        values = self._values(jnp.asarray(samples), args[-1])
        wall = time.perf_counter() - start
        attrs["sampling_time"] = wall
        idata = idata_from_values(self.pm_model, values, stats, attrs,
                                  observed={"log_activity": np.asarray(args[0])})
        diagnostics = compute_diagnostics(idata, GATE_VARIABLES, sampling_time_s=wall)
        posterior = Posterior(idata, twin=self.twin, data=data, diagnostics=diagnostics,
                              schedule=schedule, measurement=self.measurement)
        if not diagnostics.converged:
            message = (f"LaplaceProgram.fit({data.patient_id!r}): {NOT_CONVERGED} — "
                       f"{diagnostics}")
            if require_convergence:
                raise ConvergenceError(message)
            warnings.warn(message, stacklevel=2)
        return posterior
