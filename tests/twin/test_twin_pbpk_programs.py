"""The PBPK twin's programs compiled once per structure (tdt.twin._pbpk_programs).

Independent references: the per-draw re-simulation of a schedule by a fresh ``jax.jit`` of
:func:`tdt.inference.solve_boluses` with that schedule as a constant (what the twin did before
the programs were shared), for two schedules with other activities and ligand amounts than the
first call's; the equality of a shared program's fit with ``fit_patient(sampler="laplace")`` is
tests/inference/test_inference_laplace_program.py's.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from test_twin_pbpk import INTERVAL, LIGAND, RECORD, _cycle_data, _truth

from tdt import Twin
from tdt.inference import solve_boluses
from tdt.pbpk import Administration, Schedule
from tdt.twin import _pbpk_programs
from tdt.twin._pbpk_doses import simulate_paths
from tdt.twin._pbpk_twin import body_compartments, build_pbpk


def test_shared_path_program_equals_a_fresh_solve_for_other_amounts():
    _, base = build_pbpk("psma617", RECORD)
    assert build_pbpk("psma617", RECORD)[1] is base  # one model object per structure
    organs = body_compartments(base)
    rng = np.random.default_rng(0)
    defaults = base.default_params()
    names = tuple(base.parameter_names)
    # every parameter per draw and administration (what parameter_paths gives), three varied
    paths = {n: np.full((4, 2), float(defaults[n])) for n in names}
    for n in ("R_kidneys", "GFR", "R_lesion_1"):
        paths[n] = paths[n] * np.exp(0.3 * rng.standard_normal((4, 2)))
    history = np.array([0.0, 4.0, 24.0, 96.0, 400.0])
    hits = _pbpk_programs.paths_program.cache_info().hits
    for activities, ligands in (([7400.0, 7400.0], [100.0, 100.0]),
                                ([7400.0, 4000.0], [100.0, 900.0])):
        schedule = Schedule([Administration(k * INTERVAL, a, q)
                             for k, (a, q) in enumerate(zip(activities, ligands, strict=True))])
        _, tia, ok = simulate_paths(base, paths, schedule, organs, history_h=history)
        times = jnp.asarray(np.concatenate([history, INTERVAL + history]))

        def one(values, schedule=schedule, times=times):
            return solve_boluses(base, dict(zip(names, values, strict=True)), schedule, times,
                                 organs, by_administration=True)

        _, tia_ref, ok_ref = jax.jit(jax.vmap(one))(tuple(jnp.asarray(paths[n]) for n in names))
        assert bool(np.all(ok)) and bool(np.all(ok_ref))
        np.testing.assert_allclose(tia, np.asarray(tia_ref), rtol=1e-10)
    assert _pbpk_programs.paths_program.cache_info().hits >= hits + 1


def test_last_only_paths_equal_a_fresh_solve_of_the_last_window():
    # the QA's re-simulation: sample times in the last administration's window only. Reference:
    # solve_boluses with exactly those times (a fresh jit); and the full-grid call agrees to the
    # grid solver's discretisation (the earlier window has fewer inserted steps)
    _, base = build_pbpk("psma617", RECORD)
    organs = body_compartments(base)
    names = tuple(base.parameter_names)
    rng = np.random.default_rng(3)
    paths = {n: np.full((3, 2), float(base.default_params()[n])) for n in names}
    paths["R_kidneys"] = paths["R_kidneys"] * np.exp(0.3 * rng.standard_normal((3, 2)))
    schedule = Schedule([Administration(0.0, 7400.0, 100.0),
                         Administration(INTERVAL, 6000.0, 300.0)])
    history = np.array([0.0, 1.0, 4.0, 24.0, 96.0, 168.0])
    last, tia, ok = simulate_paths(base, paths, schedule, organs, history_h=history,
                                   last_only=True)
    assert last[0].shape == (3, len(organs), 0) and last[1].shape == (3, len(organs), 6)

    def one(values):
        return solve_boluses(base, dict(zip(names, values, strict=True)), schedule,
                             jnp.asarray(INTERVAL + history), organs, by_administration=True)

    act_ref, tia_ref, ok_ref = jax.jit(jax.vmap(one))(tuple(jnp.asarray(paths[n])
                                                            for n in names))
    assert bool(np.all(ok)) and bool(np.all(ok_ref))
    np.testing.assert_allclose(last[1], np.asarray(act_ref), rtol=1e-10)
    np.testing.assert_allclose(tia, np.asarray(tia_ref), rtol=1e-10)
    full, tia_full, _ = simulate_paths(base, paths, schedule, organs, history_h=history)
    np.testing.assert_allclose(last[1], full[1], rtol=1e-3)
    np.testing.assert_allclose(tia, tia_full, rtol=1e-3)


def test_two_twins_of_one_structure_share_one_laplace_program():
    model = build_pbpk("psma617", RECORD)[1]
    programs = []
    for seed, activity in ((1, 7400.0), (2, 5600.0)):
        rng = np.random.default_rng(seed)
        params = _truth(model, rng)
        cycle = _cycle_data(model, params, Schedule([Administration(0.0, activity, LIGAND)]),
                            rng, 0)
        twin = Twin(RECORD, model="psma617", n_draws=100, engine="laplace",
                    nuts_options={"draws": 100, "chains": 2})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            twin.assimilate(cycle)
        programs.append(set(map(id, _pbpk_programs._PROGRAMS.values())))
        assert twin.nuts_posterior.diagnostics.method == "laplace"
        assert twin.nuts_posterior.schedule.activity_mbq[0] == activity
    assert programs[0] == programs[1]  # the second twin built no program of its own
