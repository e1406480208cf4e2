"""Synthetic phantom patients as real DICOM: the embedded default dataset of tdt.

``make_phantom_patient(out_dir, seed=0)`` writes a schematic adult torso + head/neck, compressed
cranio-caudally to fit a 384 mm axial field (64 × 64 × 80 SPECT voxels of 4.7952 mm — the voxel
size of the vendored 177Lu kernel), with kidneys, liver, spleen, salivary glands (parotid and
submandibular), urinary bladder, red marrow (spine) and 2–5 spherical lesions:

- activities from the reduced linear PBPK model (``tdt.pbpk.reduced_linear``) with its default
  177Lu-PSMA-617 rates, perturbed per seed (organs ×exp(N(0, 0.15)), lesions ×exp(N(0, 0.4)));
  plasma + remainder fill the body background uniformly; the bladder holds the urine produced in
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
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tdt.errors import InputError
from tdt.imaging.ct import ct_slice_uids, write_ct
from tdt.imaging.dicom_io import deterministic_uid, format_date, format_time
from tdt.imaging.geometry import Geometry
from tdt.imaging.nm import write_nm
from tdt.imaging.rtstruct import StructureSet, mask_contours, rasterise, write_rtstruct
from tdt.imaging.seg import write_seg

#: kernel voxel size (mm): the default SPECT voxel, so that no kernel resampling is needed
SPECT_VOXEL_MM = 4.7952
#: schematic organ shapes: name → list of ellipsoids (centre LPS mm, semi-axes mm) and CT HU
ORGANS = {
    "kidneys": ([((65.0, 45.0, -25.0), (28.0, 25.0, 48.0)),
                 ((-65.0, 45.0, -40.0), (28.0, 25.0, 48.0))], 35),
    "liver": ([((-55.0, 0.0, 70.0), (85.0, 70.0, 55.0))], 60),
    "spleen": ([((85.0, 40.0, 65.0), (32.0, 28.0, 42.0))], 50),
    "salivary_glands": ([((55.0, 5.0, 160.0), (18.0, 22.0, 28.0)),
                         ((-55.0, 5.0, 160.0), (18.0, 22.0, 28.0)),
                         ((35.0, -25.0, 128.0), (13.0, 13.0, 13.0)),
                         ((-35.0, -25.0, 128.0), (13.0, 13.0, 13.0))], 40),
    "urinary_bladder_contents": ([((0.0, -20.0, -150.0), (40.0, 35.0, 30.0))], 10),
}
#: candidate lesion sites (centre LPS mm), chosen by the seed
LESION_SITES = ((-45.0, 60.0, -115.0), (45.0, 55.0, -105.0), (0.0, -45.0, -75.0),
                (-25.0, -40.0, 5.0), (30.0, -50.0, -30.0), (-90.0, 20.0, -100.0),
                (0.0, -60.0, 60.0))
SPINE = ((0.0, 70.0), 14.0, (-175.0, 115.0))  # centre (x, y), radius, z range: red marrow
HU_BODY, HU_BONE, HU_LESION, HU_AIR = 20, 300, 45, -1000
BODY_TORSO = (150.0, 105.0)  # semi-axes (x, y) of the torso, mm
BODY_HEAD = (80.0, 95.0)  # semi-axes of head/neck above z = 110 mm
DEFAULT_TIMES_H = (4.0, 24.0, 48.0, 96.0, 168.0)
SOFT_TISSUE_G_PER_ML = 1.03
INJECTION = _dt.datetime(2024, 1, 15, 9, 0, 0)


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

    def load(self, **kwargs):
        """``tdt.imaging.load_study`` of this patient's directory."""
        from tdt.imaging.study import load_study

        return load_study(self.directory, **kwargs)


def _body_mask(points: np.ndarray) -> np.ndarray:
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    torso = (x / BODY_TORSO[0]) ** 2 + (y / BODY_TORSO[1]) ** 2 <= 1.0
    head = (x / BODY_HEAD[0]) ** 2 + ((y + 5.0) / BODY_HEAD[1]) ** 2 <= 1.0
    return np.where(z > 110.0, head, torso)


