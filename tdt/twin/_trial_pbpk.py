"""The virtual trial on the receptor-PBPK twin: fixed 7.4 GBq against planned activity *and*
ligand amount, with PBPK truth (receptor saturation) and the PBPK twin's Laplace preview.

Design (the linear trial's, :mod:`tdt.twin._trial`, with the PBPK model everywhere):

- Virtual patients: the 177Lu-PSMA-617 receptor PBPK (``tdt.pbpk.get_model("psma617")``, grid
  solver) with two lesions (volumes uniform in [2, 30] mL); the registry's identifiable
  parameters of the imaged VOIs drawn from the model's cited priors (lognormal: median, log-SD),
  the others at the catalog values; a kidney risk factor with probability
  ``risk_factor_prevalence`` (kidney BED limit 28 Gy with, 40 Gy without; Bodei 2008). Between
  cycles the uptake amplitudes and GFR drift by the twin's own drift prior
  (:class:`tdt.twin._pbpk_twin.DriftingPbpk`: lesions −0.1 ± 0.2, organs 0 ± 0.05 in log per
  cycle), so the twin is well specified. By default this cohort is the PBPK *prior*: kidneys
  0.80 ± 0.33 Gy/GBq in cycle 1, about twice VISION's 0.43 ± 0.16 (Herrmann K, et al. J Nucl
  Med 2024;65:71). ``reabsorption_scale`` multiplies the tubular reabsorption ``f_reabs`` (drawn
  from its catalog prior; it carries most of this model's kidney dose) and ``population_sd_scale``
  the prior log-SDs of the non-lesion sampled parameters; 0.35 and 0.8 give 0.43 ± 0.16 Gy/GBq
  (400 patients; tests/twin/test_twin_trial_pbpk.py: 0.44 ± 0.17 since ``f_reabs`` is drawn
  too). The twin keeps its own prior: it samples ``f_reabs`` (the registry's rule for PSMA
  kidneys) under the catalog prior (median 0.04, log-SD 0.4), whose median lies 2.6 prior SDs
  above this cohort's: the twin's prior is misspecified, as a real one would be, its model is not.
- Truth: per cycle, absorbed dose and BED of every organ from the true parameters of that
  cycle, the whole schedule solved with the residual activity and peptide of earlier cycles
  (:func:`tdt.inference.solve_boluses`), the twin's dosimetry (:func:`tdt.twin._pbpk_doses.
  cycle_doses`: MIRD S-values, spheres for lesions, G-factor BED); cumulative = sum of cycles.
- Imaging after each cycle: the VOIs at 4, 24, 48, 96, 168 h after the administration, 10 %
  lognormal noise per point, one 3 % calibration error per cycle and one residual
  recovery-correction error per VOI (log-SD ``recovery_sd``, 0.10, drawn once per patient from
  its own random stream and kept over the cycles): the PBPK twin's measurement model
  (:class:`tdt.inference.MeasurementModel`: its VOIs enter with recovery 1, whose log has the
  model's ``recovery_sd`` prior). Without the recovery error (before 2026-12-06) the twin's
  posterior was over-dispersed against this truth (50 % intervals covered 65–87 %).
- Guided arm: cycle 1 at ``standard_activity_mbq`` with ``standard_ligand_nmol``, then after
  each cycle's imaging ``Twin.plan()`` of the PBPK twin (``engine="laplace"``, its joint fit of
  all cycles so far; the uniform planner over the remaining cycles: activity in
  ``activity_bounds_mbq``, ligand amount in ``ligand_bounds_nmol``, P(kidney BED > own limit)
  ≤ 5 %, P(red-marrow dose > 2 Gy) ≤ 5 %, maximising expected tumour BED); the next cycle gets
  the plan's first activity and ligand amount; the arm stops when no plan is feasible.
- Fixed arm: ``standard_activity_mbq`` × ``n_cycles`` with ``standard_ligand_nmol``.
- Oracle arm (``oracle=True``, a reference): the per-cycle planner given each patient's true
  parameters of every cycle, scaled until the true schedule meets every limit
  (:mod:`tdt.twin._trial_oracle`).
- Outcomes: :func:`tdt.twin._trial_stats.arm_row` (the linear trial's table), the planner's
  calibration (planned against realised kidney risk, :func:`tdt.twin.plan_calibration`), and
  the posterior's: the PIT of every guided cycle's true dose under the twin's final joint
  posterior (:func:`tdt.twin._trial_stats.posterior_coverage`; a simulation-based calibration
  of the multi-cycle preview when the cohort is the twin's prior), and the cohort's true
  cycle-1 dose per GBq (kidneys, red marrow, salivary glands).
- Cost: every patient's twins share compiled programs (:mod:`tdt.twin._pbpk_programs`), so
  the cohort compiles once per cycle count.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from tdt.errors import InputError
from tdt.inference import DriftModel, MeasurementModel, rank_statistics
from tdt.pbpk import Administration, Schedule
from tdt.radiobiology import RED_MARROW_DOSE_LIMIT_GY, is_lesion
from tdt.twin._pbpk_doses import HISTORY_H, cycle_doses, report_organs, simulate_paths
from tdt.twin._pbpk_twin import DEFAULT_INTERVAL_H, body_compartments, build_pbpk, drift_steps
from tdt.twin._record import CycleData, PatientRecord
from tdt.twin._trial import IMAGING_TIMES_H, TrialResult
from tdt.twin._trial_oracle import oracle_arm
from tdt.twin._trial_stats import arm_row, plan_calibration, posterior_coverage
from tdt.twin._twin import Twin

__all__ = ("PBPK_IMAGED_VOIS", "virtual_trial_pbpk")

#: VOIs imaged after every cycle (SPECT/CT): the organs at risk with uptake and both lesions
PBPK_IMAGED_VOIS = ("kidneys", "salivary_glands", "liver", "spleen", "lesion_1", "lesion_2")
#: log-SD of each VOI's residual recovery-correction error (one per VOI and patient, all
#: cycles): the PBPK twin's measurement model (``MeasurementModel().recovery_sd``)
RECOVERY_SD = MeasurementModel().recovery_sd


class _Truth:
    """One virtual patient's true PBPK parameters per cycle and their doses."""

    def __init__(self, spec, base, record, params_per_cycle: dict, recovery: dict | None = None):
        self.spec, self.base, self.record = spec, base, record
        self.params = params_per_cycle  # name -> (n_cycles,)
        self.recovery = dict(recovery or {})  # VOI -> its recovery-correction error (factor)
        self.organs = body_compartments(base)
        self.report, self.sources = report_organs(record, self.organs, PBPK_IMAGED_VOIS)

    def _paths(self, n):
        return {k: np.asarray(v[:n], dtype=float)[None, :] for k, v in self.params.items()}

    def schedule(self, activities, ligands, interval_h):
        return Schedule([Administration(k * interval_h, float(a), float(q))
                         for k, (a, q) in enumerate(zip(activities, ligands, strict=True))])

    def image(self, activities, ligands, interval_h, noise, relative_sd, calibration_sd):
        """Noisy VOI activities (MBq) after the last administration of the schedule given."""
        n = len(activities)
        schedule = self.schedule(activities, ligands, interval_h)
        histories, _, ok = simulate_paths(self.base, self._paths(n), schedule, self.organs,
                                          history_h=np.asarray(IMAGING_TIMES_H))
        if not bool(np.all(ok)):
            raise InputError(f"virtual patient {self.record.patient_id}: the true PBPK solve "
                             "failed; expected a finite truth")
        last = histories[-1][0]  # (organs, times) after administration n
        calib = np.exp(calibration_sd * noise.standard_normal())
        return {o: (np.asarray(IMAGING_TIMES_H),
                    last[self.organs.index(o)] * calib * self.recovery.get(o, 1.0)
                    * np.exp(relative_sd * noise.standard_normal(len(IMAGING_TIMES_H))))
                for o in PBPK_IMAGED_VOIS}

    def cycles(self, activities, ligands, interval_h) -> list:
        """True doses per administration (:class:`tdt.inference.DosePrediction`, one draw)."""
        n = len(activities)
        schedule = self.schedule(activities, ligands, interval_h)
        histories, tia, ok = simulate_paths(self.base, self._paths(n), schedule, self.organs)
        return cycle_doses(self.record, self.organs, histories, tia, ok, activities,
                           self.report, self.sources)

    def totals(self, activities, ligands, interval_h) -> dict:
        """True cumulative kidney BED, mean lesion BED, red-marrow and lacrimal-gland dose (Gy)."""
        return self.totals_of(self.cycles(activities, ligands, interval_h))

    @staticmethod
    def totals_of(cycles) -> dict:
        """:meth:`totals` of per-administration doses already solved (:meth:`cycles`)."""
        bed = {o: sum(float(c.bed_gy[o][0]) for c in cycles) for o in cycles[0].bed_gy}
        dose = {o: sum(float(c.dose_gy[o][0]) for c in cycles) for o in cycles[0].dose_gy}
        lesions = [o for o in bed if is_lesion(o)]
        return {"kidney_bed_gy": bed["kidneys"],
                "tumour_bed_gy": float(np.mean([bed[o] for o in lesions])),
                "marrow_dose_gy": dose.get("red_marrow", float("nan")),
                "lacrimal_dose_gy": dose.get("lacrimal_glands", float("nan"))}


