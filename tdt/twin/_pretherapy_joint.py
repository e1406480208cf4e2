"""The joint PET + SPECT model of a twin started from the pre-therapy PET.

After the first therapy cycle is imaged, the twin made by :meth:`tdt.Twin.from_pretherapy` is
refitted to *both* data sets at once (the PET stays in the likelihood):

- the PET VOIs (data organs ``pet_<VOI>``, calibration session ``pet``) are the diagnostic
  ligand's model (e.g. [68Ga]Ga-PSMA-11) after the PET injection;
- the SPECT VOIs of every imaged cycle (``<VOI>``, sessions ``cycle<k>``) are the therapeutic
  ligand's model over the therapy cycles, with the PBPK twin's between-cycle drift
  (:class:`tdt.twin._pbpk_twin.DriftingPbpk`).

The two models share the patient: physiology and receptor densities
(:meth:`tdt.pbpk.TheranosticPair.shared_parameters`) are ONE parameter each; the diagnostic
ligand's own parameters are separate ones named ``dx_<name>`` (their cited priors). ASSUMPTION:
no drift between the PET and cycle 1 (the drift model starts at cycle 1); the diagnostic
activity and peptide are gone by the therapy (68Ga: 68 min half-life; two weeks apart by
default), so the two solves do not interact.

Time axis of the joint data: the PET injection at 0 h, cycle 1 at ``gap_h``, cycle k at
``gap_h + (k - 1) * interval_h``. The schedule handed to the sampler lists the PET bolus first,
then the therapy boluses (:func:`joint_data`).
"""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np

from tdt.inference import (
    MeasurementModel,
    OrganSeries,
    PatientData,
    custom_model,
    fit_patient,
    solve_boluses,
)
from tdt.pbpk import Administration, Schedule
from tdt.radiobiology import is_lesion
from tdt.twin._pbpk_twin import DriftingPbpk, body_compartments, drift_steps

#: data-organ prefix of the PET VOIs in the joint data
PET_PREFIX = "pet_"
#: parameter prefix of the diagnostic ligand's own parameters in the joint model
DX_PREFIX = "dx_"
#: PET times beyond this (h after the PET injection) are not evaluated by the PET solve: only
#: the SPECT VOIs are observed there (keeps 68Ga activity far from underflow)
PET_HORIZON_H = 48.0


class PetSpectPbpk:
    """Joint forward model (module docstring): protocol of tdt.pbpk models (``parameter_names``,
    ``default_params``, ``priors``, ``simulate``), so :func:`tdt.inference.custom_model` and
    :func:`tdt.inference.fit_patient` fit it as they are."""

    kind = "pbpk_pet_spect"

    def __init__(self, pair, diagnostic, therapy: DriftingPbpk, gap_h: float):
        self.pair, self.diagnostic, self.therapy = pair, diagnostic, therapy
        self.gap_h = float(gap_h)
        shared = set(pair.shared_parameters(diagnostic, therapy.base))
        self.diagnostic_only = tuple(n for n in diagnostic.parameter_names if n not in shared)
        self.parameter_names = (*therapy.parameter_names,
                                *(DX_PREFIX + n for n in self.diagnostic_only))
        self.pet_organs = body_compartments(diagnostic)
        self.spect_organs = body_compartments(therapy.base)
        self.organs = (*therapy.organs, *(PET_PREFIX + o for o in diagnostic.organs))
        self.compartments = therapy.compartments
        self.nuclide = therapy.nuclide

    def default_params(self) -> dict[str, float]:
        dx = {k: float(v) for k, v in self.diagnostic.default_params().items()}
        return self.therapy.default_params() | {DX_PREFIX + n: dx[n]
                                                for n in self.diagnostic_only}

    def priors(self) -> dict[str, tuple[float, float]]:
        dx = self.diagnostic.priors()
        return self.therapy.priors() | {DX_PREFIX + n: dx[n] for n in self.diagnostic_only
                                        if n in dx}

    def diagnostic_params(self, params: dict) -> dict:
        """The diagnostic model's parameters: shared values and the ``dx_`` ones."""
        return {n: params[DX_PREFIX + n] if n in self.diagnostic_only else params[n]
                for n in self.diagnostic.parameter_names}

    def simulate(self, params: dict, schedule, times_h):
        """PET VOIs (``pet_<organ>``) after ``schedule``'s first bolus at 0 h, SPECT VOIs after
        its other boluses (from ``gap_h``); times in h on the joint axis."""
        times = jnp.asarray(times_h, dtype=float)
        # the schedule may be traced (a pytree under jit): split it by slicing its arrays
        start = jnp.asarray(schedule.time_h)[1]
        pet = _part(schedule, slice(0, 1), 0.0)
        therapy = _part(schedule, slice(1, None), start)
        pet_act, pet_tia, pet_ok = solve_boluses(
            self.diagnostic, self.diagnostic_params(params), pet,
            jnp.minimum(times, PET_HORIZON_H), self.pet_organs)
        act, tia, ok = solve_boluses(self.therapy.base, self.therapy.per_cycle(params), therapy,
                                     jnp.maximum(times - start, 0.0), self.spect_organs)
        activity = {o: act[i] for i, o in enumerate(self.spect_organs)}
        activity |= {PET_PREFIX + o: pet_act[i] for i, o in enumerate(self.pet_organs)}
        tias = {o: tia[i] for i, o in enumerate(self.spect_organs)}
        tias |= {PET_PREFIX + o: pet_tia[i] for i, o in enumerate(self.pet_organs)}
        return SimpleNamespace(activity_mbq=activity, tia_mbq_h=tias, ok=pet_ok & ok)


