"""MIRD organ doses: D(target) = Σ_source Ã(source) · S(target ← source)  (Gy).

(MIRD Pamphlet 21, Bolch et al., JNM 2009;50:477.) Details:

* **Mass scaling** (``organ_masses_g``): the reference self-S of an organ is split into a
  non-penetrating part S_np = min(Δ_np / m_ref, S_self) (absorbed fraction 1 for electrons) and a
  photon part S_p = S_self - S_np. For the patient's mass m: S_self(m) = S_np (m_ref/m) +
  S_p (m_ref/m)^(2/3). The electron part ∝ 1/m is exact for local absorption; photon absorbed
  fractions grow ≈ m^(1/3) (Snyder et al., MIRD Pamphlet 11, 1975), hence S_p ∝ m^(-2/3), the
  scaling used by OLINDA/EXM (Stabin et al., JNM 2005;46:1023). Cross-organ S-values are not
  scaled.
* **Remainder of body** (MIRD Pamphlet 11; Cloutier et al., JNM 1973;14:53): when the whole-body
  TIA ``total_body`` is given, the remainder TIA is Ã_RB = Ã_TB - Σ_i Ã_i (floored at 0) over the
  source organs i given, and its S-value is
  S(t ← RB) = [m_TB S(t ← TB) - Σ_i m_i S(t ← i)] / (m_TB - Σ_i m_i)
  with ICRP 89 reference masses. TIAs of ``remainder`` and of VOIs that are not table organs
  (``plasma``, ``blood``, ``muscle``, ``gi``) are summed as Ã_RB directly (give either these or
  ``total_body``, not both).
* **Lesions** (``lesion_*`` keys): self-dose of a uniform sphere (:mod:`tdt.dosimetry._spheres`),
  given ``lesion_volumes_ml`` or ``lesion_masses_g``.
* **Organs without table S-values** (:data:`~tdt.dosimetry._names.SPHERE_ORGANS`, e.g.
  ``lacrimal_glands``): each of the n identical glands is a uniform sphere holding TIA/n in mass
  m/n (reference mass, or ``organ_masses_g`` for the patient's total); self-dose only.

The arithmetic is pure ``jax.numpy`` on the pre-loaded S matrix, so ``organ_doses`` works inside
``jax.jit`` / ``jax.vmap`` (name handling happens at trace time) and on TIAs with a leading axis
of draws.
"""

from __future__ import annotations

import csv
import functools

import jax.numpy as jnp

from tdt._types import Scalar, ScalarLike
from tdt.catalog import dataset_path
from tdt.dosimetry._names import (
    ALIASES,
    PHANTOMS,
    REMAINDER_TISSUES,
    SPHERE_ORGANS,
    canonical_organ,
    canonical_phantom,
    is_lesion,
    normalise,
    sphere_organ,
)
from tdt.dosimetry._spheres import _check_positive, _check_tia, sphere_dose
from tdt.dosimetry._svalues import SValueTable, svalue_table
from tdt.errors import InputError, unknown_name_error
from tdt.physics import nuclide as get_nuclide
from tdt.units import mev_per_decay_to_gy_g_per_mbq_h


@functools.lru_cache(maxsize=1)
def _icrp89_masses() -> dict[str, dict[str, float]]:
    masses: dict[str, dict[str, float]] = {"male": {}, "female": {}}
    with dataset_path("icrp89_reference_organ_masses").open(newline="") as handle:
        for row in csv.DictReader(handle):
            for sex in ("male", "female"):
                if row[f"adult_{sex}_g"]:
                    masses[sex][row["organ"]] = float(row[f"adult_{sex}_g"])
    return masses


def _phantom_masses(phantom: str) -> dict[str, float]:
    kind, sex = PHANTOMS[phantom]
    if kind == "olinda":
        return _icrp89_masses()[sex]
    return dict(svalue_table("Lu-177", phantom).target_mass_g)


def reference_mass_g(organ: str, phantom: str = "adult-male") -> float:
    """Reference mass (g) of ``organ`` in ``phantom`` (ICRP 89 for the OLINDA-style adults,
    the OpenDose target masses for ICRP 110)."""
    masses = _phantom_masses(canonical_phantom(phantom))
    return masses[canonical_organ(organ, masses, "organ")]


def scaled_self_svalue(
    s_self: ScalarLike,
    m_ref_g: ScalarLike,
    m_patient_g: ScalarLike,
    delta_np_gy_g_per_mbq_h: ScalarLike,
) -> Scalar:
    """Self-S (Gy/(MBq·h)) scaled from the reference mass to the patient's (module docstring)."""
    s_np = jnp.minimum(delta_np_gy_g_per_mbq_h / m_ref_g, s_self)
    s_p = s_self - s_np
    ratio = m_ref_g / jnp.asarray(m_patient_g, dtype=float)
    return s_np * ratio + s_p * ratio ** (2.0 / 3.0)


