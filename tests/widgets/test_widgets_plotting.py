"""tdt.plotting: figures draw what they are given, and the DVH matches analytic distributions."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tdt import plotting  # noqa: E402
from tdt.errors import InputError  # noqa: E402


def test_dvh_of_uniform_dose_is_linear():
    # doses uniformly spread on [0, 10] Gy: V(D) = 1 - D/10 (analytic)
    dose = np.linspace(0.0, 10.0, 100_001)
    levels, fraction = plotting.dose_volume_histogram(dose, bins=np.array([0.0, 2.5, 5.0, 9.0]))
    np.testing.assert_allclose(fraction, 1.0 - levels / 10.0, atol=1e-4)


def test_dvh_with_mask_and_weights():
    dose = np.array([[1.0, 2.0], [3.0, 4.0]])
    mask = np.array([[True, True], [False, True]])
    levels, fraction = plotting.dose_volume_histogram(dose, mask, bins=np.array([0.0, 1.5, 3.0,
                                                                                 4.5]))
    np.testing.assert_allclose(fraction, [1.0, 2 / 3, 1 / 3, 0.0])
    weights = np.array([[1.0, 3.0], [1.0, 1.0]])
    _, weighted = plotting.dose_volume_histogram(dose, mask, bins=np.array([1.5]),
                                                 voxel_weights=weights)
    np.testing.assert_allclose(weighted, [4 / 5])
    with pytest.raises(InputError, match="mask"):
        plotting.dose_volume_histogram(dose, np.zeros((2, 2), bool))


def test_fan_chart_bands_are_central_intervals():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4000, 3)) + np.array([0.0, 1.0, 2.0])
    fig, axes = plotting.new_figure()
    ax = plotting.plot_fan_chart([0, 1, 2], draws, levels=(0.9,), ax=axes[0, 0])
    band = ax.collections[0].get_paths()[0].vertices
    # normal 90 % central interval: ±1.645 (Φ⁻¹(0.95))
    assert band[:, 1].max() == pytest.approx(2 + 1.645, abs=0.1)
    assert band[:, 1].min() == pytest.approx(-1.645, abs=0.1)
    with pytest.raises(InputError, match="draws"):
        plotting.plot_fan_chart([0, 1], draws)


def test_tac_fit_bed_cycles_intervals_icon_array_draw():
    fig, axes = plotting.new_figure(2, 3, figsize=(12, 6))
    t = np.array([4.0, 24.0, 96.0, 168.0])
    grid = np.linspace(0, 200, 50)
    curves = 100 * np.exp(-np.outer(np.linspace(0.01, 0.02, 30), grid))
    plotting.plot_tac_fit(t, 100 * np.exp(-0.015 * t), grid, curves, ax=axes[0, 0])
    plotting.plot_tac_fit(t, 100 * np.exp(-0.015 * t), grid, curves[0], ax=axes[0, 1],
                          log_scale=True)
    q = np.array([np.arange(1, 7) * a for a in (4.0, 5.0, 6.0)])
    ax = plotting.plot_bed_over_cycles(q, limit_gy=28.0, ax=axes[0, 2], n_cycles=4)
    assert ax.get_lines()[0].get_ydata().tolist() == [5.0, 10.0, 15.0, 20.0]
    plotting.plot_dose_intervals({"kidneys": (3, 4, 5), "lesion_1": (20, 30, 45)},
                                 ax=axes[1, 0], limits={"kidneys": 23.0})
    ax = plotting.plot_icon_array(0.07, ax=axes[1, 1])
    colours = ax.collections[0].get_facecolors()
    highlighted = np.sum(np.all(np.isclose(colours[:, :3], matplotlib.colors.to_rgb(
        plotting.COLORS[1])), axis=1))
    assert highlighted == 7
    plotting.plot_dvh(np.linspace(0, 5, 100).reshape(10, 10),
                      {"kidneys": np.ones((10, 10), bool)}, ax=axes[1, 2], limits_gy={"k": 2.0})
    assert plotting.figure_png(fig)[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="probability"):
        plotting.plot_icon_array(1.5)


def test_guided_activity_scatter_draws_every_patient_once():
    x = np.array([0.3, 0.5, 0.8, 0.4])
    y = np.array([40.0, 30.0, 12.0, 35.0])
    risk = np.array([True, False, True, False])
    ax = plotting.plot_guided_activity(x, y, risk, fixed_total_gbq=44.4)
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(map(tuple, points)) == sorted(zip(x, y, strict=True))
    assert ax.lines[0].get_ydata()[0] == 44.4
    assert "GBq" in ax.get_ylabel() and "Gy/GBq" in ax.get_xlabel()
    with pytest.raises(InputError, match="plot_guided_activity"):
        plotting.plot_guided_activity(x, y[:2], risk)
