"""The patient record a twin is built from, and the data of one treatment cycle.

No PHI: ``patient_id`` is an opaque label chosen by the user; dates are calendar dates of
calibration and imaging (needed for the "calibration in date" check), nothing else.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tdt.errors import InputError
from tdt.inference import BloodSamples, OrganSeries
from tdt.radiobiology import kidney_bed_limit_gy

#: Risk factors that lower the kidney BED limit from 40 Gy to 28 Gy (Bodei et al., EJNMMI
#: 2008;35:1847: hypertension, diabetes; other nephrotoxic conditions are usually added).
KIDNEY_RISK_FACTORS = ("hypertension", "diabetes", "chronic_kidney_disease", "prior_nephrotoxic")


@dataclass(frozen=True)
class PatientRecord:
    """What the twin knows about the patient before any therapy imaging.

    Attributes
    ----------
    patient_id: opaque, non-identifying label.
    organ_masses_g: organ -> mass (g) from CT where available (others: phantom reference).
    lesions: lesion name (``lesion_1``...) -> volume (mL).
    risk_factors: e.g. ``("hypertension",)``; any of :data:`KIDNEY_RISK_FACTORS` sets the kidney
        BED limit to 28 Gy, else 40 Gy.
    phantom: reference phantom for S-values (``adult-male`` / ``adult-female``).
    nuclide: e.g. ``Lu-177``.
    radiopharmaceutical: e.g. ``177Lu-PSMA-617`` (default), ``177Lu-DOTATATE``: chooses the
        receptor PBPK of ``Twin(record)`` (the registered model of that radiopharmaceutical).
    """

    patient_id: str = "patient"
    organ_masses_g: Mapping[str, float] = field(default_factory=dict)
    lesions: Mapping[str, float] = field(default_factory=dict)
    risk_factors: tuple[str, ...] = ()
    phantom: str = "adult-male"
    nuclide: str = "Lu-177"
    radiopharmaceutical: str = "177Lu-PSMA-617"

    def __post_init__(self):
        for organ, mass in self.organ_masses_g.items():
            if not (isinstance(mass, (int, float)) and math.isfinite(mass) and mass > 0):
                raise InputError(f"organ_masses_g[{organ!r}]: got {mass!r}; expected a mass > 0 g")
        for lesion, volume in self.lesions.items():
            if not lesion.startswith("lesion_"):
                raise InputError(f"lesions: got name {lesion!r}; expected 'lesion_1', 'lesion_2', ...")
            if not (isinstance(volume, (int, float)) and math.isfinite(volume) and volume > 0):
                raise InputError(f"lesions[{lesion!r}]: got {volume!r}; expected a volume > 0 mL")
        object.__setattr__(self, "organ_masses_g", dict(self.organ_masses_g))
        object.__setattr__(self, "lesions", dict(self.lesions))
        object.__setattr__(self, "risk_factors", tuple(self.risk_factors))

    @property
    def kidney_bed_limit_gy(self) -> float:
        """28 Gy with a kidney risk factor, 40 Gy without (Bodei et al. 2008; tdt.radiobiology)."""
        return kidney_bed_limit_gy(bool(set(self.risk_factors) & set(KIDNEY_RISK_FACTORS)))

    def to_dict(self) -> dict:
        return {"patient_id": self.patient_id, "organ_masses_g": dict(self.organ_masses_g),
                "lesions": dict(self.lesions), "risk_factors": list(self.risk_factors),
                "phantom": self.phantom, "nuclide": self.nuclide,
                "radiopharmaceutical": self.radiopharmaceutical}

    @classmethod
    def from_dict(cls, data: Mapping) -> PatientRecord:
        # files before 2026-12-04 have no radiopharmaceutical: all were 177Lu-PSMA-617 twins
        return cls(data["patient_id"], data["organ_masses_g"], data["lesions"],
                   tuple(data["risk_factors"]), data["phantom"], data["nuclide"],
                   data.get("radiopharmaceutical", "177Lu-PSMA-617"))


@dataclass(frozen=True)
class Calibration:
    """Camera calibration factor used for the cycle's quantitative images.

    ``factor`` (counts/s per MBq or any unit — only presence and date are checked here),
    ``measured_on`` (date of the calibration), ``valid_days`` (how long the site's QA programme
    accepts it).
    """

    factor: float
    measured_on: _dt.date
    valid_days: int = 365

    def valid_on(self, day: _dt.date) -> bool:
        return self.measured_on <= day <= self.measured_on + _dt.timedelta(days=self.valid_days)

    def to_dict(self) -> dict:
        return {"factor": self.factor, "measured_on": self.measured_on.isoformat(),
                "valid_days": self.valid_days}

    @classmethod
    def from_dict(cls, data: Mapping | None) -> Calibration | None:
        if data is None:
            return None
        return cls(float(data["factor"]), _dt.date.fromisoformat(data["measured_on"]),
                   int(data["valid_days"]))


@dataclass(frozen=True)
class CycleData:
    """Post-cycle quantitative imaging of one cycle.

    Attributes
    ----------
    activity_mbq: administered activity of this cycle (MBq).
    measurements: VOI -> (times_h, activity_mbq); times in h after this cycle's administration.
    calibration: the camera calibration used (``None``: missing, flagged by QA).
    imaged_on: date of the first imaging session (for the calibration date check).
    relative_sd: relative measurement error (lognormal sd) of each VOI activity, default 0.1
        (SPECT quantification with calibration, partial-volume and noise; SNMMI challenge).
    blood: optional :class:`tdt.inference.BloodSamples` of this cycle (times in h after this
        cycle's administration): the twin then takes the red-marrow self-dose from blood (EANM
        blood-based method, :mod:`tdt.twin._plan_marrow`).
    marrow_l2_l4: optional :class:`tdt.inference.OrganSeries` of an L2–L4 VOI (times after
        this cycle's administration, ``recovery`` its partial-volume recovery): without blood
        samples the marrow comes from it (EANM image-based method, TIA / L2–L4 fraction).
    """

    activity_mbq: float
    measurements: Mapping[str, tuple]
    calibration: Calibration | None = None
    imaged_on: _dt.date | None = None
    relative_sd: float = 0.1
    #: plausibility warnings recorded on the way in (e.g. ``str(w) for w in Study.warnings``);
    #: shown in the QA report
    input_warnings: tuple[str, ...] = ()
    blood: BloodSamples | None = None
    marrow_l2_l4: OrganSeries | None = None

    def __post_init__(self):
        if not (math.isfinite(self.activity_mbq) and self.activity_mbq > 0):
            raise InputError(f"activity_mbq: got {self.activity_mbq!r}; expected > 0 MBq")
        if not 0 < self.relative_sd < 1:
            raise InputError(f"relative_sd: got {self.relative_sd!r}; expected 0 < sd < 1")
        if not self.measurements:
            raise InputError("measurements: expected at least one VOI time-activity curve")
        clean = {}
        for organ, pair in self.measurements.items():
            try:
                times, values = pair
            except (TypeError, ValueError):
                raise InputError(
                    f"measurements[{organ!r}]: expected a pair (times_h, activity_mbq)") from None
            t = np.asarray(times, dtype=float)
            a = np.asarray(values, dtype=float)
            if t.ndim != 1 or t.shape != a.shape or t.size == 0:
                raise InputError(f"measurements[{organ!r}]: times {t.shape} and activities "
                                 f"{a.shape} must be 1-D of equal, non-zero length")
            if not (np.all(np.isfinite(t)) and np.all(t > 0) and np.all(np.diff(t) > 0)):
                raise InputError(f"measurements[{organ!r}].times_h: got {t.tolist()}; expected "
                                 "finite, strictly increasing times > 0 h")
            if not (np.all(np.isfinite(a)) and np.all(a > 0)):
                raise InputError(f"measurements[{organ!r}].activity_mbq: got {a.tolist()}; "
                                 "expected finite activities > 0 MBq")
            clean[organ] = (t, a)
        if self.blood is not None and not isinstance(self.blood, BloodSamples):
            raise InputError(f"blood: {type(self.blood).__name__}; expected "
                             "tdt.inference.BloodSamples (MBq/mL over time, haematocrit)")
        if self.marrow_l2_l4 is not None:
            if not isinstance(self.marrow_l2_l4, OrganSeries):
                raise InputError(f"marrow_l2_l4: {type(self.marrow_l2_l4).__name__}; expected "
                                 "tdt.inference.OrganSeries (L2-L4 VOI activity, MBq, over time)")
            object.__setattr__(self, "marrow_l2_l4", self.marrow_l2_l4.validated("marrow_l2_l4"))
        object.__setattr__(self, "measurements", clean)
        object.__setattr__(self, "input_warnings", tuple(str(w) for w in self.input_warnings))

    @property
    def organs(self) -> tuple[str, ...]:
        return tuple(self.measurements)

    def to_dict(self) -> dict:
        return {
            "activity_mbq": float(self.activity_mbq),
            "measurements": {o: [t.tolist(), a.tolist()] for o, (t, a) in self.measurements.items()},
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "imaged_on": None if self.imaged_on is None else self.imaged_on.isoformat(),
            "relative_sd": self.relative_sd,
        } | ({"input_warnings": list(self.input_warnings)} if self.input_warnings else {}) | (
            {} if self.blood is None else {"blood": {
                "times_h": self.blood.times_h.tolist(),
                "concentration_mbq_per_ml": self.blood.concentration_mbq_per_ml.tolist(),
                "hematocrit": self.blood.hematocrit, "sample": self.blood.sample}}) | (
            {} if self.marrow_l2_l4 is None else {"marrow_l2_l4": {
                "times_h": self.marrow_l2_l4.times_h.tolist(),
                "activity_mbq": self.marrow_l2_l4.activity_mbq.tolist(),
                "recovery": self.marrow_l2_l4.recovery,
                "recovery_sd": self.marrow_l2_l4.recovery_sd}})

    @classmethod
    def from_dict(cls, data: Mapping) -> CycleData:
        return cls(
            float(data["activity_mbq"]),
            {o: (np.asarray(t), np.asarray(a)) for o, (t, a) in data["measurements"].items()},
            Calibration.from_dict(data.get("calibration")),
            None if data.get("imaged_on") is None else _dt.date.fromisoformat(data["imaged_on"]),
            float(data.get("relative_sd", 0.1)),
            tuple(data.get("input_warnings", ())),
            None if data.get("blood") is None else BloodSamples(**data["blood"]),
            None if data.get("marrow_l2_l4") is None else OrganSeries(**data["marrow_l2_l4"]),
        )

    def sha256(self) -> str:
        """Hash of the canonical JSON form of the data (for QA and the audit log)."""
        return canonical_hash(self.to_dict())


def canonical_hash(obj) -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys, no spaces, repr-exact floats)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
