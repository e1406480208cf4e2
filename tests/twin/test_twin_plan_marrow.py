"""The planner's red-marrow constraint from Posterior.predict_doses draws, and organs without a
published limit (lacrimal glands): reported, never constrained."""

from __future__ import annotations

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.inference import DosePrediction
from tdt.radiobiology import dose_limit
from tdt.twin import Constraint, DoseDraws, evaluate, plan
from tdt.twin._plan import RED_MARROW_DOSE_2
from tests.inference.test_inference_posterior_marrow import posterior  # noqa: F401 (fixture)

A_FITTED = 7400.0  # MBq, the cycle the prediction describes


def _prediction(n=400, seed=0) -> DosePrediction:
    rng = np.random.default_rng(seed)
    dose = {"kidneys": 3.0 * np.exp(rng.normal(0, 0.2, n)),
            "red_marrow": 0.45 * np.exp(rng.normal(0, 0.3, n)),
            "lacrimal_glands": 2.5 * np.exp(rng.normal(0, 0.3, n)),
            "lesion_1": 40.0 * np.exp(rng.normal(0, 0.3, n))}
    t_eff = {o: np.full(n, h) for o, h in (("kidneys", 40.0), ("red_marrow", 30.0),
                                             ("lacrimal_glands", 50.0), ("lesion_1", 1e9))}
    return DosePrediction(tia_mbq_h={}, dose_gy=dose, effective_half_life_h=t_eff,
                          marrow_method="blood")


def test_marrow_constraint_is_the_registered_limit():
    limit = dose_limit("red_marrow_dose")
    assert (RED_MARROW_DOSE_2.organ, RED_MARROW_DOSE_2.quantity, RED_MARROW_DOSE_2.limit_gy) == (
        limit.organ, limit.quantity, limit.limit_gy) == ("red_marrow", "dose", 2.0)


def test_plan_marrow_probability_is_fraction_of_prediction_draws_above_2_gy():
    pred = _prediction()
    draws = DoseDraws.from_dose_prediction(pred, A_FITTED)
    assert draws.dose_only == ("lacrimal_glands",)
    # capped effective half-life: a rising lesion curve gets the physical half-life (Lu-177)
    activities = [9000.0, 9000.0, 9000.0, 9000.0]
    ev = evaluate(draws, activities, [RED_MARROW_DOSE_2])
    by_hand = np.mean(pred.dose_gy["red_marrow"] / A_FITTED * sum(activities) > 2.0)
    assert 0.05 < by_hand < 0.95
    assert ev.constraint_probabilities[RED_MARROW_DOSE_2.label] == pytest.approx(by_hand, abs=0)
    planned = plan(draws, 4, constraints=[RED_MARROW_DOSE_2])
    x = np.sum(planned.activities_mbq)
    p_hand = np.mean(pred.dose_gy["red_marrow"] / A_FITTED * x > 2.0)
    assert planned.constraint_probabilities[RED_MARROW_DOSE_2.label] == pytest.approx(p_hand,
                                                                                       abs=0)
    assert p_hand <= 0.05
    # lacrimal glands: reported among the organ doses, with no limit and no constraint
    assert "lacrimal_glands_dose" in planned.summaries
    assert any(n.startswith("lacrimal_glands:") and "not constrained" in n
               for n in planned.notes)
    assert planned.to_dict()["notes"] == list(planned.notes)


def test_bed_constraint_on_a_dose_only_organ_is_refused():
    draws = DoseDraws.from_dose_prediction(_prediction(), A_FITTED)
    with pytest.raises(InputError, match="lacrimal_glands"):
        plan(draws, 2, constraints=[Constraint("lacrimal_glands", "bed", 30.0, 0.05)])
    with pytest.raises(InputError, match="activity_mbq"):
        DoseDraws.from_dose_prediction(_prediction(), 0.0)


def test_plan_from_posterior_blood_marrow_draws(posterior):  # noqa: F811
    pred = posterior.predict_doses(marrow="blood")
    draws = DoseDraws.from_dose_prediction(pred, A_FITTED,
                                           organs=("kidneys", "red_marrow", "lesion_1"))
    per_mbq = pred.dose_gy["red_marrow"] / A_FITTED
    np.testing.assert_allclose(draws.dose_per_mbq[0, :, 1], per_mbq, rtol=1e-12)
    a = 2.0 / np.median(per_mbq)  # half the draws above the limit
    ev = evaluate(draws, [a], [RED_MARROW_DOSE_2])
    assert ev.constraint_probabilities[RED_MARROW_DOSE_2.label] == pytest.approx(
        np.mean(per_mbq * a > 2.0), abs=0)
