"""Image-based red marrow from an L2–L4 VOI as its own method of Posterior.predict_doses
(``marrow="image_l2l4"``), against the blood-based method on the phantom patient.

The simulated patient is the phantom's (tdt.imaging._phantom_kinetics: the reduced linear
model with seed-perturbed rates; tdt.imaging._phantom_anatomy: the opt-in L2–L4 VOI and the
10 mm PSF). Its L2–L4 VOI activity is the phantom's marrow activity × the VOI's voxel share of
the marrow × the VOI's recovery under the PSF (blurred image); the clinic corrects it with the
recovery of the whole spine (as EANM practice corrects with a phantom-measured L2–L4 recovery,
e.g. 0.78 in Santoro L, et al. EJNMMI Res 2018;8:103, doi:10.1186/s13550-018-0459-4, checked).
Its blood samples are the marrow concentration / RMBLR_TRUE. The independent reference is the
phantom's ground-truth marrow TIA (the model's own solve integrated to infinity), and the
posterior is injected (draws 3 % around the phantom's true rates, no sampling).
"""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdt.dosimetry import L2_L4_MARROW_FRACTION_RANGE, RMBLR_PEPTIDE_SD_LOG, reference_mass_g
from tdt.dosimetry._marrow import BLOOD_DENSITY_G_PER_ML
from tdt.errors import InputError
from tdt.imaging._phantom_anatomy import (
    blurred_activity_image,
    lumbar_l2_l4_mask,
    phantom_grids,
    structure_masks,
)
from tdt.imaging._phantom_kinetics import pbpk_model, perturbed_params, simulate_activities
from tdt.inference import (
    L2_L4_TIA_SD_LOG,
    BloodSamples,
    OrganSeries,
    PatientData,
    Posterior,
    l2_l4_marrow_tia_draws,
    reduced_model,
)
from tdt.inference._predictive import BLOOD_TIA_SD_LOG

LESIONS = ("lesion_1",)
ACTIVITY_MBQ = 7400.0
IMAGING_H = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
BLOOD_H = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 24.0, 48.0, 96.0, 168.0, 336.0])
FITTED = ("kidneys", "salivary_glands", "liver", "spleen", "lesion_1")
RMBLR_TRUE = 0.9  # this patient's marrow/blood ratio, inside the peptide uncertainty
SHAPE, FWHM_MM = (80, 64, 64), 10.0  # the default phantom's SPECT grid and PSF
N_CHAINS, N_DRAW = 2, 100
#: stated log-SDs of the two methods (blood: RMBLR and blood TIA; image: VOI TIA and the
#: uniform fraction's log-SD, ln(7.4/6.7)/sqrt(12))
SD_BLOOD = float(np.hypot(RMBLR_PEPTIDE_SD_LOG, BLOOD_TIA_SD_LOG))
SD_IMAGE = float(np.hypot(L2_L4_TIA_SD_LOG, np.log(L2_L4_MARROW_FRACTION_RANGE[1]
                                                    / L2_L4_MARROW_FRACTION_RANGE[0]) / 12**0.5))


@pytest.fixture(scope="module")
def phantom():
    spect, _ = phantom_grids(SHAPE, "1.2.826.0.1.3680043.10.1")
    masks, _ = structure_masks(spect.voxel_centres_mm(), [])
    voi = lumbar_l2_l4_mask(spect.voxel_centres_mm(), masks["red_marrow"])
    share = voi.sum() / masks["red_marrow"].sum()
    sigma_vox = FWHM_MM / (2.0 * np.sqrt(2.0 * np.log(2.0))) / spect.spacing_mm[0]
    image, sums = blurred_activity_image(spect.shape, {"red_marrow": masks["red_marrow"]},
                                         {"red_marrow": 100.0}, sigma_vox)
    model = pbpk_model(LESIONS)
    params = perturbed_params(model, np.random.default_rng(11))
    activity, tias = simulate_activities(model, params, LESIONS, IMAGING_H, ACTIVITY_MBQ, 3.5)
    blood_marrow, _ = simulate_activities(model, params, LESIONS, BLOOD_H, ACTIVITY_MBQ, 3.5)
    return {"model": model, "params": params, "activity": activity, "tias": tias,
            "share": float(share), "recovery_voi": float(image[voi].sum() / (100.0 * share)),
            "recovery_spine": sums["red_marrow"] / 100.0,
            "blood_marrow_mbq": blood_marrow["red_marrow"]}


