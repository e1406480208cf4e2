"""The data types of a loaded DICOM study: :class:`TimePoint` and :class:`Study`.

Private module; the public names are re-exported by :mod:`tdt.imaging._study` and
:mod:`tdt.imaging`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tdt.errors import PlausibilityWarning
from tdt.imaging._calibration import CameraCalibration
from tdt.imaging._ct import CtImage
from tdt.imaging._geometry import Geometry, resample
from tdt.imaging._rtstruct import find_structure

#: attributes copied into ``Study.patient_info`` (after de-identification) for the writers
PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyID", "StudyDate", "StudyTime", "AccessionNumber",
                    "ReferringPhysicianName", "FrameOfReferenceUID")
SIDECAR_SUFFIXES = {".json", ".yaml", ".yml", ".md", ".txt"}
CALIBRATION_FILE = "calibration.json"


@dataclass
class TimePoint:
    """One quantitative SPECT acquisition.

    ``activity_mbq``: activity per voxel (MBq) at the acquisition start, ``[k, j, i]`` on the
    study grid; ``time_h``: acquisition start − injection (h).
    """

    time_h: float
    activity_mbq: np.ndarray
    acquisition_datetime: _dt.datetime
    units: str
    decay_correction: str
    duration_s: float | None
    series_instance_uid: str
    files: list[Path] = field(default_factory=list)
    #: MBq per reconstructed count (CNTS images; None for BQML), for Poisson error estimates
    mbq_per_count: float | None = None
    #: voxel size of the image as stored (x, y, z mm), before resampling to the study grid
    spacing_mm: tuple[float, float, float] | None = None
    #: "NM" (SPECT) or "PT" (PET)
    modality: str = "NM"
    #: PET: SUVbw = concentration (MBq/mL) x this (g/MBq); None without weight or injected dose
    suv_bw_g_per_mbq: float | None = None

    @property
    def total_activity_mbq(self) -> float:
        return float(self.activity_mbq.sum())

    def __repr__(self) -> str:  # no file paths (they may name the patient), no voxel arrays
        return (f"TimePoint(t={self.time_h:.3f} h, total {self.total_activity_mbq:.2f} MBq, "
                f"{self.units}, {len(self.files)} file(s))")


@dataclass
class Study:
    """A quantitative SPECT/CT study of one administration."""

    time_points: list[TimePoint]
    geometry: Geometry
    masks: dict[str, np.ndarray]
    nuclide: str
    injection_datetime: _dt.datetime
    injected_activity_mbq: float | None
    ct: CtImage | None = None
    calibration: CameraCalibration | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    deidentified: bool = True
    patient_info: dict = field(default_factory=dict, repr=False)
    #: every PlausibilityWarning raised while loading (implausible values, skipped files)
    warnings: list[PlausibilityWarning] = field(default_factory=list)

    @property
    def times_h(self) -> np.ndarray:
        """Acquisition times since injection (h), increasing."""
        return np.array([tp.time_h for tp in self.time_points])

    @property
    def structure_names(self) -> list[str]:
        return list(self.masks)

    def activity_stack(self) -> np.ndarray:
        """Activity per voxel (MBq), shape ``(n_times, *geometry.shape)``."""
        return np.stack([tp.activity_mbq for tp in self.time_points])

    def ct_on_grid(self, order: int = 1) -> np.ndarray | None:
        """The CT (HU) resampled onto the SPECT grid (trilinear by default; -1000 HU outside)."""
        if self.ct is None:
            return None
        return resample(self.ct.hu, self.ct.geometry, self.geometry, order=order, cval=-1000.0)

    def mask(self, name: str) -> np.ndarray:
        """The boolean mask of structure ``name`` (case-insensitive); InputError if absent."""
        return self.masks[find_structure(self.masks, name)]

    def __repr__(self) -> str:  # no file paths (they may name the patient), no voxel arrays
        return self.summary()

    def summary(self) -> str:
        lines = [f"Study: {len(self.time_points)} time points, grid {self.geometry.shape} "
                 f"@ {tuple(round(s, 3) for s in self.geometry.spacing_mm)} mm, nuclide "
                 f"{self.nuclide}, structures {', '.join(self.masks) or '-'}"]
        for tp in self.time_points:
            lines.append(f"  t = {tp.time_h:8.3f} h  total {tp.total_activity_mbq:10.2f} MBq  "
                         f"({'PET, ' if tp.modality == 'PT' else ''}{tp.units}, decay correction "
                         f"{tp.decay_correction})")
        for name, reason in self.skipped:
            lines.append(f"  skipped {name}: {reason}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)
