"""Matplotlib figures of tdt: TAC fits with posterior bands, DVHs, BED over cycles, fan charts.

Every function takes an optional ``ax`` (a new figure is made when omitted) and returns the
``Axes`` it drew on, so notebooks can compose panels and the explorer can redraw in place.
Inputs are plain arrays: draws carry a leading axis (``(n_draws, ...)``), or precomputed
quantiles with a leading axis of 3 (low, median, high). Units in axis labels follow the tdt
convention (h, MBq, Gy).

Uses the object-oriented matplotlib API only (no pyplot state) except to create a figure when no
``ax`` is given, so it is safe inside widgets and papermill runs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

from tdt.errors import InputError

#: default credible levels of fan charts (central intervals)
FAN_LEVELS = (0.5, 0.8, 0.95)
#: a colour-blind-safe cycle (Okabe & Ito 2008)
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def _new_ax(ax, figsize=(6.0, 4.0)):
    if ax is not None:
        return ax
    # matplotlib is heavy; callers choose the backend before pyplot loads
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def new_figure(nrows: int = 1, ncols: int = 1, figsize=(6.0, 4.0), dpi: float = 100.0):
    """A matplotlib ``Figure`` not registered with pyplot (no global state, no auto-display)."""
    # matplotlib is heavy; callers choose the backend before pyplot loads
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def central_interval(draws, level: float, axis: int = 0):
    """(low, high) of the central ``level`` credible interval of ``draws`` along ``axis``."""
    if not 0.0 < level < 1.0:
        raise InputError(f"level: {level!r}; expected a probability in (0, 1)")
    draws = np.asarray(draws, dtype=float)
    tail = (1.0 - level) / 2.0
    return np.quantile(draws, tail, axis=axis), np.quantile(draws, 1.0 - tail, axis=axis)


def plot_fan_chart(
    x,
    draws,
    levels: Sequence[float] = FAN_LEVELS,
    ax=None,
    color: str = COLORS[0],
    label: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
):
    """Fan chart: nested central credible bands of ``draws`` (n_draws, n_x) and the median."""
    ax = _new_ax(ax)
    x = np.asarray(x, dtype=float)
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 2 or draws.shape[1] != x.size:
        raise InputError(
            f"draws: shape {draws.shape}; expected (n_draws, {x.size}) matching x"
        )
    for i, level in enumerate(sorted(levels, reverse=True)):
        low, high = central_interval(draws, level)
        alpha = 0.15 + 0.5 * i / max(len(levels), 1)
        ax.fill_between(x, low, high, color=color, alpha=alpha, linewidth=0,
                        label=f"{level:.0%} CrI" if label is None else None)
    ax.plot(x, np.median(draws, axis=0), color=color, lw=2, label=label or "median")
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


def plot_band(x, quantiles, ax=None, color: str = COLORS[0], label: str | None = None,
              marker: str | None = None):
    """A band from precomputed quantiles (3, n_x): low, median, high."""
    ax = _new_ax(ax)
    q = np.asarray(quantiles, dtype=float)
    x = np.asarray(x, dtype=float)
    if q.shape != (3, x.size):
        raise InputError(f"quantiles: shape {q.shape}; expected (3, {x.size}) low/median/high")
    ax.fill_between(x, q[0], q[2], color=color, alpha=0.25, linewidth=0)
    ax.plot(x, q[1], color=color, lw=2, label=label, marker=marker)
    return ax


def plot_tac_fit(
    times_h,
    activity_mbq,
    t_grid_h,
    predicted_mbq,
    ax=None,
    levels: Sequence[float] = (0.5, 0.9),
    label: str = "",
    color: str = COLORS[0],
    activity_sd_mbq=None,
    log_scale: bool = False,
):
    """Measured time–activity points and the fitted TAC with posterior bands.

    ``predicted_mbq`` is (n_draws, n_grid) posterior-predictive curves on ``t_grid_h`` (h), or a
    single (n_grid,) curve (a point fit). ``activity_sd_mbq`` draws error bars on the data.
    """
    ax = _new_ax(ax)
    t = np.asarray(times_h, dtype=float)
    a = np.asarray(activity_mbq, dtype=float)
    if t.shape != a.shape:
        raise InputError(f"activity_mbq: shape {a.shape}; expected {t.shape} like times_h")
    predicted = np.atleast_2d(np.asarray(predicted_mbq, dtype=float))
    grid = np.asarray(t_grid_h, dtype=float)
    if predicted.shape[0] > 1:
        plot_fan_chart(grid, predicted, levels=levels, ax=ax, color=color,
                       label=f"{label} fit (median)".strip())
    else:
        ax.plot(grid, predicted[0], color=color, lw=2, label=f"{label} fit".strip())
    ax.errorbar(t, a, yerr=activity_sd_mbq, fmt="o", color="k", ms=5, capsize=3,
                label=f"{label} measured".strip())
    ax.set_xlabel("time after administration (h)")
    ax.set_ylabel("activity (MBq)")
    if log_scale:
        ax.set_yscale("log")
    ax.legend(fontsize="small")
    return ax


def dose_volume_histogram(dose_gy, mask=None, bins: int | Sequence[float] = 200,
                          voxel_weights=None):
    """Cumulative DVH: volume fraction of the VOI receiving at least each dose level.

    Returns ``(dose_levels_gy, volume_fraction)``; volume fraction V(D) = Σ_{d_i >= D} w_i / Σ w_i
    over voxels in ``mask`` (uniform weights unless ``voxel_weights``, e.g. masses, are given).
    """
    dose = np.asarray(dose_gy, dtype=float)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != dose.shape:
            raise InputError(f"mask: shape {mask.shape}; expected {dose.shape} like dose_gy")
        values = dose[mask]
        weights = None if voxel_weights is None else np.asarray(voxel_weights, float)[mask]
    else:
        values = dose.ravel()
        weights = None if voxel_weights is None else np.asarray(voxel_weights, float).ravel()
    if values.size == 0:
        raise InputError("mask: selects no voxel; expected a non-empty VOI")
    if not np.all(np.isfinite(values)):
        raise InputError("dose_gy: non-finite values inside the VOI; expected finite doses")
    weights = np.ones_like(values) if weights is None else weights
    if np.isscalar(bins) or np.ndim(bins) == 0:
        levels = np.linspace(0.0, max(values.max(), 1e-12) * 1.02, int(bins))
    else:
        levels = np.asarray(bins, dtype=float)
    order = np.argsort(values)
    sorted_values, sorted_weights = values[order], weights[order]
    # weight of voxels with dose >= level: total minus weight strictly below the level
    below = np.concatenate([[0.0], np.cumsum(sorted_weights)])
    idx = np.searchsorted(sorted_values, levels, side="left")
    fraction = (below[-1] - below[idx]) / below[-1]
    return levels, fraction


def plot_dvh(dose_gy, masks: Mapping[str, np.ndarray], ax=None, bins: int = 200,
             limits_gy: Mapping[str, float] | None = None):
    """Cumulative dose–volume histograms of each VOI in ``masks`` ({name: bool array})."""
    ax = _new_ax(ax)
    for i, (name, mask) in enumerate(masks.items()):
        levels, fraction = dose_volume_histogram(dose_gy, mask, bins=bins)
        ax.plot(levels, 100.0 * fraction, color=COLORS[i % len(COLORS)], lw=2, label=name)
    for name, limit in (limits_gy or {}).items():
        ax.axvline(limit, color="grey", ls="--", lw=1)
        ax.annotate(f"{name} limit", (limit, 95), rotation=90, va="top", fontsize="x-small")
    ax.set_xlabel("absorbed dose (Gy)")
    ax.set_ylabel("volume (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.legend(fontsize="small")
    return ax


def plot_bed_over_cycles(
    cumulative_bed,
    limit_gy: float | None = None,
    ax=None,
    label: str = "",
    color: str = COLORS[0],
    n_cycles: int | None = None,
    quantity: str = "BED",
):
    """Cumulative BED (or dose) after each cycle with its credible band.

    ``cumulative_bed`` is either draws (n_draws, n_cycles) or quantiles (3, n_cycles) when the
    first axis has length 3 (low, median, high). ``n_cycles`` greys out cycles beyond the plan.
    """
    ax = _new_ax(ax)
    values = np.asarray(cumulative_bed, dtype=float)
    if values.ndim != 2:
        raise InputError(f"cumulative_bed: shape {values.shape}; expected 2-D")
    q = values if values.shape[0] == 3 else np.quantile(values, [0.05, 0.5, 0.95], axis=0)
    cycles = np.arange(1, q.shape[1] + 1)
    shown = slice(None) if n_cycles is None else slice(0, int(n_cycles))
    plot_band(cycles[shown], q[:, shown], ax=ax, color=color, label=label or None, marker="o")
    if n_cycles is not None and n_cycles < q.shape[1]:
        ax.plot(cycles[n_cycles - 1:], q[1, n_cycles - 1:], color=color, lw=1, ls=":")
    if limit_gy is not None and np.isfinite(limit_gy):
        ax.axhline(limit_gy, color=color, ls="--", lw=1)
        ax.annotate(f"limit {limit_gy:g} Gy", (1, limit_gy), va="bottom", fontsize="x-small",
                    color=color)
    ax.set_xlabel("cycle")
    ax.set_ylabel(f"cumulative {quantity} (Gy)")
    ax.set_xticks(cycles)
    return ax


def plot_dose_intervals(summary: Mapping[str, Sequence[float]], ax=None, unit: str = "Gy",
                        limits: Mapping[str, float] | None = None, title: str | None = None):
    """Forest plot: one row per region, median and credible interval ({region: (lo, med, hi)})."""
    ax = _new_ax(ax, figsize=(6.0, 0.5 + 0.45 * len(summary)))
    names = list(summary)
    for i, name in enumerate(names):
        lo, med, hi = (float(v) for v in summary[name])
        ax.plot([lo, hi], [i, i], color=COLORS[0], lw=3)
        ax.plot(med, i, "o", color=COLORS[1])
        if limits and name in limits and limits[name] is not None:
            ax.plot(limits[name], i, "|", color="k", ms=14, mew=2)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(f"absorbed dose ({unit})" if unit == "Gy" else unit)
    ax.set_xscale("log")
    if title:
        ax.set_title(title)
    return ax


def plot_icon_array(probability: float, ax=None, n: int = 100, columns: int = 10,
                    color_event: str = COLORS[1], color_none: str = "#BBBBBB",
                    title: str | None = None):
    """Icon array for patients: ``round(probability · n)`` of ``n`` people highlighted.

    Icon arrays are the recommended way to show risks to patients (e.g. Galesic et al., Health
    Psychol 2009;28:210).
    """
    if not (0.0 <= probability <= 1.0):
        raise InputError(f"probability: {probability!r}; expected a value in [0, 1]")
    ax = _new_ax(ax, figsize=(3.2, 3.4))
    k = int(round(probability * n))
    rows = int(np.ceil(n / columns))
    index = np.arange(n)
    x, y = index % columns, rows - 1 - index // columns
    colors = np.where(index < k, color_event, color_none)
    ax.scatter(x, y, s=110, c=colors, marker="o", edgecolors="none")
    ax.set_xlim(-0.8, columns - 0.2)
    ax.set_ylim(-0.8, rows - 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize="small")
    return ax


def figure_png(fig, dpi: float | None = None) -> bytes:
    """Render a figure to PNG bytes (for ``ipywidgets.Image``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_ligand_sweep(rows: Sequence[Mapping], axes=None, label: str = "",
                      color: str = COLORS[0], optimum=None, salivary: bool = False,
                      standard_nmol: tuple[float, float] | None = (96.0, 192.0)):
    """Three panels over the ligand amount (log axis) from :func:`tdt.twin.ligand_sweep` rows:
    admissible activity per cycle (GBq), expected mean tumour BED (Gy) and the constraint
    probabilities (%) at the rows' fixed activity (solid: the first constraint, dotted: the
    others). ``optimum``: a :class:`tdt.twin.LigandPlan` marked on the first two panels;
    ``salivary``: the median salivary-gland dose on a right axis of the first panel;
    ``standard_nmol``: the shaded standard range (100–200 µg PSMA-617 ≈ 96–192 nmol).
    Returns the three axes."""
    if axes is None:
        # matplotlib is heavy; callers choose the backend before pyplot loads
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 3, figsize=(13.0, 3.8), layout="constrained")
    if not rows:
        raise InputError("rows: empty; expected ligand_sweep rows")
    lig = [r["ligand_nmol"] for r in rows]
    axes[0].plot(lig, [r["activity_mbq"] / 1000.0 for r in rows], color=color, label=label)
    axes[1].plot(lig, [r["tumour_bed_gy"] for r in rows], color=color, label=label)
    fixed_gbq = rows[0]["fixed_activity_mbq"] / 1000.0
    for k, name in enumerate(rows[0]["probabilities_fixed"]):
        axes[2].plot(lig, [100.0 * r["probabilities_fixed"][name] for r in rows], color=color,
                     ls="-" if k == 0 else ":", label=f"{name}{', ' + label if label else ''}")
    if optimum is not None:
        axes[0].plot(optimum.ligand_nmol[0], optimum.activities_mbq[0] / 1000.0, "o",
                     color=color)
        axes[1].plot(optimum.ligand_nmol[0], optimum.expected_objective, "o", color=color,
                     label=f"optimum ({optimum.ligand_nmol[0]:.0f} nmol)")
    if salivary:
        right = axes[0].twinx()
        right.plot(lig, [r["salivary_dose_gy"] for r in rows], color="grey", ls="--")
        right.set_ylabel(f"median salivary dose (Gy){', ' + label if label else ''}",
                         color="grey")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("ligand amount per cycle (nmol)")
        if standard_nmol is not None:
            ax.axvspan(*standard_nmol, color="0.9", zorder=0)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("admissible activity per cycle (GBq)")
    axes[1].set_ylabel("expected mean tumour BED (Gy)")
    axes[2].set_ylabel(f"probability at {fixed_gbq:g} GBq per cycle (%)")
    axes[2].axhline(5.0, color="k", lw=0.8)
    return axes