def _virtual_patient(model: str, seed: int, patient: int, n_cycles: int, drift: DriftModel,
                     risk_factor_prevalence: float, reabsorption_scale: float = 1.0,
                     population_sd_scale: float = 1.0,
                     recovery_sd: float = RECOVERY_SD) -> _Truth:
    rng = np.random.default_rng([seed, patient, 7])  # not the linear trial's patient stream
    volumes = rng.uniform(2.0, 30.0, size=2)
    risk = rng.uniform() < risk_factor_prevalence
    record = PatientRecord(f"virtual_pbpk_{patient:04d}",
                           lesions={"lesion_1": float(volumes[0]), "lesion_2": float(volumes[1])},
                           risk_factors=("hypertension",) if risk else ())
    spec, base = build_pbpk(model, record)
    lesion_names = tuple(record.lesions)
    priors = base.priors()
    params = {k: float(v) for k, v in base.default_params().items()}
    sampled = spec.identifiable_parameters(base, PBPK_IMAGED_VOIS)
    for name in sampled:
        median, sd = priors[name]
        scale = 1.0 if name.endswith(tuple(lesion_names)) else population_sd_scale
        params[name] = median * float(np.exp(scale * sd * rng.standard_normal()))
    if "f_reabs" in params:  # tubular reabsorption (drawn above when sampled), scaled (VISION)
        params["f_reabs"] *= reabsorption_scale
    steps = drift_steps([n for n in sampled if not n.startswith("krel_")], drift)
    per_cycle = {k: np.full(n_cycles, v) for k, v in params.items()}
    for name, (mean, sd) in steps.items():
        log_steps = mean + sd * rng.standard_normal(n_cycles - 1)
        per_cycle[name] = params[name] * np.exp(np.concatenate([[0.0], np.cumsum(log_steps)]))
    recovery_rng = np.random.default_rng([seed, patient, 9])  # its own stream (module doc)
    recovery = {o: float(np.exp(recovery_sd * recovery_rng.standard_normal()))
                for o in PBPK_IMAGED_VOIS}
    return _Truth(spec, base, record, per_cycle, recovery)


