"""Effective dose (ICRP 103) from organ doses: identities of the weighting scheme."""

from __future__ import annotations

import pytest

from tdt.dosimetry import effective_dose, organ_doses
from tdt.errors import InputError


def _male_targets():
    return list(organ_doses({"kidneys": 1.0}, phantom="adult-male"))


def test_uniform_dose_gives_the_sum_of_the_present_weights():
    # ICRP 103 Table 3 weights sum to 1; the adult-male S-value table has no skin (0.01) and no
    # breast (0.12), so a uniform 2 Gy gives E = 2 * (1 - 0.13) Sv exactly.
    result = effective_dose({t: 2.0 for t in _male_targets()})
    assert result.missing_tissues == ["breast", "skin"]
    assert result.effective_dose_sv == pytest.approx(2.0 * 0.87, rel=1e-12)


def test_remainder_is_the_mean_of_the_present_remainder_tissues():
    doses = {t: 0.0 for t in _male_targets()}
    doses["kidneys"] = 10.0  # a remainder tissue (ICRP 103): 0.12 * mean over those present
    present = [t for t in ("adrenals", "gallbladder_wall", "heart_wall", "kidneys", "pancreas",
                           "prostate", "small_intestine", "spleen", "thymus") if t in doses]
    result = effective_dose(doses)
    assert result.contributions_sv["remainder"] == pytest.approx(0.12 * 10.0 / len(present))
    assert result.effective_dose_sv == pytest.approx(0.12 * 10.0 / len(present))


def test_colon_is_mass_weighted_uli_lli():
    doses = {t: 0.0 for t in _male_targets()}
    doses["uli_wall"], doses["lli_wall"] = 1.0, 3.0
    result = effective_dose(doses)
    assert result.contributions_sv["colon"] == pytest.approx(0.12 * (0.57 * 1.0 + 0.43 * 3.0))


def test_bad_input():
    with pytest.raises(InputError, match="doses_gy"):
        effective_dose({})
    with pytest.raises(InputError, match="kidneys"):
        effective_dose({"kidneys": "a lot"})
