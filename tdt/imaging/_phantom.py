"""Synthetic phantom patients as real DICOM: the embedded default dataset of tdt.

``make_phantom_patient(out_dir, seed=0)`` writes a schematic adult torso + head/neck, compressed
cranio-caudally to fit a 384 mm axial field (64 × 64 × 80 SPECT voxels of 4.7952 mm — the voxel
size of the vendored 177Lu kernel), with kidneys, liver, spleen, salivary glands (parotid and
submandibular), urinary bladder, red marrow (spine) and 2–5 spherical lesions:

- activities from the reduced linear PBPK model (``tdt.pbpk.reduced_linear``) with its default
  177Lu-PSMA-617 rates, perturbed per seed (organs ×exp(N(0, 0.15)), lesions ×exp(N(0, 0.4)));
  or, ``kinetics="psma617"``, from the receptor PBPK of 177Lu-PSMA-617 (one patient drawn from
  its cited priors, :mod:`tdt.imaging._phantom_receptor`); the compartments the phantom does
  not draw (plasma + remainder, …) fill the body background uniformly; the bladder holds the urine produced in
  the ``void_interval_h`` before each scan (the patient voids then);
- SPECT: uniform activity per structure on the SPECT grid, Gaussian system blur (FWHM 10 mm by
  default, ``scipy.ndimage.gaussian_filter``), counts = activity × decay-averaged over the scan ×
  duration × calibration (cps/MBq), Poisson noise (per voxel, a simplification of reconstructed
  noise) unless ``noise=False``;
- files: NM (multi-frame, Units CNTS, DecayCorrection NONE) per time point, one CT series
  (2.3976 mm in-plane, same slices), RTSTRUCT and SEG on the CT grid, ``calibration.json`` and
  ``ground_truth.json`` (true VOI activities, TIAs, MIRD organ doses, voxel-kernel mean doses,
  and the activity a perfect reader extracts from the noiseless image, i.e. after partial-volume
  loss) beside them.

Deterministic: the same arguments give byte-identical files (UIDs derived from the seed, fixed
dates, seeded NumPy generator).

This module writes the files; the anatomy (``_phantom_anatomy``), the kinetics
(``_phantom_kinetics``) and the ground truth (``_phantom_truth``) live beside it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tdt.errors import InputError
from tdt.imaging._ct import ct_slice_uids, write_ct
from tdt.imaging._dicom_io import deterministic_uid, format_date, format_time
from tdt.imaging._nm import write_nm
from tdt.imaging._partial_volume import fwhm_to_sigma
from tdt.imaging._phantom_anatomy import (
    ORGANS,
    SPECT_VOXEL_MM,
    blurred_activity_image,
    body_mask,
    ct_numbers,
    draw_lesions,
    phantom_grids,
    structure_masks,
)
from tdt.imaging._phantom_kinetics import pbpk_model, perturbed_params, simulate_activities
from tdt.imaging._phantom_pet import lesion_volumes, write_pet_study
from tdt.imaging._phantom_receptor import PHANTOM_KINETICS, receptor_model, receptor_params
from tdt.imaging._phantom_truth import SOFT_TISSUE_G_PER_ML, ground_truth
from tdt.imaging._rtstruct import StructureSet, mask_contours, rasterise, write_rtstruct
from tdt.imaging._seg import write_seg
from tdt.imaging._study import load_study
from tdt.physics import nuclide
from tdt.units import SECONDS_PER_HOUR

__all__ = ["DEFAULT_TIMES_H", "INJECTION", "ORGANS", "SOFT_TISSUE_G_PER_ML", "SPECT_VOXEL_MM",
           "PhantomPatient", "make_phantom_patient"]

DEFAULT_TIMES_H = (4.0, 24.0, 48.0, 96.0, 168.0)
INJECTION = _dt.datetime(2024, 1, 15, 9, 0, 0)
#: RTSTRUCT display colours (RGB)
_COLORS = {"kidneys": (255, 200, 0), "liver": (160, 80, 40), "spleen": (120, 0, 200),
           "salivary_glands": (0, 200, 255), "urinary_bladder_contents": (255, 255, 0),
           "red_marrow": (200, 0, 0)}


@dataclass
class PhantomPatient:
    """Paths of a generated phantom patient and its ground truth (also ``ground_truth.json``)."""

    directory: Path
    nm_paths: list[Path]
    ct_paths: list[Path]
    rtstruct_path: Path
    seg_path: Path | None
    calibration_path: Path
    ground_truth_path: Path
    ground_truth: dict = field(repr=False)
    #: the pre-therapy PET study (``pet_times_h`` given), a sibling folder ``<out_dir>_pet``
    pet_directory: Path | None = None

    def load_pet(self, **kwargs):
        """``tdt.imaging.load_study`` of the pre-therapy PET folder (``pet_truth.json`` beside)."""
        if self.pet_directory is None:
            raise InputError("PhantomPatient.load_pet: no PET was written; pass pet_times_h= "
                             "to make_phantom_patient")
        return load_study(self.pet_directory, **kwargs)

    def load(self, **kwargs):
        """``tdt.imaging.load_study`` of this patient's directory."""
        return load_study(self.directory, **kwargs)


