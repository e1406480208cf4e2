"""Posterior-predictive dosimetry and radiobiology, per draw.

From the posterior-predictive TACs of :meth:`Posterior.predict` (leading axis: draws):

* absorbed dose (Gy): MIRD schema of :func:`tdt.dosimetry.organ_doses` with the fitted organs
  as sources (lesions as spheres with their VOI volume) and, when the model gives the whole-body
  TIA (every compartment but excreted urine), the remainder of body
  Ã_RB = Ã_TB − Σ_sources Ã (lesions included) with its cross-dose to every target;
* red marrow (EANM bone-marrow guideline, Hindorf C, et al. EJNMMI 2010;37:1238): self-dose of
  the marrow TIA by the chosen method plus the cross-dose of the organs and of the remainder of
  body (same call). ``"image"``: the model's ``red_marrow`` compartment (fitted to the marrow VOI,
  or the PBPK model's own marrow); ``"blood"``: Ã_RM = RMBLR · [Ã_blood] m_RM / ρ_blood from the
  patient's :class:`~tdt.inference.BloodSamples` (:func:`tdt.dosimetry.marrow_tia_blood_based`),
  per draw with RMBLR ~ :data:`tdt.dosimetry.RMBLR_PEPTIDE` (1, the guideline's value for
  peptides) × exp(N(0, :data:`tdt.dosimetry.RMBLR_PEPTIDE_SD_LOG`²)) (Forrer 2009's range as
  uncertainty; the antibody value 0.36 only when asked for) and a lognormal error of the blood
  TIA (:data:`BLOOD_TIA_SD_LOG`), scaled to the
  predicted schedule by its administered activity (linear kinetics); its dose-rate history follows
  the plasma activity; ``"image_l2l4"``: Ã_RM = Ã_L2–L4 / f from the patient's L2–L4 VOI
  (``PatientData.marrow_l2_l4``, :func:`tdt.dosimetry.l2_l4_voi_tia` and
  :func:`tdt.dosimetry.marrow_tia_image_based`), per draw with f ~ U(
  :data:`tdt.dosimetry.L2_L4_MARROW_FRACTION_RANGE`) (6.7–7.4 %) and a lognormal error of the
  VOI TIA (:data:`L2_L4_TIA_SD_LOG`, with the series' own ``recovery_sd`` when given), scaled to
  the schedule like the blood TIA; its dose-rate history follows the model's marrow (else
  plasma) activity;
* urinary-bladder contents (when the model has a ``urine`` compartment): the dynamic voiding
  model of :func:`tdt.dosimetry.bladder_contents_tia` per draw on the model's urine curve; the
  contents are a source (cross-dose to the marrow and the other targets) and part of the
  whole body;
* dose-rate history of organ o: Ḋ_o(t) = D_o · A_o(t) / Ã_o (the target's dose follows its own
  activity; exact for self-dose, which dominates for 177Lu β⁻ emitters);
* BED: Lea–Catcheside G-factor of that history (:func:`tdt.radiobiology.bed`, exponential tail)
  with the tissue's α/β and repair half-time (:func:`tdt.radiobiology.tissue`); EQD2;
* effective half-life: ln 2 / slope of log A(t) between 24 h and 168 h after the last
  administration (the clinical washout window), h;
* NTCP (LKB, :func:`tdt.radiobiology.ntcp_organ`) for organs with cited parameters, TCP
  (Poisson LQ, :func:`tdt.radiobiology.tcp_poisson`) for lesions (only when an α is given:
  tumour radiosensitivity is too uncertain for a default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import tdt.radiobiology as rb
from tdt.dosimetry import (
    L2_L4_MARROW_FRACTION_RANGE,
    REMAINDER_TISSUES,
    RMBLR_PEPTIDE,
    RMBLR_PEPTIDE_SD_LOG,
    bladder_contents_tia,
    is_lesion,
    marrow_tia_blood_based,
    marrow_tia_image_based,
    organ_doses,
    reference_mass_g,
)
from tdt.errors import InputError
from tdt.inference._diagnostics import gate_flag
from tdt.units import mbq_to_gbq, rate_to_half_life

#: Credible interval reported everywhere: 90 % equal-tailed.
CI_LOW, CI_HIGH = 5.0, 95.0
#: Red-marrow methods of :meth:`Posterior.predict_doses` (module docstring).
MARROW_METHODS = ("auto", "image", "image_l2l4", "blood", "none")
#: Log-SD of a patient's blood TIA concentration (well-counter calibration, sampling times and
#: tail extrapolation); an assumption of this package, not a published value.
BLOOD_TIA_SD_LOG = 0.10
#: Log-SD of an L2–L4 VOI's TIA (SPECT calibration, recovery correction of the vertebral bodies,
#: tail extrapolation); an assumption of this package, not a published value.
L2_L4_TIA_SD_LOG = 0.10


def summarise_draws(values) -> dict[str, float]:
    """Median and 90 % equal-tailed credible interval of 1-D draws."""
    values = np.asarray(values, dtype=float).ravel()
    lo, med, hi = np.percentile(values, [CI_LOW, 50.0, CI_HIGH])
    return {"median": float(med), "ci90_low": float(lo), "ci90_high": float(hi)}


@dataclass
class DosePrediction:
    """Per-draw dosimetry of a posterior for a schedule (leading axis: draws).

    tia_mbq_h, dose_gy, effective_half_life_h, bed_gy, eqd2_gy: organ → (n_draws,).
    tcp: lesion → (n_draws,); ntcp: organ at risk → (n_draws,) (where parameters exist).
    times_h, activity_mbq: TAC grid (n_times,) and organ → (n_draws, n_times).
    converged: the source posterior's gate; ``flag`` = "NOT CONVERGED" when it failed.
    method: the source posterior's method (``"nuts"``, or ``"laplace"``: ``flag`` always says
    "LAPLACE PREVIEW"; :func:`tdt.inference._diagnostics.gate_flag`).
    """

    tia_mbq_h: dict[str, np.ndarray]
    dose_gy: dict[str, np.ndarray]
    effective_half_life_h: dict[str, np.ndarray]
    bed_gy: dict[str, np.ndarray] = field(default_factory=dict)
    eqd2_gy: dict[str, np.ndarray] = field(default_factory=dict)
    tcp: dict[str, np.ndarray] = field(default_factory=dict)
    ntcp: dict[str, np.ndarray] = field(default_factory=dict)
    times_h: np.ndarray | None = None
    activity_mbq: dict[str, np.ndarray] = field(default_factory=dict)
    converged: bool = True
    notes: list[str] = field(default_factory=list)
    marrow_method: str = "none"
    total_body_tia_mbq_h: np.ndarray | None = None
    bladder_tia_mbq_h: np.ndarray | None = None
    #: activity administered in the predicted schedule (MBq, all administrations), for Gy/GBq
    administered_activity_mbq: float | None = None
    method: str = "nuts"

    @property
    def flag(self) -> str:
        return gate_flag(self.converged, self.method)

    def dose_gy_per_gbq(self) -> dict[str, np.ndarray]:
        """Absorbed dose per administered activity, organ → (n_draws,) in Gy/GBq (the unit of
        published patient series); empty when the administered activity is unknown."""
        if not self.administered_activity_mbq:
            return {}
        gbq = mbq_to_gbq(self.administered_activity_mbq)
        return {organ: np.asarray(draws) / gbq for organ, draws in self.dose_gy.items()}

    def summary(self) -> list[dict[str, Any]]:
        """Rows: quantity, organ, median, ci90_low, ci90_high, unit, flag (dose also per GBq
        administered, quantity ``dose_gy_per_gbq``, when the activity is known)."""
        quantities = (("tia_mbq_h", self.tia_mbq_h, "MBq·h"), ("dose_gy", self.dose_gy, "Gy"),
                      ("dose_gy_per_gbq", self.dose_gy_per_gbq(), "Gy/GBq"),
                      ("effective_half_life_h", self.effective_half_life_h, "h"),
                      ("bed_gy", self.bed_gy, "Gy"), ("eqd2_gy", self.eqd2_gy, "Gy"),
                      ("tcp", self.tcp, "1"), ("ntcp", self.ntcp, "1"))
        return [{"quantity": quantity, "organ": organ, **summarise_draws(draws), "unit": unit,
                 "flag": self.flag}
                for quantity, values, unit in quantities for organ, draws in values.items()]




def doses_from_tia(tia_mbq_h: dict[str, np.ndarray], nuclide: str = "Lu-177",
                   phantom: str = "adult-male", organ_masses_g: dict | None = None,
                   volumes_ml: dict | None = None,
                   total_body_tia_mbq_h=None) -> dict[str, np.ndarray]:
    """Organ / lesion → absorbed dose (Gy), same shape as the TIA draws (MIRD schema).

    With ``total_body_tia_mbq_h`` (whole-body TIA, MBq·h, per draw) the remainder of body
    Ã_TB − Σ organs − Σ lesions irradiates every target (remainder-tissue keys such as
    ``plasma``/``remainder`` are then part of it and not separate sources)."""
    volumes_ml = volumes_ml or {}
    lesions = {o: volumes_ml.get(o) for o in tia_mbq_h if is_lesion(o)}
    missing = [o for o, v in lesions.items() if v is None]
    if missing:
        raise InputError(f"lesion volume_ml: missing for {missing}; give OrganSeries.volume_ml "
                         "or lesion_volumes_ml to compute lesion doses")
    sources = {o: np.asarray(v) for o, v in tia_mbq_h.items()}
    if total_body_tia_mbq_h is not None:
        sources = {o: v for o, v in sources.items() if o not in REMAINDER_TISSUES}
        # lesions are spheres (self-dose only) in organ_doses: their activity is not remainder
        body = np.asarray(total_body_tia_mbq_h, dtype=float)
        sources["total_body"] = body - sum((sources[o] for o in lesions), np.zeros_like(body))
    doses = organ_doses(sources, nuclide=nuclide, phantom=phantom,
                        organ_masses_g=organ_masses_g, lesion_volumes_ml=lesions or None)
    return {o: np.asarray(doses[o]) for o in tia_mbq_h if o in doses}


def bladder_tia_draws(times_h, urine_activity_mbq, nuclide: str,
                      void_interval_h: float) -> np.ndarray:
    """(n_draws,) TIA (MBq·h) of the urinary-bladder contents from each draw's excreted-urine
    curve (n_draws, n_times) with voiding every ``void_interval_h`` (MIRD Pamphlet 14 rev.)."""
    urine = np.atleast_2d(np.asarray(urine_activity_mbq, dtype=float))
    return np.array([bladder_contents_tia(times_h, np.maximum(u, 0.0), nuclide, void_interval_h)
                     for u in urine])


def choose_marrow_method(method: str, has_blood: bool, has_marrow: bool,
                         has_l2_l4: bool = False) -> str:
    """Resolve ``"auto"``: blood samples if the patient has them (EANM's first choice for
    ligands that do not bind marrow), else an L2–L4 VOI, else the model's marrow compartment
    (marrow VOI or PBPK), else ``"none"``; check an explicit choice is possible."""
    if method not in MARROW_METHODS:
        raise InputError(f"marrow: {method!r}; expected one of {MARROW_METHODS}")
    if method == "auto":
        return ("blood" if has_blood else "image_l2l4" if has_l2_l4
                else "image" if has_marrow else "none")
    if method == "image_l2l4" and not has_l2_l4:
        raise InputError("marrow: 'image_l2l4' needs PatientData.marrow_l2_l4 (OrganSeries of "
                         "the L2-L4 VOI activity in MBq over time)")
    if method == "blood" and not has_blood:
        raise InputError("marrow: 'blood' needs PatientData.blood (BloodSamples: blood "
                         "activity concentration in MBq/mL over time)")
    if method == "image" and not has_marrow:
        raise InputError("marrow: 'image' needs a red_marrow VOI in the data (or a model with a "
                         "red_marrow compartment)")
    return method


def blood_marrow_tia_draws(blood_tia_mbq_h_per_ml: float, n_draws: int, phantom: str,
                           organ_masses_g: dict | None = None, rmblr=None,
                           seed: int = 0) -> np.ndarray:
    """(n_draws,) red-marrow TIA (MBq·h), blood-based (module docstring): RMBLR per draw
    RMBLR_PEPTIDE × exp(N(0, RMBLR_PEPTIDE_SD_LOG²)) unless ``rmblr`` fixes it (e.g.
    ``tdt.dosimetry.RMBLR_ANTIBODY``), blood TIA × exp(N(0, BLOOD_TIA_SD_LOG²)), marrow mass
    from ``organ_masses_g['red_marrow']`` or the phantom's reference mass (g)."""
    rng = np.random.default_rng(seed)
    ratio = (RMBLR_PEPTIDE * np.exp(rng.normal(0.0, RMBLR_PEPTIDE_SD_LOG, n_draws))
             if rmblr is None else np.full(n_draws, float(rmblr)))
    blood = blood_tia_mbq_h_per_ml * np.exp(rng.normal(0.0, BLOOD_TIA_SD_LOG, n_draws))
    mass = (organ_masses_g or {}).get("red_marrow") or reference_mass_g("red_marrow", phantom)
    return np.asarray(marrow_tia_blood_based(blood, mass, ratio))


