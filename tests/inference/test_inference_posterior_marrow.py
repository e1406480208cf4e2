"""Red marrow in Posterior.predict_doses: image- and blood-based methods with the remainder-of-body
cross-dose (EANM bone-marrow guideline, Hindorf 2010), on a simulated patient with injected draws
(no sampling)."""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdt.dosimetry import reference_mass_g, svalue
from tdt.dosimetry._marrow import BLOOD_DENSITY_G_PER_ML
from tdt.errors import InputError
from tdt.inference import OrganSeries, PatientData, Posterior, reduced_model
from tdt.inference._data import BloodSamples
from tdt.inference._predictive import BLOOD_TIA_SD_LOG

ORGANS = ("kidneys", "salivary_glands", "liver", "red_marrow", "lesion_1")
TIMES = (4.0, 24.0, 48.0, 96.0, 168.0)
BLOOD_TIMES = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 24.0, 48.0, 96.0, 168.0, 336.0])
#: the simulated patient's true red-marrow/blood concentration ratio (inside the peptide range)
RMBLR_TRUE = 0.9


@pytest.fixture(scope="module")
def posterior():
    """A tight posterior (draws 5 % around the prior median) of the reduced model; the patient's
    blood samples are built so that RMBLR_TRUE x blood concentration x m_RM / rho is the
    prior-median model's marrow activity: both methods then describe the same marrow."""
    series = {o: OrganSeries(list(TIMES), [1.0] * len(TIMES),
                             volume_ml=10.0 if o.startswith("lesion") else None) for o in ORGANS}
    template = PatientData(series, administered_activity_mbq=7400.0)
    twin = reduced_model(ORGANS)
    schedule = template.resolve_schedule()
    activity, _, _ = twin.simulate(jnp.asarray(twin.prior_loc), schedule,
                                   jnp.asarray(BLOOD_TIMES), ORGANS, fast=False)
    marrow_mbq = np.asarray(activity)[ORGANS.index("red_marrow")]
    m_rm = reference_mass_g("red_marrow")
    blood = BloodSamples(BLOOD_TIMES, marrow_mbq * BLOOD_DENSITY_G_PER_ML / (m_rm * RMBLR_TRUE),
                         hematocrit=0.4, sample="blood")
    data = PatientData(series, administered_activity_mbq=7400.0, blood=blood)
    rng = np.random.default_rng(7)
    z = 0.05 * rng.normal(size=(2, 20, twin.n_params))
    log_theta = twin.prior_loc + z @ twin.prior_chol.T

    def one(lt):
        return twin.simulate(lt, schedule, jnp.asarray([1.0]), ORGANS)[1]

    tia = np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(log_theta.reshape(-1, twin.n_params))))
    idata = az.from_dict(
        posterior={"log_theta": log_theta, "theta": np.exp(log_theta),
                   "tia_mbq_h": tia.reshape(2, 20, -1), "z": z},
        coords={"param": list(twin.sampled), "organ": list(ORGANS)},
        dims={"log_theta": ["param"], "theta": ["param"], "tia_mbq_h": ["organ"],
              "z": ["param"]},
    )
    return Posterior(idata, twin=twin, data=data, schedule=schedule)


def test_image_marrow_dose_is_self_plus_organ_and_remainder_cross_dose(posterior):
    pred = posterior.predict_doses(marrow="image", radiobiology=False)
    assert pred.marrow_method == "image"
    tia = {**pred.tia_mbq_h, "urinary_bladder_contents": pred.bladder_tia_mbq_h}
    body = pred.total_body_tia_mbq_h
    # hand computation per draw with the tabulated S-values (Cloutier remainder formula); the
    # bladder contents (voiding model) are a source and part of the whole body
    organs = ("kidneys", "salivary_glands", "liver", "red_marrow", "urinary_bladder_contents")
    m = {o: reference_mass_g(o) for o in (*organs, "total_body")}
    s = {o: svalue("red_marrow", o) for o in (*organs, "total_body")}
    s_rb = (m["total_body"] * s["total_body"] - sum(m[o] * s[o] for o in organs)) / (
        m["total_body"] - sum(m[o] for o in organs))
    remainder = body - sum(tia[o] for o in (*organs, "lesion_1"))
    assert np.all(remainder > 0)
    expected = sum(tia[o] * s[o] for o in organs) + remainder * s_rb
    np.testing.assert_allclose(pred.dose_gy["red_marrow"], expected, rtol=1e-10)
    # the whole body of the linear model is everything not yet excreted: plasma + organs
    sim = posterior.predict(organs=("plasma", *ORGANS), max_draws=None)
    np.testing.assert_allclose(body, sim["tia_mbq_h"]["plasma"] + sum(
        sim["tia_mbq_h"][o] for o in ORGANS) + pred.bladder_tia_mbq_h, rtol=1e-9)
    # bladder contents: less than the excreted urine's TIA (voiding), more than nothing
    urine = posterior.predict(organs=("urine",))["tia_mbq_h"]["urine"]
    assert np.all((pred.bladder_tia_mbq_h > 0) & (pred.bladder_tia_mbq_h < 0.2 * urine))
    without = posterior.predict_doses(marrow="image", radiobiology=False, void_interval_h=None)
    assert without.bladder_tia_mbq_h is None
    assert np.all(without.dose_gy["red_marrow"] < pred.dose_gy["red_marrow"])


