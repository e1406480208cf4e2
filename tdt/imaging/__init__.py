"""Quantitative imaging I/O: DICOM SPECT/CT, PET, RTSTRUCT, SEG, RTDOSE; de-identification; VOI TACs;
synthetic phantom patients (the embedded default dataset).

Public API: :func:`load_study`, :func:`extract_tacs`, :func:`make_phantom_patient`,
:class:`Geometry`, :func:`resample`, :class:`CameraCalibration`, :class:`Deidentifier`,
:func:`deidentify`, readers (:func:`read_nm`, :func:`read_pet`, :func:`read_ct`, :func:`read_rtstruct`,
:func:`rasterise`, :func:`read_seg`, :func:`read_rtdose`) and writers (:func:`write_nm`, :func:`write_pet`,
:func:`write_ct`, :func:`write_rtstruct`, :func:`write_seg`, :func:`write_rtdose`).
Arrays are ``[slice, row, column]``; see :mod:`tdt.imaging._geometry` for the affine convention.
"""

from tdt.imaging._calibration import CameraCalibration, activity_per_voxel_mbq
from tdt.imaging._ct import CtImage, read_ct, write_ct
from tdt.imaging._deid import PROFILE, Deidentifier, deidentify
from tdt.imaging._dicom_io import read_dataset
from tdt.imaging._geometry import Geometry, check_same_frame_of_reference, resample
from tdt.imaging._nm import NmImage, read_nm, write_nm
from tdt.imaging._partial_volume import (
    geometric_transfer_matrix,
    gtm_correct,
    sphere_recovery,
    voi_recovery,
)
from tdt.imaging._pet import PetImage, read_pet
from tdt.imaging._pet_write import write_pet
from tdt.imaging._phantom import PhantomPatient, make_phantom_patient
from tdt.imaging._rtdose import DoseImage, read_rtdose, write_rtdose
from tdt.imaging._rtstruct import StructureSet, rasterise, read_rtstruct, write_rtstruct
from tdt.imaging._seg import Segmentation, read_seg, write_seg
from tdt.imaging._study import Study, TimePoint, load_study
from tdt.imaging._tacs import VoiTac, extract_tacs
from tdt.imaging._truth import load_truth, truth_rows, voi_organ_masses_g
from tdt.imaging._voxel_workflow import VoxelDosimetry, voxel_dosimetry

__all__ = [
    "PROFILE", "CameraCalibration", "CtImage", "Deidentifier", "DoseImage", "Geometry",
    "NmImage", "PetImage", "PhantomPatient", "Segmentation", "StructureSet", "Study", "TimePoint", "VoiTac",
    "VoxelDosimetry", "geometric_transfer_matrix", "gtm_correct", "sphere_recovery", "voi_recovery", "voxel_dosimetry",
    "activity_per_voxel_mbq", "check_same_frame_of_reference", "deidentify", "extract_tacs",
    "load_study", "make_phantom_patient", "rasterise", "read_ct", "read_dataset", "read_nm",
    "read_pet", "write_pet",
    "read_rtdose", "read_rtstruct", "read_seg", "resample", "write_ct", "write_nm",
    "write_rtdose", "write_rtstruct", "write_seg", "load_truth", "truth_rows", "voi_organ_masses_g",
]