def _check_arguments(out_dir: Path, seed, n_lesions, times_h, fwhm_mm, cps_per_mbq,
                     acquisition_duration_s, injected_activity_mbq, shape, time_jitter_h,
                     overwrite) -> np.ndarray:
    """Validate ``make_phantom_patient``'s arguments; return the nominal times (h)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"make_phantom_patient: seed {seed!r}; expected an integer >= 0")
    if not 2 <= int(n_lesions) <= 5:
        raise InputError(f"make_phantom_patient: n_lesions {n_lesions}; expected 2 to 5")
    times = np.asarray(times_h, dtype=float)
    if times.ndim != 1 or not 1 <= times.size <= 8 or np.any(np.diff(times) <= 0) or np.any(
            times <= 0):
        raise InputError(f"make_phantom_patient: times_h {list(times)}; expected 1-8 increasing "
                         "positive times (h)")
    if min(fwhm_mm, cps_per_mbq, acquisition_duration_s, injected_activity_mbq) <= 0:
        raise InputError("make_phantom_patient: fwhm_mm, cps_per_mbq, acquisition_duration_s and "
                         "injected_activity_mbq must be > 0")
    if len(shape) != 3 or min(shape) < 8:
        raise InputError(f"make_phantom_patient: shape {shape}; expected 3 sizes >= 8")
    if not 0.0 <= time_jitter_h < 0.5 * float(np.min(np.diff(np.concatenate([[0.0], times])))):
        raise InputError(f"make_phantom_patient: time_jitter_h {time_jitter_h}; expected >= 0 "
                         "and below half the smallest gap between scan times")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"make_phantom_patient: {out_dir} is not empty; pass overwrite=True")
    return times


def _patient_module(seed: int, tag: str, frame_uid: str) -> dict:
    """Patient, study and frame-of-reference attributes shared by every file (synthetic)."""
    return {
        "PatientName": f"Phantom^Seed{seed}", "PatientID": f"TDT-PHANTOM-{seed:04d}",
        "PatientBirthDate": "19580101", "PatientSex": "M", "PatientAge": "066Y",
        "PatientWeight": "80", "PatientSize": "1.78",
        "StudyInstanceUID": deterministic_uid(tag, "study"), "StudyID": f"P{seed}",
        "StudyDate": format_date(INJECTION.date()), "StudyTime": format_time(INJECTION),
        "AccessionNumber": f"TDT{seed:06d}", "ReferringPhysicianName": "",
        "FrameOfReferenceUID": frame_uid, "PositionReferenceIndicator": "",
        "Manufacturer": "tdt synthetic phantom", "InstitutionName": "tdt",
        "StudyDescription": "177Lu-PSMA-617 dosimetry (synthetic)",
    }


def _spect_regions(ct_masks, ct, spect, frame_uid):
    """SPECT masks (the RTSTRUCT contours rasterised on the SPECT grid) and all regions
    including the body ``background``."""
    # the SPECT masks are the RTSTRUCT contours rasterised on the SPECT grid, exactly as a reader
    # will see them (SPECT voxel centres coincide with CT voxel centres: no boundary ambiguity)
    structure_set = StructureSet(
        contours={n: mask_contours(m, ct) for n, m in ct_masks.items()},
        frame_of_reference_uid=frame_uid)
    spect_masks = rasterise(structure_set, spect)
    spect_body = body_mask(spect.voxel_centres_mm())
    background = spect_body & ~np.any(np.stack(list(spect_masks.values())), axis=0)
    return spect_masks, {**spect_masks, "background": background}


def _kinetics(rng, lesion_names, times, time_jitter_h, injected_mbq, void_interval_h,
              kinetics="reduced", lesions=(), seed=0):
    """Perturbed PBPK rates (1/h) (``kinetics="psma617"``: receptor-PBPK parameters, model
    units), jittered scan times (h, whole seconds), activities (MBq) at the scans, TIAs (MBq·h)."""
    model = pbpk_model(tuple(lesion_names))
    params = perturbed_params(model, rng)  # drawn either way: the later streams stay the same
    if kinetics == "psma617":
        model = receptor_model(tuple(lesion_names))
        params = receptor_params(model, lesion_volumes(lesions),
                                 np.random.default_rng([int(seed), 617]))
    jitter_h = rng.uniform(-time_jitter_h, time_jitter_h, size=times.size)
    scan_times = np.round((times + jitter_h) * SECONDS_PER_HOUR) / SECONDS_PER_HOUR
    activity, tias = simulate_activities(
        model, params, lesion_names, scan_times, injected_mbq, void_interval_h)
    return params, scan_times, activity, tias


def _tag(kinetics: str, seed: int) -> str:
    """The seed text of every UID (the default phantom's UIDs stay as they were)."""
    if kinetics not in PHANTOM_KINETICS:
        raise InputError(f"make_phantom_patient: kinetics {kinetics!r}; expected one of "
                         f"{list(PHANTOM_KINETICS)}")
    return f"tdt-phantom-v1-seed{seed}" if kinetics == "reduced" else \
        f"tdt-phantom-v1-{kinetics}-seed{seed}"


def _acquisition(t_h: float) -> _dt.datetime:
    """Date and time of a scan ``t_h`` hours after injection (whole seconds)."""
    return INJECTION + _dt.timedelta(seconds=float(round(t_h * SECONDS_PER_HOUR)))


def _write_spect(folder: Path, rng, *, spect, regions, activity, scan_times, nominal, fwhm_mm,
                 noise, cps_per_mbq, duration_s, injected_mbq, patient, tag):
    """One NM file per scan: uniform activity per region, Gaussian blur, counts (Poisson).

    Returns the file names and, per region, the activity a perfect reader finds in the
    noiseless blurred image (MBq, one value per scan).
    """
    sigma_vox = fwhm_to_sigma(fwhm_mm) / SPECT_VOXEL_MM
    lt = nuclide("Lu-177").decay_constant_per_h * duration_s / SECONDS_PER_HOUR
    decay_average = -math.expm1(-lt) / lt  # mean of exp(-λt) over the acquisition
    names, expected_image = [], {n: [] for n in regions}
    for t_index, t_h in enumerate(scan_times):
        blurred, sums = blurred_activity_image(
            spect.shape, regions, {n: activity[n][t_index] for n in regions}, sigma_vox)
        for name in regions:
            expected_image[name].append(sums[name])
        counts = blurred * decay_average * duration_s * cps_per_mbq
        if noise:
            counts = rng.poisson(counts).astype(np.float64)
        name = f"NM_tp{t_index + 1}.dcm"
        write_nm(folder / name, counts, spect, patient=patient, series_number=100 + t_index,
                 seed_text=f"{tag}-nm-{t_index}", units="CNTS", acquisition=_acquisition(t_h),
                 duration_s=duration_s, injection=INJECTION, injected_activity_mbq=injected_mbq,
                 series_description=f"SPECT {nominal[t_index]:g} h")
        names.append(name)
    return names, expected_image


def _write_ct_and_structures(folder: Path, ct_masks, ct_body, ct, *, patient, tag, created,
                             write_segmentation: bool):
    """CT series, RTSTRUCT and (optionally) SEG on the CT grid; returns the CT paths."""
    ct_tag = f"{tag}-ct"
    ct_paths = write_ct(folder / "CT", ct_numbers(ct_masks, ct_body), ct, patient=patient,
                        series_number=2, seed_text=ct_tag, acquisition=created)
    ct_uids = ct_slice_uids(ct_tag, ct.shape[0])
    ct_series = deterministic_uid(ct_tag, "series")
    write_rtstruct(folder / "RTSTRUCT.dcm", ct_masks, ct, patient=patient,
                   seed_text=f"{tag}-rts", referenced_series_uid=ct_series,
                   referenced_sop_uids=ct_uids, created=created, colors=_COLORS)
    if write_segmentation:
        write_seg(folder / "SEG.dcm", ct_masks, ct, patient=patient, seed_text=f"{tag}-seg",
                  referenced_series_uid=ct_series, referenced_sop_uids=ct_uids, created=created)
    return ct_paths


def _temporary_folder(out_dir: Path) -> Path:
    """An empty sibling of ``out_dir`` to write into (renamed to ``out_dir`` when complete)."""
    tmp = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _write_json(path: Path, value: dict, indent: int) -> None:
    path.write_text(json.dumps(value, indent=indent, sort_keys=True) + "\n")


def make_phantom_patient(
    out_dir: str | Path,
    seed: int = 0,
    *,
    n_lesions: int = 3,
    times_h=DEFAULT_TIMES_H,
    injected_activity_mbq: float = 7400.0,
    noise: bool = True,
    fwhm_mm: float = 10.0,
    cps_per_mbq: float = 12.0,
    acquisition_duration_s: float = 900.0,
    void_interval_h: float = 3.0,
    shape: tuple[int, int, int] = (80, 64, 64),
    write_segmentation: bool = True,
    time_jitter_h: float = 1.0 / 3.0,
    overwrite: bool = False,
    pet_times_h=None,
    kinetics: str = "reduced",
) -> PhantomPatient:
    """Generate a synthetic 177Lu-PSMA-617 SPECT/CT patient as DICOM files in ``out_dir``.

    Parameters
    ----------
    out_dir: target folder (created; must be empty or absent unless ``overwrite``).
    seed: integer seed of lesion sites and sizes, kinetics, scan-time jitter and Poisson noise.
    n_lesions: 2–5 lesions.
    times_h: nominal scan times after injection (h), 1–8 increasing values.
    injected_activity_mbq: administered activity (MBq).
    noise: Poisson noise on counts (``False``: expected counts, for partial-volume checks).
    fwhm_mm: isotropic Gaussian system resolution (mm).
    cps_per_mbq: camera calibration factor written to ``calibration.json`` (counts/s per MBq).
    acquisition_duration_s: SPECT acquisition duration (s).
    void_interval_h: bladder holds the urine produced in this interval before each scan (h).
    shape: SPECT grid (slices, rows, columns) of 4.7952 mm voxels; the CT has 2× in-plane.
    time_jitter_h: scan times are ``times_h`` + Uniform(−j, j) (h); 0: the nominal times (a
        cohort on one protocol); the random stream is the same either way.
    pet_times_h: also write a pre-therapy [68Ga]Ga-PSMA-11 PET study (scan times in h after the
        PET injection, e.g. ``(1.0,)``) into the sibling folder ``<out_dir>_pet`` (PET + CT +
        RTSTRUCT, ``pet_truth.json``; :mod:`tdt.imaging._phantom_pet`). ``None`` (default):
        no PET; the SPECT study's files are the same either way.
    kinetics: ``"reduced"`` (default) or ``"psma617"`` (receptor PBPK; SPECT and PET from one
        patient, other UIDs: :mod:`tdt.imaging._phantom_receptor`).
    Returns a :class:`PhantomPatient`; the ground truth is also written as ``ground_truth.json``.
    """
    out_dir = Path(out_dir)
    times = _check_arguments(out_dir, seed, n_lesions, times_h, fwhm_mm, cps_per_mbq,
                             acquisition_duration_s, injected_activity_mbq, shape, time_jitter_h,
                             overwrite)
    pet_times = None if pet_times_h is None else _check_pet_times(pet_times_h)
    seed, tag = int(seed), _tag(kinetics, int(seed))
    # one random stream, drawn in a fixed order: lesions, kinetics, scan times, Poisson noise
    rng = np.random.default_rng(seed)
    frame_uid = deterministic_uid(tag, "frame-of-reference")
    patient = _patient_module(seed, tag, frame_uid)
    spect, ct = phantom_grids(shape, frame_uid)

    lesions = draw_lesions(rng, int(n_lesions))
    lesion_names = [f"lesion_{i}" for i in range(1, len(lesions) + 1)]
    ct_masks, ct_body = structure_masks(ct.voxel_centres_mm(), lesions)
    spect_masks, regions = _spect_regions(ct_masks, ct, spect, frame_uid)

    params, scan_times, activity, tias = _kinetics(rng, lesion_names, times, time_jitter_h,
        injected_activity_mbq, void_interval_h, kinetics, lesions, seed)

    tmp = _temporary_folder(out_dir)
    nm_names, expected_image = _write_spect(
        tmp / "NM", rng, spect=spect, regions=regions, activity=activity, scan_times=scan_times,
        nominal=times, fwhm_mm=fwhm_mm, noise=noise, cps_per_mbq=cps_per_mbq,
        duration_s=acquisition_duration_s, injected_mbq=injected_activity_mbq, patient=patient,
        tag=tag)
    ct_paths = _write_ct_and_structures(
        tmp, ct_masks, ct_body, ct, patient=patient, tag=tag,
        created=_acquisition(scan_times[0]), write_segmentation=write_segmentation)
    calibration = {"cps_per_mbq": cps_per_mbq, "nuclide": "Lu-177",
                   "date": (INJECTION.date() - _dt.timedelta(days=30)).isoformat()}
    _write_json(tmp / "calibration.json", calibration, indent=2)
    truth = ground_truth(
        seed=seed, spect=spect, regions=regions, spect_masks=spect_masks, activity=activity,
        tias=tias, params=params, lesions=lesions, scan_times=scan_times, nominal=times,
        expected_image=expected_image, fwhm_mm=fwhm_mm, noise=noise, calibration=calibration,
        injected=injected_activity_mbq, injection=INJECTION, duration_s=acquisition_duration_s,
        void_interval_h=void_interval_h, kinetics=kinetics,
    )
    _write_json(tmp / "ground_truth.json", truth, indent=1)
    pet_dir = None if pet_times is None else _pet_study(
        out_dir, tmp, pet_times, overwrite, seed=seed, spect=spect, regions=regions,
        lesion_volumes_ml=lesion_volumes(lesions), true_tias=tias,
        injected_mbq=injected_activity_mbq, therapy_injection=INJECTION, patient=patient,
        tag=tag, noise=noise, therapeutic_params=params if kinetics == "psma617" else None)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.replace(out_dir)
    return PhantomPatient(
        directory=out_dir, nm_paths=[out_dir / "NM" / n for n in nm_names],
        ct_paths=[out_dir / "CT" / p.name for p in ct_paths],
        rtstruct_path=out_dir / "RTSTRUCT.dcm",
        seg_path=out_dir / "SEG.dcm" if write_segmentation else None,
        calibration_path=out_dir / "calibration.json",
        ground_truth_path=out_dir / "ground_truth.json", ground_truth=truth,
        pet_directory=pet_dir)


def _pet_study(out_dir: Path, spect_tmp: Path, pet_times, overwrite: bool, **kwargs) -> Path:
    """Write the pre-therapy PET study into ``<out_dir>_pet`` (atomically); return its path."""
    pet_dir = out_dir.with_name(out_dir.name + "_pet")
    if pet_dir.exists() and any(pet_dir.iterdir()) and not overwrite:
        raise InputError(f"make_phantom_patient: {pet_dir} is not empty; pass overwrite=True")
    pet_tmp = _temporary_folder(pet_dir)
    shutil.rmtree(pet_tmp)
    truth = write_pet_study(pet_tmp, spect_tmp, times_h=pet_times, **kwargs)
    _write_json(pet_tmp / "pet_truth.json", truth, indent=1)
    if pet_dir.exists():
        shutil.rmtree(pet_dir)
    pet_tmp.replace(pet_dir)
    return pet_dir


def _check_pet_times(pet_times_h) -> tuple[float, ...]:
    times = np.asarray(pet_times_h, dtype=float)
    if times.ndim != 1 or not 1 <= times.size <= 3 or np.any(np.diff(times) <= 0) or np.any(
            times <= 0) or np.any(times > 6.0):
        raise InputError(f"make_phantom_patient: pet_times_h {pet_times_h!r}; expected 1-3 "
                         "increasing times in (0, 6] h after the PET injection")
    return tuple(float(t) for t in times)