def _classify(tia_mbq_h: dict, table: SValueTable, ignore, spheres: dict | None = None):
    ignored = {normalise(x) for x in ignore}
    spheres = {} if spheres is None else spheres
    organs: dict[str, object] = {}
    lesions: dict[str, object] = {}
    remainder: dict[str, object] = {}
    total_body = None
    organ_sources = tuple(s for s in table.sources if s != "total_body")
    allowed = (*organ_sources, *REMAINDER_TISSUES, "total_body") if "total_body" in table.sources \
        else organ_sources
    for key, value in tia_mbq_h.items():
        if not isinstance(key, str):
            raise InputError(f"tia_mbq_h: keys must be organ names (str), got {key!r}")
        if normalise(key) in ignored:
            continue
        if is_lesion(key):
            lesions[key] = value
            continue
        if sphere_organ(key) is not None:
            if sphere_organ(key) in spheres:
                raise InputError(f"tia_mbq_h: organ {sphere_organ(key)!r} given twice (key {key!r})")
            spheres[sphere_organ(key)] = value
            continue
        try:
            name = canonical_organ(key, allowed, "tia_mbq_h organ")
        except InputError:
            if "total_body" not in table.sources and _remainder_or_total_name(key) is not None:
                raise InputError(
                    f"tia_mbq_h organ: {key!r} is not a source of phantom {table.phantom!r} "
                    f"(sources: {', '.join(organ_sources)}); use an OLINDA-style phantom "
                    "('adult-male', 'adult-female') for other sources and the remainder"
                ) from None
            raise
        if name in organs or name in remainder or (name == "total_body" and total_body is not None):
            raise InputError(f"tia_mbq_h: organ {name!r} given twice (key {key!r})")
        if name == "total_body":
            total_body = value
        elif name in REMAINDER_TISSUES:
            remainder[name] = value
        else:
            organs[name] = value
    if total_body is not None and remainder:
        raise InputError(
            f"tia_mbq_h: give either 'total_body' (whole-body TIA; the remainder is derived) or "
            f"remainder tissues {sorted(remainder)}, not both"
        )
    return organs, lesions, remainder, total_body


def _remainder_or_total_name(name: str):
    key = normalise(name)
    key = ALIASES.get(key, key)
    return key if key in REMAINDER_TISSUES or key == "total_body" else None


def organ_doses(
    tia_mbq_h: dict,
    nuclide: str = "Lu-177",
    phantom: str = "adult-male",
    organ_masses_g: dict | None = None,
    lesion_volumes_ml: dict | None = None,
    lesion_masses_g: dict | None = None,
    targets=None,
    ignore=("urine",),
) -> dict:
    """Absorbed dose (Gy) per target organ from source TIAs (MBq·h), MIRD schema.

    Parameters
    ----------
    tia_mbq_h: {organ: TIA}; values are scalars or arrays with a leading axis of draws (all
        broadcastable together). Keys are canonical organ names or aliases; ``total_body`` (whole
        body, the remainder is derived), ``remainder``/``plasma``/``blood``/``muscle``/``gi`` (rest
        of body), ``lesion_*`` (spheres).
    nuclide, phantom: select the S-value table (``adult-male``, ``adult-female``, ``icrp110-am``,
        ``icrp110-af``).
    organ_masses_g: patient organ masses (g) to scale self-S-values (see module docstring).
    lesion_volumes_ml / lesion_masses_g: per lesion key, required for every lesion.
    targets: target organs to return (default: all targets of the table).
    ignore: keys to drop (default ``("urine",)``: excreted activity irradiates no organ).

    Returns {target: dose in Gy} with the broadcast shape of the inputs; lesion keys give
    sphere self-doses.
    """
    table = svalue_table(nuclide, phantom)
    if not isinstance(tia_mbq_h, dict) or not tia_mbq_h:
        raise InputError("tia_mbq_h: expected a non-empty dict {organ: TIA in MBq·h}")
    spheres: dict[str, object] = {}
    organs, lesions, remainder, total_body = _classify(tia_mbq_h, table, ignore, spheres)
    masses = _phantom_masses(table.phantom)
    sphere_masses = {name: SPHERE_ORGANS[name][0] for name in SPHERE_ORGANS}

    target_names = table.targets if targets is None else tuple(  # sphere organs: always returned
        canonical_organ(t, table.targets, "targets") for t in targets
        if not (isinstance(t, str) and sphere_organ(t) is not None)
    )
    target_idx = [table.targets.index(t) for t in target_names]
    s_ref = table.s_gy_per_mbq_h
    delta_np = mev_per_decay_to_gy_g_per_mbq_h(get_nuclide(nuclide).energy_nonpenetrating_mev)
    scaled = _patient_masses(organ_masses_g, table, masses, sphere_masses)

    doses: dict[str, object] = {t: 0.0 for t in target_names}
    for organ, value in organs.items():
        tia = _check_tia(organ, value)
        j = table.sources.index(organ)
        for t, i in zip(target_names, target_idx, strict=True):
            s = s_ref[i, j]
            if t == organ and organ in scaled:
                s = scaled_self_svalue(s, masses[organ], scaled[organ], delta_np)
            doses[t] = doses[t] + s * tia
    if total_body is not None or remainder:
        _add_remainder_of_body(doses, table, masses, organs, spheres, remainder, total_body,
                               target_names, target_idx)

    result = {t: jnp.asarray(d, dtype=float) for t, d in doses.items()}
    for name, value in spheres.items():
        n_glands = SPHERE_ORGANS[name][1]
        tia = _check_tia(name, value)
        result[name] = sphere_dose(tia / n_glands, mass_g=sphere_masses[name] / n_glands,
                                   nuclide=nuclide)
    if lesions:
        _add_lesion_doses(result, lesions, lesion_volumes_ml, lesion_masses_g, nuclide)
    return result


