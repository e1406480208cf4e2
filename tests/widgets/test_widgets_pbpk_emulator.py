"""The explorer on the receptor-PBPK posterior: the ligand emulator (tdt.widgets._adapters_pbpk).

Independent references: the direct PBPK solve of every draw at the slider's ligand amount
(:meth:`tdt.twin.LigandResponse.coefficients`, one vmapped solve), with D = d·A and
BED = d·A + q·A² per draw (exact in A); an analytic identity of the interpolation (a power law
in L is reproduced exactly by interpolation of logs in log L); and the saturation physics (more
peptide -> less dose per MBq in kidneys, salivary glands and tumour: Kletting P, et al. J Nucl
Med 2016;57:503). Draws and model are those of tests/twin/test_twin_plan_ligand.py (the same
compiled program).
"""

from __future__ import annotations

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.pbpk import draw_parameters, get_model
from tdt.twin import LigandResponse
from tdt.widgets import (
    LigandCurves,
    Scenario,
    ScenarioExplorer,
    ScenarioInputs,
    ScenarioModel,
    inputs_from_ligand_response,
    inputs_from_pbpk_twin,
)

N_DRAWS = 60
LESION_ML = 500.0
GRID = np.geomspace(20.0, 1000.0, 7)


@pytest.fixture(scope="module")
def response():
    forward = get_model("psma617").build(lesions=1, method="grid")
    sd = {n: 0.0 for n in forward.parameter_names}
    for name in ("GFR", "R_kidneys", "krel_kidneys", "R_lesion_1", "krel_lesion_1",
                 "R_salivary_glands", "krel_salivary_glands"):
        sd[name] = 0.3
    params = draw_parameters(forward, N_DRAWS, seed=3, sd_log=sd,
                             median={"V_lesion_1": LESION_ML})
    return LigandResponse(forward, {k: np.asarray(v) for k, v in params.items()},
                          lesion_volumes_ml={"lesion_1": LESION_ML})


@pytest.fixture(scope="module")
def inputs(response):
    return inputs_from_ligand_response(response, GRID)


def _direct(response, inputs, ligand, activity):
    d, q = response.coefficients(ligand)
    index = [response.organs.index(r) for r in inputs.regions]
    d, q = d[:, index], q[:, index]
    return activity * d, activity * d + q * activity**2


def _emulated(inputs, ligand, activity):
    out = ScenarioModel(inputs)(Scenario(activity_mbq=activity, n_cycles=1, ligand_nmol=ligand))
    return out.bed_total_draws_gy


@pytest.mark.parametrize("activity", [3000.0, 9000.0])
def test_emulator_is_exact_at_grid_amounts_and_in_activity(response, inputs, activity):
    ligand = float(GRID[2])
    _, bed = _direct(response, inputs, ligand, activity)
    lq = [i for i, r in enumerate(inputs.regions) if r in ("kidneys", "red_marrow",
                                                           "salivary_glands", "lesion_1")]
    np.testing.assert_allclose(_emulated(inputs, ligand, activity)[:, lq], bed[:, lq],
                               rtol=1e-9)
    dose = ScenarioModel(inputs)(Scenario(activity_mbq=activity, n_cycles=1, ligand_nmol=ligand))
    d_direct, _ = _direct(response, inputs, ligand, activity)
    np.testing.assert_allclose(dose.dose_per_cycle_gy[1], np.quantile(d_direct, 0.5, axis=0),
                               rtol=1e-9)


def test_emulator_error_is_measured_and_bounds_other_off_grid_amounts(response, inputs):
    emulator = inputs.ligand_emulator
    assert emulator["method"] == "pchip-log" and len(emulator["check_nmol"]) == GRID.size - 1
    # 7 amounts over 20-1000 nmol: a few tenths of a percent (PSMA-617; docs/notebooks.md)
    assert 0.0 < emulator["max_rel_error_dose"] < 0.01
    assert 0.0 < emulator["max_rel_error_bed"] < 0.01
    for ligand in (33.0, 150.0, 470.0):  # off-grid, not the checked midpoints
        _, bed = _direct(response, inputs, ligand, 7400.0)
        lq = [i for i, r in enumerate(inputs.regions) if r != "liver" and r != "spleen"]
        error = np.max(np.abs(_emulated(inputs, ligand, 7400.0)[:, lq] / bed[:, lq] - 1.0))
        # the midpoints are where interpolation is worst: the recorded error bounds the rest
        assert error <= emulator["max_rel_error_bed"] * 1.5 + 1e-6


