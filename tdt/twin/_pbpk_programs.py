"""The PBPK twin's compiled programs, one per structure, shared by every twin of that structure.

A PBPK twin used to compile its own XLA programs for every cycle of every patient (the PyMC
model folds data and schedule in as constants; each prediction jitted a new closure): measured
on the two-cycle twin of docs/twin.md, ~60 s of ~108 s per patient were XLA compilation.
Here each program is built once per *structure* and takes the patient-specific values as
arguments:

- :func:`built_model`: one receptor-PBPK model object per (registry key, lesion names,
  nuclide), so that programs keyed by the model object are shared across twins;
- :func:`laplace_program`: the :class:`tdt.inference.LaplaceProgram` of a joint fit (data,
  activities and ligand amounts as inputs), per model, drift, noise, administration and
  imaging times;
- :func:`paths_program`: the per-draw re-simulation of a schedule (prediction, QA), per
  model, parameters, organs, administration times and history grid; activities and ligand
  amounts as arguments.

The caches are bounded (oldest dropped first); a miss only costs a compilation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tdt.inference import LaplaceProgram, solve_boluses, with_amounts
from tdt.pbpk import Administration, Schedule, get_model

__all__ = ("built_model", "history_grid", "laplace_program", "paths_program")


@functools.lru_cache(maxsize=16)
def built_model(key: str, lesions: tuple[str, ...], nuclide: str):
    """The registry's receptor PBPK ``key`` with ``lesions`` and ``nuclide`` (grid solver),
    one object per arguments."""
    return get_model(key).build(lesions=lesions, nuclide=nuclide, method="grid")


_PROGRAMS: dict = {}
_MAX_PROGRAMS = 12


def laplace_program(spec, base, forward, data, twin_model, measurement,
                    schedule) -> LaplaceProgram:
    """The :class:`tdt.inference.LaplaceProgram` of a PBPK twin's joint fit of ``data`` with
    the drifting model ``forward`` (:class:`tdt.twin._pbpk_twin.DriftingPbpk` of ``base``),
    one per key — registry key, compartments, nuclide, sampled and drift parameters with their
    steps, measurement model, administration times, imaging times and sessions —, built from
    the first patient with that key and reused for every other (the program checks the
    protocol itself and raises on a mismatch)."""
    key = (spec.key, base.compartments, base.nuclide, tuple(twin_model.sampled),
           tuple(sorted(forward.step.items())), repr(measurement), data.calibration_sd,
           tuple(np.asarray(schedule.time_h).tolist()),
           tuple((o, tuple(s.times_h.tolist()), tuple(s.sessions))
                 for o, s in data.organs.items()))
    if key not in _PROGRAMS:
        if len(_PROGRAMS) >= _MAX_PROGRAMS:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = LaplaceProgram(data, twin_model, measurement, schedule)
    return _PROGRAMS[key]


def history_grid(starts_h, history_h, last_only: bool = False) -> list[np.ndarray]:
    """Absolute times (h) of each administration's dose-rate history: ``start + history_h``,
    cut at the next administration (the last one keeps the whole grid). ``last_only``: the
    earlier administrations get no times (their windows are still solved: the last one needs
    their residual activity and peptide, but each sample time costs a solver step)."""
    starts, history = np.asarray(starts_h, dtype=float), np.asarray(history_h, dtype=float)
    windows = np.append(np.diff(starts), np.inf)
    return [s + history[history < w] if (not last_only or k == starts.size - 1)
            else np.zeros(0) for k, (s, w) in enumerate(zip(starts, windows, strict=True))]


@functools.lru_cache(maxsize=32)
def paths_program(base, names, organs, starts, history_h, last_only: bool = False):
    """jit(vmap) of :func:`tdt.inference.solve_boluses` over draws for one model (by object),
    parameter names, organs, administration times and history grid (``last_only``: of the
    last administration only, :func:`history_grid`); takes the parameter values and the
    schedule's (2, n_admin) activities and ligand amounts."""
    times = jnp.asarray(np.concatenate(history_grid(starts, history_h, last_only)))
    template = Schedule([Administration(t, 1.0) for t in starts])

    def one(values, amounts):
        params = dict(zip(names, values, strict=True))
        return solve_boluses(base, params, with_amounts(template, amounts), times, organs,
                             by_administration=True)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))
