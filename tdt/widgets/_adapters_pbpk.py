"""Adapters for the receptor-PBPK twin: an emulator of d(L), q(L) per draw for the explorer.

Why an emulator. With a receptor PBPK the response to one cycle of activity A (MBq) and ligand
amount L (nmol) is, per draw and organ, exactly D = d(L)·A and BED = d(L)·A + q(L)·A²
(:class:`tdt.twin.LigandResponse`). A change of A is therefore free, but a change of L needs a
PBPK solve of every draw: ~2–3 s for 1,000 draws of the PSMA-617 model on 2 CPU cores (after
compilation; benchmarks/bench_widgets.py), far above the explorer's 100 ms budget.

The emulator: at construction, d(L) and q(L) of every draw are computed by the PBPK itself
(:meth:`LigandResponse.coefficients`: one jitted, vmapped solve of all draws per amount) on a
log-spaced grid of ligand amounts (default 9 amounts, 20–1000 nmol, the planner's bounds). A
slider move interpolates per draw and region in log L (monotone cubic Hermite of the logs,
:mod:`tdt.widgets._ligand_curves`): the dose factor d(L)/d(L_ref) and the equivalent effective
half-life T_eff(L) with which the explorer's Dale form reproduces q(L)
(:func:`tdt.widgets._adapters.equivalent_half_life`). Exact at the grid amounts and in A at
any L.

Its error is measured, not assumed: at construction the PBPK is also solved at the geometric
midpoints of the grid cells (the amounts farthest from the grid, where interpolation is worst),
and the emulated dose per cycle and one-cycle BED (at ``check_activity_mbq``, default 7.4 GBq)
are compared with the direct solve over all draws and regions; the largest relative errors are
stored (``ScenarioInputs.ligand_emulator``) and shown in the explorer beside the ligand control
and in its notes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tdt.errors import InputError
from tdt.pbpk import Administration, Schedule
from tdt.physics import nuclide
from tdt.radiobiology import bed_monoexponential
from tdt.widgets._adapters import _select, equivalent_half_life
from tdt.widgets._inputs import ScenarioInputs
from tdt.widgets._ligand_curves import LigandCurves
from tdt.widgets._scenario import Scenario, resolve_radiobiology

#: default ligand grid: 9 amounts, log-spaced over the planner's bounds (20–1000 nmol; ratio 1.63).
#: Measured (PSMA-617 reference patient, 1,000 draws): max error 0.37 % with 7 amounts, 0.035 %
#: with 13 (docs/notebooks.md); 9 keeps construction at 17 solves with the check.
DEFAULT_LIGAND_GRID_NMOL = tuple(float(x) for x in np.geomspace(20.0, 1000.0, 9))
#: standard 177Lu-PSMA-617 amount of the model's standard patient (tdt.twin planner)
REFERENCE_LIGAND_NMOL = 150.0
#: interpolation of the emulator (tdt.widgets._ligand_curves)
EMULATOR_INTERPOLATION = "pchip-log"


def _as_matrix(name, values, regions, n_draws):
    """``{region: (n_draws,)}`` Gy -> (n_draws, n_regions); regions missing: 0."""
    out = np.zeros((n_draws, len(regions)))
    for j, region in enumerate(regions):
        if region in values:
            v = np.asarray(values[region], dtype=float)
            if v.shape != (n_draws,) or not np.all(np.isfinite(v)) or np.any(v < 0):
                raise InputError(f"{name}[{region!r}]: expected {n_draws} finite values >= 0 Gy,"
                                 f" got shape {v.shape}")
            out[:, j] = v
    return out


def _emulated_bed(regions, d, teff, activity_mbq):
    """One-cycle BED (Gy) as the explorer computes it: Dale's form at the default tissues."""
    rb = resolve_radiobiology(tuple(regions), Scenario())
    return np.asarray(bed_monoexponential(activity_mbq * d, rb.alpha_beta_gy,
                                          rb.repair_half_time_h, teff, validate=False))