@pytest.fixture(scope="module")
def posterior(phantom):
    activity = phantom["activity"]
    series = {o: OrganSeries(IMAGING_H, activity[o], volume_ml=10.0 if o in LESIONS else None)
              for o in FITTED}
    voi_mbq = activity["red_marrow"] * phantom["share"] * phantom["recovery_voi"]
    m_rm = reference_mass_g("red_marrow")
    blood = BloodSamples(BLOOD_H, phantom["blood_marrow_mbq"] * BLOOD_DENSITY_G_PER_ML
                         / (m_rm * RMBLR_TRUE), hematocrit=0.4, sample="blood")
    data = PatientData(series, administered_activity_mbq=ACTIVITY_MBQ, ligand_nmol=150.0,
                       blood=blood, marrow_l2_l4=OrganSeries(
                           IMAGING_H, voi_mbq, recovery=phantom["recovery_spine"]))
    twin = reduced_model(phantom["model"].organs)
    truth = np.log([phantom["params"][name] for name in twin.sampled])
    z = 0.03 * np.random.default_rng(5).normal(size=(N_CHAINS, N_DRAW, twin.n_params))
    log_theta = truth + z
    schedule = data.resolve_schedule()

    def one(lt):
        return twin.simulate(lt, schedule, jnp.asarray([1.0]), FITTED)[1]

    tia = np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(log_theta.reshape(-1, twin.n_params))))
    idata = az.from_dict(
        posterior={"log_theta": log_theta, "theta": np.exp(log_theta),
                   "tia_mbq_h": tia.reshape(N_CHAINS, N_DRAW, -1), "z": z},
        coords={"param": list(twin.sampled), "organ": list(FITTED)},
        dims={"log_theta": ["param"], "theta": ["param"], "tia_mbq_h": ["organ"],
              "z": ["param"]},
    )
    return Posterior(idata, twin=twin, data=data, schedule=schedule)


def test_l2_l4_scaling_by_hand(phantom, posterior):
    # the VOI TIA: recovery-corrected trapezoid vs the phantom's truth share of the marrow TIA
    voi_tia = posterior.data.l2_l4_tia_mbq_h()
    expected = phantom["tias"]["red_marrow"] * phantom["share"] * (
        phantom["recovery_voi"] / phantom["recovery_spine"])
    assert abs(np.log(voi_tia / expected)) < 1.645 * L2_L4_TIA_SD_LOG
    # the per-draw scaling: TIA_RM = TIA_L2-L4 / f exactly; f uniform over the stated range
    exact = l2_l4_marrow_tia_draws(voi_tia, 500, fraction=0.07, sd_log=0.0)
    np.testing.assert_allclose(exact, voi_tia / 0.07, rtol=1e-12)
    fractions = voi_tia / l2_l4_marrow_tia_draws(voi_tia, 2000, sd_log=0.0, seed=3)
    lo, hi = L2_L4_MARROW_FRACTION_RANGE
    assert np.all((fractions >= lo) & (fractions <= hi))
    assert fractions.min() < lo + 0.0005 and fractions.max() > hi - 0.0005
    assert np.mean(fractions) == pytest.approx((lo + hi) / 2, abs=0.0003)
    # in predict_doses: fixed fraction -> geometric mean of the draws is TIA_L2-L4 / f
    fixed = posterior.predict_doses(marrow="image_l2l4", l2_l4_fraction=0.067, radiobiology=False)
    log_draws = np.log(fixed.tia_mbq_h["red_marrow"])
    n = log_draws.size
    assert np.mean(log_draws) == pytest.approx(np.log(voi_tia / 0.067),
                                               abs=3 * L2_L4_TIA_SD_LOG / n**0.5)
    assert np.std(log_draws) == pytest.approx(L2_L4_TIA_SD_LOG, rel=0.2)
    assert fixed.marrow_method == "image_l2l4" and any("L2-L4" in x for x in fixed.notes)


