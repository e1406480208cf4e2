"""Per-VOI recovery SDs in the measurement model (issue 18): ``OrganSeries.recovery_sd`` replaces
the flat ``MeasurementModel.recovery_sd`` VOI by VOI; the flat value stays the fallback.

Oracles: the log-density of ``log_recovery`` against scipy's normal log-pdf with the per-VOI
SDs; the batched log-density of ``fit_patients`` (SDs as an input) against the log-density of a
model built directly from data carrying those SDs.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tdt.errors import InputError, PlausibilityWarning
from tdt.inference import MeasurementModel, OrganSeries, PatientData
from tdt.inference._measurement import free_recovery, has_recovery, recovery_sds

TIMES = [4.0, 24.0, 48.0, 96.0, 168.0]
KIDNEY = [200.0, 180.0, 150.0, 100.0, 50.0]
LESION = [20.0, 30.0, 28.0, 20.0, 10.0]


def _data(kidney_sd=0.02, lesion_sd=0.06, liver_sd=None):
    return PatientData({
        "kidneys": OrganSeries(TIMES, KIDNEY, recovery=1.0, recovery_sd=kidney_sd),
        "liver": OrganSeries(TIMES, KIDNEY, recovery_sd=liver_sd),  # no recovery unless an SD
        "lesion_1": OrganSeries(TIMES, LESION, recovery=1.0, recovery_sd=lesion_sd),
    })


def test_per_voi_sd_replaces_the_flat_value_which_stays_the_fallback():
    m = MeasurementModel(recovery_sd=0.03)
    np.testing.assert_array_equal(recovery_sds(_data(), m), [0.02, 0.0, 0.06])
    np.testing.assert_array_equal(has_recovery(_data(), m), [True, False, True])
    fallback = _data(kidney_sd=None, lesion_sd=None)
    np.testing.assert_array_equal(recovery_sds(fallback, m), [0.03, 0.0, 0.03])
    # an SD of 0 keeps the VOI's recovery fixed (no random variable), an SD alone adds a term
    zero = _data(kidney_sd=0.0, liver_sd=0.01)
    np.testing.assert_array_equal(free_recovery(zero, m), [False, True, True])


def test_recovery_sd_validation_and_round_trips():
    with pytest.raises(InputError, match="recovery_sd"):
        _data(lesion_sd=-0.01)
    with pytest.raises(InputError, match="recovery_sd"):
        _data(lesion_sd=float("nan"))
    with pytest.warns(PlausibilityWarning, match="recovery_sd"):
        _data(lesion_sd=0.5)
    data = _data()
    assert data.at_times([96.0, 168.0]).organs["lesion_1"].recovery_sd == 0.06
    from tdt.inference._posterior_file import _data_to_dict

    saved = _data_to_dict(data)["organs"]["lesion_1"]
    assert OrganSeries(**saved).validated("lesion_1").recovery_sd == 0.06


def test_log_recovery_prior_uses_the_per_voi_sds():
    from tdt.inference._models import resolve_model
    from tdt.inference._pymc_models import build_patient_model

    data = _data(kidney_sd=0.02, lesion_sd=0.08, liver_sd=0.0)  # liver: SD 0, not free
    twin = resolve_model("reduced", data)
    model = build_patient_model(data, twin, MeasurementModel(), data.resolve_schedule())
    assert model.coords["recovery_organ"] == ("kidneys", "lesion_1")
    rv = model["log_recovery"]
    value = np.array([0.015, -0.05])
    import pymc as pm

    logp = pm.logp(rv, value).eval()
    np.testing.assert_allclose(logp, stats.norm.logpdf(value, 0.0, [0.02, 0.08]), rtol=1e-10)


def test_fit_patients_logp_takes_each_patients_sds():
    """The batched log-density with patient B's SDs as input equals B's own model."""
    from tdt.inference._laplace_program import logp_with_inputs
    from tdt.inference._models import resolve_model
    from tdt.inference._nuts import flat_initial_point
    from tdt.inference._pymc_models import build_patient_model

    a, b = _data(0.02, 0.06), _data(0.05, 0.12)
    twin = resolve_model("reduced", a)
    m = MeasurementModel()
    model_a = build_patient_model(a, twin, m, a.resolve_schedule())
    model_b = build_patient_model(b, twin, m, b.resolve_schedule())
    logp_a = logp_with_inputs(model_a)
    flat0, unravel = flat_initial_point(model_a)
    z = flat0 + 0.05 * np.arange(flat0.size) / flat0.size
    log_y = np.log(b.flat()["activity_mbq"])
    (batched,) = logp_a(*unravel(z), log_y, np.array([0.05, 0.12]))
    point = dict(zip([v.name for v in model_b.value_vars], unravel(z), strict=True))
    direct = model_b.compile_logp()(point)
    assert float(batched) == pytest.approx(float(direct), rel=1e-9)
    (with_a_sds,) = logp_a(*unravel(z), log_y, np.array([0.02, 0.06]))
    assert float(with_a_sds) != pytest.approx(float(direct), rel=1e-6)


def test_fit_patients_rejects_different_recovery_vois():
    from tdt.inference import fit_patients

    with pytest.raises(InputError, match="recovery VOIs"):
        fit_patients([_data(), _data(kidney_sd=0.0)], draws=10, tune=10, chains=1)