def _patient_masses(organ_masses_g: dict | None, table, masses: dict,
                    sphere_masses: dict) -> dict:
    """Patient organ masses (g) by canonical name, checked; sphere-organ masses (salivary glands
    etc.) are written into ``sphere_masses`` instead."""
    scaled: dict[str, object] = {}
    for organ, mass in (organ_masses_g or {}).items():
        if isinstance(organ, str) and sphere_organ(organ) is not None:
            _check_positive(f"organ_masses_g[{organ!r}]", mass)
            sphere_masses[sphere_organ(organ)] = mass
            continue
        name = canonical_organ(organ, table.targets, "organ_masses_g")
        _check_positive(f"organ_masses_g[{organ!r}]", mass)
        if name not in masses:
            raise InputError(
                f"organ_masses_g: no reference mass of {name!r} in phantom {table.phantom!r}"
            )
        scaled[name] = mass
    return scaled


def _add_remainder_of_body(doses: dict, table, masses: dict, organs: dict, spheres: dict,
                           remainder: dict, total_body, target_names, target_idx) -> None:
    """Add the remainder-of-body contribution (MIRD: S(t←RB) from the total-body S-value and the
    source-organ S-values, mass-weighted) to ``doses`` in place."""
    s_ref = table.s_gy_per_mbq_h
    missing = [o for o in organs if o not in masses]
    if missing:
        raise InputError(
            f"tia_mbq_h: no reference mass for source(s) {missing} in phantom "
            f"{table.phantom!r}; the remainder-of-body correction needs them"
        )
    m_tb = masses["total_body"]
    m_sources = sum(masses[o] for o in organs)
    j_tb = table.sources.index("total_body")
    if total_body is not None:
        tia_rb = _check_tia("total_body", total_body)
        for value in (*organs.values(), *spheres.values()):
            tia_rb = tia_rb - jnp.asarray(value, dtype=float)
        tia_rb = jnp.maximum(tia_rb, 0.0)
    else:
        tia_rb = sum(_check_tia(k, v) for k, v in remainder.items())
    for t, i in zip(target_names, target_idx, strict=True):
        s_rb = (m_tb * s_ref[i, j_tb] - sum(
            masses[o] * s_ref[i, table.sources.index(o)] for o in organs
        )) / (m_tb - m_sources)
        doses[t] = doses[t] + s_rb * tia_rb


def _add_lesion_doses(result: dict, lesions: dict, lesion_volumes_ml: dict | None,
                      lesion_masses_g: dict | None, nuclide: str) -> None:
    """Sphere self-doses (Gy) of the lesions, written into ``result``."""
    volumes = lesion_volumes_ml or {}
    lmasses = lesion_masses_g or {}
    for key in (*volumes, *lmasses):
        if key not in lesions:
            raise unknown_name_error("lesion_volumes_ml/lesion_masses_g key", key, lesions)
    for key, value in lesions.items():
        if key not in volumes and key not in lmasses:
            raise InputError(
                f"lesion_volumes_ml: lesion {key!r} has a TIA but no volume (mL) or mass (g); "
                "pass lesion_volumes_ml={...} or lesion_masses_g={...}"
            )
        result[key] = sphere_dose(value, volume_ml=volumes.get(key),
                                  mass_g=lmasses.get(key), nuclide=nuclide)
