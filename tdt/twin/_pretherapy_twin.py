"""``Twin.from_pretherapy``: a PBPK twin started from the pre-therapy PET, before any therapy.

1. **PET fit.** :func:`tdt.inference.predict_therapy_from_pet` fits the pair's diagnostic model
   (e.g. [68Ga]Ga-PSMA-11) to the PET VOIs (1–3 time points) under the population prior; the
   shared parameters (physiology, receptor densities) are carried over draw by draw to the
   therapeutic model, the therapy ligand's own parameters come from their population prior.
2. **Cycle 1 before any SPECT.** ``twin.predict([A])`` gives cycle-1 177Lu TIAs, doses and BED
   with credible intervals for organs and lesions (``PbpkPrediction`` with one cycle);
   ``twin.plan()`` plans activity and peptide amount under the same probabilistic limits as
   every later cycle (:func:`tdt.twin.plan_activity_and_ligand` on the PET-predicted draws).
3. **After cycle 1's SPECT.** ``twin.assimilate(cycle)`` refits the joint model
   (:mod:`tdt.twin._pretherapy_joint`): PET VOIs with the diagnostic ligand AND the SPECT of
   every imaged cycle with the therapeutic one, shared physiology and receptors. From then on
   prediction and planning are the PBPK twin's (:mod:`tdt.twin._pbpk_twin`).

ASSUMPTIONS: no drift between the PET and cycle 1 (the PBPK twin's drift model starts at
cycle 1); each lesion's model volume and flow are fixed from its PET VOI volume (as in
:func:`tdt.inference.predict_therapy_from_pet`) in the PET fit and in the joint fit.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.inference import (
    OrganSeries,
    PatientData,
    Posterior,
    lesion_geometry,
    predict_therapy_from_pet,
)
from tdt.pbpk import Administration, Schedule, get_pair
from tdt.radiobiology import is_lesion
from tdt.twin._pbpk_assimilate import QA_DRAWS, qa_inputs
from tdt.twin._pbpk_twin import (
    DriftingPbpk,
    PbpkPrediction,
    drift_steps,
    fit_data,
    future_factors,
    init_pbpk,
)
from tdt.twin._predict import activities_from
from tdt.twin._pretherapy_joint import fit_joint, joint_data, joint_model
from tdt.twin._qa import build_report
from tdt.twin._record import CycleData, PatientRecord
from tdt.twin._twin import Twin

#: Days from the PET to cycle 1 by default: two weeks (ASSUMPTION; the phantom's PET too).
DEFAULT_PET_GAP_H = 14 * 24.0
#: ``nuts_options`` that the PET fit takes too (:func:`tdt.inference.predict_therapy_from_pet`)
PET_FIT_OPTIONS = ("draws", "tune", "chains", "seed", "sampler")


def pet_patient_data(pet, pair, patient_id: str = "patient") -> PatientData:
    """``pet`` as the PET :class:`PatientData`: given as such, or the VOI curves of
    :func:`tdt.imaging.extract_tacs` (name -> object with ``times_h``, ``activity_mbq`` and
    ``volume_ml``) of a PET study; organs the diagnostic model does not have are left out."""
    if isinstance(pet, PatientData):
        return pet
    if not isinstance(pet, Mapping) or not all(
            hasattr(v, "times_h") and hasattr(v, "activity_mbq") for v in pet.values()):
        raise InputError(f"pet: {type(pet).__name__}; expected a tdt.inference.PatientData of "
                         "PET VOI activities or the VOI curves of tdt.imaging.extract_tacs("
                         "pet_study)")
    model_organs = set(pair.diagnostic_spec.build(lesions=tuple(
        n for n in pet if is_lesion(n))).organs)
    organs = {n: OrganSeries(np.asarray(v.times_h, dtype=float),
                             np.asarray(v.activity_mbq, dtype=float),
                             volume_ml=float(v.volume_ml) if is_lesion(n) else None,
                             recovery=1.0 if is_lesion(n) else None)
              for n, v in pet.items() if n in model_organs}
    return PatientData(organs, administered_activity_mbq=pair.diagnostic_activity_mbq,
                       ligand_nmol=pair.diagnostic_ligand_nmol,
                       nuclide=pair.diagnostic_spec.nuclide, patient_id=patient_id)


def _record(record: PatientRecord | None, volumes: dict[str, float], patient_id: str):
    if record is None:
        return PatientRecord(patient_id=patient_id, lesions=volumes)
    if not isinstance(record, PatientRecord):
        raise InputError(f"record: expected a PatientRecord, got {type(record).__name__}")
    if set(record.lesions) != set(volumes):
        raise InputError(f"record.lesions: {sorted(record.lesions)}; expected the PET's lesion "
                         f"VOIs {sorted(volumes)} (the same lesions in PET and therapy)")
    return record


def from_pretherapy(pet, pair="psma11_psma617", record: PatientRecord | None = None, *,
                    gap_h: float = DEFAULT_PET_GAP_H, **options) -> PretherapyTwin:
    """The PBPK twin of ``pair``'s therapeutic model predicted from the pre-therapy PET.

    Parameters
    ----------
    pet: the PET :class:`tdt.inference.PatientData` (diagnostic nuclide, e.g. ``"Ga-68"``; its
        administration is the diagnostic one; lesions ``lesion_<n>`` with ``volume_ml``) or
        ``tdt.imaging.extract_tacs(pet_study)`` (then the pair's standard diagnostic injection).
    pair: a :class:`tdt.pbpk.TheranosticPair` or its name (:func:`tdt.pbpk.pair_names`).
    record: the :class:`PatientRecord` (default: lesion volumes from the PET VOIs).
    gap_h: time from the PET injection to cycle 1 (h), default 14 days.
    options: as ``Twin(record, model=...)`` for a PBPK twin (``n_draws``, ``total_cycles``,
        ``drift``, ``seed``, ``nuts_options`` — used for the PET fit too —, ``interval_h``,
        ``ligand_nmol`` (default: the pair's standard therapy amount), ``audit_path``).
    """
    pair = get_pair(pair) if isinstance(pair, str) else pair
    pet_data = pet_patient_data(pet, pair)
    if not (np.isfinite(gap_h) and gap_h > 0):
        raise InputError(f"gap_h: {gap_h!r}; expected the PET-to-therapy interval > 0 h")
    volumes = {n: float(s.volume_ml) for n, s in pet_data.organs.items()
               if is_lesion(n) and s.volume_ml is not None}
    record = _record(record, volumes, pet_data.patient_id)
    options.setdefault("ligand_nmol", pair.therapy_ligand_nmol)
    twin = PretherapyTwin.__new__(PretherapyTwin)
    init_pbpk(twin, record, pair.therapeutic, **options)
    nuts = {"draws": 500, "tune": 500, "chains": 2, "seed": twin.seed} | {
        k: v for k, v in twin.nuts_options.items() if k in PET_FIT_OPTIONS}
    therapy = predict_therapy_from_pet(pet_data, pair, **nuts)
    twin.pair, twin.pet_data, twin.gap_h = pair, pet_data, float(gap_h)
    twin.pet_prediction = therapy
    twin.nuts_posterior = therapy
    twin.audit.append("pretherapy", {
        "pair": pair.key, "pet_organs": list(pet_data.organ_names),
        "pet_times_h": np.asarray(pet_data.times_h).tolist(), "gap_h": twin.gap_h,
        "diagnostics": therapy.diagnostics.as_dict(), "converged": bool(therapy.converged)})
    return twin


class PretherapyTwin(Twin):
    """A PBPK :class:`Twin` started from the pre-therapy PET (module docstring); made by
    :meth:`Twin.from_pretherapy`. Extra state: ``pair``, ``pet_data``, ``gap_h``,
    ``pet_prediction`` (the :class:`tdt.inference.TherapyPosterior` of the PET alone)."""

    def pbpk_parameter_draws(self, n_cycles: int | None = None) -> list[dict[str, np.ndarray]]:
        """Before any SPECT: cycle 1 = the PET prediction's draws, later cycles moved by the
        drift prior (seeded); afterwards as every PBPK twin."""
        if self.cycles:
            return super().pbpk_parameter_draws(n_cycles)
        n = max(self.cycles_remaining if n_cycles is None else int(n_cycles), 1)
        post = self.pet_prediction
        log_theta = post.log_theta_draws
        rng = np.random.default_rng([self.seed, 17])
        idx = np.sort(rng.choice(log_theta.shape[0], min(self.n_draws, log_theta.shape[0]),
                                 replace=False))
        params = jax.vmap(post.twin.params)(jnp.asarray(log_theta[idx]))
        first = {name: np.asarray(params[name]) for name in self.pbpk.parameter_names}
        sampled = self.spec.identifiable_parameters(self.pbpk, self.pet_data.organ_names)
        drifting = [s for s in sampled if not s.startswith("krel_")]
        forward = DriftingPbpk(self.pbpk, drifting, 1, drift_steps(drifting, self.drift))
        factors = future_factors(forward, idx.size, n - 1, (self.seed, 0)) if n > 1 else {}
        out = [first]
        for j in range(n - 1):
            out.append({k: v * factors[k][:, j] if k in factors else v
                        for k, v in first.items()})
        return out

    def predict(self, schedule, tcp=None):
        """Before any SPECT: cycle 1 only (PET prediction; a list of one activity or a one-bolus
        Schedule); afterwards :meth:`Twin.predict`."""
        if self.cycles:
            return super().predict(schedule, tcp)
        activity = activities_from(schedule)
        if activity.size != 1:
            raise InputError(f"schedule: {activity.size} cycles; before the first SPECT the "
                             "pretherapy twin predicts cycle 1 only (one activity)")
        ligand = (float(np.asarray(schedule.ligand_nmol)[0])
                  if hasattr(schedule, "ligand_nmol") else self.ligand_nmol)
        cycle = Schedule([Administration(0.0, float(activity[0]), ligand)])
        dose = self.pet_prediction.predict_doses(
            cycle, phantom=self.record.phantom, organ_masses_g=self.record.organ_masses_g or None,
            lesion_volumes_ml=dict(self.record.lesions), max_draws=self.n_draws, seed=self.seed,
            void_interval_h=None)  # no bladder source: as the PBPK twin's later predictions
        return PbpkPrediction([dose], 0, self.pet_prediction.converged, (float(activity[0]),),
                              ["predicted from the pre-therapy PET (no therapy imaging yet)"])

    def assimilate(self, cycle: CycleData):
        """Joint refit of the PET and every imaged cycle (module docstring); QA report."""
        if not isinstance(cycle, CycleData):
            raise InputError(f"cycle: expected a CycleData, got {type(cycle).__name__}")
        if self.cycles_remaining == 0:
            raise InputError(f"cycle: all {self.total_cycles} cycles are already assimilated")
        cycles = [*self.cycles, cycle]
        ligand = [*self.ligand_per_cycle[:len(self.cycles)], self.ligand_nmol]
        spect, _ = fit_data(self.record, cycles, self.interval_h, ligand, self.calibration_sd)
        for organ in spect.organ_names:
            if organ not in self.pbpk.compartments:
                raise InputError(f"CycleData.measurements organ: {organ!r} is not in the "
                                 f"{self.spec.key} model; expected one of "
                                 f"{self.pbpk.compartments}")
        data, schedule = joint_data(self.pet_data, spect, self.gap_h)
        lesions = tuple(o for o in self.pbpk.organs if is_lesion(o))
        diagnostic = self.pair.diagnostic_spec.build(lesions=lesions, method="grid")
        model = lesion_geometry(joint_model(
            self.pair, diagnostic, self.pbpk, spect.organ_names, self.pet_data.organ_names,
            len(cycles), self.drift, self.gap_h), dict(self.record.lesions))
        noise = float(np.max([c.relative_sd for c in cycles]))
        joint = fit_joint(model, data, schedule, noise, self.nuts_options)
        # the PBPK twin's state: draws of the joint fit; its SPECT data name the fitted VOIs
        posterior = Posterior(joint.idata, twin=model, data=spect,
                              diagnostics=joint.diagnostics, schedule=spect.schedule,
                              measurement=joint.measurement)
        return self._commit(cycle, cycles, ligand, posterior, model.forward.therapy)

    def _commit(self, cycle, cycles, ligand, posterior, forward):
        diagnostics = dict(posterior.diagnostics.as_dict())
        diagnostics["converged"] = bool(posterior.diagnostics.converged)
        # the PBPK twin's QA inputs (extrapolated TIA fraction, outlier z-scores of the SPECT
        # just assimilated) from the joint posterior's therapy draws: one home, _pbpk_assimilate
        extrapolated, z_scores = qa_inputs(self, posterior, forward, cycles, ligand)
        report = build_report(len(cycles), cycle, diagnostics, extrapolated, z_scores, {
            "model": self.model_name, "engine": "nuts (PBPK draws, PET + all cycles)",
            "dosimetry": "svalues (tdt.inference._predictive)",
            "qa_draws": min(self.n_draws, QA_DRAWS, posterior.n_draws)},
            nuclide=self.record.nuclide)
        self.nuts_posterior, self.drift_forward = posterior, forward
        self.ligand_per_cycle = ligand
        self.cycles.append(cycle)
        self.qa_reports.append(report)
        self.audit.append("assimilate", {
            "cycle": len(cycles), "data_sha256": cycle.sha256(),
            "activity_mbq": cycle.activity_mbq, "ligand_nmol": self.ligand_nmol,
            "qa": report.to_dict(),
            "posterior": {"method": "nuts (PBPK, PET + all cycles)", "diagnostics": diagnostics,
                          "median": {n: float(np.median(v))
                                     for n, v in posterior.parameter_draws.items()}}})
        return report
