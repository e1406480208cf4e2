"""Patient time–activity data for Bayesian fitting, validated on construction.

A :class:`PatientData` holds, per organ or lesion, the image-derived activities (MBq) at the
imaging times (h after the first administration), plus the measurement facts that the
measurement model (:mod:`tdt.inference._measurement`) needs: which camera / imaging session a
time point came from (one calibration factor per session), the calibration-factor uncertainty,
and the lesion volume (mL) used for the partial-volume recovery coefficient.

Missing time points may be given as NaN: they are dropped per organ (an all-NaN series is an
error). Every violation raises :class:`tdt.errors.InputError` naming the organ and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdt.dosimetry import blood_tia_from_samples, l2_l4_voi_tia
from tdt.errors import InputError, warn_implausible
from tdt.kinetics import check_tac_plausibility
from tdt.pbpk import Administration, Schedule

#: Default session label: all time points from one camera with one calibration factor.
DEFAULT_SESSION = "camera"


def _as_1d_float(value, organ: str, field_name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(
            f"PatientData[{organ!r}].{field_name}: cannot convert {value!r} to numbers; "
            "expected a 1-D sequence of floats"
        ) from None
    if arr.ndim != 1:
        raise InputError(
            f"PatientData[{organ!r}].{field_name}: shape {arr.shape}; expected a 1-D sequence"
        )
    return arr


@dataclass(frozen=True)
class OrganSeries:
    """Measured time–activity series of one organ or lesion.

    Attributes
    ----------
    times_h: imaging times, h after the first administration (strictly increasing, >= 0).
    activity_mbq: measured activity in the VOI, MBq (> 0; NaN marks a missing point).
    volume_ml: VOI volume, mL (lesions: drives the partial-volume recovery coefficient).
    recovery: known recovery coefficient (0, 1]; overrides the volume-based one.
    sessions: camera / session label of each time point (one calibration factor per label);
        ``None`` puts every point in :data:`DEFAULT_SESSION`.
    recovery_sd: log-SD of this VOI's recovery (dimensionless, >= 0), e.g. the partial-volume
        correction's own uncertainty (``tdt.imaging.VoiTac.recovery_sd``: FWHM uncertainty
        through the GTM, with a floor). Given, it replaces ``MeasurementModel.recovery_sd`` for
        this VOI and the VOI gets a recovery term; ``None``: the flat model value applies.
    """

    times_h: Any
    activity_mbq: Any
    volume_ml: float | None = None
    recovery: float | None = None
    sessions: Sequence[str] | None = None
    recovery_sd: float | None = None

    def validated(self, organ: str, injection_time_h: float = 0.0) -> OrganSeries:
        """Return a cleaned copy (NaN points dropped, arrays as float64) or raise InputError."""
        times = _as_1d_float(self.times_h, organ, "times_h")
        activity = _as_1d_float(self.activity_mbq, organ, "activity_mbq")
        if times.size == 0 or activity.size == 0:
            raise InputError(
                f"PatientData[{organ!r}]: no data (times_h has {times.size}, activity_mbq has "
                f"{activity.size} points); expected at least one time point per organ"
            )
        if times.shape != activity.shape:
            raise InputError(
                f"PatientData[{organ!r}].activity_mbq: {activity.size} values for "
                f"{times.size} times_h; expected one activity per time"
            )
        sessions = (
            [DEFAULT_SESSION] * times.size if self.sessions is None else [str(s) for s in
                                                                           self.sessions]
        )
        if len(sessions) != times.size:
            raise InputError(
                f"PatientData[{organ!r}].sessions: {len(sessions)} labels for {times.size} "
                "time points; expected one label per time point"
            )
        if not np.all(np.isfinite(times)):
            raise InputError(
                f"PatientData[{organ!r}].times_h: non-finite value in {times.tolist()}; "
                "expected finite hours"
            )
        if np.any(times < injection_time_h):
            bad = times[times < injection_time_h].tolist()
            raise InputError(
                f"PatientData[{organ!r}].times_h: {bad} before the injection at "
                f"{injection_time_h} h; expected times >= injection time"
            )
        if np.any(np.diff(times) <= 0):
            raise InputError(
                f"PatientData[{organ!r}].times_h: {times.tolist()} not strictly increasing; "
                "expected sorted, distinct times"
            )
        keep = ~np.isnan(activity)
        if not np.any(keep):
            raise InputError(
                f"PatientData[{organ!r}].activity_mbq: all values are NaN; expected at least "
                "one measured activity"
            )
        if np.any(~np.isfinite(activity[keep])):
            raise InputError(
                f"PatientData[{organ!r}].activity_mbq: infinite value in {activity.tolist()}; "
                "expected finite MBq (NaN marks a missing point)"
            )
        if np.any(activity[keep] <= 0):
            raise InputError(
                f"PatientData[{organ!r}].activity_mbq: non-positive value(s) "
                f"{activity[keep][activity[keep] <= 0].tolist()}; expected activities > 0 MBq "
                "(the noise model is proportional)"
            )
        if self.volume_ml is not None and not (
            math.isfinite(self.volume_ml) and self.volume_ml > 0
        ):
            raise InputError(
                f"PatientData[{organ!r}].volume_ml: {self.volume_ml!r}; expected a volume > 0 mL"
            )
        if self.recovery is not None and not (0.0 < self.recovery <= 1.0):
            raise InputError(
                f"PatientData[{organ!r}].recovery: {self.recovery!r}; expected a recovery "
                "coefficient in (0, 1]"
            )
        if self.recovery_sd is not None:
            try:
                recovery_sd = float(self.recovery_sd)
            except (TypeError, ValueError):
                recovery_sd = math.nan
            if not (math.isfinite(recovery_sd) and recovery_sd >= 0):
                raise InputError(
                    f"PatientData[{organ!r}].recovery_sd: {self.recovery_sd!r}; expected a "
                    "log-SD >= 0 (e.g. 0.01-0.1) or None"
                )
            if recovery_sd > 0.3:
                warn_implausible(f"PatientData[{organ!r}].recovery_sd", recovery_sd,
                                 "<= 0.3 (a recovery uncertain by more than ~30 %)")
        return OrganSeries(
            times_h=times[keep],
            activity_mbq=activity[keep],
            volume_ml=None if self.volume_ml is None else float(self.volume_ml),
            recovery=None if self.recovery is None else float(self.recovery),
            sessions=tuple(s for s, k in zip(sessions, keep, strict=True) if k),
            recovery_sd=None if self.recovery_sd is None else float(self.recovery_sd),
        )


@dataclass(frozen=True)
class BloodSamples:
    """Blood samples of one patient: activity concentration (MBq/mL) at ``times_h`` (h after the
    first administration), for blood-based red-marrow dosimetry (:mod:`tdt.dosimetry._marrow`).

    ``sample``: ``"blood"`` (whole blood) or ``"plasma"`` (converted with the haematocrit,
    [A_blood] = (1 − Hct) [A_plasma], for ligands that do not enter red cells). ``hematocrit``:
    volume fraction of red cells in [0, 1) (typical adult 0.35–0.5).
    """

    times_h: Any
    concentration_mbq_per_ml: Any
    hematocrit: float = 0.4
    sample: str = "blood"

    def __post_init__(self):
        times = _as_1d_float(self.times_h, "blood", "times_h")
        conc = _as_1d_float(self.concentration_mbq_per_ml, "blood", "concentration_mbq_per_ml")
        if times.size < 2 or conc.shape != times.shape:
            raise InputError(f"BloodSamples: {times.size} times_h and {conc.size} concentrations; "
                             "expected at least two samples, one concentration per time")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0) or times[0] < 0:
            raise InputError(f"BloodSamples.times_h: {times.tolist()}; expected increasing "
                             "finite times >= 0 h")
        if not np.all(np.isfinite(conc)) or np.any(conc < 0):
            raise InputError(f"BloodSamples.concentration_mbq_per_ml: {conc.tolist()}; expected "
                             "finite concentrations >= 0 MBq/mL")
        if not (math.isfinite(self.hematocrit) and 0.0 <= self.hematocrit < 1.0):
            raise InputError(f"BloodSamples.hematocrit: {self.hematocrit!r}; expected a fraction "
                             "in [0, 1), e.g. 0.4")
        if self.sample not in ("blood", "plasma"):
            raise InputError(f"BloodSamples.sample: {self.sample!r}; expected 'blood' or 'plasma'")
        if np.max(conc) > 10.0:
            warn_implausible("BloodSamples.concentration_mbq_per_ml", float(np.max(conc)),
                             "< 10 MBq/mL (7.4 GBq in ~5 L of blood is ~1.5 MBq/mL at most)")
        object.__setattr__(self, "times_h", times)
        object.__setattr__(self, "concentration_mbq_per_ml", conc)

    def blood_concentration_mbq_per_ml(self) -> np.ndarray:
        """Whole-blood activity concentration (MBq/mL) at ``times_h``."""
        factor = 1.0 if self.sample == "blood" else 1.0 - self.hematocrit
        return factor * self.concentration_mbq_per_ml

    def blood_tia_mbq_h_per_ml(self, nuclide: str = "Lu-177") -> float:
        """Whole-blood TIA concentration (MBq·h/mL): trapezoid + fitted tail."""
        return float(blood_tia_from_samples(self.times_h, self.blood_concentration_mbq_per_ml(),
                                            nuclide))


@dataclass(frozen=True)
class PatientData:
    """Image-derived time–activity data of one patient (validated on construction).

    Parameters
    ----------
    organs: organ / lesion name (canonical snake_case, e.g. ``"kidneys"``, ``"lesion_1"``) →
        :class:`OrganSeries` or a mapping with its fields.
    calibration_sd: relative SD of the camera calibration factor (lognormal prior of
        ``log c``; 0.03 = 3 %, the activity-meter tolerance of reference/README.md).
    administered_activity_mbq: activity of the (single) administration at ``injection_time_h``
        (used when ``schedule`` is ``None``).
    ligand_nmol: ligand amount of that administration, nmol (nonlinear PBPK models need it).
    schedule: a :class:`tdt.pbpk.Schedule` (overrides the single administration).
    injection_time_h: time of the first administration, h (no measurement may precede it).
    fwhm_mm: system spatial resolution (FWHM, mm) for volume-based recovery coefficients.
    nuclide: radionuclide name, e.g. ``"Lu-177"``.
    patient_id: an opaque, non-identifying label (never PHI).
    blood: optional :class:`BloodSamples` (blood-based red-marrow dosimetry).
    marrow_l2_l4: optional :class:`OrganSeries` of an L2–L4 VOI (``recovery``: its partial-volume
        recovery), not fitted: ``Posterior.predict_doses(marrow="image_l2l4")``.
    """

    organs: Mapping[str, Any]
    calibration_sd: float = 0.03
    administered_activity_mbq: float | None = 7400.0
    ligand_nmol: float = 100.0
    schedule: Any = None
    injection_time_h: float = 0.0
    fwhm_mm: float = 12.0
    nuclide: str = "Lu-177"
    patient_id: str = "patient"
    blood: BloodSamples | None = None
    marrow_l2_l4: OrganSeries | None = None
    _sessions: tuple[str, ...] = field(init=False, repr=False, default=())

    def __post_init__(self):
        if not isinstance(self.organs, Mapping) or len(self.organs) == 0:
            raise InputError(
                f"PatientData.organs: {type(self.organs).__name__} with no organs; expected a "
                "dict organ name -> OrganSeries with at least one organ"
            )
        if not (math.isfinite(self.calibration_sd) and 0.0 <= self.calibration_sd < 1.0):
            raise InputError(
                f"PatientData.calibration_sd: {self.calibration_sd!r}; expected a relative SD "
                "in [0, 1), e.g. 0.03"
            )
        if self.schedule is None and not (
            self.administered_activity_mbq is not None
            and math.isfinite(self.administered_activity_mbq)
            and self.administered_activity_mbq > 0
        ):
            raise InputError(
                f"PatientData.administered_activity_mbq: {self.administered_activity_mbq!r}; "
                "expected an activity > 0 MBq (or give a schedule)"
            )
        if not (math.isfinite(self.fwhm_mm) and self.fwhm_mm > 0):
            raise InputError(f"PatientData.fwhm_mm: {self.fwhm_mm!r}; expected a FWHM > 0 mm")
        if self.blood is not None and not isinstance(self.blood, BloodSamples):
            raise InputError(f"PatientData.blood: {type(self.blood).__name__}; expected "
                             "BloodSamples(times_h, concentration_mbq_per_ml, hematocrit)")
        if isinstance(self.marrow_l2_l4, Mapping):
            object.__setattr__(self, "marrow_l2_l4", OrganSeries(**self.marrow_l2_l4))
        if self.marrow_l2_l4 is not None and not isinstance(self.marrow_l2_l4, OrganSeries):
            raise InputError(f"PatientData.marrow_l2_l4: {type(self.marrow_l2_l4).__name__}; "
                             "expected an OrganSeries of the L2-L4 VOI")
        if self.marrow_l2_l4 is not None:
            object.__setattr__(self, "marrow_l2_l4", self.marrow_l2_l4.validated(
                "marrow_l2_l4", self.injection_time_h))
        if not math.isfinite(self.injection_time_h):
            raise InputError(
                f"PatientData.injection_time_h: {self.injection_time_h!r}; expected finite hours"
            )
        cleaned = {}
        for name, series in self.organs.items():
            if not isinstance(name, str) or not name:
                raise InputError(f"PatientData.organs: key {name!r}; expected an organ name")
            if series is None:
                raise InputError(
                    f"PatientData[{name!r}]: no data; expected an OrganSeries with times_h and "
                    "activity_mbq"
                )
            if isinstance(series, Mapping):
                try:
                    series = OrganSeries(**series)
                except TypeError as exc:
                    raise InputError(f"PatientData[{name!r}]: {exc}") from None
            if not isinstance(series, OrganSeries):
                raise InputError(
                    f"PatientData[{name!r}]: {type(series).__name__}; expected an OrganSeries "
                    "or a dict with times_h and activity_mbq"
                )
            cleaned[name] = series.validated(name, self.injection_time_h)
            if self.schedule is None:  # one administration: unit / time-scale / rise checks
                check_tac_plausibility(cleaned[name].times_h - self.injection_time_h,
                                       cleaned[name].activity_mbq, self.nuclide,
                                       administered_mbq=self.administered_activity_mbq,
                                       name=f"PatientData[{name!r}]")
        object.__setattr__(self, "organs", cleaned)
        sessions = sorted({s for series in cleaned.values() for s in series.sessions})
        object.__setattr__(self, "_sessions", tuple(sessions))

    # ------------------------------------------------------------------ views
    @property
    def organ_names(self) -> tuple[str, ...]:
        """Organ / lesion names in insertion order."""
        return tuple(self.organs)

    @property
    def sessions(self) -> tuple[str, ...]:
        """Sorted session labels (one calibration factor each)."""
        return self._sessions

    @property
    def times_h(self) -> np.ndarray:
        """Sorted union of all imaging times, h."""
        return np.unique(np.concatenate([s.times_h for s in self.organs.values()]))

    def flat(self) -> dict[str, np.ndarray]:
        """Observations flattened organ-major: ``organ_index``, ``time_index`` (into
        :attr:`times_h`), ``session_index`` (into :attr:`sessions`), ``activity_mbq``."""
        union = self.times_h
        organ_idx, time_idx, session_idx, values = [], [], [], []
        for i, series in enumerate(self.organs.values()):
            organ_idx.append(np.full(series.times_h.size, i))
            time_idx.append(np.searchsorted(union, series.times_h))
            session_idx.append([self._sessions.index(s) for s in series.sessions])
            values.append(series.activity_mbq)
        return {
            "organ_index": np.concatenate(organ_idx).astype(int),
            "time_index": np.concatenate(time_idx).astype(int),
            "session_index": np.concatenate(session_idx).astype(int),
            "activity_mbq": np.concatenate(values),
        }

    def l2_l4_tia_mbq_h(self, nuclide: str | None = None) -> float:
        """TIA (MBq·h) of the L2–L4 VOI (times from the injection, recovery-corrected)."""
        s = self.marrow_l2_l4
        if s is None:
            raise InputError("PatientData.marrow_l2_l4: no L2-L4 VOI series given")
        return float(l2_l4_voi_tia(s.times_h - self.injection_time_h, s.activity_mbq,
                                   1.0 if s.recovery is None else s.recovery,
                                   nuclide or self.nuclide))

    @property
    def n_observations(self) -> int:
        return int(sum(s.times_h.size for s in self.organs.values()))

    def resolve_schedule(self):
        """The administration schedule: ``schedule`` if given, else a single administration of
        ``administered_activity_mbq`` at ``injection_time_h`` (needs :mod:`tdt.pbpk`)."""
        if self.schedule is not None:
            return self.schedule
        return Schedule(
            [Administration(self.injection_time_h, self.administered_activity_mbq,
                            self.ligand_nmol)]
        )

    def subset(self, organs: Sequence[str]) -> PatientData:
        """A copy restricted to ``organs``."""
        missing = [o for o in organs if o not in self.organs]
        if missing:
            raise InputError(
                f"PatientData.subset: organs {missing} not in the data; have {self.organ_names}"
            )
        return self._replace(organs={o: self.organs[o] for o in organs})

    def at_times(self, times_h: Sequence[float]) -> PatientData:
        """A copy keeping only the measurements at ``times_h`` (e.g. one time point for
        single-time-point dosimetry)."""
        keep = np.asarray(times_h, dtype=float)
        organs = {}
        for name, s in self.organs.items():
            mask = np.isin(s.times_h, keep)
            organs[name] = OrganSeries(
                s.times_h[mask], s.activity_mbq[mask], s.volume_ml, s.recovery,
                tuple(np.asarray(s.sessions)[mask]), s.recovery_sd,
            )
        return self._replace(organs=organs)

    def _replace(self, **changes) -> PatientData:
        kwargs = {
            "organs": self.organs, "calibration_sd": self.calibration_sd,
            "administered_activity_mbq": self.administered_activity_mbq,
            "ligand_nmol": self.ligand_nmol, "schedule": self.schedule,
            "injection_time_h": self.injection_time_h, "fwhm_mm": self.fwhm_mm,
            "nuclide": self.nuclide, "patient_id": self.patient_id, "blood": self.blood,
            "marrow_l2_l4": self.marrow_l2_l4,
        }
        kwargs.update(changes)
        return PatientData(**kwargs)
