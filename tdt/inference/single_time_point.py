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
"""

from __future__ import annotations

import numpy as np

from tdt.errors import InputError
from tdt.inference.data import PatientData
from tdt.inference.models import TwinModel

LN2 = 0.6931471805599453


def _positive(name, value):
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{name}: {value!r}; expected finite values > 0")
    return arr


def haenscheid_tia(activity_mbq, time_h):
    """Hänscheid STP estimate of the TIA (MBq·h): A(t) · 2t / ln 2."""
    activity = _positive("activity_mbq", activity_mbq)
    t = _positive("time_h", time_h)
    return activity * 2.0 * t / LN2


def madsen_tia(activity_mbq, time_h, effective_half_life_h):
    """Madsen STP estimate of the TIA (MBq·h): A(t) e^{λt}/λ, λ = ln 2 / T_eff (population)."""
    activity = _positive("activity_mbq", activity_mbq)
    t = _positive("time_h", time_h)
    lam = LN2 / _positive("effective_half_life_h", effective_half_life_h)
    return activity * np.exp(lam * t) / lam


def fit_single_time_point(data: PatientData, prior, **fit_kwargs):
    """Fit one patient imaged at a single time point with a population prior.

    ``prior``: a :class:`TwinModel` (e.g. ``PopulationPosterior.prior_model()``) or a
    :class:`~tdt.inference.population.PopulationPosterior`. Extra keyword arguments go to
    :func:`fit_patient`. Returns the :class:`Posterior`.
    """
    from tdt.inference.population import PopulationPosterior
    from tdt.inference.sampling import fit_patient

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
