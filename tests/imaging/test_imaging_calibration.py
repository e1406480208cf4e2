"""Units and decay-correction state → activity at acquisition start (MBq per voxel)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from scipy import integrate

from tdt.errors import InputError, UnitError
from tdt.imaging._calibration import (
    CameraCalibration,
    activity_at_acquisition_start,
    activity_per_voxel_mbq,
)
from tdt.imaging._radiopharmaceutical import nuclide_from_text

LAMBDA_LU177 = math.log(2) / (6.647 * 24)  # 1/h, ICRP-107 half-life 6.647 d


def test_counts_to_mbq_by_definition():
    # 12 cps/MBq for 900 s: 10 800 counts per MBq
    cal = CameraCalibration(12.0, dt.date(2024, 1, 1))
    out = activity_per_voxel_mbq(np.array([10800.0, 5400.0]), "CNTS", 0.1, 900.0, cal)
    np.testing.assert_allclose(out, [1.0, 0.5], rtol=1e-15)


def test_bqml_to_mbq():
    # 2e5 Bq/mL in a 0.5 mL voxel = 1e5 Bq = 0.1 MBq
    np.testing.assert_allclose(activity_per_voxel_mbq(np.array([2e5]), "BQML", 0.5), [0.1])


def test_unknown_units_and_missing_calibration_named():
    with pytest.raises(UnitError, match="Units.*'GML'"):
        activity_per_voxel_mbq(np.ones(2), "GML", 1.0)
    with pytest.raises(UnitError, match="CameraCalibration"):
        activity_per_voxel_mbq(np.ones(2), "CNTS", 1.0, 900.0, None)


def test_decay_none_gives_activity_at_start():
    # the image holds the mean activity over the scan; the mean of A0 exp(-λt) over [0, T]
    # computed by quadrature must map back to A0
    duration_s, a0 = 3600.0, 250.0
    mean, _ = integrate.quad(lambda t: a0 * math.exp(-LAMBDA_LU177 * t), 0.0, 1.0)
    out = activity_at_acquisition_start(np.float64(mean), "NONE", "Lu-177", duration_s, 24.0)
    assert float(out) == pytest.approx(a0, rel=2e-6)  # half-life rounding in the oracle


def test_decay_admin_is_undone():
    out = activity_at_acquisition_start(np.float64(100.0), "ADMIN", "Lu-177", 900.0, 48.0)
    assert float(out) == pytest.approx(100.0 * math.exp(-LAMBDA_LU177 * 48.0), rel=2e-6)
    assert activity_at_acquisition_start(np.float64(7.0), "START", "Lu-177", 900.0, 48.0) == 7.0
    with pytest.raises(UnitError, match="DecayCorrection"):
        activity_at_acquisition_start(np.float64(7.0), "SOMETIME", "Lu-177", 900.0, 48.0)


def test_calibration_validity():
    cal = CameraCalibration(10.0, dt.date(2024, 3, 1))
    with pytest.raises(InputError, match="after the acquisition"):
        cal.check_valid_for(dt.datetime(2024, 2, 1), "Lu-177")
    with pytest.raises(InputError, match="nuclide"):
        cal.check_valid_for(dt.datetime(2024, 4, 1), "Tb-161")
    with pytest.warns(UserWarning, match="days old"):
        cal.check_valid_for(dt.datetime(2026, 4, 1), "Lu-177")
    with pytest.raises(InputError, match="cps_per_mbq"):
        CameraCalibration(-1.0, dt.date(2024, 1, 1))


@pytest.mark.parametrize("text", ["^177^Lutetium", "Lutetium-177", "Lu-177", "177Lu", "lu177"])
def test_nuclide_code_meanings(text):
    assert nuclide_from_text(text) == "Lu-177"
