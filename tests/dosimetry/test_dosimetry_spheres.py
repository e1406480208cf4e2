"""Sphere (lesion) model: absorbed fraction against a Monte Carlo of straight tracks, electron
range against NIST ESTAR, local-absorption limit."""

from __future__ import annotations

import numpy as np
import pytest

import tdt
from tdt.dosimetry import electron_range_mm, sphere_absorbed_fraction, sphere_dose, sphere_svalue
from tdt.errors import InputError
from tdt.units import mev_per_decay_to_gy_g_per_mbq_h


@pytest.mark.parametrize("x", [0.1, 0.5, 1.0, 1.9, 3.0])
def test_absorbed_fraction_matches_monte_carlo(x):
    """Independent estimate: uniform points in a unit sphere, isotropic directions, energy
    deposited uniformly along a straight track of length x; φ = mean fraction inside."""
    rng = np.random.default_rng(11)
    n, steps = 20_000, 200
    p = rng.normal(size=(n, 3))
    p *= (rng.uniform(size=(n, 1)) ** (1 / 3)) / np.linalg.norm(p, axis=1, keepdims=True)
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    s = (np.arange(steps) + 0.5) / steps * x
    inside = np.linalg.norm(p[:, None, :] + s[None, :, None] * u[:, None, :], axis=2) <= 1.0
    mc = inside.mean()
    assert float(sphere_absorbed_fraction(1.0, x)) == pytest.approx(mc, abs=0.006)


@pytest.mark.parametrize(("energy_mev", "estar_csda_g_cm2"), [(0.1, 0.01431), (1.0, 0.4367)])
def test_katz_penfold_range_close_to_estar(energy_mev, estar_csda_g_cm2):
    # NIST ESTAR CSDA ranges in water; Katz–Penfold is a practical range, within ~10 %
    assert float(electron_range_mm(energy_mev)) == pytest.approx(estar_csda_g_cm2 * 10, rel=0.1)


def test_large_sphere_is_local_absorption():
    nuc = tdt.nuclide("Lu-177")
    delta = mev_per_decay_to_gy_g_per_mbq_h(nuc.energy_nonpenetrating_mev)
    assert float(sphere_svalue(mass_g=1000.0)) == pytest.approx(delta / 1000.0, rel=2e-3)
    # small spheres lose electrons: S·m decreases monotonically with decreasing size
    sm = [float(sphere_svalue(mass_g=m)) * m for m in (0.01, 0.1, 1.0, 10.0)]
    assert sm == sorted(sm) and sm[-1] < delta


def test_sphere_dose_volume_and_mass_consistent_and_draws():
    tia = np.array([100.0, 200.0])
    a = sphere_dose(tia, volume_ml=5.0, density_g_per_ml=1.0)
    b = sphere_dose(tia, mass_g=5.0, density_g_per_ml=1.0)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert a.shape == (2,)
    assert float(a[1]) == pytest.approx(2 * float(a[0]))


def test_alpha_emitter_chain_large_sphere_local_absorption():
    chain = tdt.nuclide("Ac-225", chain=True)
    delta = mev_per_decay_to_gy_g_per_mbq_h(chain.energy_nonpenetrating_mev)
    assert float(sphere_svalue(mass_g=500.0, nuclide=chain)) == pytest.approx(delta / 500.0,
                                                                            rel=2e-3)


def test_sphere_bad_input():
    with pytest.raises(InputError, match="volume_ml"):
        sphere_dose(1.0, volume_ml=-1.0)
    with pytest.raises(InputError, match="exactly one"):
        sphere_dose(1.0)
    with pytest.raises(InputError, match="tia_mbq_h"):
        sphere_dose(-1.0, volume_ml=1.0)
