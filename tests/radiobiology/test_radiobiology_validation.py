"""Bad input raises InputError naming the field; tracing is not broken by validation."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import tdt  # noqa: F401
from tdt.errors import InputError
from tdt.radiobiology import (
    NTCP_PARAMETERS,
    TISSUES,
    bed,
    bed_monoexponential,
    bed_multicycle,
    bed_sum_of_exponentials,
    dose_at_volume_percent,
    eqd2,
    geud,
    ntcp_lkb,
    ntcp_organ,
    tcp_poisson,
    tissue,
)

T = np.array([0.0, 1.0, 2.0, 4.0])
R = np.array([1.0, 0.8, 0.6, 0.4])


@pytest.mark.parametrize("call,field", [
    (lambda: bed_monoexponential(-1.0, 2.6, 2.8, 50.0), "dose_gy"),
    (lambda: bed_monoexponential(5.0, 0.0, 2.8, 50.0), "alpha_beta_gy"),
    (lambda: bed_monoexponential(5.0, -2.0, 2.8, 50.0), "alpha_beta_gy"),
    (lambda: bed_monoexponential(float("nan"), 2.6, 2.8, 50.0), "dose_gy"),
    (lambda: bed_monoexponential(5.0, 2.6, 0.0, 50.0), "repair_half_time_h"),
    (lambda: bed(T, -R, 2.6, 2.8), "dose_rate_gy_per_h"),
    (lambda: bed(T[::-1], R, 2.6, 2.8), "times_h"),
    (lambda: bed(np.array([0.0, 1.0, 1.0, 2.0]), R, 2.6, 2.8), "times_h"),
    (lambda: bed(T, np.array([1.0, np.nan, 0.5, 0.1]), 2.6, 2.8), "dose_rate_gy_per_h"),
    (lambda: bed(T, R[:3], 2.6, 2.8), "dose_rate_gy_per_h"),
    (lambda: bed(T, R, 0.0, 2.8), "alpha_beta_gy"),
    (lambda: bed(T, np.array([1.0, 0.8, 0.6, 0.7]), 2.6, 2.8, tail="exponential"), "tail"),
    (lambda: bed(T, R, 2.6, 2.8, tail="linear"), "tail"),
    (lambda: bed_sum_of_exponentials([1.0], [-0.1], 2.6, 2.8), "rates_per_h"),
    (lambda: bed_multicycle(np.array([5.0, -1.0]), 2.6, 2.8, 50.0), "doses_gy"),
    (lambda: bed_multicycle(np.array([5.0]), 10.0, 1.5, 50.0, overall_time_h=100.0), "repopul"),
    (lambda: eqd2(-3.0, 2.6), "bed_gy"),
    (lambda: geud(np.array([1.0, 2.0]), 0.0), "a"),
    (lambda: ntcp_lkb(20.0, 0.0, 0.1), "td50_gy"),
    (lambda: ntcp_lkb(20.0, 28.0, -0.1), "m"),
    (lambda: tcp_poisson(60.0, 0.3), "n_clonogens"),
    (lambda: tcp_poisson(60.0, -0.3, 1e7), "alpha_per_gy"),
    (lambda: dose_at_volume_percent(np.array([1.0, 2.0]), 120.0), "volume_percent"),
    (lambda: tissue("pancreas"), "tissue"),
    (lambda: ntcp_organ("liver", 10.0), "NTCP organ"),
    (lambda: ntcp_organ("red_marrow", 10.0), "absorbed_dose_gy"),
])
def test_bad_input_raises_input_error_naming_field(call, field):
    with pytest.raises(InputError, match=field):
        call()


def test_validation_does_not_break_tracing():
    # under jit the checks are skipped; bad traced values give NaN, good ones the right answer
    f = jax.jit(lambda d: bed_monoexponential(d, 2.6, 2.8, 50.0))
    assert float(f(23.0)) == pytest.approx(float(bed_monoexponential(23.0, 2.6, 2.8, 50.0)))
    g = jax.jit(lambda r: bed(T, r, 2.6, 2.8))
    assert np.isfinite(float(g(R)))


def test_parameter_tables():
    assert set(TISSUES) >= {"kidneys", "red_marrow", "salivary_glands", "tumour"}
    kidneys = TISSUES["kidneys"]
    assert (kidneys.alpha_beta_gy, kidneys.repair_half_time_h) == (2.6, 2.8)
    assert "Bodei" in kidneys.citation
    assert (TISSUES["tumour"].alpha_beta_gy, TISSUES["tumour"].repair_half_time_h) == (10.0, 1.5)
    assert (TISSUES["red_marrow"].alpha_beta_gy, TISSUES["red_marrow"].repair_half_time_h) == (
        10.0, 0.5)
    assert set(NTCP_PARAMETERS) == {"kidneys", "salivary_glands", "red_marrow"}
    for params in NTCP_PARAMETERS.values():
        assert params.citation and params.confidence in {"high", "medium", "low"}
    assert tissue("lesion_3") is TISSUES["tumour"] and tissue("Kidney") is TISSUES["kidneys"]
    custom = kidneys.with_values(alpha_beta_gy=2.0)
    assert custom.alpha_beta_gy == 2.0 and "user-modified" in custom.citation
    with pytest.raises(TypeError):
        TISSUES["liver"] = kidneys  # read-only mapping
