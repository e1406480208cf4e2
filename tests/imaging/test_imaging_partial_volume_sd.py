"""Per-VOI recovery uncertainty of the GTM correction from the FWHM uncertainty (issue 18).

Oracles: for two well-separated spheres the GTM decouples into one recovery coefficient per
sphere, so the FWHM sensitivity of a GTM-corrected total is −d log RC/d FWHM of the *closed-form*
blurred-sphere recovery (``sphere_recovery``, quadrature of the analytic profile, independent of
the voxelised GTM); the ± SD central difference agrees with a brute-force small-step derivative
(linearity); on the phantom, small VOIs get larger SDs than the liver, and an exactly known PSF
leaves the floor only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdt.errors import InputError, PlausibilityWarning


def _ball(shape, centre, radius_vox):
    idx = np.indices(shape).astype(float)
    return sum((idx[i] - centre[i]) ** 2 for i in range(3)) <= radius_vox ** 2


def _two_spheres(radius_mm=8.0, voxel_mm=1.0):
    n = int(round(4 * radius_mm / voxel_mm + 12 / voxel_mm))
    shape = (int(n * 2.6), n, n)
    r = radius_mm / voxel_mm
    a = _ball(shape, (shape[0] * 0.27, n / 2, n / 2), r)
    b = _ball(shape, (shape[0] * 0.73, n / 2, n / 2), 0.75 * r)
    return {"a": a, "b": b}


def test_fwhm_sensitivity_of_two_separated_spheres_is_the_analytic_sphere_recovery_slope():
    from tdt.imaging import geometric_transfer_matrix, sphere_recovery
    from tdt.imaging._partial_volume import gtm_fwhm_log_sensitivity

    fwhm, sd, radius, voxel = 10.0, 1.0, 8.0, 1.0
    masks = _two_spheres(radius, voxel)
    w = geometric_transfer_matrix(masks, (voxel,) * 3, fwhm)
    assert abs(w[0, 1]) < 1e-6 and abs(w[1, 0]) < 1e-6  # separated: no spill between them
    observed = w @ np.array([10.0, 3.0])  # the image of the true totals at the true FWHM
    sens = gtm_fwhm_log_sensitivity(masks, (voxel,) * 3, fwhm, sd, observed)
    for value, r in zip(sens, (radius, 0.75 * radius), strict=True):
        analytic = -(math.log(sphere_recovery(r, fwhm + sd))
                     - math.log(sphere_recovery(r, fwhm - sd))) / 2.0
        # voxelised 1 mm spheres vs the continuous closed form: measured within 0.4 %
        assert value == pytest.approx(analytic, rel=0.02)
    # the smaller sphere loses more to blur and is more sensitive to the FWHM
    assert sens[1] > sens[0] > 0.05
    # brute force: a 20x smaller step, scaled back (first-order linearity of the ± SD form)
    small = gtm_fwhm_log_sensitivity(masks, (voxel,) * 3, fwhm, sd / 20.0, observed) * 20.0
    assert sens == pytest.approx(small, rel=0.01)


def test_recovery_log_sd_combines_fwhm_term_and_floor_in_quadrature():
    from tdt.imaging import geometric_transfer_matrix
    from tdt.imaging._partial_volume import gtm_fwhm_log_sensitivity, gtm_recovery_log_sd

    masks = _two_spheres()
    w = geometric_transfer_matrix(masks, (1.0,) * 3, 10.0)
    observed = np.outer(w @ np.array([10.0, 3.0]), [1.0, 0.5, 0.25])  # three time points
    sens = gtm_fwhm_log_sensitivity(masks, (1.0,) * 3, 10.0, 1.0, observed)
    total = gtm_recovery_log_sd(masks, (1.0,) * 3, 10.0, 1.0, observed, floor=0.01)
    rms = np.sqrt(np.mean(sens ** 2, axis=1))
    assert total == pytest.approx(np.sqrt(rms ** 2 + 0.01 ** 2), rel=1e-12)
    only_floor = gtm_recovery_log_sd(masks, (1.0,) * 3, 10.0, 0.0, observed, floor=0.01)
    assert only_floor == pytest.approx([0.01, 0.01], abs=1e-15)
    with pytest.raises(InputError, match="fwhm_sd_mm"):
        gtm_fwhm_log_sensitivity(masks, (1.0,) * 3, 10.0, 10.0, observed)
    with pytest.raises(InputError, match="floor"):
        gtm_recovery_log_sd(masks, (1.0,) * 3, 10.0, 1.0, observed, floor=-0.01)
    with pytest.warns(PlausibilityWarning, match="fwhm_sd_mm"):
        gtm_recovery_log_sd(masks, (1.0,) * 3, 10.0, 4.0, observed)


def test_extract_tacs_recovery_sd_small_vois_larger_than_liver(phantom_noiseless):
    from tdt.imaging import extract_tacs
    from tdt.imaging._partial_volume import GTM_RESIDUAL_LOG_SD

    study = phantom_noiseless.load()
    fwhm = phantom_noiseless.ground_truth["fwhm_mm"]
    default = extract_tacs(study, partial_volume="gtm", fwhm_mm=fwhm)  # FWHM SD 10 % = 1 mm
    sd = {n: t.recovery_sd for n, t in default.items()}
    assert all(v >= GTM_RESIDUAL_LOG_SD for v in sd.values())
    assert sd["liver"] < 0.015  # the big organ: about the floor
    for small in ("lesion_1", "lesion_2", "lesion_3", "salivary_glands"):
        assert sd[small] > 2 * sd["liver"], small
    # the smallest lesion is the most sensitive one
    assert sd["lesion_1"] == max(sd.values())
    known = extract_tacs(study, partial_volume="gtm", fwhm_mm=fwhm, fwhm_sd_mm=0.0)
    assert {n: t.recovery_sd for n, t in known.items()} == pytest.approx(
        dict.fromkeys(known, GTM_RESIDUAL_LOG_SD))
    # the corrected activities do not depend on the FWHM SD
    for n in known:
        assert known[n].activity_mbq == pytest.approx(default[n].activity_mbq, rel=1e-12)
    assert extract_tacs(study)["liver"].recovery_sd is None
    with pytest.raises(InputError, match="fwhm_sd_mm"):
        extract_tacs(study, fwhm_sd_mm=1.0)
    with pytest.raises(InputError, match="fwhm_sd_mm"):
        extract_tacs(study, partial_volume="gtm", fwhm_mm=fwhm, fwhm_sd_mm=-1.0)