def emulator_error(curves: LigandCurves, regions, d_ref, check: dict, activity_mbq: float,
                   dose_only: Sequence[str] = ()):
    """Largest relative errors of the emulated dose and one-cycle BED against direct solves.

    ``check``: ligand amount (nmol) -> (d, q) of the PBPK at that amount, (n_draws, n_regions).
    ``dose_only``: regions without LQ parameters in the twin (their BED is not compared).
    Returns ``{"dose": ..., "bed": ..., "worst": (region, nmol)}`` (fractions).
    """
    lq = np.array([r not in dose_only for r in regions])
    worst_dose = worst_bed = 0.0
    where = ("", float("nan"))
    for ligand, (d, q) in check.items():
        scale, teff = curves(ligand)
        d_em = d_ref * scale
        dose_err = np.abs(d_em / d - 1.0)
        bed = activity_mbq * d + q * activity_mbq**2
        bed_err = np.where(lq, np.abs(_emulated_bed(regions, d_em, teff, activity_mbq) / bed
                                      - 1.0), 0.0)
        worst_dose = max(worst_dose, float(dose_err.max()))
        if float(bed_err.max()) > worst_bed:
            worst_bed = float(bed_err.max())
            where = (str(regions[int(np.argmax(bed_err.max(axis=0)))]), float(ligand))
    return {"dose": worst_dose, "bed": worst_bed, "worst": where}


def inputs_from_ligand_response(response, grid_nmol: Sequence[float] = DEFAULT_LIGAND_GRID_NMOL,
                                *, regions: Sequence[str] | None = None,
                                prior_dose_gy: Mapping[str, np.ndarray] | None = None,
                                prior_bed_gy: Mapping[str, np.ndarray] | None = None,
                                reference_nmol: float = REFERENCE_LIGAND_NMOL,
                                check: bool = True, check_activity_mbq: float = 7400.0,
                                source: str = "receptor PBPK draws",
                                converged: bool | None = None) -> ScenarioInputs:
    """:class:`ScenarioInputs` with a live ligand control from a :class:`tdt.twin.LigandResponse`
    (module docstring: the emulator and its measured error).

    ``grid_nmol``: >= 2 increasing ligand amounts (nmol) solved at construction.
    ``prior_dose_gy`` / ``prior_bed_gy``: organ -> (n_draws,) dose / BED already delivered (Gy).
    ``check``: also solve at the grid's midpoints and record the emulator's error (one more
    solve per grid cell). ``reference_nmol``: the ligand control's initial value; the grid amount
    nearest to it is the one whose d is ``dose_per_mbq_gy`` (``dose_per_mbq_at_nmol``).
    """
    grid = np.asarray(grid_nmol, dtype=float)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0) or grid[0] <= 0:
        raise InputError(f"grid_nmol: {grid_nmol!r}; expected >= 2 strictly increasing amounts "
                         "> 0 nmol")
    chosen = _select(list(response.organs), regions)
    index = [response.organs.index(r) for r in chosen]
    d_grid, q_grid = [], []
    for ligand in grid:  # one compiled solve of all draws per amount
        d, q = response.coefficients(float(ligand))
        d_grid.append(d[:, index])
        q_grid.append(q[:, index])
    d_grid, q_grid = np.stack(d_grid, axis=-1), np.stack(q_grid, axis=-1)  # (n, r, g)
    physical_h = nuclide(response.nuclide).half_life_h
    teff_grid = np.stack([equivalent_half_life(chosen, d_grid[..., k], q_grid[..., k],
                                               physical_h) for k in range(grid.size)], axis=-1)
    dose_only = [r for r in chosen if r in getattr(response, "dose_only", ())]
    ref = int(np.argmin(np.abs(np.log(grid / float(reference_nmol)))))
    d_ref = d_grid[..., ref]
    scale = d_grid / d_ref[..., None]
    n = d_ref.shape[0]
    emulator = {"grid_nmol": tuple(float(x) for x in grid), "method": EMULATOR_INTERPOLATION,
                "reference_nmol": float(reference_nmol), "dose_per_mbq_at_nmol": float(grid[ref]),
                "n_draws": n, "regions": tuple(chosen)}
    if check:
        curves = LigandCurves(grid, scale, teff_grid, EMULATOR_INTERPOLATION)
        midpoints = np.sqrt(grid[1:] * grid[:-1])
        direct = {}
        for ligand in midpoints:
            d, q = response.coefficients(float(ligand))
            direct[float(ligand)] = (d[:, index], q[:, index])
        error = emulator_error(curves, chosen, d_ref, direct, float(check_activity_mbq),
                               dose_only)
        emulator |= {"max_rel_error_dose": error["dose"], "max_rel_error_bed": error["bed"],
                     "worst": error["worst"], "check_nmol": tuple(direct),
                     "check_activity_mbq": float(check_activity_mbq)}
    has_prior = prior_dose_gy is not None or prior_bed_gy is not None
    notes = [emulator_note(emulator)]
    if dose_only:
        notes.append(f"{', '.join(dose_only)}: no LQ parameters in the twin's table — dose only "
                     "(BED shown with the generic late-tissue α/β and the physical half-life; "
                     "not in the emulator's BED error).")
    if has_prior:
        notes.append("Cumulative quantities include the dose and BED already delivered (twin).")
    return ScenarioInputs(
        regions=tuple(chosen), dose_per_mbq_gy=d_ref, effective_half_life_h=teff_grid[..., ref],
        ligand_grid_nmol=grid, ligand_uptake_scale=scale, ligand_half_life_h=teff_grid,
        ligand_interpolation=EMULATOR_INTERPOLATION, ligand_emulator=emulator, source=source,
        converged=converged, notes=tuple(notes),
        delivered_dose_gy=(_as_matrix("prior_dose_gy", prior_dose_gy or {}, chosen, n)
                           if has_prior else None),
        delivered_bed_gy=(_as_matrix("prior_bed_gy", prior_bed_gy or {}, chosen, n)
                          if has_prior else None),
    )


