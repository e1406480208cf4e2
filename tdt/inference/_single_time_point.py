"""Single-time-point (STP) dosimetry: one imaging time point + a population prior.

Bayesian STP: the twin is fitted to the one measurement per organ with the population
posterior (:meth:`PopulationPosterior.prior_model`) or a literature prior as the prior of the
kinetic parameters; the posterior TIA/dose then carries the population's kinetic variability
(wider than a multi-time-point fit, and honest about it).

Classical formulas for comparison (mono-exponential washout, instant uptake):

* Hänscheid et al., J Nucl Med 2018;59:75–81:  Ã ≈ A(t) · 2t / ln 2  (no population
  parameter; best near t ≈ 1.5 T_eff, error < 10 % for 0.75 T_eff ≤ t ≤ 2.5 T_eff);
* Madsen et al., Med Phys 2018;45:2318–2324:  Ã = A(t) · e^{λ t} / λ, λ = ln 2 / T_eff with
  the population effective half-life T_eff (exact for a mono-exponential of that T_eff).

Bayesian STP on the kinetics machinery (:func:`bayesian_stp_tia`): the posterior TIA of each
organ/TAC from its one measurement and a population prior over the exponential forms (fitted by
``tdt.kinetics.fit_tacs(..., method="population")`` on a multi-time-point cohort, or published:
``tdt.kinetics.load_prior("psma617:kidneys")``). The overall level is left free (broad prior on
the common amplitude factor); the rates and the shape come from the population; the form
probabilities are the population's. With a mono-exponential population this is Madsen's formula
averaged over the population's T_eff distribution, with an interval.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.inference._data import PatientData
from tdt.inference._models import TwinModel
from tdt.inference._population import PopulationPosterior
from tdt.inference._sampling import fit_patient
from tdt.kinetics import MODELS, PopulationPrior, fit_population
from tdt.physics import nuclide as get_nuclide
from tdt.units import half_life_to_rate


def _positive(name, value):
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{name}: {value!r}; expected finite values > 0")
    return arr


def haenscheid_tia(activity_mbq, time_h):
    """Hänscheid STP estimate of the TIA (MBq·h): A(t) · 2t / ln 2."""
    activity = _positive("activity_mbq", activity_mbq)
    t = _positive("time_h", time_h)
    return activity / half_life_to_rate(2.0 * t)  # = A(t) / λ_eff with T_eff = 2t


def madsen_tia(activity_mbq, time_h, effective_half_life_h):
    """Madsen STP estimate of the TIA (MBq·h): A(t) e^{λt}/λ, λ = ln 2 / T_eff (population)."""
    activity = _positive("activity_mbq", activity_mbq)
    t = _positive("time_h", time_h)
    lam = half_life_to_rate(_positive("effective_half_life_h", effective_half_life_h))
    return activity * np.exp(lam * t) / lam


def bayesian_stp_tia(activity_mbq, time_h: float, priors: dict, model_probabilities=None,
                     nuclide: str = "Lu-177", level_sd: float | None = None):
    """Posterior TIA (MBq·h) of TACs measured once, at ``time_h`` (h), under population priors.

    ``activity_mbq``: (n,) activities at ``time_h``; ``priors``: form →
    :class:`tdt.kinetics._population.PopulationPrior` (e.g. ``fit.priors`` of a population fit,
    or :func:`tdt.kinetics.load_prior`); ``model_probabilities``: form → prior probability (e.g.
    ``fit.population_weights``; default equal).

    Priors with absolute amplitudes (``scale_mbq`` finite: a population fit of patients given
    comparable activities — scale ``activity_mbq`` to the cohort's administered activity) are used
    as they are: the measured level then informs the rates (the population NLME approach of
    Hardiansyah et al., EJNMMI Phys 2023, doi 10.1186/s40658-023-00530-1). Relative priors
    (literature, ``scale_mbq`` NaN), or any prior when ``level_sd`` is given, are recentred so
    that the prior-mean curve passes through 1 at ``time_h`` with the common log-level given SD
    ``level_sd`` (default 3: nearly flat; then the rates come from the prior alone). Returns a
    :class:`~tdt.kinetics._population.PopulationTacFit` (mean, SD, 95 % credible interval).
    """
    activity = _positive("activity_mbq", np.atleast_1d(activity_mbq))
    t = float(_positive("time_h", time_h))
    if not isinstance(priors, dict) or not priors:
        raise InputError(f"priors: {type(priors).__name__}; expected a dict form -> "
                         "PopulationPrior (fit.priors of a population fit or load_prior(...))")
    lam = get_nuclide(nuclide).decay_constant_per_h
    if level_sd is None and all(np.isfinite(pr.scale_mbq) for pr in priors.values()):
        return fit_population(np.asarray([t]), activity[:, None], lam=lam, prior=priors,
                              form_weights=model_probabilities)
    level_sd = 3.0 if level_sd is None else float(level_sd)
    recentred = {}
    for name, prior in priors.items():
        model = MODELS[name]
        m = model.n_amplitudes
        mean = np.asarray(prior.mean, dtype=float).copy()
        shape_at_t = float(model.predict(jnp.asarray(mean), jnp.asarray([t]), lam)[0])
        mean[:m] -= np.log(max(shape_at_t, 1e-300))
        cov = np.asarray(prior.cov, dtype=float).copy()
        cov[:m, :m] += level_sd**2
        recentred[name] = PopulationPrior(name, mean, cov, prior.noise_cv, prior.source)
    return fit_population(np.asarray([t]), activity[:, None], lam=lam, prior=recentred,
                          form_weights=model_probabilities)


def fit_single_time_point(data: PatientData, prior, **fit_kwargs):
    """Fit one patient imaged at a single time point with a population prior.

    ``prior``: a :class:`TwinModel` (e.g. ``PopulationPosterior.prior_model()``) or a
    :class:`~tdt.inference._population.PopulationPosterior`. Extra keyword arguments go to
    :func:`fit_patient`. Returns the :class:`Posterior`.
    """
    if isinstance(prior, PopulationPosterior):
        prior = prior.prior_model()
    if not isinstance(prior, TwinModel):
        raise InputError(f"prior: {type(prior).__name__}; expected a TwinModel or a "
                         "PopulationPosterior")
    counts = {o: s.times_h.size for o, s in data.organs.items()}
    if any(c != 1 for c in counts.values()):
        raise InputError(f"fit_single_time_point: data has {counts} time points per organ; "
                         "expected exactly one (use PatientData.at_times([t]))")
    return fit_patient(data, model=prior, **fit_kwargs)
