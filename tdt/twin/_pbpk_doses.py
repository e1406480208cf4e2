"""The PBPK twin's per-draw dosimetry: the whole schedule re-simulated per draw
(:func:`simulate_paths`, one compiled program per model, organs, administration times and grid,
:mod:`tdt.twin._pbpk_programs`), then each administration's TIAs and dose-rate history through
:func:`tdt.inference.dose_prediction` (:func:`cycle_doses`: MIRD S-values of the record's phantom
and masses, spheres for lesions, BED by the G-factor of each draw's history). Used by the twin's
predictions (:func:`tdt.twin._pbpk_twin.predict_pbpk`) and by the PBPK virtual trial's truth."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tdt.dosimetry import svalue_table
from tdt.inference import dose_prediction, is_dose_bearing, schedule_amounts
from tdt.pbpk import Administration, Schedule
from tdt.twin._pbpk_programs import history_grid, paths_program

__all__ = ("HISTORY_H", "cycle_doses", "report_organs", "simulate_paths")

#: Relative imaging times (h after an administration) of the dose-rate history per cycle.
HISTORY_H = np.array([0.0, 0.5, 1, 2, 4, 8, 12, 24, 36, 48, 72, 96, 120, 144, 168, 216, 264,
                      336, 432, 504, 600, 672, 800, 900, 1000])


def simulate_paths(base, paths: dict, schedule, organs, history_h=HISTORY_H,
                   last_only: bool = False):
    """Per draw: activities on each administration's time grid ``history_h`` (h after it; list
    over administrations of (n, n_organs, n_times)), TIA per administration window
    (n, K+m, n_organs) and ``ok`` (n,). Compiled once per model, organs, administration times
    and grid (:func:`tdt.twin._pbpk_programs.paths_program`): activities and ligand amounts
    are arguments. ``last_only``: activities after the last administration only (the earlier
    ones' arrays have no times; TIAs of every window as always): the QA of the latest cycle
    (docs/twin.md, "Where a PBPK trial patient's ~50 s go")."""
    starts = np.asarray(schedule.time_h, dtype=float)
    history_h = np.asarray(history_h, dtype=float)
    sizes = [g.size for g in history_grid(starts, history_h, last_only)]
    names = tuple(paths)
    program = paths_program(base, names, tuple(organs), tuple(starts.tolist()),
                             tuple(history_h.tolist()), bool(last_only))
    activity, tia, ok = program(tuple(jnp.asarray(paths[n]) for n in names),
                                jnp.asarray(schedule_amounts(schedule)))
    split = np.split(np.asarray(activity), np.cumsum(sizes)[:-1], axis=2)
    return split, np.asarray(tia), np.asarray(ok)


def report_organs(record, organs, fitted) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(organs reported, source organs) of a PBPK prediction: the ``fitted`` VOIs and every
    other dose-bearing compartment of ``organs`` (S-value targets of the record's phantom);
    sources add plasma (the rest of the body enters as the remainder)."""
    targets = svalue_table(record.nuclide, record.phantom).targets
    report = fitted + tuple(o for o in organs if o not in fitted and is_dose_bearing(o, targets))
    return report, report + tuple(o for o in ("plasma",) if o in organs and o not in report)


def cycle_doses(record, organs, histories, tia, ok, activities_mbq, report, sources,
                converged: bool = True, method: str = "nuts", marrow=None) -> list:
    """One :class:`tdt.inference.DosePrediction` per administration from
    :func:`simulate_paths`' output (``histories``, ``tia``, ``ok`` over ``organs``): MIRD
    S-values of the record's phantom and masses, the lesions as spheres, BED from each draw's
    dose-rate history; ``report``: organs reported, ``sources``: organs used as sources;
    ``marrow``: the blood-based marrow (:func:`tdt.twin._plan_marrow.pbpk_blood_marrow`) or
    None (the model's red-marrow compartment)."""
    out = []
    for k, activity in enumerate(activities_mbq):
        pred = {"times_h": HISTORY_H[:histories[k].shape[2]],
                "activity_mbq": {o: histories[k][:, i] for i, o in enumerate(organs)
                                 if o in sources},
                "tia_mbq_h": {o: tia[:, k, i] for i, o in enumerate(organs) if o in sources},
                "ok": ok, "total_body_tia_mbq_h": tia[:, k].sum(axis=1)}
        out.append(dose_prediction(
            pred, nuclide=record.nuclide, phantom=record.phantom,
            organ_masses_g=record.organ_masses_g or None, volumes_ml=dict(record.lesions),
            schedule=Schedule([Administration(0.0, float(activity))]),
            converged=converged, report=report, method=method,
            marrow_method="none" if marrow is None else marrow.methods[k],
            marrow_tia_mbq_h=None if marrow is None else marrow.tia_mbq_h[k]))
    return out
