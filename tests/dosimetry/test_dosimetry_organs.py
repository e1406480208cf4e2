"""organ_doses: MIRD sums by hand from table entries, remainder-of-body identity, mass scaling,
draws/jit/vmap, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdt
from tdt.dosimetry import organ_doses, reference_mass_g, scaled_self_svalue, svalue, svalue_table
from tdt.errors import InputError
from tdt.units import mev_per_decay_to_gy_g_per_mbq_h

DELTA_NP = mev_per_decay_to_gy_g_per_mbq_h(tdt.nuclide("Lu-177").energy_nonpenetrating_mev)


def test_mird_sum_by_hand_from_table_entries():
    # adult-male table: S(kid←kid) 7.76e-5, S(kid←liver) 1.20e-7, S(liver←kid) 1.18e-7,
    # S(liver←liver) 1.37e-5 mGy/(MBq·s); × 3.6 → Gy/(MBq·h) (MIRD Pamphlet 21 eq. D = Σ Ã S)
    doses = organ_doses({"kidneys": 1000.0, "liver": 2000.0})
    assert float(doses["kidneys"]) == pytest.approx(3.6 * (1000 * 7.76e-5 + 2000 * 1.20e-7))
    assert float(doses["liver"]) == pytest.approx(3.6 * (1000 * 1.18e-7 + 2000 * 1.37e-5))
    assert set(doses) == set(svalue_table().targets)


def test_remainder_correction_reproduces_uniform_whole_body_activity():
    """Defining property of the remainder-of-body S (MIRD Pamphlet 11; Cloutier 1973): if the
    activity is uniform in the body (Ã_i = Ã_TB m_i / m_TB), organs + remainder must give the
    same dose as the whole body as one source, Ã_TB · S(t ← TB)."""
    tia_tb = 50_000.0
    m_tb = reference_mass_g("total_body")
    organs = ["kidneys", "liver", "spleen", "red_marrow", "salivary_glands"]
    tia = {o: tia_tb * reference_mass_g(o) / m_tb for o in organs}
    doses = organ_doses({**tia, "total_body": tia_tb})
    for target in ["kidneys", "liver", "thyroid", "red_marrow", "total_body"]:
        assert float(doses[target]) == pytest.approx(tia_tb * svalue(target, "total_body"),
                                                     rel=1e-10)


def test_remainder_given_directly_equals_total_body_form():
    organs = {"kidneys": 800.0, "liver": 1500.0}
    via_tb = organ_doses({**organs, "total_body": 10_000.0})
    via_rb = organ_doses({**organs, "remainder": 5000.0, "plasma": 2700.0})
    for target in ("kidneys", "red_marrow", "liver"):
        assert float(via_tb[target]) == pytest.approx(float(via_rb[target]), rel=1e-12)


def test_mass_scaling_of_self_dose():
    m_ref = reference_mass_g("kidneys")
    s_ref = svalue("kidneys", "kidneys")
    same = organ_doses({"kidneys": 1.0}, organ_masses_g={"kidneys": m_ref})
    assert float(same["kidneys"]) == pytest.approx(s_ref, rel=1e-12)
    half = float(organ_doses({"kidneys": 1.0}, organ_masses_g={"kidneys": m_ref / 2})["kidneys"])
    # electrons deposit locally: the Δ_np/m part doubles; photons scale by 2^(2/3) (OLINDA)
    s_np = DELTA_NP / m_ref
    assert half == pytest.approx(2 * s_np + (s_ref - s_np) * 2 ** (2 / 3), rel=1e-12)
    assert 2 ** (2 / 3) * s_ref < half < 2 * s_ref
    # a red-marrow-like case where Δ/m exceeds S_self: everything scales as 1/m
    assert float(scaled_self_svalue(1e-5, 1000.0, 500.0, 1.0)) == pytest.approx(2e-5)


def test_leading_draws_axis_jit_and_vmap():
    draws = jnp.linspace(900.0, 1100.0, 7)
    doses = organ_doses({"kidneys": draws, "liver": 2000.0, "total_body": 30_000.0})
    assert doses["kidneys"].shape == (7,)
    single = [float(organ_doses({"kidneys": float(d), "liver": 2000.0,
                                 "total_body": 30_000.0})["kidneys"]) for d in draws]
    np.testing.assert_allclose(doses["kidneys"], single, rtol=1e-12)

    def kidney_dose(tia_kidneys, mass):
        return organ_doses({"kidneys": tia_kidneys, "liver": 2000.0},
                           organ_masses_g={"kidneys": mass})["kidneys"]

    masses = jnp.linspace(250.0, 350.0, 7)
    jitted = jax.jit(jax.vmap(kidney_dose))(draws, masses)
    plain = [float(kidney_dose(float(a), float(m))) for a, m in zip(draws, masses, strict=True)]
    np.testing.assert_allclose(jitted, plain, rtol=1e-12)


def test_lesions_use_sphere_model():
    doses = organ_doses({"kidneys": 1000.0, "lesion_1": 300.0, "lesion_2": 100.0},
                        lesion_volumes_ml={"lesion_1": 10.0}, lesion_masses_g={"lesion_2": 2.0})
    assert float(doses["lesion_1"]) == pytest.approx(300 * DELTA_NP / 10.4, rel=0.02)
    assert float(doses["lesion_2"]) == pytest.approx(100 * DELTA_NP / 2.0, rel=0.04)


def test_opendose_phantom_doses():
    doses = organ_doses({"kidneys": 1000.0, "liver": 500.0}, phantom="icrp110-am",
                        targets=["kidneys", "spleen"])
    assert set(doses) == {"kidneys", "spleen"}
    assert float(doses["kidneys"]) == pytest.approx(
        1000 * svalue("kidneys", "kidneys", phantom="icrp110-am")
        + 500 * 1.3943e-7 * 3.6, rel=1e-9)


@pytest.mark.parametrize(
    ("tia", "kwargs", "match"),
    [
        ({"kidnys": 1.0}, {}, r"tia_mbq_h organ.*Did you mean 'kidneys'"),
        ({"kidneys": -1.0}, {}, "tia_mbq_h"),
        ({"kidneys": float("nan")}, {}, "tia_mbq_h"),
        ({"kidneys": 1.0, "kidney": 2.0}, {}, "twice"),
        ({"kidneys": 1.0, "total_body": 5.0, "remainder": 1.0}, {}, "not both"),
        ({"kidneys": 1.0}, {"phantom": "child"}, "phantom"),
        ({"kidneys": 1.0}, {"nuclide": "Y-90"}, "nuclide"),
        ({"kidneys": 1.0}, {"organ_masses_g": {"kidneys": -3.0}}, "organ_masses_g"),
        ({"kidneys": 1.0}, {"organ_masses_g": {"kidnes": 3.0}}, "organ_masses_g"),
        ({"lesion_1": 1.0}, {}, "lesion_volumes_ml"),
        ({"kidneys": 1.0}, {"targets": ["livr"]}, "targets"),
        ({}, {}, "tia_mbq_h"),
        ({"total_body": 1.0}, {"phantom": "icrp110-am"}, "icrp110-am"),
    ],
)
def test_bad_input(tia, kwargs, match):
    with pytest.raises(InputError, match=match):
        organ_doses(tia, **kwargs)


def test_urine_is_ignored_by_default():
    a = organ_doses({"kidneys": 1000.0, "urine": 5000.0})
    b = organ_doses({"kidneys": 1000.0})
    assert float(a["kidneys"]) == float(b["kidneys"])
