"""Conversions added to tdt.units for issue #20 (one ln 2, s/ms/h, kg/g, mm³/mL, MeV/keV),
checked against definitions (SI prefixes, exp(ln 2) = 2), not against the code's own output."""

import math

import numpy as np

from tdt import units


def test_one_ln2():
    assert math.exp(units.LN2) == 2.0
    assert units.LN2 == math.log(2.0)
    # Lu-177: T½ = 6.647 d (NNDC) → λ = ln 2 / 159.528 h
    rate = units.half_life_to_rate(6.647 * 24.0)
    assert math.isclose(rate, 0.004345, rel_tol=1e-3)
    assert math.isclose(units.rate_to_half_life(rate), 6.647 * 24.0, rel_tol=1e-15)
    arr = units.half_life_to_rate(np.array([1.0, 2.0]))
    np.testing.assert_allclose(arr * np.array([1.0, 2.0]), math.log(2.0), rtol=1e-15)


def test_time_mass_volume_energy():
    assert units.seconds_to_h(7200.0) == 2.0
    assert units.h_to_seconds(0.5) == 1800.0
    assert units.ms_to_s(2500.0) == 2.5
    assert units.s_to_ms(0.25) == 250.0
    assert units.per_h_to_per_s(3600.0) == 1.0
    assert units.kg_to_g(70.0) == 70000.0
    assert units.mm3_to_ml(4.0 * 4.0 * 4.0) == 0.064  # a 4 mm voxel is 0.064 cm³
    assert units.mev_to_kev(0.1330) == 133.0
    assert units.mbq_to_bq(7400.0) == 7.4e9
    assert units.seconds_to_h(units.h_to_seconds(3.7)) == 3.7
