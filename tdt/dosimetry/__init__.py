"""MIRD dosimetry: organ S-values (OLINDA-style adults, OpenDose ICRP 110), mass scaling,
remainder of body, lesion spheres; red marrow from blood or L2-L4 images and the urinary bladder
with voiding (:mod:`tdt.dosimetry._marrow`). Units: TIA MBq·h, S Gy/(MBq·h), dose Gy, mass g, volume mL.

Public API: :func:`organ_doses`, :func:`svalue`, :func:`svalue_table`, :func:`reference_mass_g`,
:func:`sphere_dose`, :func:`sphere_svalue`, :func:`scaled_self_svalue`; voxel dosimetry
(:mod:`tdt.dosimetry._kernel`, :mod:`tdt.dosimetry._voxel`): :func:`load_kernel`,
:func:`kernel_dose`, :func:`local_deposition_dose`, :func:`voxel_dose`, :func:`dvh`.
"""

from tdt.dosimetry._effective import EffectiveDose, effective_dose
from tdt.dosimetry._kernel import (
    KERNEL_DENSITY_G_PER_ML,
    KernelConvolver,
    VoxelKernel,
    convolve,
    direct_convolve,
    load_kernel,
    resample_kernel,
)
from tdt.dosimetry._marrow import (
    L2_L4_MARROW_FRACTION,
    L2_L4_MARROW_FRACTION_RANGE,
    RMBLR_ANTIBODY,
    RMBLR_PEPTIDE,
    RMBLR_PEPTIDE_SD_LOG,
    RMBLR_RANGE,
    VOID_INTERVAL_H,
    MarrowDose,
    bladder_contents_tia,
    blood_tia_from_plasma,
    blood_tia_from_samples,
    l2_l4_voi_tia,
    marrow_tia_blood_based,
    marrow_tia_image_based,
    red_marrow_dose,
    whole_body_tia_monoexponential,
)
from tdt.dosimetry._names import (
    PHANTOMS,
    REMAINDER_TISSUES,
    is_lesion,
    sphere_organ,
)
from tdt.dosimetry._organs import organ_doses, reference_mass_g, scaled_self_svalue
from tdt.dosimetry._spheres import (
    SOFT_TISSUE_DENSITY_G_PER_ML,
    electron_range_mm,
    sphere_absorbed_fraction,
    sphere_dose,
    sphere_svalue,
)
from tdt.dosimetry._svalues import TABLE_NUCLIDES, SValueTable, svalue, svalue_table
from tdt.dosimetry._voxel import (
    DEFAULT_HU_DENSITY,
    Dvh,
    density_correct,
    density_from_hu,
    dvh,
    dvh_table,
    kernel_dose,
    local_deposition_dose,
    tia_map_from_reference,
    tia_map_voxelwise,
    voxel_dose,
)

__all__ = [
    "EffectiveDose", "effective_dose",
    "PHANTOMS", "is_lesion", "REMAINDER_TISSUES", "TABLE_NUCLIDES", "SValueTable", "electron_range_mm",
    "organ_doses", "reference_mass_g", "scaled_self_svalue", "sphere_absorbed_fraction",
    "sphere_dose", "sphere_svalue", "svalue", "svalue_table",
    "DEFAULT_HU_DENSITY", "Dvh", "KernelConvolver", "VoxelKernel", "convolve", "density_correct",
    "density_from_hu", "direct_convolve", "dvh", "dvh_table", "kernel_dose", "load_kernel",
    "local_deposition_dose", "resample_kernel", "tia_map_from_reference", "tia_map_voxelwise",
    "voxel_dose", "L2_L4_MARROW_FRACTION", "L2_L4_MARROW_FRACTION_RANGE", "l2_l4_voi_tia",
    "RMBLR_PEPTIDE", "RMBLR_RANGE",
    "RMBLR_ANTIBODY", "RMBLR_PEPTIDE_SD_LOG", "MarrowDose",
    "bladder_contents_tia", "blood_tia_from_plasma", "blood_tia_from_samples",
    "marrow_tia_blood_based", "marrow_tia_image_based", "red_marrow_dose",
    "whole_body_tia_monoexponential",
    "KERNEL_DENSITY_G_PER_ML", "SOFT_TISSUE_DENSITY_G_PER_ML", "VOID_INTERVAL_H", "sphere_organ",
]
