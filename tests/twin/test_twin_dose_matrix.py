"""twin.response.dose_matrix: the S-value / local-deposition choice is explicit (issue #20: no
silent fallback on an error)."""

from __future__ import annotations

import pytest

from tdt import dosimetry, nuclide
from tdt.errors import TdtError
from tdt.twin import PatientRecord
from tdt.twin._response import dose_matrix
from tdt.units import mev_per_decay_to_gy_g_per_mbq_h


def test_auto_uses_svalues_for_a_tabulated_nuclide():
    matrix = dose_matrix(("kidneys",), ("kidneys",), PatientRecord("p"))
    assert "S-values" in matrix.method
    direct = dosimetry.organ_doses({"kidneys": 1.0}, nuclide="Lu-177", phantom="adult-male")
    assert matrix.values[0, 0] == pytest.approx(float(direct["kidneys"]), rel=1e-12)


def test_auto_uses_local_deposition_for_an_untabulated_nuclide_and_says_so():
    """Tb-161 has no MIRD S-value table in tdt: local deposition, D/Ã = E_np / m (MIRD
    Pamphlet 21, absorbed fraction 1), with the ICRP-89 kidney mass."""
    assert "Tb-161" not in dosimetry.TABLE_NUCLIDES
    matrix = dose_matrix(("kidneys",), ("kidneys",), PatientRecord("p", nuclide="Tb-161"))
    assert "local deposition" in matrix.method
    mass_g = dosimetry.reference_mass_g("kidneys", "adult-male")
    expected = mev_per_decay_to_gy_g_per_mbq_h(
        nuclide("Tb-161").energy_nonpenetrating_mev) / mass_g
    assert matrix.values[0, 0] == pytest.approx(expected, rel=1e-12)


def test_an_svalue_error_is_not_swallowed():
    """An organ the S-value tables do not know is an error, not a switch to local deposition."""
    with pytest.raises(TdtError):
        dose_matrix(("pancreas_tail_x",), ("pancreas_tail_x",), PatientRecord("p"),
                    method="auto")
