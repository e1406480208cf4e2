"""Kinetic models with priors, ready for inference.

A :class:`TwinModel` pairs a forward model of :mod:`tdt.pbpk` (anything with
``parameter_names``, ``default_params()`` and ``simulate(params, schedule, times_h)``) with a
multivariate-lognormal prior on the *sampled* (identifiable) parameter subset; the other
parameters stay at their defaults. Sampling is non-centred::

    log θ = prior_loc + prior_chol @ z,   z ~ Normal(0, I)

which is what NUTS likes (Betancourt & Girolami 2015) and lets a population posterior
(mean vector + covariance) become the prior of a new patient without changing the model code.

Factories: :func:`reduced_model` (the reduced linear kinetic model, all rate constants
sampled), :func:`pbpk_model` (a registered receptor PBPK — ``model="psma617"`` (default),
``"dotatate"``, ... see :func:`tdt.pbpk.model_names` — identifiable subset with cited priors),
:func:`custom_model` (any forward model, e.g. the test bi-exponential).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jax.numpy as jnp
import numpy as np

from tdt.dosimetry import is_lesion
from tdt.errors import InputError, unknown_name_error
from tdt.inference._fast_pbpk import applicable as pbpk_fast_path_applies
from tdt.inference._fast_pbpk import solve_bolus as solve_pbpk_bolus
from tdt.pbpk import (
    bolus_response,
    get_model,
    identifiable_receptor_parameters,
    is_bolus_schedule,
    model_names,
    reduced_linear,
)

#: Default log-SD of the lognormal prior around a model's default parameter (factor ~2 at 1 SD).
DEFAULT_SD_LOG = 0.7


def _linear_bolus(forward, params: dict, schedule, times_h, organs: Sequence[str]):
    """(activity (n_organs, n_times) MBq, TIA (n_organs,) MBq·h, ok) of ``organs`` from the
    bolus eigen-solution of the reduced linear model (:func:`tdt.pbpk.bolus_response`)."""
    activity, tia = bolus_response(forward, params, schedule, times_h, tuple(organs))
    return activity, tia, jnp.all(jnp.isfinite(activity)) & jnp.all(jnp.isfinite(tia))


@dataclass(frozen=True)
class TwinModel:
    """A forward model + prior over its sampled parameters (log scale, non-centred).

    Attributes
    ----------
    kind: ``"reduced"``, ``"pbpk"`` or ``"custom"`` (used to rebuild after loading).
    forward: the forward model (tdt.pbpk model or any object with the same protocol).
    sampled: names of the sampled parameters (subset of ``forward.parameter_names``).
    prior_loc: prior mean of log θ (len(sampled),), log of the parameter's unit (1/h, ...).
    prior_chol: lower Cholesky factor of the prior covariance of log θ.
    fixed: values of the non-sampled parameters.
    options: constructor arguments of the forward model (organs, nuclide, ...), for rebuilding.
    """

    kind: str
    forward: Any
    sampled: tuple[str, ...]
    prior_loc: np.ndarray
    prior_chol: np.ndarray
    fixed: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        return len(self.sampled)

    @property
    def organs(self) -> tuple[str, ...]:
        """Organs / compartments the forward model reports activities for."""
        organs = self.options.get("organs")
        if organs is not None:
            return tuple(organs)
        return tuple(getattr(self.forward, "organs", ()))

    def log_theta(self, z):
        """log θ from standard-normal ``z`` (non-centred)."""
        return jnp.asarray(self.prior_loc) + jnp.asarray(self.prior_chol) @ z

    def params(self, log_theta) -> dict:
        """Full parameter dict (fixed values + exp of the sampled logs)."""
        params = {k: jnp.asarray(v) for k, v in self.fixed.items()}
        for i, name in enumerate(self.sampled):
            params[name] = jnp.exp(log_theta[i])
        return params

    def simulate(self, log_theta, schedule, times_h, organs: Sequence[str],
                 fast: bool | None = None):
        """Activities (n_organs, n_times) MBq, TIA (n_organs,) MBq·h of ``organs`` and the
        solver's success flag (``Simulation.ok``; True when the model has none).

        ``fast`` (default: when applicable) uses the bolus eigen-solution of
        :func:`tdt.pbpk.bolus_response` for the reduced linear model with bolus schedules (the
        same exact solution as its matrix exponential, ~10x cheaper gradient) and
        :mod:`tdt.inference._fast_pbpk` for a grid-method PBPK with one or several boluses or
        infusions (same scheme, ~400x cheaper gradient for one bolus; several cycles are
        chained with the carried-over state; infusions when ``times_h`` is known at trace
        time, :func:`tdt.inference._fast_pbpk.applicable`); ``fast=False`` forces the model's
        own ``simulate``.
        """
        if fast is not False:
            if (getattr(self.forward, "kind", None) == "reduced_linear"
                    and is_bolus_schedule(schedule)):
                return _linear_bolus(self.forward, self.params(log_theta), schedule,
                                     jnp.asarray(times_h), organs)
            if pbpk_fast_path_applies(self.forward, schedule, times_h):
                return solve_pbpk_bolus(self.forward, self.params(log_theta), schedule,
                                             jnp.asarray(times_h), organs)
        sim = self.forward.simulate(self.params(log_theta), schedule, jnp.asarray(times_h))
        activity = jnp.stack([jnp.asarray(sim.activity_mbq[o]) for o in organs])
        tia = jnp.stack([jnp.asarray(sim.tia_mbq_h[o]) for o in organs])
        ok = jnp.asarray(getattr(sim, "ok", True), dtype=bool)
        return activity, tia, ok

    def with_prior(self, loc, cov) -> TwinModel:
        """A copy with a new lognormal prior: mean ``loc`` and covariance ``cov`` of log θ."""
        loc = np.asarray(loc, dtype=float)
        cov = np.asarray(cov, dtype=float)
        if loc.shape != (self.n_params,) or cov.shape != (self.n_params, self.n_params):
            raise InputError(
                f"TwinModel.with_prior: loc {loc.shape}, cov {cov.shape}; expected "
                f"({self.n_params},) and ({self.n_params}, {self.n_params})"
            )
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise InputError("TwinModel.with_prior: cov is not positive definite") from None
        return replace(self, prior_loc=loc, prior_chol=chol)

    @property
    def prior_median(self) -> dict[str, float]:
        return {n: float(np.exp(v)) for n, v in zip(self.sampled, self.prior_loc, strict=True)}

    @property
    def prior_sd_log(self) -> dict[str, float]:
        sd = np.sqrt(np.sum(self.prior_chol**2, axis=1))
        return {n: float(v) for n, v in zip(self.sampled, sd, strict=True)}

    def check_organs(self, organ_names: Sequence[str]) -> None:
        """Raise InputError if the data has an organ the model does not simulate."""
        known = self.organs
        if not known:
            return
        for organ in organ_names:
            if organ not in known:
                raise unknown_name_error("PatientData organ (not in the model)", organ, known)


def _prior_arrays(names, median: Mapping[str, float], sd_log) -> tuple[np.ndarray, np.ndarray]:
    loc, sd = [], []
    for name in names:
        value = float(median[name])
        if not (np.isfinite(value) and value > 0):
            raise InputError(
                f"prior median of {name!r}: {value!r}; expected a positive finite value"
            )
        loc.append(np.log(value))
        s = float(sd_log[name] if isinstance(sd_log, Mapping) else sd_log)
        if not (np.isfinite(s) and s > 0):
            raise InputError(f"prior sd_log of {name!r}: {s!r}; expected > 0")
        sd.append(s)
    return np.asarray(loc), np.diag(sd)


def custom_model(
    forward,
    sampled: Sequence[str] | None = None,
    prior_median: Mapping[str, float] | None = None,
    sd_log: float | Mapping[str, float] | None = None,
    kind: str = "custom",
    options: dict[str, Any] | None = None,
) -> TwinModel:
    """Wrap any forward model (tdt.pbpk protocol) with lognormal priors.

    ``sampled`` defaults to every parameter. The prior of each sampled parameter is lognormal
    with median ``prior_median[name]`` and log-SD ``sd_log``; defaults come from
    ``forward.priors()`` (name -> (median, sd_log), the model's cited population priors) when
    the model has it, else ``forward.default_params()`` and :data:`DEFAULT_SD_LOG`.
    """
    defaults = {k: float(v) for k, v in forward.default_params().items()}
    model_priors = forward.priors() if hasattr(forward, "priors") else {}
    if sd_log is None:
        sd_log = {n: float(model_priors.get(n, (None, DEFAULT_SD_LOG))[1])
                  for n in forward.parameter_names}
    names = tuple(forward.parameter_names)
    sampled = tuple(names if sampled is None else sampled)
    for name in sampled:
        if name not in names:
            raise unknown_name_error("sampled parameter", name, names)
    median = dict(defaults)
    median.update({n: float(v[0]) for n, v in model_priors.items() if n in median})
    if prior_median:
        for name in prior_median:
            if name not in names:
                raise unknown_name_error("prior_median parameter", name, names)
        median.update({k: float(v) for k, v in prior_median.items()})
    loc, chol = _prior_arrays(sampled, median, sd_log)
    fixed = {k: v for k, v in defaults.items() if k not in sampled}
    return TwinModel(kind, forward, sampled, loc, chol, fixed, dict(options or {}))


def reduced_model(
    organs: Sequence[str],
    nuclide: str = "Lu-177",
    prior_median: Mapping[str, float] | None = None,
    sd_log: float | Mapping[str, float] | None = None,
    sampled: Sequence[str] | None = None,
) -> TwinModel:
    """(a) The reduced linear kinetic model of :func:`tdt.pbpk.reduced_linear` with the
    lognormal population priors of its catalog table (``forward.priors()``: median and log-SD
    of every rate constant, 1/h), all parameters sampled by default."""
    forward = reduced_linear(organs=tuple(organs), nuclide=nuclide)
    return custom_model(
        forward, sampled=sampled, prior_median=prior_median, sd_log=sd_log, kind="reduced",
        options={"organs": tuple(organs), "nuclide": nuclide},
    )


def identifiable_pbpk_parameters(forward, observed: Sequence[str]) -> tuple[str, ...]:
    """Identifiable subset of a receptor PBPK for the observed VOIs (the PSMA rule: ``GFR`` and,
    per observed organ/lesion, ``R_<organ>`` and ``krel_<organ>``). Kept for old callers; the
    rule of each model is its registry entry's (``tdt.pbpk.get_model(name).identifiable``)."""
    return identifiable_receptor_parameters(forward, observed)


def pbpk_model(
    organs: Sequence[str] = ("kidneys", "salivary_glands", "liver"),
    lesions: Sequence[str] = (),
    sampled: Sequence[str] | None = None,
    prior_median: Mapping[str, float] | None = None,
    sd_log: float | Mapping[str, float] | None = None,
    forward=None,
    model: str = "psma617",
    **kwargs,
) -> TwinModel:
    """(b) The nonlinear receptor PBPK registered as ``model`` (``"psma617"``, the default, or
    ``"dotatate"``, ... :func:`tdt.pbpk.model_names`) with its identifiable parameter subset
    (the registry entry's rule for the observed ``organs`` and ``lesions``) sampled under the
    model's cited lognormal priors (``forward.priors()``); everything else fixed at the
    literature values. ``kwargs`` go to the model's factory (solver options). The default
    solver is ``method="grid"`` (fixed-grid Rosenbrock, accuracy measured against the adaptive
    reference in tests/pbpk/test_pbpk_grid_solver.py), which for bolus schedules (one or several
    cycles) runs on the structured sampler path of :mod:`tdt.inference._fast_pbpk` (~1 ms per gradient);
    ``method="adaptive"`` gives diffrax's error-controlled solve (seconds per gradient).

    ``forward``: an already built PBPK model (any ``tdt.pbpk`` model object with the protocol:
    ``parameter_names``, ``default_params``, ``priors``, ``simulate``); then ``kwargs`` must be
    empty and the model is used as given (its solver included).
    """
    if forward is None:
        spec = get_model(model)
        if spec.kind != "pbpk":
            raise InputError(f"pbpk_model: model {model!r} is a {spec.kind} model; expected a "
                             "receptor PBPK (use reduced_model)")
        kwargs.setdefault("method", "grid")  # the fitting solver (tdt.inference._fast_pbpk)
        forward = spec.build(lesions=tuple(lesions), **kwargs)
        options = {"model": spec.key, "lesions": tuple(lesions), **kwargs}
    else:
        if kwargs:
            raise InputError(f"pbpk_model: options {sorted(kwargs)} given together with a "
                             "built forward model; pass them to the model's factory instead")
        for attr in ("parameter_names", "default_params", "simulate"):
            if not hasattr(forward, attr):
                raise InputError(f"pbpk_model: forward {type(forward).__name__} has no "
                                 f"{attr!r}; expected a tdt.pbpk model")
        known = tuple(getattr(forward, "organs", ()))
        options = {"lesions": tuple(o for o in known if is_lesion(o))}
        name = getattr(forward, "name", None)
        spec = get_model(name) if name in model_names("pbpk") else None
        if spec is not None:
            options = {"model": spec.key, **options}
    if sampled is None:
        observed = (*organs, *lesions)
        sampled = (spec.identifiable_parameters(forward, observed) if spec is not None
                   else identifiable_receptor_parameters(forward, observed))
    if not sampled:
        raise InputError(
            f"pbpk_model: no identifiable parameters for organs {organs}; pass sampled=..."
        )
    return custom_model(
        forward, sampled=sampled, prior_median=prior_median, sd_log=sd_log, kind="pbpk",
        options=options,
    )


def resolve_model(model, data) -> TwinModel:
    """``"reduced"`` / ``"pbpk"`` (= ``"psma617"``) / a registered PBPK name (``"dotatate"``,
    :func:`tdt.pbpk.model_names`) / a built PBPK model / a TwinModel → TwinModel for
    ``data``'s organs."""
    if isinstance(model, TwinModel):
        model.check_organs(data.organ_names)
        return model
    if model == "reduced":
        return reduced_model(data.organ_names, nuclide=data.nuclide)
    lesions = tuple(o for o in data.organ_names if is_lesion(o))
    organs = tuple(o for o in data.organ_names if not is_lesion(o))
    if isinstance(model, str):
        spec = get_model("psma617" if model == "pbpk" else model)
        if spec.kind == "reduced_linear":
            return reduced_model(data.organ_names, nuclide=data.nuclide)
        twin = pbpk_model(organs=organs, lesions=lesions, model=spec.key)
        twin.check_organs(data.organ_names)
        return twin
    if getattr(model, "kind", None) == "pbpk" and hasattr(model, "simulate"):
        # a built PBPK model (e.g. with another solver): identifiable subset, cited priors
        twin = pbpk_model(organs=organs, lesions=lesions, forward=model)
        twin.check_organs(data.organ_names)
        return twin
    raise InputError(
        f"model: {model!r}; expected 'reduced', 'pbpk', a registered model name (one of "
        f"{list(model_names())}), a tdt.pbpk PBPK model or a tdt.inference.TwinModel"
    )
