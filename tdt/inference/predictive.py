"""Posterior-predictive dosimetry and radiobiology, per draw.

From the posterior-predictive TACs of :meth:`Posterior.predict` (leading axis: draws):

* absorbed dose (Gy): MIRD schema of :func:`tdt.dosimetry.organ_doses` with the fitted organs
  as sources (lesions as spheres with their VOI volume);
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
from tdt.dosimetry import organ_doses
from tdt.errors import InputError
from tdt.inference.diagnostics import NOT_CONVERGED
from tdt.units import rate_to_half_life

#: Credible interval reported everywhere: 90 % equal-tailed.
CI_LOW, CI_HIGH = 5.0, 95.0


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

    @property
    def flag(self) -> str:
        return "" if self.converged else NOT_CONVERGED

    def summary(self) -> list[dict[str, Any]]:
        """Rows: quantity, organ, median, ci90_low, ci90_high, unit, flag."""
        rows = []
        for quantity, unit in (("tia_mbq_h", "MBq·h"), ("dose_gy", "Gy"),
                               ("effective_half_life_h", "h"), ("bed_gy", "Gy"),
                               ("eqd2_gy", "Gy"), ("tcp", "1"), ("ntcp", "1")):
            for organ, draws in getattr(self, quantity).items():
                rows.append({"quantity": quantity, "organ": organ, **summarise_draws(draws),
                             "unit": unit, "flag": self.flag})
        return rows




def _is_lesion(name: str) -> bool:
    return name.startswith("lesion")


def doses_from_tia(tia_mbq_h: dict[str, np.ndarray], nuclide: str = "Lu-177",
                   phantom: str = "adult-male", organ_masses_g: dict | None = None,
                   volumes_ml: dict | None = None) -> dict[str, np.ndarray]:
    """Organ / lesion → absorbed dose (Gy), same shape as the TIA draws (MIRD schema)."""
    volumes_ml = volumes_ml or {}
    lesions = {o: volumes_ml.get(o) for o in tia_mbq_h if _is_lesion(o)}
    missing = [o for o, v in lesions.items() if v is None]
    if missing:
        raise InputError(f"lesion volume_ml: missing for {missing}; give OrganSeries.volume_ml "
                         "or lesion_volumes_ml to compute lesion doses")
    doses = organ_doses({o: np.asarray(v) for o, v in tia_mbq_h.items()}, nuclide=nuclide,
                        phantom=phantom, organ_masses_g=organ_masses_g,
                        lesion_volumes_ml=lesions or None)
    return {o: np.asarray(doses[o]) for o in tia_mbq_h if o in doses}


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
                    tcp_alpha_per_gy: float | None = None, tcp_alpha_sd_per_gy: float = 0.0):
    """Per-draw :class:`~tdt.inference.DosePrediction` from :meth:`Posterior.predict` output."""
    times = np.asarray(pred["times_h"])
    activity = pred["activity_mbq"]
    tia = pred["tia_mbq_h"]
    dose = doses_from_tia(tia, nuclide, phantom, organ_masses_g, volumes_ml)
    last = float(np.max(np.asarray(schedule.time_h)))
    t_eff = {o: effective_half_life_h(times, a, last + 24.0, last + 168.0)
             for o, a in activity.items()}
    out = DosePrediction(tia_mbq_h={o: np.asarray(v) for o, v in tia.items()}, dose_gy=dose,
                         effective_half_life_h=t_eff, times_h=times, activity_mbq=activity,
                         converged=converged)
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
        rate = d[:, None] * np.asarray(activity[organ]) / np.asarray(tia[organ])[:, None]
        rate = np.maximum(rate, 0.0)
        bed = np.asarray(rb.bed(times, rate, tissue.alpha_beta_gy, tissue.repair_half_time_h,
                                tail="exponential", validate=False))
        out.bed_gy[organ] = bed
        out.eqd2_gy[organ] = np.asarray(rb.eqd2(bed, tissue.alpha_beta_gy))
        if organ in rb.NTCP_PARAMETERS:
            out.ntcp[organ] = np.asarray(rb.ntcp_organ(organ, bed, absorbed_dose_gy=d))
        if _is_lesion(organ) and tcp_alpha_per_gy is not None:
            out.tcp[organ] = np.asarray(rb.tcp_poisson(
                bed, tcp_alpha_per_gy, alpha_sd_per_gy=tcp_alpha_sd_per_gy,
                volume_ml=volumes_ml.get(organ)))
    return out
