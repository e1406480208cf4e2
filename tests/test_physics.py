"""tdt.physics against published values (independent of tdt's own code path)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

import tdt
from tdt.errors import InputError


def test_lu177_half_life_matches_icrp107():
    # ICRP 107 / EJNMMI Phys 2020;7:41 Table 1: T1/2 = 6.647 d = 159.53 h
    lu = tdt.nuclide("Lu-177")
    assert lu.half_life_h == pytest.approx(6.647 * 24, rel=1e-3)
    assert lu.half_life_h == pytest.approx(159.53, rel=1e-3)
    # reference/README.md: lambda = 4.3454e-3 /h
    assert lu.decay_constant_per_h == pytest.approx(4.3454e-3, rel=1e-3)


def test_lu177_energies_match_ejnmmi_phys_2020_table1():
    # EJNMMI Phys 2020;7:41, Table 1: beta 133.3 keV + IC 13.52 keV + Auger 1.13 keV = 147.9 keV
    # non-penetrating; X + gamma = 35.1 keV penetrating.
    lu = tdt.nuclide("Lu-177")
    assert lu.energy_nonpenetrating_mev * 1000 == pytest.approx(147.9, rel=0.01)
    assert lu.energy_penetrating_mev * 1000 == pytest.approx(35.1, rel=0.01)
    assert lu.energy_alpha_mev == 0.0
    # 147.9 keV = 2.3696e-14 J (reference/README.md)
    assert lu.energy_nonpenetrating_mev * tdt.units.JOULE_PER_MEV == pytest.approx(2.3696e-14, rel=0.01)


@pytest.mark.parametrize("name", ["Lu-177", "lu177", "177Lu", "LU-177", "177-lu", " lu-177 "])
def test_name_forms(name):
    assert tdt.nuclide(name).name == "Lu-177"


@pytest.mark.parametrize(
    "name, half_life_h, citation",
    [
        ("Y-90", 64.1, "ICRP 107: 64.10 h"),
        ("I-131", 8.0207 * 24, "ICRP 107: 8.0207 d"),
        ("Tb-161", 6.906 * 24, "ICRP 107: 6.906 d"),
        ("Ga-68", 67.71 / 60, "ICRP 107: 67.71 min"),
        ("Tc-99m", 6.015, "ICRP 107: 6.015 h"),
        ("In-111", 2.8047 * 24, "ICRP 107: 2.8047 d"),
        ("Pb-212", 10.64, "ICRP 107: 10.64 h"),
        ("Ac-225", 10.0 * 24, "ICRP 107: 10.0 d"),
    ],
)
def test_half_lives(name, half_life_h, citation):
    assert tdt.nuclide(name).half_life_h == pytest.approx(half_life_h, rel=1e-3), citation


def test_y90_mean_beta_energy():
    # Y-90 mean beta energy 0.9327 MeV (ICRP 107; MIRD: 0.9336 MeV); essentially no photons
    y90 = tdt.nuclide("Y-90")
    assert y90.energy_electron_mev == pytest.approx(0.933, rel=5e-3)
    assert y90.energy_penetrating_mev < 1e-4


def test_tb161_has_more_low_energy_electrons_than_lu177():
    # Tb-161 emits ~12 Auger + ~40 keV IC electrons per decay vs ~1 + 14 keV for Lu-177
    # (Alcocer-Avila et al., EJNMMI Phys 2020;7:33)
    tb, lu = tdt.nuclide("Tb-161"), tdt.nuclide("Lu-177")
    assert tb.energy_electron_mev - 0.1543 > 2.5 * (lu.energy_electron_mev - 0.1333)


def test_ac225_chain_sum():
    # 225Ac in equilibrium with daughters: ~27.9 MeV of alpha energy per decay of 225Ac
    # (4 alphas: 225Ac 5.8, 221Fr 6.3, 217At 7.1, 213Po 8.4 MeV; Kratochwil et al. JNM 2016;57:1941)
    alone = tdt.nuclide("Ac-225")
    chain = tdt.nuclide("Ac-225", chain=True)
    assert alone.energy_alpha_mev == pytest.approx(5.79 + 0.105, rel=0.01)
    assert 27.0 < chain.energy_alpha_mev < 28.8
    assert chain.half_life_h == alone.half_life_h
    assert "Bi-213" in chain.chain


def test_pb212_chain_sum():
    # 212Pb chain: one alpha per decay, 212Bi 6.05 MeV (35.9 %) or 212Po 8.78 MeV (64.1 %):
    # mean alpha energy ~ 7.8 MeV per 212Pb decay (NNDC / ICRP 107)
    chain = tdt.nuclide("Pb-212", chain=True)
    expected_alpha = 0.359 * 6.05 + 0.641 * 8.785
    assert chain.energy_alpha_mev == pytest.approx(expected_alpha, rel=0.03)
    # Tl-208's 2.6 MeV gamma weighted by 35.9 %: more than 1 MeV of photons per decay
    assert chain.energy_penetrating_mev > 1.0


def test_decay_factor_and_correction():
    lu = tdt.nuclide("Lu-177")
    assert lu.decay_factor(lu.half_life_h) == pytest.approx(0.5, rel=1e-12)
    assert np.allclose(lu.decay_factor(np.array([0.0, 2 * lu.half_life_h])), [1.0, 0.25])
    t0 = dt.datetime(2026, 1, 1, 8, 0)
    t1 = t0 + dt.timedelta(hours=lu.half_life_h)
    assert lu.decay_correct(100.0, measured_at=t0, reference_at=t1) == pytest.approx(50.0)
    assert lu.decay_correct(50.0, measured_at=t1, reference_at=t0) == pytest.approx(100.0)


def test_decay_factor_in_jax():
    import jax
    import jax.numpy as jnp

    lu = tdt.nuclide("Lu-177")
    grad = jax.grad(lambda t: lu.decay_factor(t))(jnp.asarray(10.0))
    assert float(grad) == pytest.approx(-lu.decay_constant_per_h * math.exp(-lu.decay_constant_per_h * 10))


def test_unknown_nuclide_suggests_close_matches():
    with pytest.raises(InputError, match=r"nuclide.*'Lu-17'.*Lu-177"):
        tdt.nuclide("Lu-17")
    with pytest.raises(InputError, match="nuclide"):
        tdt.nuclide("not a nuclide")


def test_nuclide_is_immutable():
    lu = tdt.nuclide("Lu-177")
    with pytest.raises(AttributeError):
        lu.half_life_h = 1.0  # type: ignore[misc]


def test_mixed_timezones_rejected():
    lu = tdt.nuclide("Lu-177")
    with pytest.raises(InputError, match="timezone"):
        lu.decay_correct(1.0, dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