def test_blood_and_l2_l4_marrow_agree_with_each_other_and_the_phantom_truth(phantom, posterior):
    image = posterior.predict_doses(marrow="image_l2l4", seed=1)
    blood = posterior.predict_doses(marrow="blood", seed=1)
    model = posterior.predict_doses(marrow="image", radiobiology=False)  # truth kinetics
    assert posterior.predict_doses(radiobiology=False).marrow_method == "blood"  # auto
    truth_tia = phantom["tias"]["red_marrow"]
    np.testing.assert_allclose(np.median(model.tia_mbq_h["red_marrow"]), truth_tia, rtol=0.03)
    for pred in (image, blood):  # the truth inside each method's 90 % interval
        lo, hi = np.percentile(pred.tia_mbq_h["red_marrow"], [5, 95])
        assert lo <= truth_tia <= hi, (pred.marrow_method, lo, truth_tia, hi)
    d_img, d_blood = image.dose_gy["red_marrow"], blood.dose_gy["red_marrow"]
    d_true = np.median(model.dose_gy["red_marrow"])
    for d in (d_img, d_blood):
        lo, hi = np.percentile(d, [5, 95])
        assert lo <= d_true <= hi
    # the two methods agree within their combined stated uncertainty (90 %)
    assert abs(np.log(np.median(d_img) / np.median(d_blood))) < 1.645 * np.hypot(SD_IMAGE,
                                                                               SD_BLOOD)
    assert np.std(np.log(image.tia_mbq_h["red_marrow"])) == pytest.approx(SD_IMAGE, rel=0.25)
    # the image method's dose-rate history follows the model's marrow: BED exists
    assert image.bed_gy["red_marrow"].shape == d_img.shape
    # a two-cycle schedule doubles the L2-L4 marrow TIA (linear kinetics, same seed)
    from tdt.pbpk import Schedule

    one = posterior.predict_doses(Schedule.repeated(ACTIVITY_MBQ, 1, 1.0e5, ligand_nmol=150.0),
                                  marrow="image_l2l4", radiobiology=False, seed=2)
    two = posterior.predict_doses(Schedule.repeated(ACTIVITY_MBQ, 2, 1.0e5, ligand_nmol=150.0),
                                  marrow="image_l2l4", radiobiology=False, seed=2)
    np.testing.assert_allclose(two.tia_mbq_h["red_marrow"], 2 * one.tia_mbq_h["red_marrow"],
                               rtol=1e-9)


def test_l2_l4_errors_name_the_field(posterior):
    plain = PatientData({"kidneys": OrganSeries(IMAGING_H, [100.0, 80, 60, 40, 20])})
    with pytest.raises(InputError, match="marrow_l2_l4"):
        plain.l2_l4_tia_mbq_h()
    with pytest.raises(InputError, match="marrow_l2_l4"):
        PatientData({"kidneys": OrganSeries(IMAGING_H, [100.0, 80, 60, 40, 20])},
                    marrow_l2_l4=[1.0, 2.0])
    with pytest.raises(InputError, match="recovery"):
        PatientData({"kidneys": OrganSeries(IMAGING_H, [100.0, 80, 60, 40, 20])},
                    marrow_l2_l4=OrganSeries(IMAGING_H, [5.0, 4, 3, 2, 1], recovery=1.5)
                    ).l2_l4_tia_mbq_h()
    no_voi = Posterior(posterior.idata, twin=posterior.twin,
                       data=PatientData(dict(posterior.data.organs)),
                       schedule=posterior.schedule)
    with pytest.raises(InputError, match="image_l2l4"):
        no_voi.predict_doses(marrow="image_l2l4")


def test_marrow_inputs_survive_the_posterior_file(posterior, tmp_path):
    path = posterior.to_netcdf(tmp_path / "marrow.nc")
    again = Posterior.from_netcdf(path)
    np.testing.assert_array_equal(again.data.marrow_l2_l4.activity_mbq,
                                  posterior.data.marrow_l2_l4.activity_mbq)
    assert again.data.marrow_l2_l4.recovery == posterior.data.marrow_l2_l4.recovery
    np.testing.assert_array_equal(again.data.blood.concentration_mbq_per_ml,
                                  posterior.data.blood.concentration_mbq_per_ml)
    for method in ("image_l2l4", "blood"):
        a = again.predict_doses(marrow=method, radiobiology=False, seed=4)
        b = posterior.predict_doses(marrow=method, radiobiology=False, seed=4)
        np.testing.assert_allclose(a.tia_mbq_h["red_marrow"], b.tia_mbq_h["red_marrow"],
                                   rtol=1e-12)
