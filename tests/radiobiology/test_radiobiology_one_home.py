"""One home for radiobiology: every activity→BED path goes through tdt.radiobiology and agrees.

The same synthetic posterior draws (per draw and organ: absorbed dose per GBq and effective decay
constant λ_eff of a mono-exponential dose rate after instant uptake) are given to

* the twin's planner path (``DoseDraws.from_monoexponential`` / ``from_exponentials`` →
  ``tdt.twin.evaluate`` and ``predict_schedule``),
* the scenario explorer's core (``ScenarioModel`` → ``scenario_core``),
* tdt.radiobiology directly (``bed_monoexponential``, ``bed_sum_of_exponentials``),

and all must give the same BED (rtol 1e-10), equal to the independent closed form for a
mono-exponential dose rate after instant uptake (Dale, Br J Radiol 1985;58:515; Baechler S,
Hobbs RF, Prideaux AR, Wahl RL, Sgouros G, Med Phys 2008;35:1123, citation recalled):

    BED = D (1 + D λ_eff / ((μ + λ_eff) (α/β))),   μ = ln 2 / T_rep,

written out below in NumPy with the cited tissue values typed in (kidneys α/β 2.6 Gy, T_rep
2.8 h, Bodei et al. EJNMMI 2008;35:1847; red marrow 10 Gy, 0.5 h; tumour 10 Gy, 1.5 h).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tdt.radiobiology as rb
from tdt.errors import InputError
from tdt.twin import Constraint, DoseDraws, TcpModel, evaluate
from tdt.twin._predict import predict_schedule
from tdt.widgets import Scenario, ScenarioInputs, ScenarioModel

ORGANS = ("kidneys", "red_marrow", "lesion_1")
# (α/β Gy, T_rep h) as published (module docstring), not read from the code
LQ = {"kidneys": (2.6, 2.8), "red_marrow": (10.0, 0.5), "lesion_1": (10.0, 1.5)}
ACTIVITY_MBQ = 7400.0


@pytest.fixture(scope="module")
def draws():
    """60 synthetic draws: dose per GBq (Gy/GBq) and λ_eff (1/h) per organ."""
    rng = np.random.default_rng(2020)
    gy_per_gbq = np.stack([rng.lognormal(np.log(m), 0.3, 60) for m in (0.5, 0.03, 3.0)], axis=1)
    t_eff_h = np.stack([rng.lognormal(np.log(h), 0.25, 60) for h in (40.0, 60.0, 90.0)], axis=1)
    return gy_per_gbq / 1000.0, math.log(2.0) / t_eff_h  # Gy/MBq, 1/h


def dale_baechler_bed(dose_gy, lambda_eff, alpha_beta, t_rep):
    mu = math.log(2.0) / t_rep
    return dose_gy * (1.0 + dose_gy * lambda_eff / ((mu + lambda_eff) * alpha_beta))


def reference_bed(dose_per_mbq, lambda_eff, activity_mbq):
    ab = np.array([LQ[o][0] for o in ORGANS])
    t_rep = np.array([LQ[o][1] for o in ORGANS])
    return dale_baechler_bed(dose_per_mbq * activity_mbq, lambda_eff, ab, t_rep)


def test_tissue_table_holds_the_cited_values():
    for organ, (ab, t_rep) in LQ.items():
        assert rb.tissue(organ).alpha_beta_gy == ab
        assert rb.tissue(organ).repair_half_time_h == t_rep


@pytest.mark.parametrize("n_cycles", [1, 3])
def test_twin_explorer_and_radiobiology_give_the_same_bed(draws, n_cycles):
    d, lam = draws
    t_eff_h = math.log(2.0) / lam
    expected = n_cycles * reference_bed(d, lam, ACTIVITY_MBQ)  # cycles summed (no interaction)
    schedule = np.full(n_cycles, ACTIVITY_MBQ)

    # twin: planner's evaluation from two constructors, and the prediction
    mono = DoseDraws.from_monoexponential(ORGANS, d, t_eff_h)
    expo = DoseDraws.from_exponentials(ORGANS, (d * lam)[..., None], lam[..., None])
    twin_mono = evaluate(mono, schedule, constraints=()).cumulative_bed_gy
    twin_expo = evaluate(expo, schedule, constraints=()).cumulative_bed_gy
    twin_pred = predict_schedule(mono, schedule).cumulative_bed_gy

    # explorer core
    inputs = ScenarioInputs(regions=ORGANS, dose_per_mbq_gy=d, effective_half_life_h=t_eff_h)
    outcomes = ScenarioModel(inputs)(Scenario(activity_mbq=ACTIVITY_MBQ, n_cycles=n_cycles))
    explorer = outcomes.bed_total_draws_gy

    # tdt.radiobiology directly
    ab = np.array([rb.tissue(o).alpha_beta_gy for o in ORGANS])
    t_rep = np.array([rb.tissue(o).repair_half_time_h for o in ORGANS])
    direct = n_cycles * np.asarray(rb.bed_monoexponential(d * ACTIVITY_MBQ, ab, t_rep, t_eff_h))
    direct_sum = n_cycles * np.asarray(rb.bed_sum_of_exponentials(
        (d * lam * ACTIVITY_MBQ)[..., None], lam[..., None], ab, t_rep))

    for name, value in (("twin from_monoexponential", twin_mono),
                        ("twin from_exponentials", twin_expo), ("twin prediction", twin_pred),
                        ("explorer", explorer), ("radiobiology sum of exponentials", direct_sum)):
        np.testing.assert_allclose(value, direct, rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(direct, expected, rtol=1e-12)


def test_quadratic_coefficient_has_one_home():
    import tdt.twin as twin
    import tdt.twin._draws as draws

    assert draws.quadratic_bed_coefficient is rb.quadratic_bed_coefficient
    assert twin.quadratic_bed_coefficient is rb.quadratic_bed_coefficient
    # q of one exponential per unit activity: d² λ / ((λ + μ) α/β) (Dale 1985), by hand
    d, lam, ab, t_rep = 4e-4, math.log(2.0) / 45.0, 2.6, 2.8
    q = float(rb.quadratic_bed_coefficient(np.array([d * lam]), np.array([lam]), ab, t_rep))
    assert q == pytest.approx(d**2 * lam / ((lam + math.log(2.0) / t_rep) * ab), rel=1e-13)
    assert float(rb.g_factor_monoexponential(2.8, 45.0)) == pytest.approx(2.8 / 47.8, rel=1e-15)


def test_tcp_fixed_alpha_matches_closed_form_and_quadrature():
    bed = np.array([[40.0, 55.0], [60.0, 35.0]])
    n0, alpha = np.array([1e6, 3e5]), 0.3
    single = np.exp(-n0 * np.exp(-alpha * bed))  # Webb & Nahum 1993, one α
    np.testing.assert_allclose(rb.tcp_poisson_fixed_alpha(bed, alpha, n0), single, rtol=1e-13)
    np.testing.assert_allclose(rb.tcp_poisson_fixed_alpha(bed, alpha, n0, axis=-1),
                               single.prod(axis=-1), rtol=1e-13)
    # tcp_poisson without spread is the same model (Gauss–Hermite with s = 0)
    np.testing.assert_allclose(rb.tcp_poisson(bed, alpha, n0), single, rtol=1e-12)
    with pytest.raises(InputError, match="n_clonogens"):
        rb.tcp_poisson_fixed_alpha(bed, alpha, -1.0)


def test_planner_tcp_objective_uses_the_poisson_product(draws):
    d, lam = draws
    mono = DoseDraws.from_monoexponential(ORGANS, d, math.log(2.0) / lam)
    model = TcpModel(alpha_per_gy=0.05, clonogens={"lesion_1": 1e5})
    ev = evaluate(mono, [ACTIVITY_MBQ, ACTIVITY_MBQ], constraints=(), objective="tcp", tcp=model)
    lesion_bed = ev.cumulative_bed_gy[:, ORGANS.index("lesion_1")]
    np.testing.assert_allclose(ev.objective_draws, np.exp(-1e5 * np.exp(-0.05 * lesion_bed)),
                               rtol=1e-12)


def test_dose_limits_are_one_cited_table():
    assert rb.KIDNEY_BED_LIMIT_RISK_GY == 28.0 and rb.KIDNEY_BED_LIMIT_GY == 40.0  # Bodei 2008
    assert rb.RED_MARROW_DOSE_LIMIT_GY == 2.0
    assert rb.kidney_bed_limit_gy(True) == 28.0 and rb.kidney_bed_limit_gy(False) == 40.0
    for limit in rb.DOSE_LIMITS.values():
        assert limit.citation and limit.quantity in ("bed", "dose")
    assert "Bodei" in rb.dose_limit("kidneys_bed").citation
    marrow = Constraint.from_limit(rb.dose_limit("red_marrow_dose"))
    assert (marrow.organ, marrow.quantity, marrow.limit_gy) == ("red_marrow", "dose", 2.0)
    assert Scenario(kidney_risk_factors=True).kidney_bed_limit_gy == 28.0
    with pytest.raises(InputError, match="dose limit"):
        rb.dose_limit("liver")


@pytest.mark.parametrize("name, expected", [
    ("lesion_1", True), ("Lesion 2", True), ("lesion-liver-3", True), ("tumour", True),
    ("tumor_bone", True), ("kidneys", False), ("red_marrow", False), ("salivary_glands", False),
])
def test_is_lesion_is_one_rule(name, expected):
    import tdt.twin._tissues as tissues

    assert rb.is_lesion(name) is expected
    assert tissues.is_lesion is rb.is_lesion
    assert (rb.canonical_tissue_name(name) == "tumour") is expected


def test_twin_tissue_parameters_have_no_fallback():
    from tdt.twin import tissue_parameters

    assert tissue_parameters("lesion_4") == rb.tissue("tumour")
    with pytest.raises(InputError, match="tissue"):
        tissue_parameters("liver")


def test_explorer_names_the_generic_tissue_it_uses():
    inputs = ScenarioInputs(regions=("kidneys", "liver"), dose_per_mbq_gy=np.full((4, 2), 1e-4),
                            effective_half_life_h=np.full((4, 2), 50.0))
    from tdt.widgets._scenario import resolve_radiobiology

    resolved = resolve_radiobiology(inputs.regions, Scenario())
    assert resolved.alpha_beta_gy[1] == rb.GENERIC_LATE_TISSUE.alpha_beta_gy == 3.0
    assert resolved.citations["liver"] == rb.GENERIC_LATE_TISSUE.citation


def test_ntcp_dose_dispatch_is_shared_by_organ_and_explorer():
    bed = np.array([[30.0, 12.0, 3.0]])
    absorbed = np.array([[20.0, 10.0, 2.5]])
    ab = np.array([2.6, 3.0, 10.0])
    metric = np.array([0, 1, 2])  # eqd2, bed, absorbed dose
    expected = np.array([[30.0 / (1.0 + 2.0 / 2.6), 12.0, 2.5]])  # EQD2 = BED/(1 + 2/(α/β))
    np.testing.assert_allclose(rb.ntcp_dose(metric, bed, absorbed, ab), expected, rtol=1e-14)
    assert rb.NTCP_METRICS == ("eqd2", "bed", "absorbed_dose")
    for organ in rb.NTCP_PARAMETERS:
        p = rb.ntcp_parameters(organ)
        dose = {"eqd2": 40.0 / (1.0 + 2.0 / p.alpha_beta_gy), "bed": 40.0, "absorbed_dose": 3.0}
        by_hand = float(rb.ntcp_lkb(dose[p.dose_metric], p.td50_gy, p.m))
        assert float(rb.ntcp_organ(organ, 40.0, absorbed_dose_gy=3.0)) == pytest.approx(
            by_hand, rel=1e-13)
