"""Therapy predicted from the pre-therapy PET: :func:`predict_therapy_from_pet`.

The diagnostic model of a :class:`tdt.pbpk._pairs.TheranosticPair` (e.g. [68Ga]Ga-PSMA-11) is
fitted to the PET VOI activities (1–3 time points) with :func:`tdt.inference.fit_patient` under
the population prior (the registry's identifiable subset of the diagnostic model: ``GFR``, the
uptake amplitude ``R_<organ>`` (or ``f_reabs``) and ``krel_<organ>`` of each observed VOI). The
posterior of the parameters the two ligands share (physiology, receptor densities) is carried
over draw by draw to the therapeutic model (:meth:`TheranosticPair.therapeutic_params`); the
therapeutic ligand's own identifiable parameters (its ``krel_<organ>``: what the SPECT would
have told) are not informed by the PET and are drawn from their population prior, independently
of the PET. The result is a :class:`TherapyPosterior` (a :class:`~tdt.inference.Posterior` of
the therapeutic model) whose ``predict`` / ``predict_doses`` give cycle-1 177Lu TACs, TIAs,
absorbed doses and BED with credible intervals (default schedule: the pair's standard cycle).

Lesion volumes of the PET VOIs (``OrganSeries.volume_ml``) set each lesion's model volume
``V_lesion_<n>`` and flow ``Q_lesion_<n>`` (the template's flow per mL) in both models and its
dosimetric volume. The convergence diagnostics are those of the PET fit.
"""

from __future__ import annotations

from dataclasses import replace

import arviz as az
import numpy as np

from tdt.dosimetry import is_lesion
from tdt.errors import InputError
from tdt.inference._data import PatientData
from tdt.inference._measurement import MeasurementModel
from tdt.inference._models import TwinModel, custom_model, pbpk_model
from tdt.inference._posterior import Posterior, default_time_grid
from tdt.inference._sampling import fit_patient
from tdt.pbpk import TheranosticPair, check_pair_models, get_pair

#: time points per cycle of the TAC grid of therapy predictions (:meth:`TherapyPosterior.predict`)
TIME_POINTS_PER_CYCLE = 48

__all__ = ["TIME_POINTS_PER_CYCLE", "TherapyPosterior", "lesion_geometry",
           "pet_twin", "predict_therapy_from_pet", "therapy_posterior", "with_draws",
           "therapy_twin"]


class TherapyPosterior(Posterior):
    """Posterior of the therapeutic model predicted from a PET (no therapy data yet).

    Extra attributes: ``pair`` (:class:`TheranosticPair`), ``diagnostic_posterior`` (the PET fit,
    a :class:`Posterior` of the diagnostic model; None after :meth:`from_netcdf`: the file
    keeps the therapy draws, the pair and the lesion volumes, not the PET fit),
    ``lesion_volumes_ml`` (from the PET VOIs).
    ``schedule`` is the therapy cycle predicted (default: the pair's standard first cycle).
    """

    def __init__(self, idata, *, twin, diagnostics, schedule, pair, diagnostic_posterior,
                 lesion_volumes_ml):
        super().__init__(idata, twin=twin, data=None, diagnostics=diagnostics, schedule=schedule)
        self.pair = pair
        self.diagnostic_posterior = diagnostic_posterior
        self.lesion_volumes_ml = dict(lesion_volumes_ml)

    def _extra_metadata(self) -> dict:
        # what predict_doses needs besides the model: the pair and the PET lesion volumes (the
        # model's V_/Q_lesion are in the twin's fixed values); the PET fit itself is not stored
        return {"therapy": {"pair": self.pair.key, "lesion_volumes_ml": self.lesion_volumes_ml}}

    @classmethod
    def _from_parts(cls, idata, attrs: dict, where: str, **parts) -> TherapyPosterior:
        extra = attrs.get("therapy")
        if not isinstance(extra, dict):
            raise InputError(f"{where}: not a TherapyPosterior file (no 'therapy' metadata); "
                             "read it with Posterior.from_netcdf")
        return cls(idata, twin=parts["twin"], diagnostics=parts["diagnostics"],
                   schedule=parts["schedule"], pair=get_pair(extra["pair"]),
                   diagnostic_posterior=None,
                   lesion_volumes_ml={k: float(v) for k, v in
                                      extra["lesion_volumes_ml"].items()})

    def predict(self, schedule=None, times_h=None, organs=None, max_draws=None, seed=0,
                fast=None):
        """:meth:`Posterior.predict` (same contract, same solver: the structured bolus solve of
        the PBPK fit when it applies) on a coarser default time grid
        (:data:`TIME_POINTS_PER_CYCLE` log-spaced points per cycle instead of 160: TIAs are
        exact to infinity either way; the grid carries the TACs for bladder voiding, dose-rate
        histories and effective half-lives)."""
        schedule = self.schedule if schedule is None else schedule
        if times_h is None and schedule is not None:
            times_h = default_time_grid(schedule, n_per_cycle=TIME_POINTS_PER_CYCLE)
        return super().predict(schedule, times_h=times_h, organs=organs, max_draws=max_draws,
                               seed=seed, fast=fast)

    def predict_doses(self, schedule=None, **kwargs):
        """:meth:`Posterior.predict_doses` of the therapy (lesion volumes from the PET by
        default; 177Lu S-values)."""
        kwargs.setdefault("lesion_volumes_ml", self.lesion_volumes_ml)
        return super().predict_doses(schedule, **kwargs)


