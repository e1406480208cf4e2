"""Voxel dosimetry (tdt.dosimetry._kernel / voxel) and partial-volume predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdt.dosimetry._kernel import (
    KernelConvolver,
    VoxelKernel,
    convolve,
    direct_convolve,
    load_kernel,
    resample_kernel,
)
from tdt.dosimetry._voxel import (
    density_correct,
    density_from_hu,
    dvh,
    dvh_table,
    kernel_dose,
    local_deposition_dose,
    tia_map_from_reference,
    voxel_dose,
)
from tdt.errors import InputError
from tdt.imaging._partial_volume import sphere_recovery, voi_recovery

VOXEL = 4.7952
# MIRD local deposition, 177Lu: non-penetrating energy 147.9 keV per decay (ICRP 107 via EJNMMI
# Phys 2020;7:41 Table 1); 1 MBq·s = 1e6 decays; mass of a 4.7952 mm voxel at 1.03 g/mL.
E_NP_J = 0.1479e6 * 1.602176634e-19
LD_MGY_PER_MBQ_S = E_NP_J * 1e6 / (1.03 * VOXEL ** 3 * 1e-3 * 1e-3) * 1e3  # = 0.2086


def test_kernel_loads_with_published_values():
    # reference/README.md: centre 0.2066, face neighbour 2.257e-3, sum 0.2400 mGy/(MBq·s)
    k = load_kernel("Lu-177")
    v = k.values_gy_per_mbq_h / 3.6  # back to mGy/(MBq·s)
    assert v.shape == (51, 51, 51) and k.voxel_mm == (VOXEL, VOXEL, VOXEL)
    assert v[25, 25, 25] == pytest.approx(0.2066, abs=1e-4)
    assert v[25, 25, 26] == pytest.approx(2.257e-3, rel=1e-3)
    assert v.sum() == pytest.approx(0.2400, abs=1e-4)


def test_local_deposition_formula_and_kernel_centre():
    # first-principles local deposition (above) = 0.2086 mGy/(MBq·s); tdt's formula agrees
    assert LD_MGY_PER_MBQ_S == pytest.approx(0.2086, abs=2e-4)
    ld = local_deposition_dose(np.ones((1, 1, 1)) / 3600.0, (VOXEL,) * 3)  # 1 MBq·s
    assert float(ld[0, 0, 0]) * 1e3 == pytest.approx(LD_MGY_PER_MBQ_S, rel=2e-3)
    # the kernel's centre voxel holds the electrons that stay in the source voxel: within 2 %
    centre = load_kernel().values_gy_per_mbq_h[25, 25, 25] / 3.6
    assert centre == pytest.approx(LD_MGY_PER_MBQ_S, rel=0.02)


def test_fft_equals_direct_convolution(rng):
    kernel = load_kernel().values_gy_per_mbq_h[20:31, 21:30, 22:29]  # asymmetric 11x9x7 crop
    image = rng.random((13, 10, 12))
    ref = direct_convolve(image, kernel)
    np.testing.assert_allclose(convolve(image, kernel), ref, rtol=1e-6, atol=1e-12 * ref.max())
    f32 = convolve(image, kernel, dtype="float32")
    np.testing.assert_allclose(f32, ref, rtol=0, atol=2e-6 * ref.max())
    # image smaller than the kernel (offsets beyond the image are cropped, no wrap-around)
    thin = rng.random((2, 9, 1))
    full = load_kernel().values_gy_per_mbq_h
    np.testing.assert_allclose(convolve(thin, full), direct_convolve(thin, full), rtol=1e-6)


def test_uniform_large_sphere_centre_dose():
    # Uniform sphere of radius 27 voxels (13 cm): at its centre the convolution must return
    # a · Σ_{|x| <= 27 voxels} K(x) (direct sum of the kernel over the sphere) — i.e. local
    # deposition of all the energy the kernel deposits within the sphere.
    kernel = load_kernel()
    kidx = np.indices((51, 51, 51)) - 25
    inside = np.sum(kidx ** 2, axis=0) <= 27 ** 2
    n = 57
    idx = np.indices((n, n, n)) - n // 2
    sphere = np.sum(idx ** 2, axis=0) <= 27 ** 2
    tia = sphere * 2.0  # MBq·h per voxel
    dose = kernel_dose(tia, (VOXEL,) * 3)
    centre = dose[n // 2, n // 2, n // 2]
    assert centre == pytest.approx(2.0 * kernel.values_gy_per_mbq_h[inside].sum(), rel=1e-9)
    # Electron-only local deposition (ICRP 107) is 0.2086 vs the kernel's 0.2211 within one voxel
    # (3x3x3) and 0.2400 in total: photons (35 keV/decay) add ~13 % at the centre of a 13 cm
    # sphere; the near field (< 1 voxel) agrees within 6 %.
    near = kernel.values_gy_per_mbq_h[24:27, 24:27, 24:27].sum() / 3.6
    assert near == pytest.approx(LD_MGY_PER_MBQ_S, rel=0.07)


def test_resample_kernel_identity_and_energy_conservation():
    k = load_kernel()
    assert resample_kernel(k, k.voxel_mm) is k
    for size in ((2 * VOXEL,) * 3, (3.0, 3.5, 4.0)):
        r = resample_kernel(k, size)
        assert all(s % 2 == 1 for s in r.values_gy_per_mbq_h.shape)
        # Σ K V (energy per decay deposited in the kernel's extent) is conserved
        assert (r.values_gy_per_mbq_h.sum() * r.voxel_volume_ml
                == pytest.approx(k.values_gy_per_mbq_h.sum() * k.voxel_volume_ml, rel=1e-10))
    # box average of a constant field is the same constant wherever fully covered
    flat = VoxelKernel(np.ones((9, 9, 9)), (2.0, 2.0, 2.0))
    r = resample_kernel(flat, (3.0, 3.0, 3.0))
    c = r.values_gy_per_mbq_h.shape[0] // 2
    np.testing.assert_allclose(r.values_gy_per_mbq_h[c - 1:c + 2, c - 1:c + 2, c - 1:c + 2], 1.0)


def test_convolver_validates():
    with pytest.raises(InputError, match="odd"):
        KernelConvolver(np.ones((4, 3, 3)), (5, 5, 5))
    c = KernelConvolver(np.ones((3, 3, 3)), (5, 5, 5))
    with pytest.raises(InputError, match="built for"):
        c(np.ones((4, 5, 5)))


def test_density_from_hu_and_correction():
    np.testing.assert_allclose(density_from_hu([-1000, 0, 60, 1500]), [0.0012, 1.0, 1.06, 1.92])
    dose = np.full((1, 1, 3), 2.0)
    density = np.array([[[1.03, 2.06, 0.01]]])
    # energy per voxel unchanged, mass doubled → dose halved; air below 0.1 g/mL → 0
    np.testing.assert_allclose(density_correct(dose, density), [[[2.0, 1.0, 0.0]]])
    hu = np.zeros((3, 3, 3))
    local = voxel_dose(np.ones((3, 3, 3)), (VOXEL,) * 3, method="local", hu=hu)
    np.testing.assert_allclose(local, local_deposition_dose(np.ones((3, 3, 3)), (VOXEL,) * 3,
                                                            density_g_per_ml=1.0))


def test_dvh_analytic():
    # dose = linear ramp 1..100 Gy over 100 voxels: V(d) = (100 - ceil(d) + 1)/100, D50 = 51
    dose = np.arange(1.0, 101.0).reshape(1, 10, 10)
    mask = np.ones_like(dose, dtype=bool)
    h = dvh(dose, mask, (2.0, 2.0, 2.0))
    assert h.volume_ml == pytest.approx(100 * 8e-3)
    assert h.mean_gy == pytest.approx(50.5) and h.max_gy == 100 and h.min_gy == 1
    assert h.volume_at_dose(30.5) == pytest.approx(0.70)
    assert h.dose_at_volume(0.5) == 51 and h.dose_at_volume(1.0) == 1
    assert h.dose_at_volume(0.02) == 99
    table = dvh_table(dose, {"all": mask}, (2.0, 2.0, 2.0))
    assert table["all"]["d98_gy"] == 3
    grid, frac = h.curve(bins=11)
    assert frac[0] == 1.0


def test_tia_from_reference_sums_to_voi_tia(rng):
    ref = rng.random((4, 5, 6))
    a = np.zeros(ref.shape, dtype=bool)
    a[:2] = True
    b = np.zeros(ref.shape, dtype=bool)
    b[1:3] = True  # overlaps a on slice 1: that slice goes to a (first)
    tia = tia_map_from_reference(ref, {"a": a, "b": b}, {"a": 100.0, "b": 50.0},
                                 background_tia_per_mbq_h=10.0)
    assert tia[a].sum() == pytest.approx(100.0)
    assert tia[b & ~a].sum() == pytest.approx(50.0)
    np.testing.assert_allclose(tia[3], ref[3] * 10.0)
    # within a VOI the TIA map is proportional to the reference image
    np.testing.assert_allclose(tia[a] / ref[a], 100.0 / ref[a].sum())


def test_voxelwise_tia_monoexponential():
    pytest.importorskip("tdt.kinetics")
    from tdt.dosimetry._voxel import tia_map_voxelwise

    # A(t) = A0 exp(-(λ + k) t) → TIA = A0 / (λ + k) analytically (λ of 177Lu, ICRP 107)
    lam = math.log(2) / (6.647 * 24)
    times = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
    a0 = np.array([[[1.0, 2.0, 0.0]]])
    k_bio = np.array([[[0.01, 0.03, 0.0]]])
    stack = a0[None] * np.exp(-(lam + k_bio[None]) * times[:, None, None, None])
    tia = tia_map_voxelwise(times, stack, model="mono")
    np.testing.assert_allclose(tia[0, 0, :2], (a0 / (lam + k_bio))[0, 0, :2], rtol=2e-3)
    assert tia[0, 0, 2] == 0.0


def test_voxel_recovery_matches_analytic_sphere():
    # independent check of the partial-volume prediction: voxel sum on a 0.5 mm grid vs the
    # closed-form blurred-sphere profile, R = 12 mm, FWHM = 10 mm
    n, d, radius = 97, 0.5, 12.0
    idx = (np.indices((n, n, n)) - n // 2) * d
    mask = np.sum(idx ** 2, axis=0) <= radius ** 2
    numeric = voi_recovery(mask, (d, d, d), 10.0)
    assert numeric == pytest.approx(sphere_recovery(radius, 10.0), rel=5e-3)
    # large-sphere limit 1 - 3σ/(R√(2π)) (flat-boundary spill-out)
    sigma = 10.0 / 2.3548200450309493
    assert sphere_recovery(200.0, 10.0) == pytest.approx(1 - 3 * sigma / (200 * math.sqrt(
        2 * math.pi)), abs=2e-4)