def emulator_note(emulator: Mapping, short: bool = False) -> str:
    """One line on the emulator and its measured error (shown in the explorer); ``short``: the
    line beside the ligand control."""
    grid = emulator["grid_nmol"]
    if short:
        if "max_rel_error_dose" not in emulator:
            return "ligand amount: PBPK emulator (error not measured)"
        return (f"ligand amount: PBPK emulator ({len(grid)} solved amounts, interpolated in log "
                f"L); max error vs direct PBPK: dose {100 * emulator['max_rel_error_dose']:.2f} "
                f"%, BED {100 * emulator['max_rel_error_bed']:.2f} %")
    text = (f"Ligand amount: PBPK emulator — d(L), q(L) of {emulator['n_draws']} draws solved at "
            f"{len(grid)} amounts {grid[0]:g}–{grid[-1]:g} nmol, monotone cubic in log L; exact "
            "in activity.")
    if "max_rel_error_dose" in emulator:
        region, ligand = emulator["worst"]
        text += (f" Max error vs the direct PBPK solve at {len(emulator['check_nmol'])} off-grid "
                 f"amounts (all draws and regions): dose {100 * emulator['max_rel_error_dose']:.2f}"
                 f" %, BED {100 * emulator['max_rel_error_bed']:.2f} % (at "
                 f"{emulator['check_activity_mbq'] / 1000:g} GBq; worst: {region}, "
                 f"{ligand:.0f} nmol).")
    else:
        text += " Interpolation error not measured (check=False)."
    return text


def inputs_from_pbpk_twin(twin, grid_nmol: Sequence[float] = DEFAULT_LIGAND_GRID_NMOL,
                          regions: Sequence[str] | None = None, check: bool = True,
                          response=None) -> ScenarioInputs:
    """From a PBPK ``tdt.twin.Twin`` (``model="psma617"``...) after at least one assimilated
    cycle: the next cycle's parameter draws (:meth:`Twin.pbpk_parameter_draws`, one drift step;
    the uniform policy of the planner: later cycles repeat them), the record's organ masses,
    lesion volumes and phantom, and the dose and BED delivered by the assimilated cycles
    (``twin.predict``). ``response``: a prebuilt :class:`tdt.twin.LigandResponse` on those
    draws (its compiled solves are reused)."""
    # deferred: tdt.twin imports tdt.inference and with it PyMC (seconds); the widgets do not
    from tdt.twin import LigandResponse

    if not getattr(twin, "is_pbpk", False):
        raise InputError(f"twin: {type(twin).__name__} is not a PBPK twin; expected "
                         "tdt.Twin(record, model='psma617' | 'dotatate' | ...)")
    draws = twin.pbpk_parameter_draws(1)[0]
    record = twin.record
    if response is None:
        response = LigandResponse(twin.pbpk, draws, organ_masses_g=record.organ_masses_g or None,
                                  lesion_volumes_ml=dict(record.lesions), phantom=record.phantom)
    # one nominal future cycle: only the past cycles' (delivered) doses are used
    past = twin.predict(Schedule([Administration(0.0, 1.0, twin.ligand_nmol)]))
    given = len(twin.cycles)
    converged = bool(twin.nuts_posterior.converged)
    return inputs_from_ligand_response(
        response, grid_nmol, regions=regions, prior_dose_gy=past.delivered_dose_gy,
        prior_bed_gy=past.delivered_bed_gy, check=check, converged=converged,
        reference_nmol=twin.ligand_nmol,
        source=(f"PBPK twin ({twin.model_name}, NUTS) after {given} assimilated "
                f"cycle{'s' if given != 1 else ''}" + ("" if converged else " — NOT CONVERGED")))
