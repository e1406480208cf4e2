"""Kinetics of the phantom patient: reduced linear PBPK activities, TIAs and the bladder.

Activities come from :func:`tdt.pbpk.reduced_linear` with its default 177Lu-PSMA-617 rates,
perturbed per seed (or, ``kinetics="psma617"``, from the receptor PBPK:
:mod:`tdt.imaging._phantom_receptor`; :func:`simulate_activities` serves both); every compartment
the phantom does not draw (plasma + remainder; for the receptor PBPK also GI and lacrimal glands)
forms the body background; the bladder holds the urine produced in the ``void_interval_h``
before each scan (the patient voids then).
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

from tdt.pbpk import Administration, Schedule, reduced_linear

#: source organs of the phantom's PBPK model (besides the lesions)
_ORGANS = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow")
#: ligand amount of the phantom's administration (nmol)
_LIGAND_NMOL = 150.0


@functools.lru_cache(maxsize=8)
def pbpk_model(lesion_names: tuple[str, ...]):
    """One model (and so one jit compilation) per lesion set per process."""
    return reduced_linear(organs=(*_ORGANS, "remainder", *lesion_names), nuclide="Lu-177")


def perturbed_params(model, rng: np.random.Generator) -> dict[str, float]:
    """Default rates × exp(N(0, 0.15)) (organs) or exp(N(0, 0.4)) (lesions), in name order."""
    params = model.default_params()
    for name in model.parameter_names:
        scale = 0.4 if "lesion" in name else 0.15
        params[name] = float(params[name] * math.exp(rng.normal(0.0, scale)))
    return params


def _bladder_tia(fine_h, urine_fine, decay_per_h: float, void_interval_h: float) -> float:
    """TIA (MBq·h) of the bladder contents on the fine grid (trapezoid from t = 0)."""
    before = np.interp(np.maximum(fine_h - void_interval_h, 0.0), fine_h, urine_fine, left=0.0)
    held = np.where(fine_h >= void_interval_h,
                    urine_fine - before * np.exp(-decay_per_h * void_interval_h), urine_fine)
    return float(np.trapezoid(np.concatenate([[0.0], held]), np.concatenate([[0.0], fine_h])))


def simulate_activities(model, params, lesion_names, times_h, injected_mbq, void_interval_h):
    """PBPK activities (MBq) per structure at ``times_h`` and TIAs (MBq·h).

    The bladder holds U(t) − U(t − τ) e^{−λτ} (urine produced since the last void, decayed;
    U the cumulative urine activity, τ = ``void_interval_h``); its TIA is integrated on a fine
    grid to 3000 h. ``background`` = every model compartment not drawn (not a source, not
    urine): plasma + remainder for the reduced model.
    """
    schedule = Schedule([Administration(0.0, injected_mbq, _LIGAND_NMOL)])
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
    sources = (*_ORGANS, *lesion_names)
    activity = {name: act[name][:n] for name in sources}
    activity["urinary_bladder_contents"] = np.where(
        times >= void_interval_h, urine[:n] - urine[n:2 * n] * np.exp(-lam * void_interval_h),
        urine[:n])
    background = [c for c in model.compartments if c not in sources and c != "urine"]
    activity["background"] = sum(act[c][:n] for c in background)
    tias = {name: tia[name] for name in sources}
    tias["urinary_bladder_contents"] = _bladder_tia(fine, urine[2 * n:], lam, void_interval_h)
    tias["background"] = sum(tia[c] for c in background)
    return activity, tias