def _first_cycle_dose_per_gbq(first_cycle, activity_mbq: float) -> dict:
    """The patient's true cycle-1 absorbed dose per activity (Gy/GBq) of kidneys, red marrow
    and salivary glands (``first_cycle``: its dose prediction at the standard activity and
    ligand amount, saturation included)."""
    dose = first_cycle.dose_gy
    gbq = activity_mbq / 1000.0
    return {f"{organ}_gy_per_gbq": float(dose[organ][0]) / gbq if organ in dose else np.nan
            for organ in ("kidneys", "red_marrow", "salivary_glands")}


def _cohort_summary(patients: pd.DataFrame) -> dict:
    """Mean and SD (Gy/GBq) of the cohort's true cycle-1 dose per activity, per organ."""
    out = {}
    for organ in ("kidneys", "red_marrow", "salivary_glands"):
        values = patients[f"{organ}_gy_per_gbq"].to_numpy(dtype=float)
        out[f"mean_{organ}_gy_per_gbq"] = float(np.mean(values))
        out[f"sd_{organ}_gy_per_gbq"] = float(np.std(values, ddof=1))
    return out


#: organs whose delivered dose per cycle is checked against the truth (posterior calibration)
CALIBRATION_ORGANS = ("kidneys", "salivary_glands", "lesion_1", "lesion_2")


