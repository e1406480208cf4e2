"""Red-marrow (blood- and image-based) and bladder-voiding dosimetry against independent
references: algebraic identities of the MIRD remainder formula, closed-form TIAs and numerical
quadrature (scipy.integrate.quad) of the dynamic bladder model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from tdt.dosimetry import svalue
from tdt.dosimetry._marrow import (
    BLOOD_DENSITY_G_PER_ML,
    L2_L4_MARROW_FRACTION,
    bladder_contents_tia,
    blood_tia_from_plasma,
    blood_tia_from_samples,
    marrow_tia_blood_based,
    marrow_tia_image_based,
    red_marrow_dose,
)
from tdt.dosimetry._organs import reference_mass_g
from tdt.errors import InputError

LAMBDA = math.log(2) / (6.647 * 24.0)  # 177Lu, ICRP 107


def test_blood_based_marrow_tia_is_concentration_times_mass():
    # EANM (Hindorf 2010): [A_RM] = RMBLR [A_blood] per gram -> TIA = RMBLR [TIA_bl]/rho m_RM
    tia = marrow_tia_blood_based(2.0e-3, 1170.0, rmblr=np.array([0.36, 1.0]))
    assert np.allclose(tia, np.array([0.36, 1.0]) * 2.0e-3 / 1.06 * 1170.0, rtol=1e-14)
    assert BLOOD_DENSITY_G_PER_ML == 1.06


def test_blood_tia_from_plasma_excludes_red_cells():
    assert blood_tia_from_plasma(10.0, 3000.0, 0.4) == pytest.approx(0.6 * 10.0 / 3000.0)


def test_blood_tia_from_samples_matches_biexponential_closed_form():
    # C(t) = 0.01 e^{-(0.3+l)t} + 0.002 e^{-(0.02+l)t}; TIA = sum a/(k+l)
    t = np.array([0.1, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 144, 168])
    c = 0.01 * np.exp(-(0.3 + LAMBDA) * t) + 0.002 * np.exp(-(0.02 + LAMBDA) * t)
    exact = 0.01 / (0.3 + LAMBDA) + 0.002 / (0.02 + LAMBDA)
    assert blood_tia_from_samples(t, c) == pytest.approx(exact, rel=0.03)


def test_image_based_marrow_scales_l2_l4():
    assert marrow_tia_image_based(0.67) == pytest.approx(0.67 / L2_L4_MARROW_FRACTION)
    assert 0.06 <= L2_L4_MARROW_FRACTION <= 0.075  # 6.7 % (EANM practice) .. 7.4 % (3/5 lumbar)


def test_marrow_self_dose_is_table_s_value_times_tia():
    dose = red_marrow_dose(100.0)
    assert float(dose.self_gy) == pytest.approx(100.0 * svalue("red_marrow", "red_marrow"))
    assert float(dose.cross_gy) == pytest.approx(0.0, abs=1e-15)


def test_uniform_whole_body_activity_gives_total_body_s_value():
    # Activity uniform by mass: marrow holds m_RM/m_TB of the whole body. The remainder S-value
    # (Cloutier 1973) must then reproduce D_RM = TIA_TB S(RM <- TB) exactly.
    m_rm, m_tb = reference_mass_g("red_marrow"), reference_mass_g("total_body")
    tia_tb = 5000.0
    dose = red_marrow_dose(tia_tb * m_rm / m_tb, total_body_tia_mbq_h=tia_tb)
    assert float(dose.total_gy) == pytest.approx(tia_tb * svalue("red_marrow", "total_body"),
                                                 rel=1e-10)
    assert float(dose.cross_gy) > 0


def test_marrow_cross_dose_from_organs_adds_s_values():
    dose = red_marrow_dose(10.0, {"kidneys": 1000.0, "liver": 500.0})
    expected = 1000.0 * svalue("red_marrow", "kidneys") + 500.0 * svalue("red_marrow", "liver")
    assert float(dose.cross_gy) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bad", [
    lambda: marrow_tia_blood_based(1e-3, 1170.0, rmblr=-1.0),
    lambda: marrow_tia_blood_based(1e-3, 0.0),
    lambda: blood_tia_from_plasma(1.0, 3000.0, 1.2),
    lambda: marrow_tia_image_based(1.0, fraction=1.5),
    lambda: blood_tia_from_samples([1.0, 0.5], [1e-3, 1e-4]),
    lambda: red_marrow_dose(1.0, {"red_marrow": 2.0}),
    lambda: bladder_contents_tia([1.0, 2.0], [1.0, 2.0], void_interval_h=0.0),
])
def test_bad_input_raises(bad):
    with pytest.raises(InputError):
        bad()


def _urine(t, a0=1000.0, k=0.5):
    """Excreted activity still present: excretion rate a0 k e^{-(k+l)t} -> U = a0 e^{-lt}(1-e^{-kt})."""
    return a0 * np.exp(-LAMBDA * t) * (1.0 - np.exp(-k * t))


def test_bladder_without_voiding_is_the_urine_tia():
    t = np.linspace(0.0, 200.0, 20001)[1:]
    exact = quad(lambda s: _urine(s), 0, np.inf, limit=400)[0]
    assert bladder_contents_tia(t, _urine(t), void_interval_h=np.inf) == pytest.approx(exact,
                                                                                     rel=1e-4)


def test_bladder_voiding_matches_quadrature_of_the_dynamic_model():
    # independent: content(t) = int_{t_v}^t e(s) e^{-l(t-s)} ds, integrated per void period
    a0, k, period = 1000.0, 0.5, 3.5
    t = np.linspace(0.0, 120.0, 24001)[1:]

    def content(tt, tv):
        return a0 * np.exp(-LAMBDA * tt) * (np.exp(-k * tv) - np.exp(-k * tt))

    exact = sum(quad(content, n * period, (n + 1) * period, args=(n * period,))[0]
                for n in range(int(400 / period)))
    got = bladder_contents_tia(t, _urine(t, a0, k), void_interval_h=period)
    assert got == pytest.approx(exact, rel=2e-3)
    # voiding every 3.5 h keeps a small fraction of the urine TIA in the bladder
    assert got < 0.01 * bladder_contents_tia(t, _urine(t, a0, k), void_interval_h=np.inf)


def test_blood_samples_input_plasma_to_blood_and_tia():
    from tdt.inference._data import BloodSamples, OrganSeries, PatientData

    t = np.array([0.1, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 144, 168])
    plasma = 0.01 * np.exp(-(0.3 + LAMBDA) * t) + 0.002 * np.exp(-(0.02 + LAMBDA) * t)
    samples = BloodSamples(t, plasma, hematocrit=0.45, sample="plasma")
    assert np.allclose(samples.blood_concentration_mbq_per_ml(), 0.55 * plasma)
    assert samples.blood_tia_mbq_h_per_ml() == pytest.approx(
        0.55 * blood_tia_from_samples(t, plasma), rel=1e-12)
    data = PatientData({"kidneys": OrganSeries([4.0, 24.0], [100.0, 80.0])}, blood=samples)
    assert data.subset(["kidneys"]).blood is samples
    for bad in (dict(hematocrit=1.0), dict(sample="serum"), dict(times_h=t[::-1])):
        kwargs = {"times_h": t, "concentration_mbq_per_ml": plasma, **bad}
        with pytest.raises(InputError):
            BloodSamples(**kwargs)


def test_lacrimal_glands_are_two_spheres_without_cross_dose():
    # Not in the OLINDA-style tables: two identical uniform spheres, each half the TIA and mass
    from tdt.dosimetry import organ_doses, sphere_dose

    doses = organ_doses({"lacrimal_glands": 10.0, "kidneys": 100.0})
    assert float(doses["lacrimal_glands"]) == pytest.approx(float(sphere_dose(5.0, mass_g=0.7)))
    assert float(doses["kidneys"]) == pytest.approx(100.0 * svalue("kidneys", "kidneys"))
    only = organ_doses({"lacrimal_glands": 10.0}, targets=["lacrimal_glands", "kidneys"])
    assert set(only) == {"kidneys", "lacrimal_glands"} and float(only["kidneys"]) == 0.0
    patient = organ_doses({"lacrimal": 10.0}, organ_masses_g={"lacrimal_glands": 2.0})
    assert float(patient["lacrimal_glands"]) == pytest.approx(float(sphere_dose(5.0, mass_g=1.0)))
    # with a whole-body TIA the lacrimal TIA leaves the remainder like any other source
    with_tb = organ_doses({"lacrimal_glands": 10.0, "kidneys": 100.0, "total_body": 1000.0})
    without = organ_doses({"kidneys": 100.0, "total_body": 990.0})
    assert float(with_tb["liver"]) == pytest.approx(float(without["liver"]), rel=1e-12)


def test_remainder_cross_dose_to_marrow_matches_hand_computation():
    # MIRD remainder of body by hand (Cloutier et al. JNM 1973;14:53) with the tabulated
    # S-values of the adult-male table and the ICRP 89 reference masses:
    # S(RM <- RB) = [m_TB S(RM <- TB) - sum_i m_i S(RM <- i)] / (m_TB - sum_i m_i),
    # A_RB = A_TB - sum_i A_i over the sources i = kidneys, liver, red marrow.
    tia = {"kidneys": 12000.0, "liver": 4000.0}
    marrow, total_body = 3000.0, 60000.0
    sources = {**tia, "red_marrow": marrow}
    m = {o: reference_mass_g(o) for o in (*sources, "total_body")}
    s = {o: svalue("red_marrow", o) for o in (*sources, "total_body")}
    s_rb = (m["total_body"] * s["total_body"] - sum(m[o] * s[o] for o in sources)) / (
        m["total_body"] - sum(m[o] for o in sources))
    a_rb = total_body - sum(sources.values())
    cross = tia["kidneys"] * s["kidneys"] + tia["liver"] * s["liver"] + a_rb * s_rb
    dose = red_marrow_dose(marrow, tia, total_body_tia_mbq_h=total_body)
    assert float(dose.cross_gy) == pytest.approx(cross, rel=1e-12)
    assert float(dose.self_gy) == pytest.approx(marrow * s["red_marrow"], rel=1e-12)
    assert a_rb * s_rb > 0.3 * float(dose.cross_gy)  # the remainder dominates the cross-dose


def test_whole_body_tia_monoexponential_matches_quadrature():
    from tdt.dosimetry import whole_body_tia_monoexponential

    a0, t_eff = 7400.0, 40.0
    reference, _ = quad(lambda t: a0 * math.exp(-math.log(2) * t / t_eff), 0.0, math.inf)
    assert float(whole_body_tia_monoexponential(a0, t_eff)) == pytest.approx(reference, rel=1e-9)
    with pytest.raises(InputError, match="effective_half_life_h"):
        whole_body_tia_monoexponential(a0, -1.0)