def test_emulator_carries_saturation_physics(inputs):
    low = ScenarioModel(inputs)(Scenario(activity_mbq=7400.0, n_cycles=1, ligand_nmol=30.0))
    high = ScenarioModel(inputs)(Scenario(activity_mbq=7400.0, n_cycles=1, ligand_nmol=600.0))
    for region in ("kidneys", "salivary_glands", "lesion_1"):
        i = inputs.regions.index(region)
        assert np.all(high.bed_total_draws_gy[:, i] < low.bed_total_draws_gy[:, i])


def test_explorer_on_pbpk_draws_has_live_ligand_control_and_shows_the_error(response, inputs):
    delivered = {"kidneys": np.full(N_DRAWS, 5.0)}
    with_past = inputs_from_ligand_response(response, GRID, prior_dose_gy=delivered,
                                            prior_bed_gy={"kidneys": np.full(N_DRAWS, 6.0)},
                                            check=False)
    ex = ScenarioExplorer(inputs)
    assert not ex.controls["ligand_nmol"].disabled
    assert ex.controls["ligand_nmol"].value == pytest.approx(inputs.ligand_emulator[
        "reference_nmol"])
    assert "Max error vs the direct PBPK solve" in ex.notes.value
    ex.controls["ligand_nmol"].value = 40.0
    low = float(ex.displayed("kidneys", "dose_total_gy"))
    ex.controls["ligand_nmol"].value = 800.0
    assert float(ex.displayed("kidneys", "dose_total_gy")) < low
    assert ex.errors == []
    past = ScenarioModel(with_past)(Scenario(activity_mbq=7400.0, n_cycles=1, ligand_nmol=100.0))
    now = ScenarioModel(inputs)(Scenario(activity_mbq=7400.0, n_cycles=1, ligand_nmol=100.0))
    k = inputs.regions.index("kidneys")
    np.testing.assert_allclose(past.bed_total_draws_gy[:, k], now.bed_total_draws_gy[:, k] + 6.0,
                               rtol=1e-12)
    assert "not measured" in with_past.notes[0]
    assert inputs.subsample(20).ligand_half_life_h.shape == (20, len(inputs.regions), GRID.size)


@pytest.mark.parametrize("ligand", [float(GRID[3]), 47.0, 330.0])
def test_explorer_table_shows_quantiles_of_the_direct_pbpk_draws(response, inputs, ligand):
    """What the table shows at a few slider positions (moved as a user would, activity and
    ligand alternately) equals NumPy quantiles of the direct PBPK draws at that (A, L): exactly
    at a grid amount, within the emulator's recorded error elsewhere (1.5x: its check amounts
    are the worst, see above), plus the display's rounding."""
    ex = ScenarioExplorer(inputs)
    ex.controls["activity_gbq"].value = 5.0
    ex.controls["ligand_nmol"].value = ligand
    ex.controls["activity_gbq"].value = inputs.ligand_emulator["check_activity_mbq"] / 1000.0
    ligand = float(ex.controls["ligand_nmol"].value)
    activity = 1000.0 * float(ex.controls["activity_gbq"].value)
    n_cycles = int(ex.controls["n_cycles"].value)
    dose, bed = _direct(response, inputs, ligand, activity)
    on_grid = bool(np.any(np.isclose(GRID, ligand, rtol=1e-12)))
    e = inputs.ligand_emulator
    for region in ("kidneys", "salivary_glands", "lesion_1"):
        i = inputs.regions.index(region)
        for quantity, draws, rel, digits in (
                ("dose_per_cycle_gy", dose[:, i], e["max_rel_error_dose"], 2),
                ("dose_total_gy", n_cycles * dose[:, i], e["max_rel_error_dose"], 1),
                ("bed_total_gy", n_cycles * bed[:, i], e["max_rel_error_bed"], 1)):
            expected = float(np.quantile(draws, 0.5))
            tolerance = (1e-9 if on_grid else 1.5 * rel) * expected + 0.5 * 10.0**-digits
            assert abs(float(ex.displayed(region, quantity)) - expected) <= tolerance + 1e-12, \
                (region, quantity, ligand)
    # P(kidney BED > limit): the fraction of direct draws above it, up to draws within the
    # emulator's error of the limit, and the whole-percent display
    k = inputs.regions.index("kidneys")
    limit = float(ex.outcomes.limit_gy[k])
    total = n_cycles * bed[:, k]
    slack = 0.0 if on_grid else 1.5 * e["max_rel_error_bed"]
    low, high = np.mean(total > limit * (1 + slack)), np.mean(total > limit * (1 - slack))
    shown = float(ex.displayed("kidneys", "p_exceed").replace("&lt;", "").strip(" %")) / 100
    assert low - 0.005 <= shown <= high + 0.005
    assert 0.0 < np.mean(total > limit) < 1.0  # a position where the probability is not trivial
    assert ex.errors == []