def l2_l4_marrow_tia_draws(l2_l4_tia_mbq_h: float, n_draws: int, fraction=None,
                           sd_log: float = L2_L4_TIA_SD_LOG, seed: int = 0) -> np.ndarray:
    """(n_draws,) red-marrow TIA (MBq·h), image-based (module docstring): the L2–L4 VOI TIA ×
    exp(N(0, ``sd_log``²)) divided by the L2–L4 marrow fraction, drawn per draw from
    U(:data:`tdt.dosimetry.L2_L4_MARROW_FRACTION_RANGE`) unless ``fraction`` fixes it."""
    rng = np.random.default_rng(seed)
    frac = (rng.uniform(*L2_L4_MARROW_FRACTION_RANGE, n_draws) if fraction is None
            else np.full(n_draws, float(fraction)))
    voi = l2_l4_tia_mbq_h * np.exp(rng.normal(0.0, sd_log, n_draws))
    return np.asarray(marrow_tia_image_based(voi, frac))


def effective_half_life_h(times_h, activity_mbq, start_h: float, end_h: float):
    """ln 2 / (−slope of log A) fitted by least squares on ``start_h <= t <= end_h`` (h)."""
    times = np.asarray(times_h, dtype=float)
    window = (times >= start_h) & (times <= end_h)
    if window.sum() < 2:
        raise InputError(f"effective half-life window [{start_h}, {end_h}] h has fewer than two "
                         "time points")
    t = times[window]
    log_a = np.log(np.maximum(np.asarray(activity_mbq)[..., window], 1e-300))
    tc = t - t.mean()
    slope = np.sum((log_a - log_a.mean(axis=-1, keepdims=True)) * tc, axis=-1) / np.sum(tc**2)
    with np.errstate(divide="ignore"):
        return np.where(slope < 0, rate_to_half_life(-slope), np.inf)