def lesion_geometry(twin: TwinModel, volumes: dict[str, float]) -> TwinModel:
    """``twin`` with each lesion's volume (mL) and flow (template flow per mL) fixed."""
    defaults = twin.forward.default_params()
    fixed = dict(twin.fixed)
    for lesion, volume in volumes.items():
        for name in (f"V_{lesion}", f"Q_{lesion}"):
            if name in twin.sampled:
                raise InputError(f"lesion geometry: {name} is sampled; expected it fixed")
        flow_per_ml = defaults[f"Q_{lesion}"] / defaults[f"V_{lesion}"]
        fixed[f"V_{lesion}"] = float(volume)
        fixed[f"Q_{lesion}"] = float(flow_per_ml * volume)
    return replace(twin, fixed=fixed)


def _lesion_volumes(data: PatientData) -> dict[str, float]:
    out = {}
    for name, series in data.organs.items():
        if is_lesion(name) and series.volume_ml is not None:
            out[name] = float(series.volume_ml)
    return out


def therapy_twin(pair: TheranosticPair, diagnostic_twin: TwinModel, observed: tuple[str, ...],
                 lesion_volumes_ml: dict[str, float] | None = None, **options) -> TwinModel:
    """The therapeutic :class:`TwinModel` matching ``diagnostic_twin`` (same lesions): sampled
    = the diagnostic twin's shared sampled parameters + the therapeutic model's identifiable
    ligand-specific ones for the ``observed`` VOIs (population priors); lesion geometry fixed."""
    lesions = tuple(o for o in diagnostic_twin.forward.organs if is_lesion(o))
    options.setdefault("method", "grid")
    spec = pair.therapeutic_spec
    forward = spec.build(lesions=lesions, **options)
    shared = set(pair.shared_parameters(diagnostic_twin.forward, forward))
    shared_sampled = tuple(n for n in diagnostic_twin.sampled if n in shared)
    own = tuple(n for n in spec.identifiable_parameters(forward, observed) if n not in shared)
    twin = custom_model(forward, sampled=shared_sampled + own, kind="pbpk",
                        options={"model": spec.key, "lesions": lesions, **options})
    return lesion_geometry(twin, lesion_volumes_ml or {})


def predict_therapy_from_pet(pet_data: PatientData, pair: str | TheranosticPair = "psma11_psma617",
                             *, therapy_schedule=None, draws: int = 500, chains: int = 2,
                             tune: int = 500, seed: int = 0,
                             measurement: MeasurementModel | None = None,
                             sampler: str | None = None) -> TherapyPosterior:
    """Fit the pair's diagnostic model to the PET VOI data and return the therapy posterior.

    Parameters
    ----------
    pet_data: the PET :class:`PatientData` (nuclide of the diagnostic model, e.g. ``"Ga-68"``;
        ``administered_activity_mbq`` and ``ligand_nmol``: the diagnostic injection; organs of
        the diagnostic model and lesions ``lesion_<n>`` with ``volume_ml``).
    pair: a :class:`TheranosticPair` or its registered name (:func:`tdt.pbpk._pairs.pair_names`).
    therapy_schedule: the cycle to predict (default: ``pair.therapy_schedule()``).
    draws, chains, tune, seed, measurement, sampler: as :func:`tdt.inference.fit_patient`.

    Returns a :class:`TherapyPosterior`: ``predict_doses()`` gives the cycle-1 177Lu TIAs
    (MBq·h), doses (Gy) and BED with 90 % credible intervals.
    """
    if not isinstance(pet_data, PatientData):
        raise InputError(f"pet_data: {type(pet_data).__name__}; expected a "
                         "tdt.inference.PatientData of PET VOI activities")
    pair = get_pair(pair) if isinstance(pair, str) else pair
    diag_twin = pet_twin(pair, pet_data)
    diag_post = fit_patient(pet_data, model=diag_twin, draws=draws, chains=chains, tune=tune,
                            seed=seed, measurement=measurement, sampler=sampler)
    return therapy_posterior(pair, diag_twin, diag_post, pet_data, therapy_schedule, seed=seed)