def _ellipsoid(points, centre, semi) -> np.ndarray:
    d = (points - np.asarray(centre)) / np.asarray(semi)
    return np.sum(d * d, axis=-1) <= 1.0


def _lesions(rng: np.random.Generator, n_lesions: int) -> list[tuple[tuple, float]]:
    sites = rng.choice(len(LESION_SITES), size=n_lesions, replace=False)
    radii = rng.uniform(10.0, 18.0, size=n_lesions)
    return [(LESION_SITES[s], float(r)) for s, r in zip(sites, radii, strict=True)]


def _ct_masks(points: np.ndarray, lesions) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Disjoint structure masks on the CT grid (lesions take precedence) and the body mask."""
    body = _body_mask(points)
    taken = ~body
    masks: dict[str, np.ndarray] = {}
    for i, (centre, radius) in enumerate(lesions, start=1):
        m = _ellipsoid(points, centre, (radius,) * 3) & ~taken
        masks[f"lesion_{i}"] = m
        taken |= m
    for name, (shapes, _) in ORGANS.items():
        m = np.zeros(body.shape, dtype=bool)
        for centre, semi in shapes:
            m |= _ellipsoid(points, centre, semi)
        m &= ~taken
        masks[name] = m
        taken |= m
    (cx, cy), radius, (z0, z1) = SPINE
    spine = (((points[..., 0] - cx) ** 2 + (points[..., 1] - cy) ** 2 <= radius ** 2)
             & (points[..., 2] >= z0) & (points[..., 2] <= z1) & ~taken)
    masks["red_marrow"] = spine
    return masks, body


def _ct_hu(masks: dict[str, np.ndarray], body: np.ndarray) -> np.ndarray:
    hu = np.where(body, HU_BODY, HU_AIR).astype(np.float64)
    for name, m in masks.items():
        hu[m] = HU_LESION if name.startswith("lesion") else (
            HU_BONE if name == "red_marrow" else ORGANS[name][1])
    return hu


@functools.lru_cache(maxsize=8)
def _pbpk_model(lesion_names: tuple[str, ...]):
    """One model (and so one jit compilation) per lesion set per process."""
    from tdt.pbpk import reduced_linear

    organs = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow", "remainder",
              *lesion_names)
    return reduced_linear(organs=organs, nuclide="Lu-177")


def _perturbed_params(model, rng) -> dict[str, float]:
    """Default rates × exp(N(0, 0.15)) (organs) or exp(N(0, 0.4)) (lesions), in name order."""
    params = model.default_params()
    for name in model.parameter_names:
        scale = 0.4 if "lesion" in name else 0.15
        params[name] = float(params[name] * math.exp(rng.normal(0.0, scale)))
    return params


def _simulate_activities(model, params, lesion_names, times_h, injected_mbq, void_interval_h):
    """PBPK activities (MBq) per structure at ``times_h`` and TIAs (MBq·h)."""
    import jax.numpy as jnp

    from tdt.pbpk import Administration, Schedule
    schedule = Schedule([Administration(0.0, injected_mbq, 150.0)])
    times = np.asarray(times_h, dtype=float)
    before = np.maximum(times - void_interval_h, 0.0)
    fine = np.concatenate([np.linspace(0.0, 48.0, 193)[1:], np.linspace(48.0, 3000.0, 739)[1:]])
    grid = np.concatenate([times, before, fine])
    sim = model.simulate({k: jnp.asarray(v) for k, v in params.items()}, schedule,
                         jnp.asarray(grid))
    act = {k: np.asarray(v, dtype=float) for k, v in sim.activity_mbq.items()}
    tia = {k: float(v) for k, v in sim.tia_mbq_h.items()}
    n = len(times)
    lam = model.decay_constant_per_h
    urine = act["urine"]

    def bladder(at, prev):
        # urine produced since the last void, decayed: U(t) - U(t - τ) e^{-λ τ}
        return at - prev * np.exp(-lam * void_interval_h)

    fine_before = np.interp(np.maximum(fine - void_interval_h, 0.0), grid[2 * n:], urine[2 * n:],
                            left=0.0)
    bladder_fine = np.where(fine >= void_interval_h, bladder(urine[2 * n:], fine_before),
                            urine[2 * n:])
    bladder_tia = float(np.trapezoid(np.concatenate([[0.0], bladder_fine]),
                                     np.concatenate([[0.0], fine])))
    activity = {name: act[name][:n] for name in ("kidneys", "salivary_glands", "liver", "spleen",
                                                 "red_marrow", *lesion_names)}
    activity["urinary_bladder_contents"] = np.where(
        times >= void_interval_h, bladder(urine[:n], urine[n:2 * n]), urine[:n])
    activity["background"] = act["remainder"][:n] + act["plasma"][:n]
    tias = {name: tia[name] for name in ("kidneys", "salivary_glands", "liver", "spleen",
                                         "red_marrow", *lesion_names)}
    tias["urinary_bladder_contents"] = bladder_tia
    tias["background"] = tia["remainder"] + tia["plasma"]
    return activity, tias


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
) -> PhantomPatient:
    """Generate a synthetic 177Lu-PSMA-617 SPECT/CT patient as DICOM files in ``out_dir``.

    Parameters
    ----------
    out_dir: target folder (created; must be empty or absent unless ``overwrite``).
    seed: integer seed of lesion sites and sizes, kinetic perturbations, scan-time jitter
        (±20 min around ``times_h``) and Poisson noise.
    n_lesions: 2–5 lesions.
    times_h: nominal scan times after injection (h), 1–8 increasing values.
    injected_activity_mbq: administered activity (MBq).
    noise: Poisson noise on counts (``False``: expected counts, for partial-volume checks).
    fwhm_mm: isotropic Gaussian system resolution (mm).
    cps_per_mbq: camera calibration factor written to ``calibration.json`` (counts/s per MBq).
    acquisition_duration_s: SPECT acquisition duration (s).
    void_interval_h: bladder holds the urine produced in this interval before each scan (h).
    shape: SPECT grid (slices, rows, columns) of 4.7952 mm voxels; the CT has 2× in-plane.
    time_jitter_h: scan times are ``times_h`` + Uniform(−j, j) (h); 0 scans at the nominal times
        (a cohort on one protocol, e.g. for ``tdt.inference.fit_patients``). The random stream is
        the same either way, so only the times change.
    Returns a :class:`PhantomPatient`; the ground truth is also written as ``ground_truth.json``.
    """
    from scipy import ndimage

    out_dir = Path(out_dir)
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
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"make_phantom_patient: {out_dir} is not empty; pass overwrite=True")

    seed = int(seed)
    rng = np.random.default_rng(seed)
    tag = f"tdt-phantom-v1-seed{seed}"
    frame_uid = deterministic_uid(tag, "frame-of-reference")
    patient = {
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
    nz, ny, nx = (int(v) for v in shape)
    origin = tuple(-(n - 1) / 2.0 * SPECT_VOXEL_MM for n in (nx, ny, nz))
    spect = Geometry((nz, ny, nx), origin, (SPECT_VOXEL_MM,) * 3, frame_of_reference_uid=frame_uid)
    ct_spacing = (SPECT_VOXEL_MM / 2, SPECT_VOXEL_MM / 2, SPECT_VOXEL_MM)
    ct = Geometry((nz, 2 * ny, 2 * nx), origin, ct_spacing, frame_of_reference_uid=frame_uid)

    lesions = _lesions(rng, int(n_lesions))
    lesion_names = [f"lesion_{i}" for i in range(1, len(lesions) + 1)]
    ct_masks, ct_body = _ct_masks(ct.voxel_centres_mm(), lesions)
    hu = _ct_hu(ct_masks, ct_body)
    # the SPECT masks are the RTSTRUCT contours rasterised on the SPECT grid, exactly as a reader
    # will see them (SPECT voxel centres coincide with CT voxel centres: no boundary ambiguity)
    structure_set = StructureSet(
        contours={n: mask_contours(m, ct) for n, m in ct_masks.items()},
        frame_of_reference_uid=frame_uid)
    spect_masks = rasterise(structure_set, spect)
    spect_body = _body_mask(spect.voxel_centres_mm())
    background = spect_body & ~np.any(np.stack(list(spect_masks.values())), axis=0)

    model = _pbpk_model(tuple(lesion_names))
    params = _perturbed_params(model, rng)
    if not 0.0 <= time_jitter_h < 0.5 * float(np.min(np.diff(np.concatenate([[0.0], times])))):
        raise InputError(f"make_phantom_patient: time_jitter_h {time_jitter_h}; expected >= 0 "
                         "and below half the smallest gap between scan times")
    jitter_h = rng.uniform(-time_jitter_h, time_jitter_h, size=times.size)
    scan_times = np.round((times + jitter_h) * 3600.0) / 3600.0  # whole seconds
    activity, tias = _simulate_activities(
        model, params, lesion_names, scan_times, injected_activity_mbq, void_interval_h)

    regions = {**spect_masks, "background": background}
    voxel_ml = spect.voxel_volume_ml
    sigma_vox = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / SPECT_VOXEL_MM
    from tdt.physics import nuclide as _nuclide

    lam = _nuclide("Lu-177").decay_constant_per_h
    lt = lam * acquisition_duration_s / 3600.0
    decay_average = -math.expm1(-lt) / lt
    calibration_date = INJECTION.date() - _dt.timedelta(days=30)

    tmp = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    nm_names, expected_image = [], {n: [] for n in regions}
    for t_index, t_h in enumerate(scan_times):
        true_map = np.zeros(spect.shape)
        for name, mask in regions.items():
            n_vox = int(mask.sum())
            if n_vox:
                true_map[mask] = activity[name][t_index] / n_vox
        blurred = ndimage.gaussian_filter(true_map, sigma_vox, mode="constant", truncate=4.0)
        for name, mask in regions.items():
            expected_image[name].append(float(blurred[mask].sum()))
        counts = blurred * decay_average * acquisition_duration_s * cps_per_mbq
        if noise:
            counts = rng.poisson(counts).astype(np.float64)
        acquisition = INJECTION + _dt.timedelta(seconds=float(round(t_h * 3600.0)))
        name = f"NM_tp{t_index + 1}.dcm"
        write_nm(tmp / "NM" / name, counts, spect, patient=patient, series_number=100 + t_index,
                 seed_text=f"{tag}-nm-{t_index}", units="CNTS", acquisition=acquisition,
                 duration_s=acquisition_duration_s, injection=INJECTION,
                 injected_activity_mbq=injected_activity_mbq,
                 series_description=f"SPECT {times[t_index]:g} h")
        nm_names.append(name)

    ct_time = INJECTION + _dt.timedelta(seconds=float(round(scan_times[0] * 3600.0)))
    ct_tag = f"{tag}-ct"
    ct_paths = write_ct(tmp / "CT", hu, ct, patient=patient, series_number=2, seed_text=ct_tag,
                        acquisition=ct_time)
    ct_uids = ct_slice_uids(ct_tag, ct.shape[0])
    ct_series = deterministic_uid(ct_tag, "series")
    colors = {"kidneys": (255, 200, 0), "liver": (160, 80, 40), "spleen": (120, 0, 200),
              "salivary_glands": (0, 200, 255), "urinary_bladder_contents": (255, 255, 0),
              "red_marrow": (200, 0, 0)}
    write_rtstruct(tmp / "RTSTRUCT.dcm", ct_masks, ct, patient=patient, seed_text=f"{tag}-rts",
                   referenced_series_uid=ct_series, referenced_sop_uids=ct_uids,
                   created=ct_time, colors=colors)
    if write_segmentation:
        write_seg(tmp / "SEG.dcm", ct_masks, ct, patient=patient, seed_text=f"{tag}-seg",
                  referenced_series_uid=ct_series, referenced_sop_uids=ct_uids, created=ct_time)
    calibration = {"cps_per_mbq": cps_per_mbq, "date": calibration_date.isoformat(),
                   "nuclide": "Lu-177"}
    (tmp / "calibration.json").write_text(json.dumps(calibration, indent=2, sort_keys=True) + "\n")

    truth = _ground_truth(
        seed=seed, spect=spect, regions=regions, spect_masks=spect_masks, activity=activity,
        tias=tias, params=params, lesions=lesions, scan_times=scan_times, nominal=times,
        expected_image=expected_image, fwhm_mm=fwhm_mm, noise=noise, calibration=calibration,
        injected=injected_activity_mbq, duration_s=acquisition_duration_s,
        void_interval_h=void_interval_h, voxel_ml=voxel_ml,
    )
    (tmp / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
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
    )


def _ground_truth(*, seed, spect, regions, spect_masks, activity, tias, params, lesions,
                  scan_times, nominal, expected_image, fwhm_mm, noise, calibration, injected,
                  duration_s, void_interval_h, voxel_ml) -> dict:
    from tdt.dosimetry import organ_doses
    from tdt.dosimetry.voxel import kernel_dose

    volumes = {n: float(m.sum() * voxel_ml) for n, m in regions.items()}
    structures = list(spect_masks)
    lesion_names = [n for n in structures if n.startswith("lesion")]
    organ_tia = {n: tias[n] for n in structures}
    organ_tia["remainder"] = tias["background"]
    masses = {n: volumes[n] * SOFT_TISSUE_G_PER_ML for n in structures
              if not n.startswith("lesion") and n not in ("red_marrow",
                                                          "urinary_bladder_contents")}
    mird = organ_doses({k: v for k, v in organ_tia.items()}, nuclide="Lu-177",
                       phantom="adult-male", organ_masses_g=masses,
                       lesion_volumes_ml={n: volumes[n] for n in lesion_names})
    tia_map = np.zeros(spect.shape)
    for name, mask in regions.items():
        if mask.any():
            tia_map[mask] = tias[name] / mask.sum()
    dose = kernel_dose(tia_map, spect.spacing_mm)
    voxel_mean = {n: float(dose[m].mean()) for n, m in regions.items() if m.any()}
    return {
        "description": "tdt synthetic phantom patient: ground truth (units: h, MBq, MBq*h, "
                       "mL, Gy)",
        "generator": "tdt.imaging.make_phantom_patient", "version": 1, "seed": seed,
        "noise": bool(noise), "fwhm_mm": fwhm_mm, "nuclide": "Lu-177",
        "injected_activity_mbq": injected, "injection_datetime": INJECTION.isoformat(),
        "acquisition_duration_s": duration_s, "void_interval_h": void_interval_h,
        "calibration": calibration,
        "times_h": [float(t) for t in scan_times], "nominal_times_h": [float(t) for t in nominal],
        "structures": structures,
        "volume_ml": volumes,
        "activity_mbq": {n: [float(v) for v in activity[n]] for n in regions},
        "image_activity_mbq": expected_image,
        "recovery": {n: [float(e / a) if a > 0 else None for e, a in
                         zip(expected_image[n], activity[n], strict=True)] for n in regions},
        "tia_mbq_h": {n: float(v) for n, v in tias.items()},
        "mird_dose_gy": {k: float(np.asarray(v)) for k, v in mird.items()},
        "voxel_kernel_mean_dose_gy": voxel_mean,
        "lesions": {f"lesion_{i}": {"centre_mm": list(c), "radius_mm": r}
                    for i, (c, r) in enumerate(lesions, start=1)},
        "pbpk_model": "tdt.pbpk.reduced_linear", "pbpk_params_per_h": params,
        "grid": {"shape": list(spect.shape), "spacing_mm": list(spect.spacing_mm),
                 "origin_mm": list(spect.origin_mm)},
    }
