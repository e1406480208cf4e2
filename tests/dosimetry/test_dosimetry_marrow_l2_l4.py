"""Image-based red marrow from an L2–L4 VOI (EANM bone-marrow guideline, Hindorf 2010) on the
phantom's anatomy: the opt-in lumbar VOI (tdt.imaging._phantom_anatomy.lumbar_l2_l4_mask) holds
L2_L4_MARROW_FRACTION of the phantom's uniform marrow, so its TIA scaled by the fraction recovers
the whole marrow's; blurring by the camera PSF costs the VOI the spine's radial partial-volume
loss and no more (spill along the spine compensates in z). The reference is voxel counting on the
phantom's own masks, independent of the fraction constant.
"""

from __future__ import annotations

import numpy as np
import pytest

from tdt.dosimetry import L2_L4_MARROW_FRACTION, marrow_tia_image_based
from tdt.imaging._phantom_anatomy import (
    blurred_activity_image,
    lumbar_l2_l4_mask,
    phantom_grids,
    structure_masks,
)

SHAPE = (80, 64, 64)  # the default phantom's SPECT grid (make_phantom_patient)
FWHM_MM = 10.0  # the default phantom's PSF


@pytest.fixture(scope="module")
def anatomy():
    spect, _ = phantom_grids(SHAPE, "1.2.826.0.1.3680043.10.1")
    points = spect.voxel_centres_mm()
    masks, _ = structure_masks(points, [])
    return spect, masks, lumbar_l2_l4_mask(points, masks["red_marrow"])


def test_l2_l4_voi_holds_the_marrow_fraction(anatomy):
    _, masks, l2_l4 = anatomy
    share = l2_l4.sum() / masks["red_marrow"].sum()
    assert l2_l4.sum() > 0 and not np.any(l2_l4 & ~masks["red_marrow"])
    assert share == pytest.approx(L2_L4_MARROW_FRACTION, rel=0.01)  # whole slices: 6.67 %
    # uniform marrow activity: the VOI's TIA / fraction is the whole marrow's TIA
    marrow_tia = 12345.0  # MBq·h
    voi_tia = marrow_tia * share
    assert float(marrow_tia_image_based(voi_tia)) == pytest.approx(marrow_tia, rel=0.01)


def test_l2_l4_voi_on_the_blurred_image_has_the_spine_recovery(anatomy):
    spect, masks, l2_l4 = anatomy
    sigma_vox = FWHM_MM / (2.0 * np.sqrt(2.0 * np.log(2.0))) / spect.spacing_mm[0]
    image, sums = blurred_activity_image(spect.shape, {"red_marrow": masks["red_marrow"]},
                                         {"red_marrow": 100.0}, sigma_vox)
    recovery_spine = sums["red_marrow"] / 100.0
    share = l2_l4.sum() / masks["red_marrow"].sum()
    recovery_voi = image[l2_l4].sum() / (100.0 * share)
    assert 0.5 < recovery_spine < 0.95  # a 28 mm wide cylinder under a 10 mm FWHM PSF
    assert recovery_voi == pytest.approx(recovery_spine, rel=0.03)
    # so the image-based marrow needs the same recovery correction as the spine VOI
    estimate = float(marrow_tia_image_based(image[l2_l4].sum() / recovery_spine))
    assert estimate == pytest.approx(100.0, rel=0.03)
