"""``LaplaceProgram``: the Laplace preview compiled once, with the observations, recovery SDs and
the schedule's activities and ligand amounts as inputs (tdt.inference._laplace_program).

Independent reference: ``fit_patient(..., sampler="laplace")``, which builds its own PyMC model
with the patient's data *and schedule* as constants and compiles its own programs — for a
patient whose activities and ligand amounts differ from the program's template (2-cycle
PSMA-617 receptor PBPK: receptor saturation makes the ligand amount matter nonlinearly, so a
program that kept the template's amounts would give another posterior)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdt.errors import InputError
from tdt.inference import (
    LaplaceProgram,
    MeasurementModel,
    OrganSeries,
    PatientData,
    fit_patient,
    pbpk_model,
)
from tdt.pbpk import Schedule

ORGANS = ("kidneys", "lesion_1")
TIMES_H = np.array([4.0, 24.0, 96.0, 168.0])
INTERVAL_H = 1008.0


def _patient(twin, activities, ligand, seed):
    schedule = Schedule.repeated(activities, 2, INTERVAL_H, ligand_nmol=ligand)
    times = np.concatenate([TIMES_H, TIMES_H + INTERVAL_H])
    rng = np.random.default_rng(seed)
    truth = jnp.asarray(twin.prior_loc + twin.prior_chol @ rng.normal(0.0, 0.5, twin.n_params))
    activity, _, ok = jax.jit(lambda x: twin.simulate(x, schedule, jnp.asarray(times),
                                                      ORGANS))(truth)
    assert bool(ok)
    series = {o: OrganSeries(times, np.asarray(activity[i]) * np.exp(rng.normal(0, 0.1, 8)),
                             recovery=1.0, volume_ml=(5.0 + seed) if o == "lesion_1" else None,
                             sessions=["c1"] * 4 + ["c2"] * 4)
              for i, o in enumerate(ORGANS)}
    return PatientData(series, calibration_sd=0.03, schedule=schedule), schedule


def test_program_equals_fit_patient_for_another_activity_reduced_model():
    """The cheap case (reduced linear model, one bolus): a patient given 5.2 GBq fitted by a
    program built on a 7.4 GBq template."""
    times = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
    rng = np.random.default_rng(3)

    def data(activity):
        return PatientData({o: OrganSeries(times, activity * f * np.exp(-0.02 * times)
                                           * np.exp(rng.normal(0, 0.1, 5)))
                            for o, f in (("kidneys", 0.03), ("liver", 0.02))},
                           administered_activity_mbq=activity, patient_id=f"p{activity:g}")

    program = LaplaceProgram(data(7400.0), "reduced")
    other = data(5200.0)
    got = program.fit(other, draws=200, chains=2, seed=3)
    want = fit_patient(other, model="reduced", sampler="laplace", draws=200, chains=2, seed=3)
    for name in ("theta", "tia_mbq_h", "noise_sd"):
        np.testing.assert_allclose(got.idata.posterior[name].values,
                                   want.idata.posterior[name].values, rtol=1e-5, err_msg=name)


@pytest.mark.slow
def test_program_equals_fit_patient_for_another_schedule_and_rejects_another_protocol():
    twin = pbpk_model(organs=("kidneys",), lesions=("lesion_1",))
    measurement = MeasurementModel(fixed_noise_sd=0.1)
    template, _ = _patient(twin, [7400.0, 7400.0], [100.0, 100.0], 1)
    program = LaplaceProgram(template, twin, measurement)
    other, schedule = _patient(twin, [7400.0, 5200.0], [100.0, 400.0], 2)
    got = program.fit(other, draws=300, chains=2, seed=7)
    want = fit_patient(other, model=twin, measurement=measurement, sampler="laplace",
                       draws=300, chains=2, seed=7)
    for name in ("log_theta", "tia_mbq_h", "log_calibration"):
        np.testing.assert_allclose(got.idata.posterior[name].values,
                                   want.idata.posterior[name].values, rtol=1e-5, atol=1e-7,
                                   err_msg=name)
    assert got.diagnostics.method == "laplace"
    assert got.diagnostics.pareto_k == pytest.approx(want.diagnostics.pareto_k, abs=1e-6)
    assert got.schedule is schedule and got.data is other
    # the template's own amounts give another posterior: the amounts really are an input
    kept = program.fit(other, template.resolve_schedule(), draws=300, chains=2, seed=7)
    assert not np.allclose(kept.idata.posterior["tia_mbq_h"].values,
                           got.idata.posterior["tia_mbq_h"].values, rtol=1e-3)
    # another protocol: other administration times, other imaging times
    late = Schedule.repeated([7400.0, 7400.0], 2, INTERVAL_H + 24.0, ligand_nmol=100.0)
    with pytest.raises(InputError, match="schedule times"):
        program.fit(other, late, draws=50, chains=1)
    shifted = PatientData({o: OrganSeries(s.times_h + 1.0, s.activity_mbq, recovery=1.0,
                                          sessions=s.sessions)
                           for o, s in other.organs.items()}, calibration_sd=0.03,
                          schedule=schedule)
    with pytest.raises(InputError, match="another protocol"):
        program.fit(shifted, draws=50, chains=1)
