"""fit_patient end to end on a tiny bi-exponential JAX model (tests/inference/inference_biexp.py).

Small runs (2 chains x 200 draws): they cannot pass the ESS >= 400 gate, which lets the tests
check that a non-converged posterior is flagged everywhere.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from inference_biexp import LAMBDA_LU177, BiExponential

from tdt.errors import ConvergenceError, InputError
from tdt.inference import (
    MeasurementModel,
    OrganSeries,
    PatientData,
    Posterior,
    custom_model,
    fit_patient,
)
from tdt.inference._diagnostics import NOT_CONVERGED
from tdt.inference._sampling import _gate

pbpk = pytest.importorskip("tdt.pbpk")

TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
TRUE = {"f_kidneys": 0.05, "ka_kidneys": 0.5, "kb_kidneys": 0.025}
ACTIVITY = 7400.0


def _true_tia():
    # Elementary integral of the bi-exponential (biexp.py docstring).
    lam = LAMBDA_LU177
    return ACTIVITY * TRUE["f_kidneys"] * (1 / (TRUE["kb_kidneys"] + lam)
                                           - 1 / (TRUE["ka_kidneys"] + lam))


def _data(seed=11):
    rng = np.random.default_rng(seed)
    lam = LAMBDA_LU177
    clean = ACTIVITY * TRUE["f_kidneys"] * (np.exp(-(TRUE["kb_kidneys"] + lam) * TIMES)
                                            - np.exp(-(TRUE["ka_kidneys"] + lam) * TIMES))
    noisy = clean * np.exp(rng.normal(0.0, 0.05, TIMES.size))
    return PatientData({"kidneys": OrganSeries(TIMES, noisy)}, administered_activity_mbq=ACTIVITY,
                       calibration_sd=0.03, patient_id="synthetic-1")


def _twin():
    # ka fixed (not identifiable from >= 4 h data); f and kb sampled, lognormal priors.
    return custom_model(BiExponential(("kidneys",)), sampled=("f_kidneys", "kb_kidneys"),
                        sd_log=0.5)


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = fit_patient(_data(), model=_twin(), draws=200, chains=2, tune=200, seed=5,
                           measurement=MeasurementModel(fixed_noise_sd=0.05))
    return post, caught


def test_posterior_covers_truth(fitted):
    post, _ = fitted
    tia = post.tia_draws["kidneys"]
    assert tia.shape == (400,)
    lo, hi = np.percentile(tia, [5, 95])
    assert lo < _true_tia() < hi
    assert np.median(tia) == pytest.approx(_true_tia(), rel=0.1)
    # calibration prior (3 %) propagates: posterior relative SD of TIA >= ~3 %
    assert np.std(np.log(tia)) > 0.025


def test_not_converged_is_flagged_everywhere(fitted):
    post, caught = fitted
    d = post.diagnostics
    assert (d.n_chains, d.n_draws) == (2, 200)
    assert d.min_ess_bulk < 400 and not post.converged
    assert any(NOT_CONVERGED in str(w.message) for w in caught)
    assert all(row["flag"] == NOT_CONVERGED for row in post.summary())
    assert post.report().startswith(f"*** {NOT_CONVERGED}")
    assert post.predict_doses(max_draws=50, radiobiology=False).flag == NOT_CONVERGED


def test_same_seed_same_summary(fitted):
    post, _ = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = fit_patient(_data(), model=_twin(), draws=200, chains=2, tune=200, seed=5,
                            measurement=MeasurementModel(fixed_noise_sd=0.05))
    assert again.summary() == post.summary()


def test_dose_prediction_per_draw(fitted):
    post, _ = fitted
    from tdt.dosimetry import svalue

    pred = post.predict_doses(max_draws=100)
    tia, dose = pred.tia_mbq_h["kidneys"], pred.dose_gy["kidneys"]
    assert tia.shape == dose.shape == (100,)
    # Only the kidneys are a source: D = TIA · S(kidneys <- kidneys) (MIRD schema).
    np.testing.assert_allclose(dose, tia * svalue("kidneys", "kidneys"), rtol=1e-10)
    # With ka fixed at 0.5/h the 24-168 h washout is mono-exponential: T_eff = ln2/(kb + λ).
    # Same draws: recompute from the parameter draws of the subset.
    kb = post.parameter_draws["kb_kidneys"]
    expected = math.log(2) / (kb + LAMBDA_LU177)
    assert np.all(pred.effective_half_life_h["kidneys"] >= expected.min() * 0.999)
    assert np.all(pred.effective_half_life_h["kidneys"] <= expected.max() * 1.001)
    # BED >= dose (LQ); kidneys have NTCP parameters
    assert np.all(pred.bed_gy["kidneys"] >= dose)
    assert np.all((pred.ntcp["kidneys"] >= 0) & (pred.ntcp["kidneys"] <= 1))
    rows = pred.summary()
    assert {r["quantity"] for r in rows} >= {"tia_mbq_h", "dose_gy", "bed_gy", "ntcp"}


def test_predict_new_schedule_scales_linearly(fitted):
    # The bi-exponential model is linear in the administered activity: doubling it doubles
    # every predicted TIA (superposition).
    post, _ = fitted
    one = post.predict(pbpk.Schedule([pbpk.Administration(0.0, 3700.0, 0.0)]), max_draws=20)
    two = post.predict(pbpk.Schedule([pbpk.Administration(0.0, 7400.0, 0.0)]), max_draws=20)
    np.testing.assert_allclose(two["tia_mbq_h"]["kidneys"], 2 * one["tia_mbq_h"]["kidneys"])


def test_netcdf_round_trip(fitted, tmp_path):
    post, _ = fitted
    path = post.to_netcdf(tmp_path / "post.nc")
    back = Posterior.from_netcdf(path, forward=BiExponential(("kidneys",)))
    np.testing.assert_array_equal(back.tia_draws["kidneys"], post.tia_draws["kidneys"])
    assert back.diagnostics == post.diagnostics
    assert back.data.organs["kidneys"].activity_mbq.tolist() == \
        post.data.organs["kidneys"].activity_mbq.tolist()
    assert back.twin.sampled == post.twin.sampled
    np.testing.assert_allclose(back.predict(max_draws=5)["tia_mbq_h"]["kidneys"],
                               post.predict(max_draws=5)["tia_mbq_h"]["kidneys"])
    with pytest.raises(InputError, match="no file"):
        Posterior.from_netcdf(tmp_path / "missing.nc")


def test_gate_raises_when_required(fitted):
    post, _ = fitted
    with pytest.raises(ConvergenceError, match=NOT_CONVERGED):
        _gate(post.diagnostics, True, "test")


def test_fit_patient_bad_arguments():
    data = _data()
    with pytest.raises(InputError, match="data"):
        fit_patient({"kidneys": None})
    with pytest.raises(InputError, match="draws"):
        fit_patient(data, model=_twin(), draws=0)
    with pytest.raises(InputError, match="model"):
        fit_patient(data, model="nonsense")
    bad = PatientData({"spleen": OrganSeries(TIMES, np.ones(5))})
    with pytest.raises(InputError, match="spleen"):
        fit_patient(bad, model=_twin())
