"""Bad-input corpus, numbers: kinetics, dosimetry, radiobiology, twin QA.

Impossible input (strings, dicts, NaN, negative activity...) → a clean InputError naming the
field; implausible input (a time or activity unit that looks wrong, a rising tail, absurd TIA or
dose) → a recorded PlausibilityWarning. Reference TACs are exact exponentials of 177Lu
(T½ = 6.6443 d, ICRP 107) with a biological half-life, so the expected behaviour follows from
the physics, not from the code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from robustness_helpers import recorded

from tdt.errors import InputError, TdtError

LU177_HALF_LIFE_H = 6.6443 * 24.0
TIMES_H = np.array([4.0, 24.0, 48.0, 96.0, 168.0])


def _kidney_tac(times_h=TIMES_H, scale=1.0):
    """Uptake–washout kidney TAC (MBq): T_eff ≈ 40 h washout, 1 h uptake, 200 MBq amplitude."""
    t = np.asarray(times_h, float)
    return scale * 200.0 * (np.exp(-math.log(2) / 40.0 * t) - np.exp(-math.log(2) / 1.0 * t))


def _fit(times_h, activity_mbq, **kw):
    from tdt.kinetics import fit_tac

    return fit_tac(times_h, activity_mbq, model="trapezoid", **kw)


# ---- kinetics: impossible ----------------------------------------------------------------------

KINETICS_ERRORS = {
    "times_string": ("4,24,48", _kidney_tac()),
    "times_dict": ({"a": 4.0}, _kidney_tac()),
    "times_list_of_words": (["four", "day", "two", "x", "y"], _kidney_tac()),
    "times_none": (None, _kidney_tac()),
    "activity_string": (TIMES_H, "lots"),
    "activity_dict": (TIMES_H, {"kidneys": 1.0}),
    "activity_bytes": (TIMES_H, b"12345"),
    "activity_nested_ragged": (TIMES_H, [[1.0, 2.0], [3.0]]),
    "length_mismatch": (TIMES_H, _kidney_tac()[:4]),
    "activity_nan": (TIMES_H, np.array([1.0, np.nan, 1.0, 1.0, 1.0])),
    "activity_inf": (TIMES_H, np.array([1.0, np.inf, 1.0, 1.0, 1.0])),
    "activity_negative": (TIMES_H, -_kidney_tac()),
    "times_negative": (TIMES_H - 10.0, _kidney_tac()),
    "times_unsorted": (TIMES_H[::-1], _kidney_tac()),
    "times_duplicate": (np.array([4.0, 24.0, 24.0, 96.0, 168.0]), _kidney_tac()),
    "times_nan": (np.array([4.0, np.nan, 48.0, 96.0, 168.0]), _kidney_tac()),
    "times_2d": (TIMES_H[None, :], _kidney_tac()),
    "times_empty": (np.array([]), np.array([])),
    "activity_2d": (TIMES_H, _kidney_tac()[None, :]),
}


@pytest.mark.parametrize("case", sorted(KINETICS_ERRORS))
def test_kinetics_impossible_input_is_a_clean_error(case):
    times, activity = KINETICS_ERRORS[case]
    with pytest.raises(InputError, match="times_h|activity_mbq"):
        _fit(times, activity)


def test_kinetics_bad_weights_and_model_are_clean_errors():
    from tdt.kinetics import fit_tac

    with pytest.raises(InputError, match="weights"):
        fit_tac(TIMES_H, _kidney_tac(), model="mono", weights="sqrt")
    with pytest.raises(InputError, match="model"):
        fit_tac(TIMES_H, _kidney_tac(), model="quadratic")


# ---- kinetics: implausible ---------------------------------------------------------------------

KINETICS_WARNINGS = {
    # the same kidney, observed at 4 h .. 7 d, with a unit mistake
    "days_as_hours": (TIMES_H / 24.0, _kidney_tac(), "days passed as hours"),
    "minutes_as_hours": (TIMES_H * 60.0, _kidney_tac(), "minutes passed as hours"),
    "seconds_as_hours": (TIMES_H * 3600.0, _kidney_tac(), "minutes passed as hours"),
    "bq_as_mbq": (TIMES_H, _kidney_tac(scale=1e6), "Bq or kBq"),
    "kbq_as_mbq": (TIMES_H, _kidney_tac(scale=1e3 * 7.4), "Bq or kBq"),
    "rising_at_last_point": (TIMES_H, _kidney_tac()[::-1], "rising"),
    "rising_lesion_uptake_only": (TIMES_H, 10.0 * (1 - np.exp(-TIMES_H / 200.0)), "rising"),
    "slower_than_physical_decay": (
        TIMES_H, 100.0 * np.exp(-math.log(2) / (3.0 * LU177_HALF_LIFE_H) * TIMES_H),
        "effective half-life"),
    "flat_tail": (TIMES_H, np.array([50.0, 40.0, 30.0, 25.0, 25.0]), "effective half-life"),
}


@pytest.mark.parametrize("case", sorted(KINETICS_WARNINGS))
def test_kinetics_implausible_input_is_warned(case):
    times, activity, text = KINETICS_WARNINGS[case]
    fit, found = recorded(lambda: _fit(times, activity))
    assert np.isfinite(fit.tia_mbq_h)
    assert any(text in m for m in found), found


@pytest.mark.parametrize("half_life_bio_h", [10.0, 40.0, 100.0, 1000.0])
def test_kinetics_plausible_tac_is_not_warned(half_life_bio_h):
    eff = 1.0 / (1.0 / LU177_HALF_LIFE_H + 1.0 / half_life_bio_h)
    activity = 100.0 * np.exp(-math.log(2) / eff * TIMES_H)
    _, found = recorded(lambda: _fit(TIMES_H, activity))
    assert found == []


def test_kinetics_check_against_administered_activity():
    from tdt.kinetics._validation import check_tac_plausibility

    _, found = recorded(lambda: check_tac_plausibility(
        TIMES_H, 4.0 * 7400.0 * np.exp(-math.log(2) / LU177_HALF_LIFE_H * TIMES_H),
        administered_mbq=7400.0, name="kidneys"))
    assert any("kidneys activity" in m for m in found)


def test_early_pet_uptake_is_not_a_unit_error():
    # 68Ga-PSMA-11 PET at 1 and 2 h: a tumour still taking up tracer (biological uptake rate
    # 0.5/h against 68Ga's physical decay, T½ 67.71 min, ICRP-107) — in activity at scan time
    # the last two points fall more slowly than the physical half-life allows for a clearing
    # organ, legitimately (λ_bio < 0). No warning; minutes passed as hours still warn.
    from tdt.kinetics._validation import check_tac_plausibility

    t = np.array([1.0, 2.0])
    lam = math.log(2) / (67.71 / 60.0)
    activity = 5.0 * (1 - np.exp(-0.5 * t)) * np.exp(-lam * t)
    assert math.log(activity[0] / activity[1]) < lam / 1.5  # the old rule would have warned
    _, found = recorded(lambda: check_tac_plausibility(t, activity, nuclide="Ga-68",
                                                       name="lesion_1"))
    assert found == []
    _, found = recorded(lambda: check_tac_plausibility(t * 60.0, activity, nuclide="Ga-68",
                                                       name="lesion_1"))
    assert any("minutes passed as hours" in m for m in found)


# ---- dosimetry ---------------------------------------------------------------------------------

def _organ_doses(tia, **kw):
    from tdt.dosimetry import organ_doses

    return organ_doses(tia, **kw)


DOSIMETRY_ERRORS = {
    "tia_string": ({"kidneys": "1000"}, {}),
    "tia_word": ({"kidneys": "lots"}, {}),
    "tia_dict": ({"kidneys": {"value": 1.0}}, {}),
    "tia_none": ({"kidneys": None}, {}),
    "tia_list_of_words": ({"kidneys": ["a", "b"]}, {}),
    "tia_nan": ({"kidneys": float("nan")}, {}),
    "tia_inf": ({"kidneys": float("inf")}, {}),
    "tia_negative": ({"kidneys": -5.0}, {}),
    "tia_not_a_dict": ([1.0, 2.0], {}),
    "tia_empty": ({}, {}),
    "organ_unknown": ({"kidnyes": 1000.0}, {}),
    "organ_key_not_str": ({3: 1000.0}, {}),
    "mass_zero": ({"kidneys": 1000.0}, {"organ_masses_g": {"kidneys": 0.0}}),
    "mass_negative": ({"kidneys": 1000.0}, {"organ_masses_g": {"kidneys": -290.0}}),
    "lesion_without_volume": ({"lesion_1": 1000.0}, {}),
    "nuclide_unknown": ({"kidneys": 1000.0}, {"nuclide": "Lu-999"}),
}


@pytest.mark.parametrize("case", sorted(DOSIMETRY_ERRORS))
def test_dosimetry_impossible_input_is_a_clean_error(case):
    tia, kw = DOSIMETRY_ERRORS[case]
    with pytest.raises(TdtError):
        _organ_doses(tia, **kw)


@pytest.mark.parametrize("value", ["12", "x", {"a": 1}, None, float("nan"), -1.0])
def test_sphere_dose_bad_tia_is_a_clean_error(value):
    from tdt.dosimetry import sphere_dose

    with pytest.raises(InputError, match="tia_mbq_h"):
        sphere_dose(value, volume_ml=10.0)


@pytest.mark.parametrize("tia", [1e9, 1e12, 1e15])
def test_absurd_tia_is_warned(tia):
    doses, found = recorded(lambda: _organ_doses({"kidneys": tia}))
    assert any("tia_mbq_h['kidneys']" in m for m in found)
    assert float(doses["kidneys"]) > 0


def test_absurd_lesion_tia_is_warned():
    from tdt.dosimetry import sphere_dose

    _, found = recorded(lambda: sphere_dose(1e15, volume_ml=10.0))
    assert any("lesion" in m for m in found)


def test_clinical_tia_is_not_warned():
    # kidneys ~ 0.43 Gy/GBq x 7.4 GBq (VISION sub-study): TIA of order 1e4-1e5 MBq·h
    _, found = recorded(lambda: _organ_doses({"kidneys": 3e4, "liver": 5e4}))
    assert found == []


# ---- radiobiology ------------------------------------------------------------------------------

def _radiobiology(name):
    import tdt.radiobiology as rb

    return {
        "bed_acute": lambda d: rb.bed_acute(d, 2.5),
        "eqd2": lambda d: rb.eqd2(d, 2.5),
        "bed_from_eqd2": lambda d: rb.bed_from_eqd2(d, 2.5),
        "bed_monoexponential": lambda d: rb.bed_monoexponential(d, 40.0, 2.5, 2.8),
        "geud": lambda d: rb.geud(np.array([1.0, d]), 4.0),
        "ntcp_lkb": lambda d: rb.ntcp_lkb(d, 28.0, 0.1),
        "tcp_poisson": lambda d: rb.tcp_poisson(d, 0.3, 1e9),
    }[name]


RADIOBIOLOGY = ("bed_acute", "eqd2", "bed_from_eqd2", "bed_monoexponential", "geud", "ntcp_lkb",
                "tcp_poisson")


@pytest.mark.parametrize("name", RADIOBIOLOGY)
def test_absurd_dose_is_warned(name):
    _, found = recorded(lambda: _radiobiology(name)(1e9))
    assert any("<= 10000 Gy" in m for m in found), found


@pytest.mark.parametrize("name", RADIOBIOLOGY)
@pytest.mark.parametrize("value", ["twenty", float("nan"), -3.0])
def test_bad_dose_is_a_clean_error(name, value):
    with pytest.raises(InputError):
        _radiobiology(name)(value)


@pytest.mark.parametrize("name", ["bed_acute", "eqd2", "tcp_poisson"])
def test_clinical_dose_is_not_warned(name):
    _, found = recorded(lambda: _radiobiology(name)(25.0))
    assert found == []


# ---- twin QA report ----------------------------------------------------------------------------

def _cycle(kidney_scale=1.0, warnings_in=()):
    from tdt.twin._record import CycleData

    return CycleData(7400.0, {"kidneys": (TIMES_H, _kidney_tac(scale=kidney_scale))},
                     input_warnings=warnings_in)


def test_qa_flags_organ_activity_above_administered():
    from tdt.twin._qa import plausibility_check

    check = plausibility_check(_cycle(kidney_scale=4.0 * 7400.0 / 200.0))
    assert check.status == "warn" and "kidneys" in check.message


def test_qa_shows_recorded_input_warnings():
    from tdt.twin._qa import plausibility_check

    check = plausibility_check(_cycle(warnings_in=("voxel size at 48 h: implausible",)))
    assert check.status == "warn" and "voxel size at 48 h" in check.message


def test_qa_plausible_cycle_passes_and_round_trips():
    from tdt.twin._qa import plausibility_check
    from tdt.twin._record import CycleData

    cycle = _cycle()
    assert plausibility_check(cycle).status == "pass"
    assert "input_warnings" not in cycle.to_dict()  # hashes of existing data unchanged
    noted = _cycle(warnings_in=("x",))
    assert CycleData.from_dict(noted.to_dict()).input_warnings == ("x",)


# ---- inference input: the same TAC checks when data enter through PatientData -----------------

@pytest.mark.parametrize("case", sorted(KINETICS_WARNINGS))
def test_patient_data_implausible_tac_is_warned(case):
    """PatientData runs the kinetics TAC checks on every organ series (issue #22), naming it."""
    from tdt.inference import OrganSeries, PatientData

    times, activity, text = KINETICS_WARNINGS[case]
    _, found = recorded(lambda: PatientData({"kidneys": OrganSeries(times, activity)}))
    assert any(text in m and "PatientData['kidneys']" in m for m in found), found


def test_patient_data_plausible_tac_is_not_warned():
    from tdt.inference import OrganSeries, PatientData

    eff = 1.0 / (1.0 / LU177_HALF_LIFE_H + 1.0 / 40.0)
    activity = 100.0 * np.exp(-math.log(2) / eff * TIMES_H)
    _, found = recorded(lambda: PatientData({"kidneys": OrganSeries(TIMES_H, activity)}))
    assert found == []