def _part(schedule, part: slice, shift) -> Schedule:
    """The administrations ``part`` of ``schedule``, times moved back by ``shift`` (h)."""
    time, activity, ligand, infusion = schedule.tree_flatten()[0]
    return Schedule.tree_unflatten(None, (jnp.asarray(time)[part] - shift,
                                          jnp.asarray(activity)[part],
                                          jnp.asarray(ligand)[part], jnp.asarray(infusion)[part]))


def joint_data(pet_data: PatientData, spect_data: PatientData,
               gap_h: float) -> tuple[PatientData, Schedule]:
    """One :class:`PatientData` with the PET VOIs (``pet_<VOI>``, session ``pet``, times after
    the PET injection) and the SPECT data of :func:`tdt.twin._pbpk_twin.fit_data` (times after
    cycle 1, moved by ``gap_h``), and the joint schedule (PET bolus first). VOI activities
    are taken as recovery-corrected (recovery 1), as in the PBPK twin."""
    organs = {}
    for name, series in pet_data.organs.items():
        organs[PET_PREFIX + name] = OrganSeries(
            series.times_h - pet_data.injection_time_h, series.activity_mbq, recovery=1.0,
            sessions=["pet"] * len(series.times_h))
    for name, series in spect_data.organs.items():
        organs[name] = OrganSeries(series.times_h + gap_h, series.activity_mbq,
                                   volume_ml=series.volume_ml, recovery=1.0,
                                   sessions=list(series.sessions))
    pet_schedule = pet_data.resolve_schedule()
    admins = [Administration(0.0, float(pet_schedule.activity_mbq[0]),
                             float(pet_schedule.ligand_nmol[0]))]
    therapy = spect_data.schedule
    admins += [Administration(float(t) + gap_h, float(a), float(n)) for t, a, n in
               zip(np.asarray(therapy.time_h), np.asarray(therapy.activity_mbq),
                   np.asarray(therapy.ligand_nmol), strict=True)]
    schedule = Schedule(admins)
    data = PatientData(organs, calibration_sd=spect_data.calibration_sd, schedule=schedule,
                       nuclide=spect_data.nuclide, patient_id=spect_data.patient_id)
    return data, schedule


def joint_model(pair, diagnostic, therapy_base, spect_organs, pet_organs, n_cycles: int, drift,
                gap_h: float):
    """The joint :class:`~tdt.inference.TwinModel`: sampled = the therapeutic model's
    identifiable subset for the SPECT VOIs, the shared identifiable subset for the PET VOIs,
    the diagnostic ligand's own identifiable ones (``dx_``), and the drift factors."""
    ther_spec, diag_spec = pair.therapeutic_spec, pair.diagnostic_spec
    sampled = list(ther_spec.identifiable_parameters(therapy_base, spect_organs))
    drifting = [n for n in sampled if not n.startswith("krel_")]
    forward = DriftingPbpk(therapy_base, drifting, n_cycles, drift_steps(drifting, drift))
    joint = PetSpectPbpk(pair, diagnostic, forward, gap_h)
    for name in diag_spec.identifiable_parameters(diagnostic, pet_organs):
        name = DX_PREFIX + name if name in joint.diagnostic_only else name
        if name not in sampled:
            sampled.append(name)
    lesions = tuple(o for o in therapy_base.organs if is_lesion(o))
    return custom_model(joint, sampled=(*sampled, *forward.factor_names), kind="pbpk",
                        options={"model": ther_spec.key, "pair": pair.key, "lesions": lesions,
                                 "joint": "pet+spect"})


def fit_joint(twin_model, data: PatientData, schedule, noise_sd: float, nuts_options: dict):
    """NUTS fit of the joint model (the PBPK twin's defaults: 2 × (500 + 500))."""
    options = {"draws": 500, "tune": 500, "chains": 2, "seed": 0} | dict(nuts_options)
    return fit_patient(data, model=twin_model, schedule=schedule,
                       measurement=MeasurementModel(fixed_noise_sd=noise_sd), **options)
