"""Activity and ligand amount per remaining cycle (tdt.twin.plan_ligand_per_cycle).

Independent reference: a brute-force grid over (A_1, L_1, A_2, L_2) — two remaining cycles,
each with its own draws (the lesion's receptor density falls by 40 % in cycle 2), responses
from one :class:`LigandResponse` per cycle (not the planner's stacked one), exceedances counted
draw by draw, no relaxation, no interpolation, no derivative."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.pbpk import draw_parameters, get_model
from tdt.twin import RED_MARROW_DOSE_2, Constraint, LigandResponse, plan_ligand_per_cycle

N_DRAWS = 40
LESION_ML = 500.0
#: a kidney BED limit that binds within two cycles of this patient (tests the constraint)
CONSTRAINTS = (Constraint("kidneys", "bed", 8.0, 0.05), RED_MARROW_DOSE_2)


@pytest.fixture(scope="module")
def setup():
    forward = get_model("psma617").build(lesions=1, method="grid")
    sd = {n: 0.0 for n in forward.parameter_names}
    for name in ("GFR", "R_kidneys", "krel_kidneys", "R_lesion_1", "krel_lesion_1"):
        sd[name] = 0.3
    first = {k: np.asarray(v) for k, v in draw_parameters(
        forward, N_DRAWS, seed=4, sd_log=sd, median={"V_lesion_1": LESION_ML}).items()}
    second = dict(first, R_lesion_1=first["R_lesion_1"] * 0.6)
    responses = [LigandResponse(forward, d, lesion_volumes_ml={"lesion_1": LESION_ML})
                 for d in (first, second)]
    return forward, (first, second), responses


def _counted(responses, activities, ligands):
    """(objective, {constraint label: probability}) of a per-cycle schedule, counted."""
    organs = responses[0].organs
    bed = dose = 0.0
    for response, a, lig in zip(responses, activities, ligands, strict=True):
        d, q = response.coefficients(lig)
        bed, dose = bed + d * a + q * a**2, dose + d * a
    probabilities = {c.label: float(np.mean(((bed if c.quantity == "bed" else dose)
                                             [:, organs.index(c.organ)]) > c.limit_gy))
                     for c in CONSTRAINTS}
    return float(bed[:, organs.index("lesion_1")].mean()), probabilities


def _grid_best(responses, activities, ligands):
    organs = responses[0].organs
    tables = [{lig: r.coefficients(lig) for lig in ligands} for r in responses]
    a1, a2 = np.meshgrid(activities, activities, indexing="ij")
    a1, a2 = a1[..., None, None], a2[..., None, None]
    best = (-np.inf, None)
    for l1, l2 in itertools.product(ligands, ligands):
        (d1, q1), (d2, q2) = tables[0][l1], tables[1][l2]
        bed = d1 * a1 + q1 * a1**2 + d2 * a2 + q2 * a2**2  # (nA, nA, draws, organs)
        dose = d1 * a1 + d2 * a2
        ok = np.ones(a1.shape[:2], dtype=bool)
        for c in CONSTRAINTS:
            values = (bed if c.quantity == "bed" else dose)[..., organs.index(c.organ)]
            ok &= (values > c.limit_gy).mean(axis=-1) <= c.max_probability
        objective = np.where(ok, bed[..., organs.index("lesion_1")].mean(axis=-1), -np.inf)
        i, j = np.unravel_index(np.argmax(objective), objective.shape)
        if objective[i, j] > best[0]:
            best = (float(objective[i, j]), (activities[i], l1, activities[j], l2))
    return best


def test_per_cycle_plan_is_at_least_as_good_as_a_coarse_grid(setup):
    forward, draws, responses = setup
    result = plan_ligand_per_cycle(forward, list(draws), constraints=CONSTRAINTS,
                                   lesion_volumes_ml={"lesion_1": LESION_ML},
                                   start=(4000.0, 150.0))
    assert result.feasible and len(result.activities_mbq) == len(result.ligand_nmol) == 2
    assert all(20.0 <= v <= 1000.0 for v in result.ligand_nmol)
    assert all(1000.0 <= a <= 12000.0 for a in result.activities_mbq)
    # the plan's numbers are the exact (counted) ones of its schedule
    objective, probabilities = _counted(responses, result.activities_mbq, result.ligand_nmol)
    assert result.expected_objective == pytest.approx(objective, rel=1e-9)
    for label, p in probabilities.items():
        assert result.constraint_probabilities[label] == pytest.approx(p, abs=1e-12)
        assert p <= 0.05
    grid_value, grid_point = _grid_best(responses, np.arange(1000.0, 12001.0, 1000.0),
                                        np.geomspace(20.0, 1000.0, 7))
    assert np.isfinite(grid_value), grid_point
    # at least as good as the coarse grid's best feasible point (0.5 % tolerance)
    assert result.expected_objective >= grid_value * (1 - 0.005)
    # never worse than the uniform start it began from
    start = [t for t in result.trace if t["method"] == "uniform start"]
    assert all(result.expected_objective >= t["objective"] - 1e-9 for t in start)


def test_per_cycle_plan_input_errors_name_the_field(setup):
    forward, draws, _ = setup
    with pytest.raises(InputError, match="cycle_draws"):
        plan_ligand_per_cycle(forward, draws[0])
    with pytest.raises(InputError, match="cycle_draws"):
        plan_ligand_per_cycle(forward, [draws[0], {"GFR": draws[0]["GFR"][:5]}])
    with pytest.raises(InputError, match="n_nodes"):
        plan_ligand_per_cycle(forward, list(draws), n_nodes=1)


def test_per_cycle_plan_carries_the_blood_marrow_factor_to_every_cycle(setup):
    """``marrow_scale`` (blood- or L2–L4-calibrated marrow, one factor per draw) reaches every
    planned cycle: the plan's marrow probability equals the count over per-cycle responses
    built with that factor (not the planner's stacked, tiled one)."""
    forward, draws, _ = setup
    scale = np.random.default_rng(7).lognormal(np.log(6.0), 0.3, N_DRAWS)  # marrow binds
    responses = [LigandResponse(forward, d, lesion_volumes_ml={"lesion_1": LESION_ML},
                                marrow_scale=scale) for d in draws]
    result = plan_ligand_per_cycle(forward, list(draws), constraints=CONSTRAINTS,
                                   lesion_volumes_ml={"lesion_1": LESION_ML},
                                   start=(4000.0, 150.0), marrow_scale=scale)
    assert result.feasible
    objective, probabilities = _counted(responses, result.activities_mbq, result.ligand_nmol)
    assert result.expected_objective == pytest.approx(objective, rel=1e-9)
    for label, p in probabilities.items():
        assert result.constraint_probabilities[label] == pytest.approx(p, abs=1e-12)
    # the unscaled marrow would allow more activity: the factor is not ignored
    unscaled = plan_ligand_per_cycle(forward, list(draws), constraints=CONSTRAINTS,
                                     lesion_volumes_ml={"lesion_1": LESION_ML},
                                     start=(4000.0, 150.0))
    assert sum(result.activities_mbq) < sum(unscaled.activities_mbq)