def test_blood_and_image_methods_agree_within_their_uncertainty(posterior):
    image = posterior.predict_doses(marrow="image", radiobiology=False)
    blood = posterior.predict_doses(marrow="blood")  # RMBLR 1 with its peptide uncertainty
    exact = posterior.predict_doses(marrow="blood", rmblr=RMBLR_TRUE, radiobiology=False)
    assert blood.marrow_method == "blood" and posterior.predict_doses().marrow_method == "blood"
    d_img, d_blood = image.dose_gy["red_marrow"], blood.dose_gy["red_marrow"]
    lo, hi = np.percentile(d_blood, [5, 95])
    assert lo <= np.median(d_img) <= hi
    lo_i, hi_i = np.percentile(d_img, [5, 95])
    assert lo_i <= hi and lo <= hi_i  # the 90 % intervals overlap
    # with the true ratio the two marrow TIAs agree within the stated blood-TIA error (90 %:
    # 1.645 x BLOOD_TIA_SD_LOG); the trapezoid over 11 samples of this convex washout
    # overestimates by ~9 % (measured), which that error has to cover
    ratio = np.median(exact.tia_mbq_h["red_marrow"]) / np.median(image.tia_mbq_h["red_marrow"])
    assert abs(np.log(ratio)) < 1.645 * BLOOD_TIA_SD_LOG
    # the blood-based marrow dose-rate follows plasma: BED exists for the marrow
    assert blood.bed_gy["red_marrow"].shape == d_blood.shape
    # other organs do not depend on the marrow method except through the remainder
    np.testing.assert_allclose(blood.dose_gy["kidneys"], image.dose_gy["kidneys"], rtol=0.02)


def test_marrow_method_errors_and_none(posterior):
    with pytest.raises(InputError, match="marrow"):
        posterior.predict_doses(marrow="bones")
    none = posterior.predict_doses(marrow="none", radiobiology=False)
    assert none.marrow_method == "none"
    # a second cycle scales the blood-based marrow with its activity (linear kinetics)
    from tdt.pbpk import Schedule

    one = posterior.predict_doses(Schedule.repeated(7400.0, 1, 1.0e5, ligand_nmol=100.0),
                                  marrow="blood", rmblr=1.0, radiobiology=False, seed=1)
    two = posterior.predict_doses(Schedule.repeated(7400.0, 2, 1.0e5, ligand_nmol=100.0),
                                  marrow="blood", rmblr=1.0, radiobiology=False, seed=1)
    np.testing.assert_allclose(two.tia_mbq_h["red_marrow"], 2 * one.tia_mbq_h["red_marrow"],
                               rtol=1e-9)


def test_pbpk_model_organs_reported_include_the_lacrimal_glands():
    # predict_doses reports the fitted VOIs plus the model's other dose-bearing compartments:
    # for the PSMA-617 PBPK that adds the lacrimal glands (sphere organ, no S-value table entry)
    from tdt.dosimetry import svalue_table
    from tdt.inference._posterior import is_dose_bearing
    from tdt.pbpk import psma617

    targets = svalue_table("Lu-177", "adult-male").targets
    compartments = psma617(lesions=1).compartments
    reported = {c for c in compartments if is_dose_bearing(c, targets)}
    assert {"lacrimal_glands", "salivary_glands", "kidneys", "red_marrow"} <= reported
    assert not reported & {"plasma", "urine", "remainder", "gi", "lesion_1"}
