"""Radiobiology benchmarks: closed-form vs numerical G-factor BED, vmapped over posterior draws.

Rows (seconds unless stated, best of a few repeats, after compilation):
* closed-form Dale BED vs numerical G-factor BED, both jitted and vmapped over the draws;
* numerical G-factor (JAX, all draws) vs nested adaptive scipy quadrature (extrapolated from a
  few draws);
* TCP with radiosensitivity spread (fixed quadrature, JAX) vs adaptive scipy quadrature
  (extrapolated);
* gradient of kidney BED w.r.t. administered activity for all draws;
* accuracy: max relative difference numerical vs closed form over the draws.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, stats

import tdt  # noqa: F401  (x64)
from tdt.radiobiology import bed, bed_monoexponential, tcp_poisson


def _best(fn, repeats=3):
    fn()  # compile / warm up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def _scipy_bed(times, rate_fn, mu, ab):
    def inner(t):
        return integrate.quad(lambda w: rate_fn(w) * math.exp(-mu * (t - w)), 0, t,
                              epsrel=1e-8)[0]
    double = integrate.quad(lambda t: rate_fn(t) * inner(t), 0, times[-1], epsrel=1e-8,
                            limit=200)[0]
    dose = integrate.quad(rate_fn, 0, times[-1], epsrel=1e-10)[0]
    return dose + 2 * double / ab


def run(quick: bool = False) -> list[dict]:
    n_draws = 1_000 if quick else 10_000
    n_times = 201 if quick else 2001
    rng = np.random.default_rng(0)
    doses = jnp.asarray(rng.lognormal(np.log(4.0), 0.3, size=n_draws))  # Gy per cycle, kidneys
    t_eff = jnp.asarray(rng.lognormal(np.log(45.0), 0.2, size=n_draws))  # h
    times = jnp.linspace(0.0, 1000.0, n_times)

    closed = jax.jit(jax.vmap(lambda d, te: bed_monoexponential(d, 2.6, 2.8, te,
                                                                validate=False)))

    def numeric_one(d, te):
        lam = math.log(2) / te
        return bed(times, d * lam * jnp.exp(-lam * times), 2.6, 2.8, tail="exponential",
                   validate=False)

    numeric = jax.jit(jax.vmap(numeric_one))
    t_closed = _best(lambda: closed(doses, t_eff))
    t_numeric = _best(lambda: numeric(doses, t_eff))
    # accuracy on a dense grid (0.05 h: interpolation error (lambda h)^2/12 < 1e-7), 200 draws
    dense = jnp.linspace(0.0, 1000.0, 20001)

    def dense_one(d, te):
        lam = math.log(2) / te
        return bed(dense, d * lam * jnp.exp(-lam * dense), 2.6, 2.8, tail="exponential",
                   validate=False)

    k = 200
    rel = float(jnp.max(jnp.abs(jax.jit(jax.vmap(dense_one))(doses[:k], t_eff[:k])
                                / closed(doses[:k], t_eff[:k]) - 1)))

    # scipy nested quadrature, a few draws, extrapolated to n_draws
    few = 5
    start = time.perf_counter()
    for i in range(few):
        d, te = float(doses[i]), float(t_eff[i])
        lam = math.log(2) / te
        _scipy_bed(np.asarray(times), lambda t, d=d, lam=lam: d * lam * math.exp(-lam * t),
                   math.log(2) / 2.8, 2.6)
    t_scipy = (time.perf_counter() - start) / few * n_draws

    # TCP with a spread of alpha
    lesion_bed = jnp.asarray(rng.uniform(40, 150, size=n_draws))
    tcp = jax.jit(lambda b: tcp_poisson(b, 0.3, 1e7, alpha_sd_per_gy=0.05, validate=False))
    t_tcp = _best(lambda: tcp(lesion_bed))
    start = time.perf_counter()
    for b in np.asarray(lesion_bed[:few]):
        integrate.quad(lambda a, b=b: math.exp(-1e7 * math.exp(-a * b))
                       * stats.norm.pdf(a, 0.3, 0.05), 0, 0.9, points=[math.log(1e7) / b],
                       limit=200)
    t_tcp_scipy = (time.perf_counter() - start) / few * n_draws

    # gradient w.r.t. activity (kidney, 0.5 Gy/GBq), numerical G-factor, all draws
    activity = jnp.full(n_draws, 7400.0)
    grad = jax.jit(jax.vmap(jax.grad(lambda a, te: numeric_one(a * 0.5e-3, te))))
    t_grad = _best(lambda: grad(activity, t_eff))

    label = f"{n_draws} draws"
    return [
        dict(case=f"BED closed form vs numeric G ({label}, {n_times} pts)", tdt=t_closed,
             baseline=t_numeric, unit="s", target="closed form faster",
             note="baseline = numerical G-factor, same draws (jit+vmap)"),
        dict(case=f"numeric G-factor JAX vs scipy dblquad ({label})", tdt=t_numeric,
             baseline=t_scipy, unit="s", target=">10x",
             note=f"scipy extrapolated from {few} draws"),
        dict(case=f"TCP with alpha spread ({label})", tdt=t_tcp, baseline=t_tcp_scipy, unit="s",
             target=">10x", note=f"baseline scipy.quad, extrapolated from {few} draws"),
        dict(case=f"grad kidney BED wrt activity ({label})", tdt=t_grad, baseline=None, unit="s",
             target="< 10 s", note="numerical G-factor, reverse mode, vmapped"),
        dict(case="max rel diff numeric vs closed form", tdt=rel, baseline=None, unit="rel",
             target="< 1e-6", note="200 draws, 0.05 h grid over 1000 h + exponential tail"),
    ]