def plot_guided_activity(kidney_gy_per_gbq, total_activity_gbq, risk_factor,
                         fixed_total_gbq: float | None = None, ax=None,
                         xlabel: str = "true kidney dose per GBq (Gy/GBq)"):
    """A virtual trial's guided arm per patient: total activity given (GBq) against the patient's
    true kidney dose per activity (Gy/GBq); circles: a kidney risk factor (28 Gy BED limit),
    triangles: none (40 Gy); dashed: the fixed arm's total activity."""
    ax = _new_ax(ax)
    x, y = np.asarray(kidney_gy_per_gbq, float), np.asarray(total_activity_gbq, float)
    risk = np.asarray(risk_factor, dtype=bool)
    if not (x.shape == y.shape == risk.shape and x.ndim == 1):
        raise InputError(f"plot_guided_activity: shapes {x.shape}, {y.shape}, {risk.shape}; "
                         "expected three 1-D arrays of one length (one value per patient)")
    for has_risk, marker in ((True, "o"), (False, "^")):
        ax.scatter(x[risk == has_risk], y[risk == has_risk], marker=marker,
                   label="risk factor (28 Gy)" if has_risk else "no risk factor (40 Gy)")
    if fixed_total_gbq is not None:
        ax.axhline(fixed_total_gbq, ls="--", color="grey", lw=1, label="fixed arm")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("guided total activity (GBq)")
    ax.legend(fontsize="small")
    return ax
