"""PatientData validation and the measurement model (recovery coefficient)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.inference import MeasurementModel, OrganSeries, PatientData, sphere_recovery_coefficient
from tdt.inference._measurement import blurred_sphere_profile, recovery_coefficients

TIMES = [4.0, 24.0, 48.0, 96.0, 168.0]


def _series(values=(10.0, 20.0, 15.0, 8.0, 3.0), **kw):
    return OrganSeries(TIMES, list(values), **kw)


def test_valid_data_flattens_organ_major():
    data = PatientData({"kidneys": _series(), "lesion_1": _series(volume_ml=5.0)})
    flat = data.flat()
    assert data.organ_names == ("kidneys", "lesion_1")
    assert data.n_observations == 10
    np.testing.assert_array_equal(flat["organ_index"], [0] * 5 + [1] * 5)
    np.testing.assert_array_equal(flat["time_index"], list(range(5)) * 2)
    assert data.sessions == ("camera",)


def test_nan_points_are_dropped_not_all():
    data = PatientData({"kidneys": _series((10.0, float("nan"), 15.0, 8.0, 3.0))})
    np.testing.assert_array_equal(data.organs["kidneys"].times_h, [4.0, 48.0, 96.0, 168.0])


def test_dict_series_accepted():
    data = PatientData({"liver": {"times_h": TIMES, "activity_mbq": [5, 6, 5, 4, 2]}})
    assert isinstance(data.organs["liver"], OrganSeries)


@pytest.mark.parametrize(
    ("organs", "needle"),
    [
        ({"kidneys": OrganSeries([], [])}, "'kidneys'"),
        ({"kidneys": None}, "no data"),
        ({"liver": _series([float("nan")] * 5)}, "all values are NaN"),
        ({"spleen": _series((10.0, 0.0, 15.0, 8.0, 3.0))}, "non-positive"),
        ({"spleen": _series((10.0, -1.0, 15.0, 8.0, 3.0))}, "activity_mbq"),
        ({"kidneys": OrganSeries([-2.0, 24.0], [1.0, 2.0])}, "before the injection"),
        ({"kidneys": OrganSeries([24.0, 4.0], [1.0, 2.0])}, "strictly increasing"),
        ({"kidneys": OrganSeries([4.0, 24.0], [1.0])}, "one activity per time"),
        ({"lesion_1": _series(volume_ml=-1.0)}, "volume_ml"),
        ({"lesion_1": _series(recovery=1.5)}, "recovery"),
        ({}, "at least one organ"),
    ],
)
def test_bad_input_names_organ_and_field(organs, needle):
    with pytest.raises(InputError, match=needle) as info:
        PatientData(organs)
    for organ in organs:
        assert organ in str(info.value)


def test_times_before_a_later_injection_rejected():
    with pytest.raises(InputError, match=r"kidneys.*times_h"):
        PatientData({"kidneys": _series()}, injection_time_h=10.0)


def test_bad_patient_level_fields():
    with pytest.raises(InputError, match="calibration_sd"):
        PatientData({"kidneys": _series()}, calibration_sd=-0.1)
    with pytest.raises(InputError, match="administered_activity_mbq"):
        PatientData({"kidneys": _series()}, administered_activity_mbq=0.0)


def test_subset_and_single_time_point():
    data = PatientData({"kidneys": _series(), "liver": _series()})
    one = data.at_times([96.0])
    assert one.organs["kidneys"].times_h.tolist() == [96.0]
    assert data.subset(["liver"]).organ_names == ("liver",)
    with pytest.raises(InputError, match="spleen"):
        data.subset(["spleen"])


def test_blurred_profile_at_centre_is_chi3_cdf():
    # Independent identity: at r = 0 the blurred ball value is P(|N(0, σ²I₃)| < R), the CDF of
    # the χ distribution with 3 degrees of freedom (scipy.stats.chi).
    from scipy.stats import chi

    for radius, sigma in ((10.0, 5.0), (3.0, 6.0)):
        value = blurred_sphere_profile(np.array([1e-7]), radius, sigma)[0]
        assert value == pytest.approx(chi(3).cdf(radius / sigma), rel=1e-6)


@pytest.mark.parametrize(("volume_ml", "fwhm_mm"), [(1.0, 12.0), (10.0, 12.0), (50.0, 8.0)])
def test_recovery_coefficient_matches_monte_carlo(volume_ml, fwhm_mm):
    # Independent reference: Monte Carlo of points uniform in the sphere displaced by a 3-D
    # Gaussian PSF; RC = fraction still inside the sphere.
    rng = np.random.default_rng(7)
    n = 400_000
    radius = (3 * volume_ml * 1000 / (4 * math.pi)) ** (1 / 3)
    sigma = fwhm_mm / (2 * math.sqrt(2 * math.log(2)))
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    points = direction * radius * rng.random(n)[:, None] ** (1 / 3)
    points += rng.normal(scale=sigma, size=(n, 3))
    mc = np.mean(np.linalg.norm(points, axis=1) < radius)
    rc = sphere_recovery_coefficient(volume_ml, fwhm_mm)
    assert rc == pytest.approx(mc, abs=4 * math.sqrt(mc * (1 - mc) / n) + 1e-3)


def test_recovery_limits_and_assignment():
    assert sphere_recovery_coefficient(5000.0, 10.0) > 0.95
    assert sphere_recovery_coefficient(0.1, 12.0) < 0.2
    data = PatientData({"kidneys": _series(volume_ml=300.0), "lesion_1": _series(volume_ml=4.0),
                        "lesion_2": _series(recovery=0.7)})
    rc = recovery_coefficients(data, MeasurementModel())
    assert rc[0] == 1.0 and rc[2] == 0.7 and 0.2 < rc[1] < 0.8


def test_measurement_model_validation():
    with pytest.raises(InputError, match="noise"):
        MeasurementModel(noise="gaussian")
    with pytest.raises(InputError, match="fixed_noise_sd"):
        MeasurementModel(fixed_noise_sd=0.0)
