"""Quantitative units of emission images: counts or Bq/mL → MBq per voxel, decay-correction state.

Conventions (documented in docs/imaging.md):

- ``Units`` (0054,1001) ``BQML``: pixel values are activity concentrations (Bq/mL). Activity per
  voxel (MBq) = value · voxel volume (mL) · 1e-6.
- ``Units`` ``CNTS`` (or absent on an NM image): reconstructed counts. Activity per voxel (MBq) =
  counts / (acquisition duration (s) · camera calibration factor (cps/MBq)). The calibration
  factor is a property of camera, collimator, energy window and reconstruction, measured on a
  given date (:class:`CameraCalibration`).
- Anything else is refused (:class:`~tdt.errors.UnitError` naming the Units attribute).

Decay-correction state (``DecayCorrection`` (0054,1102)) determines what an activity value means:
``NONE`` — the mean over the acquisition [t₀, t₀+T]; tdt converts it to the activity at the
acquisition start t₀ with A(t₀) = Ā · λT / (1 − e^{−λT}) (exact for physical decay during the
scan). ``START`` — activity at t₀ already. ``ADMIN`` — decay-corrected to the administration time
t_inj; tdt undoes it: A(t₀) = A_admin · e^{−λ (t₀ − t_inj)}. Every time point of a study is
therefore the activity present at the acquisition start.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from dataclasses import dataclass

import numpy as np

from tdt.errors import InputError, UnitError
from tdt.physics import nuclide as _nuclide
from tdt.units import SECONDS_PER_HOUR, bq_to_mbq

#: Units values understood by tdt (DICOM PS3.3 C.8.9.1.1.3 defined terms)
KNOWN_UNITS = ("BQML", "CNTS")
#: DecayCorrection values (DICOM PS3.3 C.8.9.1.1.7 defined terms)
DECAY_CORRECTIONS = ("NONE", "START", "ADMIN")


@dataclass(frozen=True)
class CameraCalibration:
    """SPECT calibration: reconstructed counts per second per MBq in the field of view.

    Attributes
    ----------
    cps_per_mbq: calibration factor (counts/s per MBq), > 0.
    date: date the factor was measured.
    nuclide: radionuclide it was measured with (canonical name, e.g. ``"Lu-177"``).
    max_age_days: a factor older than this at the acquisition date triggers a warning.
    """

    cps_per_mbq: float
    date: _dt.date
    nuclide: str = "Lu-177"
    max_age_days: float = 365.0

    def __post_init__(self):
        if not (isinstance(self.cps_per_mbq, (int, float)) and math.isfinite(self.cps_per_mbq)
                and self.cps_per_mbq > 0):
            raise InputError(
                f"CameraCalibration.cps_per_mbq: got {self.cps_per_mbq!r}, expected a finite "
                "positive calibration factor in counts/s per MBq"
            )
        if isinstance(self.date, str):
            object.__setattr__(self, "date", _dt.date.fromisoformat(self.date))

    def check_valid_for(self, acquisition: _dt.datetime, nuclide: str) -> None:
        """Raise if measured after the acquisition or for another nuclide; warn when old."""
        if _nuclide(nuclide).name != _nuclide(self.nuclide).name:
            raise InputError(
                f"CameraCalibration.nuclide: {self.nuclide!r} does not match the image's "
                f"radionuclide {nuclide!r}"
            )
        age = (acquisition.date() - self.date).days
        if age < 0:
            raise InputError(
                f"CameraCalibration.date: {self.date.isoformat()} is after the acquisition "
                f"date {acquisition.date().isoformat()}; expected a calibration measured before"
            )
        if age > self.max_age_days:
            warnings.warn(
                f"camera calibration is {age} days old at acquisition (> {self.max_age_days})",
                stacklevel=2,
            )

    def to_dict(self) -> dict:
        return {"cps_per_mbq": self.cps_per_mbq, "date": self.date.isoformat(),
                "nuclide": self.nuclide, "max_age_days": self.max_age_days}


def activity_per_voxel_mbq(
    values: np.ndarray,
    units: str,
    voxel_volume_ml: float,
    duration_s: float | None = None,
    calibration: CameraCalibration | None = None,
    source: str = "image",
) -> np.ndarray:
    """Convert pixel values in ``units`` to activity per voxel (MBq) (see module docstring)."""
    units = (units or "").strip().upper()
    if units == "BQML":
        return bq_to_mbq(np.asarray(values, dtype=float) * voxel_volume_ml)
    if units == "CNTS":
        if calibration is None:
            raise UnitError(
                f"{source}: Units (0054,1001) is CNTS (counts); a CameraCalibration "
                "(cps/MBq, date) is required to convert counts to MBq"
            )
        if duration_s is None or not duration_s > 0:
            raise UnitError(
                f"{source}: acquisition duration {duration_s!r} s; expected > 0 to convert "
                "counts to MBq (ActualFrameDuration (0018,1242))"
            )
        return np.asarray(values, dtype=float) / (duration_s * calibration.cps_per_mbq)
    raise UnitError(
        f"{source}: Units (0054,1001) {units!r} is not supported; expected one of "
        f"{', '.join(KNOWN_UNITS)}"
    )


def activity_at_acquisition_start(
    activity_mbq: np.ndarray,
    decay_correction: str,
    nuclide: str,
    duration_s: float,
    hours_since_injection: float,
    source: str = "image",
) -> np.ndarray:
    """Undo the image's decay-correction state so that values are activity at acquisition start."""
    state = (decay_correction or "NONE").strip().upper()
    lam = _nuclide(nuclide).decay_constant_per_h
    if state == "NONE":
        lt = lam * duration_s / SECONDS_PER_HOUR
        factor = lt / -math.expm1(-lt) if lt > 0 else 1.0
        return activity_mbq * factor
    if state == "START":
        return activity_mbq
    if state == "ADMIN":
        return activity_mbq * math.exp(-lam * hours_since_injection)
    raise UnitError(
        f"{source}: DecayCorrection (0054,1102) {state!r} is not supported; expected one of "
        f"{', '.join(DECAY_CORRECTIONS)}"
    )