def dose_prediction(pred: dict, nuclide: str, phantom: str, organ_masses_g, volumes_ml: dict,
                    schedule, radiobiology: bool = True, converged: bool = True,
                    tcp_alpha_per_gy: float | None = None, tcp_alpha_sd_per_gy: float = 0.0,
                    marrow_method: str = "none", marrow_tia_mbq_h=None,
                    report: tuple[str, ...] | None = None, method: str = "nuts"):
    """Per-draw :class:`~tdt.inference.DosePrediction` from :meth:`Posterior.predict` output.

    ``pred["total_body_tia_mbq_h"]`` (optional): whole-body TIA per draw (remainder of body).
    ``marrow_method`` / ``marrow_tia_mbq_h``: the red-marrow method and, for ``"blood"``, its
    marrow TIA draws (:func:`blood_marrow_tia_draws`). ``report``: organs to report (default all
    of ``pred``; the others are used as sources only)."""
    times = np.asarray(pred["times_h"])
    activity = dict(pred["activity_mbq"])
    tia = {o: np.asarray(v) for o, v in pred["tia_mbq_h"].items()}
    notes = []
    if marrow_method in ("blood", "image_l2l4"):
        tia["red_marrow"] = np.asarray(marrow_tia_mbq_h, dtype=float)
        # dose-rate shape: blood (RMBLR constant), or the model's own marrow for the image method
        shape = ("red_marrow" if marrow_method == "image_l2l4" and "red_marrow" in activity
                 else "plasma")
        if shape in activity:
            activity["red_marrow"] = (activity[shape] * (tia["red_marrow"]
                                      / np.asarray(pred["tia_mbq_h"][shape]))[:, None])
        notes.append(f"red marrow: blood-based (EANM 2010), RMBLR {RMBLR_PEPTIDE:g} (log-SD "
                     f"{RMBLR_PEPTIDE_SD_LOG:g} unless fixed), blood TIA log-SD "
                     f"{BLOOD_TIA_SD_LOG}" if marrow_method == "blood" else
                     "red marrow: image-based from the L2-L4 VOI (EANM 2010), TIA / f, f ~ U"
                     f"{L2_L4_MARROW_FRACTION_RANGE} unless fixed, VOI TIA log-SD "
                     f"{L2_L4_TIA_SD_LOG} (+ its recovery_sd)")
    elif marrow_method == "image":
        notes.append("red marrow: image-based (model red_marrow compartment)")
    total_body = pred.get("total_body_tia_mbq_h")
    if pred.get("bladder_tia_mbq_h") is not None:  # excreted but still in the body
        tia["urinary_bladder_contents"] = np.asarray(pred["bladder_tia_mbq_h"])
        if total_body is not None:
            total_body = np.asarray(total_body) + tia["urinary_bladder_contents"]
    if total_body is not None:
        notes.append("remainder of body: model whole-body TIA minus the source organs and "
                     "lesions (MIRD remainder S-value, Cloutier 1973)")
    else:
        notes.append("remainder of body: no whole-body TIA; its cross-dose is not included")
    dose = doses_from_tia(tia, nuclide, phantom, organ_masses_g, volumes_ml, total_body)
    report = tuple(tia) if report is None else tuple(o for o in report if o in tia)
    if marrow_method != "none" and "red_marrow" not in report:
        report = (*report, "red_marrow")
    tia = {o: tia[o] for o in report}
    dose = {o: d for o, d in dose.items() if o in report}
    activity = {o: a for o, a in activity.items() if o in report}
    last = float(np.max(np.asarray(schedule.time_h)))
    t_eff = {o: effective_half_life_h(times, a, last + 24.0, last + 168.0)
             for o, a in activity.items()}
    out = DosePrediction(tia_mbq_h=tia, dose_gy=dose,
                         effective_half_life_h=t_eff, times_h=times, activity_mbq=activity,
                         converged=converged, notes=notes, marrow_method=marrow_method,
                         total_body_tia_mbq_h=None if total_body is None
                         else np.asarray(total_body),
                         bladder_tia_mbq_h=pred.get("bladder_tia_mbq_h"),
                         administered_activity_mbq=float(np.sum(np.asarray(
                             schedule.activity_mbq))), method=method)
    if not bool(np.all(pred.get("ok", True))):
        out.notes.append(f"{int(np.sum(~np.asarray(pred['ok'])))} draws had a failed solve")
    if not radiobiology:
        return out
    for organ, d in dose.items():
        try:
            tissue = rb.tissue(organ)
        except InputError:
            out.notes.append(f"{organ}: no radiobiological parameters; BED not computed")
            continue
        if organ not in activity:
            out.notes.append(f"{organ}: no activity curve; BED not computed")
            continue
        rate = d[:, None] * np.asarray(activity[organ]) / np.asarray(tia[organ])[:, None]
        rate = np.maximum(rate, 0.0)
        bed = np.asarray(rb.bed(times, rate, tissue.alpha_beta_gy, tissue.repair_half_time_h,
                                tail="exponential", validate=False))
        out.bed_gy[organ] = bed
        out.eqd2_gy[organ] = np.asarray(rb.eqd2(bed, tissue.alpha_beta_gy))
        if organ in rb.NTCP_PARAMETERS:
            out.ntcp[organ] = np.asarray(rb.ntcp_organ(organ, bed, absorbed_dose_gy=d))
        if is_lesion(organ) and tcp_alpha_per_gy is not None:
            out.tcp[organ] = np.asarray(rb.tcp_poisson(
                bed, tcp_alpha_per_gy, alpha_sd_per_gy=tcp_alpha_sd_per_gy,
                volume_ml=volumes_ml.get(organ)))
    return out
