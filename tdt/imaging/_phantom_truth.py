"""Ground truth of the phantom patient (``ground_truth.json``): what a perfect reader would find.

True VOI activities and TIAs, MIRD organ doses (:func:`tdt.dosimetry.organ_doses`, masses from the
phantom's volumes), voxel-kernel mean doses (:func:`tdt.dosimetry._voxel.kernel_dose`) and the
activity in the noiseless blurred image (partial-volume loss: ``recovery``).
"""

from __future__ import annotations

import numpy as np

from tdt.dosimetry import KERNEL_DENSITY_G_PER_ML, is_lesion, kernel_dose, organ_doses

#: density of soft tissue used to turn VOI volumes into organ masses (g/mL): the medium of the
#: voxel kernels (ICRU 44 soft tissue, tdt.dosimetry's one value), so the phantom's organ masses
#: and its voxel dose use the same tissue
SOFT_TISSUE_G_PER_ML = KERNEL_DENSITY_G_PER_ML


def _mird_doses(structures, volumes, tias) -> dict:
    lesion_names = [n for n in structures if is_lesion(n)]
    organ_tia = {n: tias[n] for n in structures}
    organ_tia["remainder"] = tias["background"]
    masses = {n: volumes[n] * SOFT_TISSUE_G_PER_ML for n in structures
              if not is_lesion(n) and n not in ("red_marrow",
                                                          "urinary_bladder_contents")}
    return organ_doses(organ_tia, nuclide="Lu-177", phantom="adult-male",
                       organ_masses_g=masses,
                       lesion_volumes_ml={n: volumes[n] for n in lesion_names})


def _voxel_mean_doses(spect, regions, tias) -> dict[str, float]:
    tia_map = np.zeros(spect.shape)
    for name, mask in regions.items():
        if mask.any():
            tia_map[mask] = tias[name] / mask.sum()
    dose = kernel_dose(tia_map, spect.spacing_mm)
    return {n: float(dose[m].mean()) for n, m in regions.items() if m.any()}


def ground_truth(*, seed, spect, regions, spect_masks, activity, tias, params, lesions,
                 scan_times, nominal, expected_image, fwhm_mm, noise, calibration, injected,
                 injection, duration_s, void_interval_h, kinetics="reduced") -> dict:
    """The ground-truth record (units: h, MBq, MBq·h, mL, Gy) written as ``ground_truth.json``."""
    volumes = {n: float(m.sum() * spect.voxel_volume_ml) for n, m in regions.items()}
    structures = list(spect_masks)
    mird = _mird_doses(structures, volumes, tias)
    return {
        "description": "tdt synthetic phantom patient: ground truth (units: h, MBq, MBq*h, "
                       "mL, Gy)",
        "generator": "tdt.imaging.make_phantom_patient", "version": 1, "seed": seed,
        "noise": bool(noise), "fwhm_mm": fwhm_mm, "nuclide": "Lu-177",
        "injected_activity_mbq": injected, "injection_datetime": injection.isoformat(),
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
        "voxel_kernel_mean_dose_gy": _voxel_mean_doses(spect, regions, tias),
        "lesions": {f"lesion_{i}": {"centre_mm": list(c), "radius_mm": r}
                    for i, (c, r) in enumerate(lesions, start=1)},
        **({"pbpk_model": "tdt.pbpk.reduced_linear", "pbpk_params_per_h": params}
           if kinetics == "reduced" else
           {"pbpk_model": f"tdt.pbpk.{kinetics}", "pbpk_params": params,
            "ligand_nmol": 150.0}),
        "grid": {"shape": list(spect.shape), "spacing_mm": list(spect.spacing_mm),
                 "origin_mm": list(spect.origin_mm)},
    }