def _delivered_dose_pits(true_cycles, twin: Twin) -> dict:
    """PIT (SBC rank, :func:`tdt.inference.rank_statistics`) of each guided cycle's true dose
    (``true_cycles``) under the twin's final posterior (joint over all cycles, with drift):
    organ → per cycle, the fraction of posterior draws below the truth."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the preview's label is in settings["twin"]
        predicted = twin.predict([])
    return {organ: rank_statistics([p.dose_gy[organ] for p in predicted.cycles],
                                   np.array([float(t.dose_gy[organ][0]) for t in true_cycles])
                                   ).tolist()
            for organ in CALIBRATION_ORGANS}


def _guided_arm(truth: _Truth, twin: Twin, n_cycles: int, activity: float, ligand: float,
                interval_h: float, noise, relative_sd: float, calibration_sd: float,
                plan_options: dict):
    given, ligands, checks = [], [], []
    kidney_label = twin.default_constraints()[0].label
    for k in range(n_cycles):
        given.append(float(activity))
        ligands.append(float(ligand))
        twin.ligand_nmol = float(ligand)
        measurements = truth.image(given, ligands, interval_h, noise, relative_sd,
                                   calibration_sd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the preview's label is in its QA; not an error
            twin.assimilate(CycleData(activity, measurements, relative_sd=relative_sd))
        if k == n_cycles - 1:
            break
        proposal = twin.plan(**plan_options)
        if not proposal.feasible:
            break
        followed = truth.totals(given + list(proposal.activities_mbq),
                                ligands + list(proposal.ligand_nmol), interval_h)
        checks.append({"after_cycle": k + 1,
                       "kidney_risk": float(proposal.constraint_probabilities[kidney_label]),
                       "true_kidney_bed_if_followed_gy": followed["kidney_bed_gy"]})
        activity, ligand = proposal.activities_mbq[0], proposal.ligand_nmol[0]
    return given, ligands, checks


def _check_arguments(n_patients, n_cycles, risk_factor_prevalence, non_negative: dict):
    """:class:`InputError` naming the first argument of :func:`virtual_trial_pbpk` out of range."""
    if not (isinstance(n_patients, int) and n_patients >= 2):
        raise InputError(f"n_patients: got {n_patients!r}; expected an integer >= 2")
    if not (isinstance(n_cycles, int) and n_cycles >= 2):
        raise InputError(f"n_cycles: got {n_cycles!r}; expected an integer >= 2")
    for name, value in non_negative.items():
        if not (np.isfinite(value) and value >= 0.0):
            raise InputError(f"{name}: got {value!r}; expected a finite number >= 0")
    if not 0.0 <= risk_factor_prevalence <= 1.0:
        raise InputError(f"risk_factor_prevalence: got {risk_factor_prevalence!r}; "
                         "expected in [0, 1]")


def virtual_trial_pbpk(n_patients: int = 20, seed: int = 0, n_cycles: int = 4,
                       standard_activity_mbq: float = 7400.0,
                       standard_ligand_nmol: float = 150.0, n_draws: int = 300,
                       activity_bounds_mbq: tuple[float, float] = (3700.0, 9000.0),
                       ligand_bounds_nmol: tuple[float, float] = (20.0, 1000.0),
                       risk_factor_prevalence: float = 0.665, relative_sd: float = 0.1,
                       calibration_sd: float = 0.03, kidney_limit_gy: float = 28.0,
                       drift: DriftModel | None = None, interval_h: float = DEFAULT_INTERVAL_H,
                       model: str = "psma617", n_bootstrap: int = 2000,
                       reabsorption_scale: float = 1.0, population_sd_scale: float = 1.0,
                       oracle: bool = False, recovery_sd: float = RECOVERY_SD,
                       progress=None) -> TrialResult:
    """Run the PBPK trial of the module docstring; per-arm and per-patient tables.

    ``oracle``: add the reference arm planned on the true kinetics (module docstring).
    ``recovery_sd``: log-SD of the truth's per-VOI recovery error (0: error-free VOIs).

    ``progress(patient, n_patients, seconds)``: called after each patient (e.g. a log line).
    """
    _check_arguments(n_patients, n_cycles, risk_factor_prevalence,
                     {"reabsorption_scale": reabsorption_scale,
                      "population_sd_scale": population_sd_scale, "recovery_sd": recovery_sd})
    drift = drift or DriftModel()
    plan_options = {"activity_bounds_mbq": tuple(activity_bounds_mbq),
                    "ligand_bounds_nmol": tuple(ligand_bounds_nmol)}
    rows = []
    for patient in range(n_patients):
        start = time.perf_counter()
        truth = _virtual_patient(model, seed, patient, n_cycles, drift, risk_factor_prevalence,
                                 reabsorption_scale, population_sd_scale, recovery_sd)
        noise = np.random.default_rng([seed, patient, 8])
        fixed_a = [standard_activity_mbq] * n_cycles
        fixed_q = [standard_ligand_nmol] * n_cycles
        fixed = truth.totals(fixed_a, fixed_q, interval_h)
        first_cycles = truth.cycles(fixed_a[:1], fixed_q[:1], interval_h)
        first_cycle = truth.totals_of(first_cycles)
        per_gbq = _first_cycle_dose_per_gbq(first_cycles[0], standard_activity_mbq)
        twin = Twin(truth.record, model=model, engine="laplace", n_draws=n_draws,
                    total_cycles=n_cycles, drift=drift, seed=seed * 100003 + patient,
                    interval_h=interval_h, ligand_nmol=standard_ligand_nmol,
                    calibration_sd=calibration_sd,
                    nuts_options={"draws": max(n_draws // 2, 50), "chains": 2})
        given, ligands, checks = _guided_arm(
            truth, twin, n_cycles, standard_activity_mbq, standard_ligand_nmol, interval_h,
            noise, relative_sd, calibration_sd, plan_options)
        guided_cycles = truth.cycles(given, ligands, interval_h)
        guided = truth.totals_of(guided_cycles)
        pits = _delivered_dose_pits(guided_cycles, twin)
        reference = (oracle_arm(truth, twin.default_constraints(), n_cycles, plan_options,
                                 interval_h) if oracle else {})
        record = truth.record
        rows.append({"patient": record.patient_id, "risk_factor": bool(record.risk_factors),
                     "kidney_limit_gy": record.kidney_bed_limit_gy,
                     "first_cycle_kidney_bed_gy": first_cycle["kidney_bed_gy"]}
                    | per_gbq
                    | {f"fixed_{k}": v for k, v in fixed.items()}
                    | {f"guided_{k}": v for k, v in guided.items()}
                    | {"fixed_total_activity_mbq": float(sum(fixed_a)),
                       "guided_total_activity_mbq": float(sum(given)),
                       "fixed_cycles": n_cycles, "guided_cycles": len(given),
                       "guided_activities_mbq": given, "guided_ligand_nmol": ligands,
                       "guided_plan_checks": checks, "guided_dose_pit": pits}
                    | reference | {"seconds": time.perf_counter() - start})
        if progress is not None:
            progress(patient + 1, n_patients, rows[-1]["seconds"])
    patients = pd.DataFrame(rows)
    boot = np.random.default_rng(seed + 1)
    arms = [("fixed", f"fixed {standard_activity_mbq / 1000:g} GBq x {n_cycles}, "
                      f"{standard_ligand_nmol:g} nmol"),
            ("guided", "PBPK twin: activity and ligand planned")]
    if oracle:
        arms.append(("oracle", "oracle (true kinetics known; reference)"))
    table = pd.DataFrame([arm_row(patients, arm, label, kidney_limit_gy,
                                  RED_MARROW_DOSE_LIMIT_GY, boot, n_bootstrap)
                          for arm, label in arms])
    settings = {"model": model, "twin": "PBPK, engine laplace (LAPLACE PREVIEW)",
                "n_patients": n_patients, "seed": seed, "n_cycles": n_cycles,
                "standard_activity_mbq": standard_activity_mbq,
                "standard_ligand_nmol": standard_ligand_nmol, "n_draws": n_draws,
                "activity_bounds_mbq": list(activity_bounds_mbq),
                "ligand_bounds_nmol": list(ligand_bounds_nmol),
                "risk_factor_prevalence": risk_factor_prevalence,
                "reabsorption_scale": reabsorption_scale,
                "population_sd_scale": population_sd_scale, "oracle": bool(oracle),
                "recovery_sd": float(recovery_sd),
                "relative_sd": relative_sd, "calibration_sd": calibration_sd,
                "drift": drift.to_dict(), "interval_h": interval_h,
                "imaged_vois": list(PBPK_IMAGED_VOIS), "imaging_times_h": list(IMAGING_TIMES_H),
                "history_h": HISTORY_H.tolist(),
                "median_seconds_per_patient": float(patients["seconds"].median()),
                **_cohort_summary(patients),
                "plan_calibration": plan_calibration(patients, 0.05),
                "posterior_calibration": posterior_coverage(patients["guided_dose_pit"])}
    return TrialResult(table, patients, settings)
