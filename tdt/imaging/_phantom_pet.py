"""Pre-therapy PET of the phantom patient (issue #25, item 4): [68Ga]Ga-PSMA-11 before the
177Lu-PSMA-617 therapy whose SPECT :func:`tdt.imaging._phantom.make_phantom_patient` writes.

The phantom's therapy truth comes from the reduced linear model (its ground truth is unchanged).
The PET needs the receptor PBPK of the theranostic pair (:mod:`tdt.pbpk._pairs`), so the phantom's
own PBPK parameters are defined from that truth: the therapeutic model's receptor densities
``R_<organ>`` (kidneys, salivary glands, liver, spleen, every lesion) are solved so that its
cycle-1 TIAs equal the phantom's true TIAs (damped multiplicative fixed-point iteration; the
remaining relative mismatch is recorded in ``pet_truth.json``); every other value is the
model default, lesion volumes are the phantom's spheres (flow per mL as the template). The
diagnostic model gets the shared values (:meth:`TheranosticPair.diagnostic_params`) and its own
ligand values, and gives the PET activities.

PET image: uniform activity per structure on the SPECT grid (4.7952 mm), isotropic Gaussian
blur (FWHM 6 mm by default), Bq/mL at the scan start (``write_pet``: BQML, DecayCorrection
START, one bed), optional multiplicative Gaussian voxel noise (CV 10 %, its own seeded stream,
so the SPECT files do not change). The bladder holds all urine produced until the scan (no
void before the PET: ASSUMPTION); plasma, remainder, GI and lacrimal glands fill the body
background (structures the phantom does not draw).
"""

from __future__ import annotations

import datetime as _dt
import math
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from tdt.imaging._partial_volume import fwhm_to_sigma
from tdt.imaging._pet_write import write_pet
from tdt.imaging._phantom_anatomy import blurred_activity_image
from tdt.pbpk import get_pair
from tdt.units import SECONDS_PER_HOUR

__all__ = ["PET_FWHM_MM", "PET_PAIR", "PET_TIMES_H", "write_pet_study"]

PET_PAIR = "psma11_psma617"
PET_TIMES_H = (1.0,)
PET_FWHM_MM = 6.0
#: days between the PET and the therapy
PET_DAYS_BEFORE = 14
_RECEPTOR_TARGETS = ("kidneys", "salivary_glands", "liver", "spleen")
_BACKGROUND = ("plasma", "remainder", "gi", "lacrimal_glands")
_VOXEL_NOISE_CV = 0.10


def _calibrated_params(pair, therapeutic, lesion_volumes, true_tias, injected_mbq,
                       iterations: int = 25):
    """Therapeutic parameters whose cycle-1 TIAs match ``true_tias`` (R_<organ> solved)."""
    params = dict(therapeutic.default_params())
    for lesion, volume in lesion_volumes.items():
        flow_per_ml = params[f"Q_{lesion}"] / params[f"V_{lesion}"]
        params[f"V_{lesion}"], params[f"Q_{lesion}"] = volume, flow_per_ml * volume
    targets = [o for o in (*_RECEPTOR_TARGETS, *lesion_volumes) if o in true_tias]
    schedule = pair.therapy_schedule(activity_mbq=injected_mbq)
    bounds = therapeutic.parameter_bounds()
    times = jnp.asarray([1.0])
    for _ in range(iterations):
        sim = therapeutic.simulate({k: jnp.asarray(v) for k, v in params.items()}, schedule,
                                   times)
        for organ in targets:
            ratio = true_tias[organ] / float(sim.tia_mbq_h[organ])
            lo, hi = bounds[f"R_{organ}"]
            params[f"R_{organ}"] = float(np.clip(params[f"R_{organ}"]
                                                 * np.clip(ratio, 0.2, 5.0) ** 1.2, lo, hi))
    sim = therapeutic.simulate({k: jnp.asarray(v) for k, v in params.items()}, schedule, times)
    mismatch = {o: float(sim.tia_mbq_h[o]) / true_tias[o] - 1.0 for o in targets}
    model_tias = {o: float(v) for o, v in sim.tia_mbq_h.items()}
    return params, mismatch, model_tias


def _pet_activities(diagnostic, params, schedule, times_h, lesion_names):
    """Activity (MBq) per phantom structure at the PET times."""
    sim = diagnostic.simulate({k: jnp.asarray(v) for k, v in params.items()}, schedule,
                              jnp.asarray(times_h))
    act = {k: np.asarray(v, dtype=float) for k, v in sim.activity_mbq.items()}
    out = {o: act[o] for o in ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow",
                               *lesion_names)}
    out["urinary_bladder_contents"] = act["urine"]
    out["background"] = sum(act[c] for c in _BACKGROUND if c in act)
    return out


