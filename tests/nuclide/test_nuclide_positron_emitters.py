"""Decay data of the positron emitters of theranostic pairs (F-18, Ga-68, Cu-64, Zr-89, I-124).

Independent references (not tdt's own table):
- half-lives: ICRP Publication 107 (Ann. ICRP 38(3), 2008) as printed: 18F 109.77 min, 68Ga
  67.71 min, 64Cu 12.700 h, 89Zr 78.41 h, 124I 4.176 d;
- positron yields and mean positron energies: ENSDF via NNDC NuDat 3 (18F: 96.86 %, 249.8 keV;
  68Ga: 87.94 % at 836.0 keV + 1.20 % at 352.6 keV = 89.14 %, mean 829.5 keV; 64Cu: 17.52 %, 278.2 keV). ICRP-107 and
  ENSDF evaluations differ by up to ~1.5 % in the yields, hence the tolerances.
Identities: annihilation energy per decay = 2 m_e c² × positron yield (m_e c² = 0.51099895 MeV,
CODATA 2018); the β⁺ energy per decay = yield × mean positron energy.
"""

from __future__ import annotations

import math

import pytest

from tdt.imaging._radiopharmaceutical import nuclide_from_text
from tdt.physics import available_nuclides, nuclide

ELECTRON_REST_MEV = 0.51099895


@pytest.mark.parametrize(("name", "half_life_h"), [
    ("F-18", 109.77 / 60.0), ("Ga-68", 67.71 / 60.0), ("Cu-64", 12.700),
    ("Zr-89", 78.41), ("I-124", 4.176 * 24.0),
])
def test_half_lives_icrp107(name, half_life_h):
    assert name in available_nuclides()
    assert nuclide(name).half_life_h == pytest.approx(half_life_h, rel=1e-6)
    assert nuclide(name).decay_constant_per_h == pytest.approx(math.log(2) / half_life_h)


def _rows():
    from tdt.physics import _energy_rows

    return _energy_rows()


@pytest.mark.parametrize(("name", "positron_yield", "mean_positron_mev"), [
    ("F-18", 0.9686, 0.2498), ("Ga-68", 0.8914, 0.8295), ("Cu-64", 0.1752, 0.2782),
])
def test_positron_yield_and_energy(name, positron_yield, mean_positron_mev):
    row = _rows()[name]
    yield_from_annihilation = row["annihilation_mev"] / (2.0 * ELECTRON_REST_MEV)
    assert yield_from_annihilation == pytest.approx(positron_yield, rel=0.015)
    assert row["betaplus_mev"] / yield_from_annihilation == pytest.approx(mean_positron_mev,
                                                                          rel=0.01)


def test_f18_is_a_pure_positron_emitter():
    f18 = nuclide("F-18")
    assert _rows()["F-18"]["gamma_mev"] == 0.0 and _rows()["F-18"]["betaminus_mev"] == 0.0
    # everything emitted: β⁺ kinetic energy + two 511 keV photons per positron
    assert f18.energy_total_mev == pytest.approx(0.2416 + 0.9886, abs=2e-4)


@pytest.mark.parametrize(("meaning", "name"), [
    ("^18^Fluorine", "F-18"), ("^68^Gallium", "Ga-68"), ("^64^Copper", "Cu-64"),
    ("Zr-89", "Zr-89"), ("^124^Iodine", "I-124"),
])
def test_dicom_code_meanings_resolve(meaning, name):
    assert nuclide_from_text(meaning) == name


def test_decay_over_one_half_life():
    f18 = nuclide("18F")
    assert f18.decay_factor(109.77 / 60.0) == pytest.approx(0.5, rel=1e-12)
