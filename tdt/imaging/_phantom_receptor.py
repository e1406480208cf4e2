"""Receptor-PBPK kinetics of the phantom patient: ``make_phantom_patient(kinetics="psma617")``.

The default phantom's activities come from the reduced linear model (:mod:`tdt.imaging.
_phantom_kinetics`). With ``kinetics="psma617"`` they come from the receptor PBPK of
177Lu-PSMA-617 (:func:`tdt.pbpk.psma617`, general grid solver, 150 nmol peptide: receptor
saturation included): the patient is one draw of the registry's identifiable parameters for the
phantom's VOIs (``GFR``; ``R_<VOI>`` and ``krel_<VOI>`` of kidneys, salivary glands, liver,
spleen and every lesion) from their cited population priors, log-normal around the median with
the standard normals clipped at ±2 (no implausible extremes), every other parameter at its
default — the tubular reabsorption ``f_reabs`` too, though the twin samples it (it joined the
identifiable subset after the phantom's datasets were published: kept at its prior median so
that they, and their sha256, did not change); lesion volumes are the phantom's spheres and
their flow scales with volume (the template's flow per mL). The draw uses its own random stream (``[seed, 617]``), so the
phantom's anatomy, scan-time jitter and noise streams are those of the default phantom.

Why: a phantom whose truth is the model the PBPK twin fits, so that the twin's intervals can be
checked against the phantom's truth (with the reduced-model phantom the PBPK misfits the curve
shapes), and so that its pre-therapy PET (:mod:`tdt.imaging._phantom_pet`) comes from the *same*
patient as its SPECT, with no calibration of receptor densities to reduced-model TIAs.
"""

from __future__ import annotations

import functools

import numpy as np

from tdt.pbpk import get_model, psma617

__all__ = ["PHANTOM_KINETICS", "receptor_model", "receptor_params"]

#: ``make_phantom_patient(kinetics=...)``: the phantom's kinetic truth
PHANTOM_KINETICS = ("reduced", "psma617")
#: receptor-bearing VOIs of the phantom whose identifiable parameters are drawn
_RECEPTOR_VOIS = ("kidneys", "salivary_glands", "liver", "spleen")
#: standard normals of the draw are clipped here (±2 SD: 95 % of the prior)
_Z_CLIP = 2.0
#: identifiable parameters the phantom keeps at their prior median (module docstring)
_AT_MEDIAN = ("f_reabs",)


@functools.lru_cache(maxsize=8)
def receptor_model(lesion_names: tuple[str, ...]):
    """The 177Lu-PSMA-617 receptor PBPK with these lesions (grid solver; one per process)."""
    return psma617(lesions=lesion_names, method="grid")


def receptor_params(model, lesion_volumes_ml: dict[str, float],
                    rng: np.random.Generator) -> dict[str, float]:
    """Parameters (model units) of one phantom patient (module docstring)."""
    params = {k: float(v) for k, v in model.default_params().items()}
    for lesion, volume_ml in lesion_volumes_ml.items():
        flow_per_ml = params[f"Q_{lesion}"] / params[f"V_{lesion}"]
        params[f"V_{lesion}"], params[f"Q_{lesion}"] = float(volume_ml), flow_per_ml * volume_ml
    priors = model.priors()
    vois = (*_RECEPTOR_VOIS, *lesion_volumes_ml)
    for name in get_model("psma617").identifiable_parameters(model, vois):
        if name in _AT_MEDIAN:
            continue
        median, sd_log = priors[name]
        z = float(np.clip(rng.standard_normal(), -_Z_CLIP, _Z_CLIP))
        params[name] = float(median * np.exp(sd_log * z))
    return params
