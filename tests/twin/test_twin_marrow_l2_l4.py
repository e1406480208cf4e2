"""Image-based red marrow from an L2–L4 VOI in the twins (issue 23): a cycle with
``CycleData.marrow_l2_l4`` and no blood samples gives the marrow TIA per draw from the VOI
(Ã_L2–L4 / f, f ~ U(6.7 %, 7.4 %); tdt.twin._plan_marrow, the draws of Posterior.predict_doses).

Simulated patient: the reduced model's default kinetics; its L2–L4 VOI holds 7 % of the model's
marrow activity (inside the stated fraction range). Independent references: the model's own
marrow TIA (sum of exponentials integrated in closed form) and the closed-form TIA of a
mono-exponential VOI curve.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tdt.dosimetry import L2_L4_MARROW_FRACTION_RANGE
from tdt.errors import InputError
from tdt.inference import L2_L4_TIA_SD_LOG, OrganSeries
from tdt.pbpk import batched_bolus_exponentials, exponential_sum
from tdt.physics import nuclide
from tdt.twin import CycleData, PatientRecord, Twin
from tdt.twin._plan_marrow import pbpk_blood_marrow

ACTIVITY = 7400.0  # MBq
TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
IMAGED = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow", "lesion_1")
SHARE_TRUE = 0.07
RECORD = PatientRecord("sim-l2l4", lesions={"lesion_1": 10.0})


def _mean_log_fraction() -> float:
    """E[ln f] for f ~ U(a, b): (b ln b - a ln a) / (b - a) - 1."""
    a, b = L2_L4_MARROW_FRACTION_RANGE
    return (b * np.log(b) - a * np.log(a)) / (b - a) - 1.0


@pytest.fixture(scope="module")
def twins():
    probe = Twin(RECORD, model="reduced", n_draws=200, seed=3)
    params = {k: np.array([v]) for k, v in probe.model.default_params().items()}
    amp, rates = batched_bolus_exponentials(probe.model, params)
    rm = probe.model.compartments.index("red_marrow")

    def activity(organ, t):
        i = probe.model.compartments.index(organ)
        return ACTIVITY * exponential_sum(amp[0, i], rates[0], np.asarray(t, dtype=float))

    meas = {o: (TIMES, activity(o, TIMES)) for o in IMAGED}
    voi = OrganSeries(TIMES, SHARE_TRUE * activity("red_marrow", TIMES))
    image = Twin(RECORD, model="reduced", n_draws=200, seed=3)
    image.assimilate(CycleData(ACTIVITY, meas))
    l2l4 = Twin(RECORD, model="reduced", n_draws=200, seed=3)
    l2l4.assimilate(CycleData(ACTIVITY, meas, marrow_l2_l4=voi))
    return {"image": image, "l2l4": l2l4,
            "marrow_tia_true": float(ACTIVITY * np.sum(amp[0, rm] / rates[0]))}


def test_linear_twin_takes_the_marrow_from_the_l2_l4_voi(twins):
    image, l2l4 = twins["image"], twins["l2l4"]
    assert l2l4.marrow_method == "image_l2l4" and image.marrow_method == "image"
    rm = image.targets.index("red_marrow")
    d_image = image.response(1).dose_per_mbq[0, :, rm]
    d_l2l4 = l2l4.response(1).dose_per_mbq[0, :, rm]
    lo, hi = np.percentile(d_l2l4, [5, 95])
    assert lo <= np.median(d_image) <= hi  # the model's (true) marrow inside the L2-L4 interval
    assert not np.allclose(d_l2l4, d_image)  # and the L2-L4 draws are their own
    # the plan's marrow constraint is evaluated on these draws
    plan = l2l4.plan()
    assert "red_marrow_dose" in plan.summaries
    cycle = l2l4.cycles[0]
    again = CycleData.from_dict(cycle.to_dict())
    np.testing.assert_array_equal(again.marrow_l2_l4.activity_mbq, cycle.marrow_l2_l4.activity_mbq)
    assert again.sha256() == cycle.sha256() and "marrow_l2_l4" not in image.cycles[0].to_dict()
    with pytest.raises(InputError, match="marrow_l2_l4"):
        CycleData(ACTIVITY, cycle.measurements, marrow_l2_l4=[1.0, 2.0])


def test_pbpk_marrow_from_an_l2_l4_voi_by_hand():
    lam = nuclide("Lu-177").decay_constant_per_h
    k_bio, a0 = 0.02, 50.0  # VOI: a0 e^{-(k + lam) t} MBq
    meas = {"kidneys": (TIMES, 100.0 * np.exp(-0.02 * TIMES))}
    voi = OrganSeries(TIMES, a0 * np.exp(-(k_bio + lam) * TIMES))
    twin = SimpleNamespace(cycles=[CycleData(ACTIVITY, meas, marrow_l2_l4=voi)], n_draws=400,
                           seed=5, record=RECORD)
    model = np.full((400, 3), 2000.0)
    out = pbpk_blood_marrow(twin, model, [ACTIVITY, 6000.0, 6000.0])
    assert out.methods == ("image_l2l4", "image_l2l4", "image_l2l4")
    assert "L2-L4" in out.note()
    log_tia = np.log(out.tia_mbq_h[0])
    # closed form: VOI TIA a0 / (k + lam); E[ln(1/f)] for the uniform fraction; within the
    # stated VOI-TIA error (90 %) plus Monte Carlo error (the 5-point trapezoid overestimates)
    hand = np.log(a0 / (k_bio + lam)) - _mean_log_fraction()
    assert abs(np.mean(log_tia) - hand) < 1.645 * L2_L4_TIA_SD_LOG + 3 * 0.11 / 20
    np.testing.assert_allclose(out.tia_mbq_h[1], model[:, 1] * out.scale, rtol=1e-12)
