"""Self-dose to lesions modelled as uniform spheres (any nuclide).

D = Ã · [Δ_e φ_e(R) + Δ_α] / m   (Gy; Ã in MBq·h, Δ in Gy·g/(MBq·h), m in g)

* Electrons (β, IC, Auger): absorbed fraction of a uniform, isotropic source in a sphere of
  radius R for straight tracks of length d depositing energy uniformly along the path
  (continuous slowing down, constant stopping power), obtained by integrating the geometric
  escape probability P(s) = 1 - 3s/(4R) + s³/(16R³) (s ≤ 2R; the chord-length result for a
  sphere, Kellerer, Radiat Res 1971;47:359) along the track:

      φ_e = 1 - 3x/8 + x³/64       for x = d/R ≤ 2,     φ_e = 3/(4x) for x > 2.

  d is the Katz–Penfold range of an electron with the nuclide's mean electron energy per decay
  (Katz L, Penfold AS, Rev Mod Phys 1952;24:28: R [mg/cm²] = 412 E^(1.265 - 0.0954 ln E),
  E in MeV, 0.01–2.5 MeV) in tissue of the given density. Tortuous real tracks travel less far
  than d, so φ_e is slightly underestimated (conservative for the escape); for 177Lu
  (d ≈ 0.26 mm) φ_e ≥ 0.98 for spheres of 1 mL and more.
* α particles (and recoils): φ = 1 (ranges < 0.1 mm).
* Photons: neglected (φ_p = 0). For 177Lu the photon energy is 35 keV per decay against 148 keV
  non-penetrating, and the photon absorbed fraction of a 100 g sphere is of order 0.1, so this
  underestimates the self-dose by ≲ 2–3 % (compare the OLINDA sphere model, Stabin & Konijnenberg,
  JNM 2000;41:149).

In the large-sphere limit this is the local-absorption estimate D = Ã Δ_np / m (MIRD Pamphlet 21,
Bolch et al., JNM 2009;50:477).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from tdt._types import Scalar, ScalarLike
from tdt.errors import InputError, warn_implausible
from tdt.physics import nuclide as get_nuclide
from tdt.units import mev_per_decay_to_gy_g_per_mbq_h

#: Default tissue density (g/mL) to turn a lesion volume into a mass: soft tissue (ICRU Report
#: 44 gives 1.03–1.06 g/cm³ for soft tissues).
SOFT_TISSUE_DENSITY_G_PER_ML = 1.04


def electron_range_mm(energy_mev: ScalarLike, density_g_per_ml: float = 1.0) -> Scalar:
    """Katz–Penfold electron range (mm) in a medium of ``density_g_per_ml``.

    R [mg/cm²] = 412 E^(1.265 - 0.0954 ln E), E in MeV (valid 0.01–2.5 MeV; Katz & Penfold 1952).
    """
    e = jnp.asarray(energy_mev, dtype=float)
    n = 1.265 - 0.0954 * jnp.log(e)
    range_mg_cm2 = 412.0 * e**n
    return range_mg_cm2 / 1000.0 / density_g_per_ml * 10.0


def sphere_absorbed_fraction(radius_mm: ScalarLike, track_length_mm: ScalarLike) -> Scalar:
    """Absorbed fraction of straight tracks of length d, uniform isotropic source in a sphere.

    φ = 1 - 3x/8 + x³/64 for x = d/R ≤ 2, else 3/(4x) (see module docstring). Pure jnp.
    """
    x = jnp.asarray(track_length_mm, dtype=float) / jnp.asarray(radius_mm, dtype=float)
    inside = 1.0 - 3.0 * x / 8.0 + x**3 / 64.0
    outside = 3.0 / (4.0 * jnp.maximum(x, 2.0))
    return jnp.where(x <= 2.0, inside, outside)


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_positive(field: str, value) -> None:
    if value is None or not _concrete(value):
        return
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{field}: expected finite values > 0, got {arr.tolist()}")


#: 100 GBq decaying in one source with a 1000 h mean life; beyond this a TIA's unit is wrong
#: (Bq·h or Bq·s passed as MBq·h): a PlausibilityWarning, not an error
TIA_MAX_MBQ_H = 1e8


def _check_tia(name: str, value):
    if _concrete(value):
        if isinstance(value, (str, bytes, dict)):
            raise InputError(f"tia_mbq_h[{name!r}]: got a {type(value).__name__} {value!r:.40}; "
                             "expected a number (MBq·h)")
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"tia_mbq_h[{name!r}]: {value!r:.40} is not numeric; expected "
                             "MBq·h") from None
        if not np.all(np.isfinite(arr)):
            raise InputError(f"tia_mbq_h[{name!r}]: NaN or infinite TIA; expected finite MBq·h")
        if np.any(arr < 0):
            raise InputError(f"tia_mbq_h[{name!r}]: negative TIA ({arr.min():.4g} MBq·h)")
        if arr.size and arr.max() > TIA_MAX_MBQ_H:
            warn_implausible(f"tia_mbq_h[{name!r}]", f"{arr.max():.4g} MBq·h",
                             f"<= {TIA_MAX_MBQ_H:g} MBq·h (100 GBq x 1000 h mean life)",
                             stacklevel=3)
    return jnp.asarray(value, dtype=float)


def sphere_svalue(
    volume_ml: ScalarLike | None = None,
    mass_g: ScalarLike | None = None,
    nuclide: str = "Lu-177",
    density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML,
) -> Scalar:
    """Self S-value of a uniform sphere, Gy/(MBq·h). Give ``volume_ml`` or ``mass_g``.

    ``nuclide``: a name or a :class:`tdt.physics.Nuclide` (``nuclide("Ac-225", chain=True)``
    includes the daughters in equilibrium)."""
    if (volume_ml is None) == (mass_g is None):
        raise InputError("sphere: give exactly one of volume_ml and mass_g")
    if not (isinstance(density_g_per_ml, (int, float)) and density_g_per_ml > 0):
        raise InputError(f"density_g_per_ml: expected a number > 0, got {density_g_per_ml!r}")
    _check_positive("volume_ml", volume_ml)
    _check_positive("mass_g", mass_g)
    # a Nuclide record (e.g. nuclide("Ac-225", chain=True)) is used as given
    nuc = nuclide if hasattr(nuclide, "energy_alpha_mev") else get_nuclide(nuclide)
    if mass_g is None:
        volume = jnp.asarray(volume_ml, dtype=float)
        mass = volume * density_g_per_ml
    else:
        mass = jnp.asarray(mass_g, dtype=float)
        volume = mass / density_g_per_ml
    radius_mm = (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0) * 10.0
    phi_e = 1.0
    if nuc.energy_electron_mev > 0:
        track = electron_range_mm(nuc.energy_electron_mev, density_g_per_ml)
        phi_e = sphere_absorbed_fraction(radius_mm, track)
    energy = (
        mev_per_decay_to_gy_g_per_mbq_h(nuc.energy_electron_mev) * phi_e
        + mev_per_decay_to_gy_g_per_mbq_h(nuc.energy_alpha_mev)
    )
    return energy / mass


def sphere_dose(
    tia_mbq_h: ScalarLike,
    volume_ml: ScalarLike | None = None,
    mass_g: ScalarLike | None = None,
    nuclide: str = "Lu-177",
    density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML,
) -> Scalar:
    """Absorbed self-dose (Gy) of a spherical lesion with TIA ``tia_mbq_h`` (MBq·h).

    Give the lesion's ``volume_ml`` (mL) or ``mass_g`` (g). Arrays broadcast (e.g. a leading axis
    of draws); jittable when the inputs are arrays. Cross-dose from organs is not included.
    """
    if _concrete(tia_mbq_h):
        _check_tia("lesion", tia_mbq_h)
    return jnp.asarray(tia_mbq_h, dtype=float) * sphere_svalue(
        volume_ml, mass_g, nuclide, density_g_per_ml
    )
