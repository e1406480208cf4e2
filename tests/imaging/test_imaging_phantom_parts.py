"""Parts of the phantom generator (anatomy, kinetics) against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdt.imaging._phantom_anatomy import (
    HU_AIR,
    HU_BONE,
    HU_LESION,
    ORGANS,
    ct_numbers,
    draw_lesions,
    phantom_grids,
    structure_masks,
)
from tdt.imaging._phantom_kinetics import _bladder_tia


def test_bladder_holds_only_the_urine_since_the_last_void():
    # cumulative urine activity U(t) = C (1 - e^{-kt}) e^{-λt}; the bladder holds
    # U(t) - U(t - τ) e^{-λτ} = C e^{-(λ+k)t} (e^{kτ} - 1) after the first void interval τ, so
    # TIA = C [(1 - e^{-λτ})/λ - (1 - e^{-(λ+k)τ})/(λ+k)] + C (e^{kτ} - 1) e^{-(λ+k)τ}/(λ+k)
    c, lam, k, tau = 500.0, math.log(2) / 159.5, 0.3, 3.0
    fine = np.concatenate([np.linspace(0.0, 48.0, 193)[1:], np.linspace(48.0, 3000.0, 739)[1:]])
    urine = c * -np.expm1(-k * fine) * np.exp(-lam * fine)
    tia = _bladder_tia(fine, urine, lam, tau)
    expected = c * (-math.expm1(-lam * tau) / lam + math.expm1(-(lam + k) * tau) / (lam + k)
                    + math.expm1(k * tau) * math.exp(-(lam + k) * tau) / (lam + k))
    # measured -0.18 %: U(t - τ) is linearly interpolated on the 4 h grid beyond 48 h, which
    # overestimates the convex U by ~h²λ²U/8 (∫ ≈ 2λC ≈ 4 MBq·h here); the generator's bladder TIA
    # carries that small bias (kept: the catalog phantom's identity must not change)
    assert tia == pytest.approx(expected, rel=3e-3)


def test_structures_are_disjoint_inside_the_body_with_their_ct_numbers():
    spect, ct = phantom_grids((80, 32, 32), "1.2.3")
    assert spect.spacing_mm == pytest.approx((4.7952,) * 3)
    assert ct.shape == (80, 64, 64) and ct.spacing_mm[0] == pytest.approx(4.7952 / 2)
    lesions = draw_lesions(np.random.default_rng(0), 3)
    masks, body = structure_masks(ct.voxel_centres_mm(), lesions)
    stacked = np.stack(list(masks.values()))
    assert stacked.sum(axis=0).max() == 1  # disjoint
    assert not np.any(stacked & ~body)  # inside the body
    hu = ct_numbers(masks, body)
    assert np.all(hu[~body] == HU_AIR)
    assert np.all(hu[masks["red_marrow"]] == HU_BONE)
    assert np.all(hu[masks["lesion_1"]] == HU_LESION)
    assert np.all(hu[masks["liver"]] == ORGANS["liver"][1])