def pet_twin(pair: str | TheranosticPair, pet_data: PatientData) -> TwinModel:
    """The diagnostic :class:`TwinModel` for ``pet_data``: the pair's diagnostic model with the
    registry's identifiable subset for the PET VOIs, lesion volumes/flows fixed from the VOIs.
    (For a cohort on one protocol, fit it with :func:`tdt.inference.fit_patients`.)"""
    pair = get_pair(pair) if isinstance(pair, str) else pair
    if not isinstance(pair, TheranosticPair):
        raise InputError(f"pair: {pair!r}; expected a TheranosticPair or a registered pair name")
    spec = pair.diagnostic_spec
    if pet_data.nuclide != spec.nuclide:
        raise InputError(f"pet_data.nuclide: {pet_data.nuclide!r}; expected {spec.nuclide!r}, "
                         f"the nuclide of the diagnostic model {spec.key!r}")
    check_pair_models(pair, pet_data.organ_names)
    lesions = tuple(o for o in pet_data.organ_names if is_lesion(o))
    organs = tuple(o for o in pet_data.organ_names if not is_lesion(o))
    volumes = _lesion_volumes(pet_data)
    missing = [les for les in lesions if les not in volumes]
    if missing:
        raise InputError(f"pet_data: lesions {missing} have no volume_ml; expected the VOI "
                         "volume (mL) of every lesion (it sets the lesion model and its dose)")
    return lesion_geometry(pbpk_model(organs=organs, lesions=lesions, model=spec.key), volumes)


def therapy_posterior(pair: str | TheranosticPair, diag_twin: TwinModel, diag_post: Posterior,
                      pet_data: PatientData, therapy_schedule=None,
                      seed: int = 0) -> TherapyPosterior:
    """The :class:`TherapyPosterior` from a fitted PET posterior ``diag_post`` of ``diag_twin``
    (:func:`pet_twin`): shared parameters draw by draw, the therapy's own identifiable
    parameters from their population prior (seeded by ``seed``)."""
    pair = get_pair(pair) if isinstance(pair, str) else pair
    volumes = _lesion_volumes(pet_data)
    twin = therapy_twin(pair, diag_twin, pet_data.organ_names, volumes)
    diag_log = diag_post.log_theta_draws
    n = diag_log.shape[0]
    z = np.random.default_rng(seed + 1).standard_normal((n, twin.n_params))
    log_theta = np.asarray(twin.prior_loc)[None, :] + z @ np.asarray(twin.prior_chol).T
    shared = set(pair.shared_parameters(diag_twin.forward, twin.forward))
    for i, name in enumerate(twin.sampled):
        if name in shared:  # the diagnostic ligand's own (krel_...) stay the therapy's prior
            log_theta[:, i] = diag_log[:, diag_twin.sampled.index(name)]
    chains = int(diag_post.idata.posterior.sizes["chain"])
    shape = (chains, n // chains, twin.n_params)
    idata = az.from_dict(
        posterior={"log_theta": log_theta.reshape(shape),
                   "theta": np.exp(log_theta).reshape(shape)},
        coords={"param": list(twin.sampled)},
        dims={"log_theta": ["param"], "theta": ["param"]})
    schedule = pair.therapy_schedule() if therapy_schedule is None else therapy_schedule
    return TherapyPosterior(idata, twin=twin, diagnostics=diag_post.diagnostics,
                            schedule=schedule, pair=pair, diagnostic_posterior=diag_post,
                            lesion_volumes_ml=volumes)


def with_draws(posterior: TherapyPosterior, log_theta) -> TherapyPosterior:
    """``posterior``'s model (pair, lesion geometry, schedule, diagnostics) with the given draws
    of log θ, (n, n_params) in ``posterior.twin.sampled`` order: a known patient's truth, the
    population median, or several patients' draws pushed through one ``predict_doses``."""
    arr = np.asarray(log_theta, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != posterior.twin.n_params:
        raise InputError(f"log_theta: shape {arr.shape}; expected (n, "
                         f"{posterior.twin.n_params}) in the order {posterior.twin.sampled}")
    arr = arr[None]
    idata = az.from_dict(posterior={"log_theta": arr, "theta": np.exp(arr)},
                         coords={"param": list(posterior.twin.sampled)},
                         dims={"log_theta": ["param"], "theta": ["param"]})
    return TherapyPosterior(idata, twin=posterior.twin, diagnostics=posterior.diagnostics,
                            schedule=posterior.schedule, pair=posterior.pair,
                            diagnostic_posterior=posterior.diagnostic_posterior,
                            lesion_volumes_ml=posterior.lesion_volumes_ml)
