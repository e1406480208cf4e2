"""Voxel dosimetry of a loaded study: TIA map → dose map → DVHs → RTDOSE.

``voxel_dosimetry(study)`` chains :mod:`tdt.dosimetry._voxel`:

1. TIA map (MBq·h), ``tia_method``:
   - ``"reference"`` (default): each VOI's TAC (sum over the VOI) is fitted with
     ``tdt.kinetics.fit_tac`` and its TIA distributed over the VOI in proportion to a reference
     image (the time point nearest ``reference_time_h``); voxels outside every VOI use the
     reference image times the TIA/A ratio of the whole field of view (fitted the same way);
   - ``"voxelwise"``: every voxel inside the body (activity > 0 at all time points) fitted with
     the batched ``tdt.kinetics.fit_tacs``.
2. Dose (Gy), ``dose_method``: ``"kernel"`` (voxel S-value kernel, FFT convolution, then CT
   density correction when the study has a CT and ``density_correction``) or ``"local"``.
3. DVH statistics per structure; :meth:`VoxelDosimetry.write_rtdose` writes the dose on the SPECT
   grid in the study's frame of reference, so a viewer overlays it on the CT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tdt.dosimetry import (
    KERNEL_DENSITY_G_PER_ML,
    density_correct,
    density_from_hu,
    dvh_table,
    kernel_dose,
    local_deposition_dose,
    tia_map_from_reference,
    tia_map_voxelwise,
)
from tdt.errors import InputError
from tdt.imaging._rtdose import write_rtdose
from tdt.kinetics import fit_tac


@dataclass
class VoxelDosimetry:
    """Result of :func:`voxel_dosimetry` (maps ``[k, j, i]`` on ``geometry``)."""

    tia_mbq_h: np.ndarray
    dose_gy: np.ndarray
    geometry: object
    dvh: dict[str, dict[str, float]]
    voi_tia_mbq_h: dict[str, float] = field(default_factory=dict)
    method: str = ""
    patient_info: dict = field(default_factory=dict, repr=False)

    def write_rtdose(self, path: str | Path, seed_text: str = "tdt-voxel-dose") -> Path:
        """Write the dose map as RTDOSE (see :func:`tdt.imaging.write_rtdose`)."""
        return write_rtdose(path, self.dose_gy, self.geometry, patient=self.patient_info,
                            seed_text=seed_text, comment=f"tdt voxel dose ({self.method})")


def voxel_dosimetry(study, *, tia_method: str = "reference", dose_method: str = "kernel",
                    density_correction: bool = True, reference_time_h: float = 24.0,
                    model: str = "auto", voi_tia_mbq_h: dict | None = None,
                    dtype: str = "float64") -> VoxelDosimetry:
    """Absorbed-dose map of ``study`` (see module docstring). ``voi_tia_mbq_h`` overrides the
    fitted VOI TIAs of the reference method (e.g. posterior means from ``tdt.inference``)."""
    times = study.times_h
    stack = study.activity_stack()
    voxel_mm = study.geometry.spacing_mm
    voi_tia: dict[str, float] = {}
    if tia_method == "reference":
        ref_index = int(np.argmin(np.abs(times - reference_time_h)))
        reference = stack[ref_index]
        for name, mask in study.masks.items():
            if voi_tia_mbq_h is not None and name in voi_tia_mbq_h:
                voi_tia[name] = float(voi_tia_mbq_h[name])
            else:
                voi_tia[name] = float(fit_tac(times, stack[:, mask].sum(axis=1), model=model,
                                              nuclide=study.nuclide).tia_mbq_h)
        total = stack.reshape(len(times), -1).sum(axis=1)
        total_tia = float(fit_tac(times, total, model=model, nuclide=study.nuclide).tia_mbq_h)
        tia = tia_map_from_reference(reference, study.masks, voi_tia,
                                     background_tia_per_mbq_h=total_tia / float(total[ref_index]))
    elif tia_method == "voxelwise":
        mask = np.all(stack > 0, axis=0)
        tia = tia_map_voxelwise(times, stack, mask=mask, model=model, nuclide=study.nuclide)
    else:
        raise InputError(f"voxel_dosimetry: tia_method={tia_method!r}; expected 'reference' or "
                         "'voxelwise'")
    hu = study.ct_on_grid() if study.ct is not None else None
    if dose_method == "kernel":
        dose = kernel_dose(tia, voxel_mm, nuclide=study.nuclide, dtype=dtype)
        if density_correction and hu is not None:
            dose = density_correct(dose, density_from_hu(hu))
    elif dose_method == "local":
        density = (density_from_hu(hu) if (density_correction and hu is not None)
                   else KERNEL_DENSITY_G_PER_ML)
        dose = local_deposition_dose(tia, voxel_mm, study.nuclide, density)
    else:
        raise InputError(f"voxel_dosimetry: dose_method={dose_method!r}; expected 'kernel' or "
                         "'local'")
    table = dvh_table(dose, study.masks, voxel_mm) if study.masks else {}
    return VoxelDosimetry(tia_mbq_h=tia, dose_gy=dose, geometry=study.geometry, dvh=table,
                          voi_tia_mbq_h=voi_tia, method=f"{tia_method}+{dose_method}",
                          patient_info=dict(study.patient_info))
