"""Radionuclide data: half-lives (radioactivedecay, ICRP-107) and mean emitted energies per decay.

Half-lives and decay chains come from the ``radioactivedecay`` package's ICRP-107 dataset, not
typed by hand. Mean energies emitted per decay are vendored in
``data_catalog/nuclides/icrp107_mean_energies.csv``, derived from ICRP Publication 107 (ICRP,
2008. Nuclear Decay Data for Dosimetric Calculations. Ann. ICRP 38(3)); see the generator script
beside it. For 177Lu these reproduce EJNMMI Phys 2020;7:41, Table 1 (β 133.3 keV, IC 13.52 keV,
Auger 1.13 keV; photons 35.1 keV).

Energy classes (MIRD convention): *non-penetrating* = β⁻, β⁺, internal-conversion and Auger
electrons (+ α and α recoil for alpha emitters); *penetrating* = γ, X-rays and annihilation
photons. Alpha energy is also reported separately so that users can weight it by an RBE.
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import math
import re
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from tdt.catalog import reference_path
from tdt.errors import InputError, unknown_name_error
from tdt.units import half_life_to_rate, seconds_to_h, time_to_h

#: Daughters included by ``nuclide(name, chain=True)`` (secular equilibrium, branching from
#: radioactivedecay / ICRP-107). Daughters with half-lives short compared with the parent.
CHAIN_DAUGHTERS: dict[str, tuple[str, ...]] = {
    # 225Ac (10 d) → 221Fr (4.9 min) → 217At (32 ms) → 213Bi (45.6 min) → 213Po (4.2 µs, 97.9 %)
    #   / 209Tl (2.2 min, 2.1 %) → 209Pb (3.25 h) → 209Bi (stable for dosimetry)
    "Ac-225": ("Fr-221", "At-217", "Rn-217", "Bi-213", "Po-213", "Tl-209", "Pb-209"),
    # 212Pb (10.6 h) → 212Bi (60.6 min) → 212Po (0.3 µs, 64.1 %) / 208Tl (3.05 min, 35.9 %) → 208Pb
    "Pb-212": ("Bi-212", "Po-212", "Tl-208"),
}

_ENERGY_TABLE = "nuclides/icrp107_mean_energies.csv"


@dataclass(frozen=True)
class Nuclide:
    """An immutable radionuclide record. Energies are mean MeV emitted per decay of the parent.

    Attributes
    ----------
    name: canonical name, e.g. ``"Lu-177"``.
    half_life_h: physical half-life (h), from radioactivedecay (ICRP-107).
    energy_electron_mev: β⁻ + β⁺ + IC + Auger electrons, MeV per decay.
    energy_alpha_mev: α particles + α recoil nuclei, MeV per decay.
    energy_penetrating_mev: γ + X + annihilation photons, MeV per decay.
    chain: daughters included (secular equilibrium), ``()`` for the nuclide alone.
    """

    name: str
    half_life_h: float
    energy_electron_mev: float
    energy_alpha_mev: float
    energy_penetrating_mev: float
    chain: tuple[str, ...] = field(default=())

    @property
    def decay_constant_per_h(self) -> float:
        """Physical decay constant λ = ln 2 / T½ (1/h)."""
        return half_life_to_rate(self.half_life_h)

    @property
    def energy_nonpenetrating_mev(self) -> float:
        """Non-penetrating energy per decay (electrons + alphas), MeV."""
        return self.energy_electron_mev + self.energy_alpha_mev

    @property
    def energy_total_mev(self) -> float:
        """All emitted energy per decay, MeV."""
        return self.energy_nonpenetrating_mev + self.energy_penetrating_mev

    def decay_factor(self, t_h):
        """Fraction of activity left after ``t_h`` hours: exp(-λ t). Works on arrays (NumPy/JAX)."""
        if isinstance(t_h, (int, float)):
            return math.exp(-self.decay_constant_per_h * t_h)
        # JAX arrays keep their type (traceable), everything else goes through NumPy
        if hasattr(t_h, "aval") or type(t_h).__module__.startswith("jax"):
            return jnp.exp(-self.decay_constant_per_h * t_h)
        return np.exp(-self.decay_constant_per_h * np.asarray(t_h, dtype=float))

    def decay_correct(
        self, activity_mbq, measured_at: _dt.datetime, reference_at: _dt.datetime
    ):
        """Decay-correct an activity measured at ``measured_at`` to ``reference_at`` (MBq).

        A(ref) = A(meas) · exp(-λ (t_ref - t_meas)); a reference time after the measurement gives
        a smaller activity. Both datetimes must be both naive or both timezone-aware.
        """
        if (measured_at.tzinfo is None) != (reference_at.tzinfo is None):
            raise InputError(
                "decay_correct: measured_at and reference_at must be both naive or both "
                "timezone-aware datetimes"
            )
        delta_h = seconds_to_h((reference_at - measured_at).total_seconds())
        return activity_mbq * self.decay_factor(delta_h)


def _canonical_name(name: str) -> str:
    """'Lu-177', 'lu177', '177Lu', '177-lu', 'Lu177m' → 'Lu-177' / 'Lu-177m'."""
    if not isinstance(name, str):
        raise InputError(f"nuclide: expected a name such as 'Lu-177', got {type(name).__name__}")
    text = name.strip().replace(" ", "").replace("_", "-")
    m = re.fullmatch(r"([A-Za-z]{1,2})-?(\d{1,3})([mn]?)", text)
    if m is None:
        m2 = re.fullmatch(r"(\d{1,3})([mn]?)-?([A-Za-z]{1,2})", text)
        if m2 is None:
            raise InputError(
                f"nuclide: cannot parse {name!r}; expected a form such as 'Lu-177', 'lu177' or "
                "'177Lu'"
            )
        mass, meta, symbol = m2.groups()
    else:
        symbol, mass, meta = m.groups()
    return f"{symbol.capitalize()}-{int(mass)}{meta.lower()}"


@functools.lru_cache(maxsize=1)
def _energy_rows() -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    with reference_path(_ENERGY_TABLE).open() as handle:
        for row in csv.DictReader(handle):
            rows[row["nuclide"]] = {
                k: float(v) for k, v in row.items() if k.endswith("_mev")
            } | {"half_life_h": time_to_h(float(row["half_life"]), row["half_life_unit"])}
    return rows


@functools.lru_cache(maxsize=1)
def _rd_inventory_names() -> frozenset[str]:
    # radioactivedecay takes seconds to import; only when a nuclide is first looked up
    import radioactivedecay as rd

    return frozenset(rd.DEFAULTDATA.nuclides)


def _half_life_h(canonical: str) -> float:
    # radioactivedecay takes seconds to import; only when a nuclide is first looked up
    import radioactivedecay as rd

    return float(rd.Nuclide(canonical).half_life("h"))


def _energies(canonical: str) -> tuple[float, float, float]:
    row = _energy_rows()[canonical]
    electrons = row["betaminus_mev"] + row["betaplus_mev"] + row["IE_mev"] + row["auger_mev"]
    alphas = row["alpha_mev"] + row["alpha_recoil_mev"]
    photons = row["gamma_mev"] + row["X_mev"] + row["annihilation_mev"]
    return electrons, alphas, photons


def _equilibrium_yields(parent: str, daughters: tuple[str, ...]) -> dict[str, float]:
    """Decays of each daughter per decay of the parent in secular equilibrium (branching only)."""
    # radioactivedecay takes seconds to import; only when a nuclide is first looked up
    import radioactivedecay as rd

    yields = {parent: 1.0}
    frontier = [parent]
    while frontier:
        current = frontier.pop()
        nuc = rd.Nuclide(current)
        for child, fraction in zip(nuc.progeny(), nuc.branching_fractions(), strict=True):
            if child in daughters:
                yields[child] = yields.get(child, 0.0) + yields[current] * fraction
                frontier.append(child)
    return yields


@functools.lru_cache(maxsize=64)
def nuclide(name: str, chain: bool = False) -> Nuclide:
    """Return the :class:`Nuclide` record for ``name`` ("Lu-177", "lu177", "177Lu" all work).

    With ``chain=True`` (alpha emitters ``Ac-225`` and ``Pb-212`` only), the energies are the sum
    over the daughters listed in :data:`CHAIN_DAUGHTERS` in secular equilibrium, each weighted by
    its branching from the parent (radioactivedecay, ICRP-107); the half-life stays the parent's.
    """
    canonical = _canonical_name(name)
    table = _energy_rows()
    if canonical not in table:
        if canonical in _rd_inventory_names():
            raise InputError(
                f"nuclide: {canonical!r} is in ICRP-107 but tdt has no vendored emission energies "
                f"for it; available: {', '.join(sorted(table))}"
            )
        raise unknown_name_error("nuclide", name, table)
    if chain:
        if canonical not in CHAIN_DAUGHTERS:
            raise InputError(
                f"nuclide: chain=True is defined for {sorted(CHAIN_DAUGHTERS)}, not {canonical!r}"
            )
        daughters = CHAIN_DAUGHTERS[canonical]
        yields = _equilibrium_yields(canonical, daughters)
        sums = [0.0, 0.0, 0.0]
        for member, weight in yields.items():
            for i, value in enumerate(_energies(member)):
                sums[i] += weight * value
        return Nuclide(canonical, _half_life_h(canonical), *sums, chain=daughters)
    return Nuclide(canonical, _half_life_h(canonical), *_energies(canonical))


def available_nuclides() -> list[str]:
    """Names of the nuclides with vendored emission energies."""
    return sorted(_energy_rows())
