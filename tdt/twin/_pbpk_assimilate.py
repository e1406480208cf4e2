"""``Twin.assimilate`` of the PBPK twin: the joint NUTS refit of all cycles and its QA report.

The QA report has the linear twin's checks (:mod:`tdt.twin._qa`), computed from the PBPK
posterior draws (a seeded subset of at most ``QA_DRAWS``) of the cycle just assimilated:

- ``tia_extrapolated``: per VOI, the fraction of the cycle's TIA (its administration window,
  :func:`tdt.inference.solve_boluses` ``by_administration``: to the next administration, the
  last one to infinity; residual activity of earlier cycles included) accrued after the VOI's
  last imaging time, 1 − ∫₀^{t_last} A dt / TIA, the integral by the trapezoidal rule on a
  log-spaced grid of ``QA_GRID_POINTS`` points from 0.01 h plus the imaging times (posterior
  median over the draws);
- ``outliers``: standardised residuals of every data point of the cycle against the posterior
  predictive activity at its time (:func:`tdt.twin._assimilate.standardised_residuals`, the
  linear twin's formula: lognormal noise ``relative_sd`` and the calibration sd);
- ``fit`` (the NUTS convergence gate: a non-converged fit fails, and every prediction and plan
  of the twin carries the flag), ``plausibility`` (the input's recorded warnings and the TAC
  checks against the administered activity), ``time_points``, ``calibration``, ``provenance``.
"""

from __future__ import annotations

import numpy as np

from tdt.twin._assimilate import standardised_residuals
from tdt.twin._pbpk_doses import simulate_paths
from tdt.twin._pbpk_twin import assimilate_pbpk, body_compartments, fit_data, parameter_paths
from tdt.twin._qa import build_report

#: posterior draws used by the QA checks (seeded subset)
QA_DRAWS = 200
#: log-spaced points of the time grid of the extrapolated-TIA integral
QA_GRID_POINTS = 400


def qa_inputs(twin, posterior, forward, cycles, ligand) -> tuple[dict, dict]:
    """(extrapolated TIA fraction: VOI -> posterior median, z-scores: VOI -> (n_points,)) of
    the last of ``cycles`` (module docstring)."""
    cycle = cycles[-1]
    _, schedule = fit_data(twin.record, cycles, twin.interval_h, ligand, twin.calibration_sd)
    paths, _ = parameter_paths(posterior, forward, min(twin.n_draws, QA_DRAWS), 0,
                               (twin.seed, len(cycles), 101))
    organs = body_compartments(forward.base)
    last_h = max(float(t[-1]) for t, _ in cycle.measurements.values())
    grid = np.unique(np.concatenate([[0.0], np.geomspace(0.01, last_h, QA_GRID_POINTS),
                                     *(np.asarray(t, float) for t, _ in
                                       cycle.measurements.values())]))
    histories, tia, ok = simulate_paths(forward.base, paths, schedule, organs, history_h=grid,
                                        last_only=True)
    activity = histories[-1][ok]  # (n, n_organs, n_grid) of the last administration's window
    window_tia = tia[ok, -1, :]   # (n, n_organs)
    extrapolated, z_scores = {}, {}
    for organ, (t, a) in cycle.measurements.items():
        i = organs.index(organ)
        t = np.asarray(t, dtype=float)
        upto = grid <= t[-1]
        partial = np.trapezoid(activity[:, i, upto], grid[upto], axis=1)
        extrapolated[organ] = float(np.median(1.0 - partial / window_tia[:, i]))
        predicted = activity[:, i, np.searchsorted(grid, t)]
        z_scores[organ] = standardised_residuals(predicted, a, cycle.relative_sd,
                                                 twin.calibration_sd)
    return extrapolated, z_scores


def pbpk_assimilate(twin, cycle):
    """``Twin.assimilate`` of a PBPK twin: joint NUTS refit of all cycles, QA report."""
    cycles = [*twin.cycles, cycle]
    ligand = [*twin.ligand_per_cycle[:len(twin.cycles)], twin.ligand_nmol]
    posterior, forward = assimilate_pbpk(twin.pbpk, twin.spec, twin.record, cycles, twin.drift,
                                         twin.interval_h, ligand, twin.calibration_sd,
                                         twin.nuts_options)
    diagnostics = dict(posterior.diagnostics.as_dict())
    diagnostics["converged"] = bool(posterior.diagnostics.converged)
    extrapolated, z_scores = qa_inputs(twin, posterior, forward, cycles, ligand)
    report = build_report(len(cycles), cycle, diagnostics, extrapolated, z_scores,
                          {"model": twin.model_name, "engine": f"{twin.engine} (PBPK draws, all cycles)",
                           "dosimetry": "svalues (tdt.inference._predictive)",
                           "qa_draws": min(twin.n_draws, QA_DRAWS, posterior.n_draws)},
                          nuclide=twin.record.nuclide)
    twin.nuts_posterior, twin.drift_forward = posterior, forward
    twin.ligand_per_cycle = ligand
    twin.cycles.append(cycle)
    twin.qa_reports.append(report)
    twin.audit.append("assimilate", {
        "cycle": len(cycles), "data_sha256": cycle.sha256(), "activity_mbq": cycle.activity_mbq,
        "ligand_nmol": twin.ligand_nmol, "qa": report.to_dict(),
        "posterior": {"method": f"{twin.engine} (PBPK, all cycles)", "diagnostics": diagnostics,
                      "median": {n: float(np.median(v))
                                 for n, v in posterior.parameter_draws.items()}}})
    return report