def test_saved_inputs_give_the_same_outcomes(inputs, tmp_path):
    path = tmp_path / "explorer_inputs.npz"
    inputs.save(path)
    back = ScenarioInputs.load(path)
    assert back.ligand_emulator == inputs.ligand_emulator and back.notes == inputs.notes
    scenario = Scenario(activity_mbq=6000.0, n_cycles=3, ligand_nmol=77.0)
    np.testing.assert_array_equal(ScenarioModel(back)(scenario).bed_total_draws_gy,
                                  ScenarioModel(inputs)(scenario).bed_total_draws_gy)
    (tmp_path / "bad.npz").write_bytes(b"not a file")
    with pytest.raises(InputError, match="path"):
        ScenarioInputs.load(tmp_path / "bad.npz")


def test_log_interpolation_reproduces_a_power_law_and_does_not_overshoot():
    grid = np.array([20.0, 60.0, 200.0, 1000.0])
    scale = (grid / 150.0) ** -0.3  # a power law: exact under interpolation of logs in log L
    step = np.array([1.0, 1.0, 0.5, 0.5])  # a monotone step: PCHIP stays within [0.5, 1]
    curves = LigandCurves(grid, np.stack([scale, step])[None], method="pchip-log")
    for ligand in (25.0, 100.0, 555.0):
        value, half_life = curves(ligand)
        assert half_life is None
        assert value[0, 0] == pytest.approx((ligand / 150.0) ** -0.3, rel=1e-12)
        assert 0.5 <= value[0, 1] <= 1.0
    assert curves(5000.0)[0][0, 0] == pytest.approx(scale[-1], rel=1e-12)  # clipped


def test_bad_emulator_input_names_the_field(response):
    with pytest.raises(InputError, match="ligand_interpolation"):
        ScenarioInputs(("kidneys",), [[1e-3]], [[40.0]], ligand_grid_nmol=[1.0, 2.0],
                       ligand_uptake_scale=[[[1.0, 1.0]]], ligand_interpolation="cubic")
    with pytest.raises(InputError, match="ligand_half_life_h"):
        ScenarioInputs(("kidneys",), [[1e-3]], [[40.0]], ligand_grid_nmol=[1.0, 2.0],
                       ligand_uptake_scale=[[[1.0, 1.0]]], ligand_half_life_h=[[[40.0]]])
    with pytest.raises(InputError, match="grid_nmol"):
        inputs_from_ligand_response(response, [100.0, 50.0])
    with pytest.raises(InputError, match="twin"):
        inputs_from_pbpk_twin(object())


@pytest.mark.slow
def test_explorer_from_a_pbpk_twin_carries_its_delivered_dose_and_flags():
    """ScenarioExplorer(Twin(model="psma617")) after a tiny NUTS run: the emulator is built on the
    twin's next-cycle draws, the delivered dose is the twin's own prediction of the imaged cycle,
    and the non-converged posterior is flagged."""
    import datetime as dt
    import warnings

    from tdt import Twin
    from tdt.pbpk import Administration, Schedule, psma617
    from tdt.twin import Calibration, CycleData, PatientRecord

    model = psma617(lesions=("lesion_1",), method="grid")
    params = model.default_params()
    times = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
    sim = model.simulate(params, Schedule([Administration(0.0, 7400.0, 100.0)]), times)
    cycle = CycleData(7400.0, {o: (times, np.asarray(sim.activity_mbq[o]))
                               for o in ("kidneys", "salivary_glands", "lesion_1")},
                      Calibration(1.0, dt.date(2026, 1, 1)), dt.date(2026, 1, 5))
    twin = Twin(PatientRecord("pt", lesions={"lesion_1": 10.0}), model="psma617", n_draws=20,
                nuts_options={"draws": 10, "tune": 10, "chains": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twin.assimilate(cycle)
    ex = ScenarioExplorer(twin)
    assert ex.errors == [] and not ex.controls["ligand_nmol"].disabled
    assert "NOT CONVERGED" in ex.inputs.source and ex.inputs.converged is False
    assert ex.controls["n_cycles"].description == "further cycles"
    past = twin.predict(Schedule([Administration(0.0, 1.0, twin.ligand_nmol)]))
    k = ex.inputs.regions.index("kidneys")
    np.testing.assert_allclose(ex.inputs.delivered_dose_gy[:, k],
                               past.delivered_dose_gy["kidneys"], rtol=1e-12)
