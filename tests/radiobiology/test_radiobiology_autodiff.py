"""Gradients with respect to administered activity, vmap over draws, jit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdt  # noqa: F401
from tdt.radiobiology import (
    bed,
    bed_monoexponential,
    bed_sum_of_exponentials,
    eqd2,
    ntcp_lkb,
    tcp_poisson,
)

# kidney: 0.5 Gy/GBq (reference sheet range 0.4-0.8), effective half-life 50 h
GY_PER_MBQ = 0.5e-3
T_EFF = 50.0
LAM = math.log(2) / T_EFF
TIMES = np.linspace(0.0, 200.0, 401)


def kidney_bed_numeric(activity_mbq):
    rate = activity_mbq * GY_PER_MBQ * LAM * jnp.exp(-LAM * TIMES)
    return bed(TIMES, rate, 2.6, 2.8, tail="exponential")


def kidney_bed_closed(activity_mbq):
    return bed_monoexponential(activity_mbq * GY_PER_MBQ, 2.6, 2.8, T_EFF)


def tumour_tcp(activity_mbq):
    dose = activity_mbq * 4e-3  # 4 Gy/GBq lesion
    b = bed_monoexponential(dose, 10.0, 1.5, 60.0)
    return tcp_poisson(b, 0.3, 1e7, alpha_sd_per_gy=0.05)


def _central_difference(f, x, h):
    return (float(f(x + h)) - float(f(x - h))) / (2 * h)


@pytest.mark.parametrize("f", [kidney_bed_numeric, kidney_bed_closed])
def test_grad_kidney_bed_matches_finite_difference_and_analytic(f):
    activity = 7400.0
    grad = float(jax.jit(jax.grad(f))(activity))
    assert grad == pytest.approx(_central_difference(f, activity, 1.0), rel=1e-7)
    # analytic: d/dA [k A + (k A)^2 g / ab] = k (1 + 2 k A g / ab)
    k, g = GY_PER_MBQ, 2.8 / (2.8 + T_EFF)
    assert grad == pytest.approx(k * (1 + 2 * k * activity * g / 2.6), rel=2e-5)


def test_grad_tcp_matches_finite_difference():
    for activity in (4000.0, 7400.0, 12000.0):
        grad = float(jax.jit(jax.grad(tumour_tcp))(activity))
        assert grad == pytest.approx(_central_difference(tumour_tcp, activity, 0.5), rel=1e-5,
                                     abs=1e-12)
        assert grad >= 0


@pytest.mark.parametrize("gy_per_mbq", [0.02, 0.2])
def test_grad_tcp_large_spread_branch_matches_finite_difference(gy_per_mbq):
    def f(activity):
        return tcp_poisson(activity * gy_per_mbq, 0.25, 1e8, alpha_sd_per_gy=0.1)

    activity = 5000.0  # BED 100 / 1000 Gy, s = sd·BED = 10 / 100: the Gumbel quadrature branch
    grad = jax.jit(jax.grad(f))
    assert np.isfinite(float(grad(activity)))
    assert float(grad(activity)) == pytest.approx(_central_difference(f, activity, 0.5),
                                                         rel=1e-5)


def test_vmap_and_jit_over_draws(rng):
    n = 64
    doses = jnp.asarray(rng.uniform(5, 30, size=n))
    t_eff = jnp.asarray(rng.uniform(30, 80, size=n))

    def per_draw(d, te):
        b = bed_monoexponential(d, 2.6, 2.8, te)
        return jnp.stack([b, ntcp_lkb(eqd2(b, 2.6), 28.0, 0.1),
                          tcp_poisson(b, 0.3, 1e6, alpha_sd_per_gy=0.05)])

    out = jax.jit(jax.vmap(per_draw))(doses, t_eff)
    assert out.shape == (n, 3)
    eager = np.array([np.asarray(per_draw(float(d), float(te))) for d, te in
                      zip(np.asarray(doses[:4]), np.asarray(t_eff[:4]), strict=True)])
    np.testing.assert_allclose(np.asarray(out[:4]), eager, rtol=1e-12)
    # elementwise broadcasting gives the same without vmap
    np.testing.assert_allclose(np.asarray(out[:, 0]),
                               np.asarray(bed_monoexponential(doses, 2.6, 2.8, t_eff)), rtol=1e-14)


def test_vmap_numeric_bed_and_sum_of_exponentials(rng):
    amps = jnp.asarray(rng.uniform(0.05, 0.3, size=(8, 2)))
    rates = jnp.asarray(rng.uniform(0.01, 0.1, size=(8, 2)))
    closed = jax.vmap(lambda a, r: bed_sum_of_exponentials(a, r, 2.6, 2.8))(amps, rates)
    np.testing.assert_allclose(np.asarray(closed),
                               np.asarray(bed_sum_of_exponentials(amps, rates, 2.6, 2.8)),
                               rtol=1e-14)
    activities = jnp.asarray(rng.uniform(3000, 9000, size=8))
    numeric = jax.jit(jax.vmap(kidney_bed_numeric))(activities)
    np.testing.assert_allclose(np.asarray(numeric), np.asarray(jax.vmap(kidney_bed_closed)(
        activities)), rtol=2e-5)