def write_pet_study(pet_dir: Path, source_dir: Path, *, seed: int, spect, regions,
                    lesion_volumes_ml: dict[str, float], true_tias: dict[str, float],
                    injected_mbq: float, therapy_injection: _dt.datetime, patient: dict,
                    tag: str, times_h=PET_TIMES_H, fwhm_mm: float = PET_FWHM_MM,
                    noise: bool = True, therapeutic_params: dict | None = None) -> dict:
    """Write the PET study (PET series per time point + copies of the CT and RTSTRUCT of
    ``source_dir``) into ``pet_dir`` and ``pet_truth.json``; return the truth dict.
    ``therapeutic_params``: the phantom's own receptor-PBPK parameters (``kinetics="psma617"``:
    used as they are, no calibration; its TIAs are the phantom's true ones)."""
    pair = get_pair(PET_PAIR)
    lesion_names = tuple(lesion_volumes_ml)
    diagnostic, therapeutic = pair.build(lesions=lesion_names, method="grid")
    if therapeutic_params is None:
        ther_params, mismatch, model_tias = _calibrated_params(
            pair, therapeutic, lesion_volumes_ml, true_tias, injected_mbq)
    else:
        ther_params, mismatch = dict(therapeutic_params), {}
        model_tias = {o: float(v) for o, v in true_tias.items()}
    diag_params = pair.diagnostic_params(ther_params, diagnostic, therapeutic)
    times = np.asarray(times_h, dtype=float)
    activity = _pet_activities(diagnostic, diag_params, pair.diagnostic_schedule(), times,
                               lesion_names)
    pet_injection = therapy_injection - _dt.timedelta(days=PET_DAYS_BEFORE)
    voxel_ml = float(np.prod(spect.spacing_mm)) / 1000.0
    sigma_vox = fwhm_to_sigma(fwhm_mm) / float(spect.spacing_mm[0])
    rng = np.random.default_rng([int(seed), 68])  # own stream: the SPECT files stay as they are
    pet_dir.mkdir(parents=True)
    expected_image = {n: [] for n in regions}
    series = []
    for k, t_h in enumerate(times):
        blurred, sums = blurred_activity_image(
            spect.shape, regions, {n: activity[n][k] for n in regions}, sigma_vox)
        for name in regions:
            expected_image[name].append(sums[name])
        image = blurred
        if noise:
            image = np.maximum(blurred * (1.0 + _VOXEL_NOISE_CV * rng.standard_normal(
                blurred.shape)), 0.0)
        start = pet_injection + _dt.timedelta(seconds=round(float(t_h) * SECONDS_PER_HOUR))
        folder = pet_dir / f"PT_tp{k + 1}"
        write_pet(folder, image / voxel_ml * 1e6, spect, patient=patient,
                  series_number=200 + k, seed_text=f"{tag}-pet-{k}", scan_start=start,
                  injection=pet_injection, injected_activity_mbq=pair.diagnostic_activity_mbq,
                  nuclide=diagnostic.nuclide, radiopharmaceutical="68Ga-PSMA-11",
                  patient_weight_kg=float(patient.get("PatientWeight", 80)),
                  series_description=f"68Ga-PSMA-11 PET {t_h:g} h")
        series.append(folder.name)
    shutil.copytree(source_dir / "CT", pet_dir / "CT")
    shutil.copy2(source_dir / "RTSTRUCT.dcm", pet_dir / "RTSTRUCT.dcm")
    return {
        "pair": pair.key, "diagnostic_model": pair.diagnostic,
        "therapeutic_model": pair.therapeutic, "seed": int(seed),
        "pet_injection": pet_injection.isoformat(),
        "injected_activity_mbq": pair.diagnostic_activity_mbq,
        "ligand_nmol": pair.diagnostic_ligand_nmol,
        "times_h": [float(t) for t in times], "fwhm_mm": float(fwhm_mm), "noise": bool(noise),
        "voxel_noise_cv": _VOXEL_NOISE_CV if noise else 0.0, "series": series,
        "lesion_volumes_ml": {k: float(v) for k, v in lesion_volumes_ml.items()},
        "true_activity_mbq": {k: [float(x) for x in v] for k, v in activity.items()},
        "expected_image_activity_mbq": expected_image,
        "diagnostic_params": {k: float(v) for k, v in diag_params.items()},
        "therapeutic_params": {k: float(v) for k, v in ther_params.items()},
        "therapy_tia_mbq_h_pbpk": model_tias,
        "therapy_tia_calibration_mismatch": mismatch,
        "note": ("therapeutic_params: the PSMA-617 PBPK with R_<organ> solved so that its TIAs "
                 "match the phantom's true (reduced linear) TIAs; other organs (red marrow, "
                 "bladder) keep the PBPK's own kinetics (docs/pretherapy.md)")
        if therapeutic_params is None else
        "therapeutic_params: the phantom's own receptor-PBPK patient (kinetics='psma617'); "
        "the SPECT and this PET come from the same parameters",
    }


def lesion_volumes(lesions) -> dict[str, float]:
    """Sphere volumes (mL) of the phantom's lesions ``[(centre_mm, radius_mm), ...]``."""
    return {f"lesion_{i}": 4.0 / 3.0 * math.pi * (float(r) / 10.0) ** 3
            for i, (_, r) in enumerate(lesions, start=1)}
