"""The PBPK twin's content in a twin file (format 4; the envelope — header, keyed MAC, members'
sha256, atomic write, refusals — is :mod:`tdt.twin._twin_file`'s, shared with the linear twin).

``state.json`` (``"kind": "pbpk"``): the record, the registry model name, the settings (draws,
cycles, drift prior, calibration sd, seed, NUTS options, interval between cycles, ligand amount
of the next cycle), the ligand amount given with each assimilated cycle, the cycles' data and
QA reports, and whether a posterior is stored. ``arrays.nc``: the NUTS posterior exactly as
:meth:`tdt.inference.Posterior.to_netcdf` writes it (draws in float64, model metadata, its own
keyed seal), empty before the first cycle.

Rebuilding: the receptor PBPK and the drifting model of the joint fit are rebuilt from the
registry with the same rule as the fit (:func:`tdt.twin._pbpk_twin.drifting_model`: record's
lesions, the fit's VOIs in the fit's order — stored as ``fit_organs`` —, number of cycles,
drift prior) and handed to
:meth:`tdt.inference.Posterior.from_netcdf` as its forward model. The draws, the seed and the
drift prior are those saved, so predictions and plans of the loaded twin repeat the saved
twin's exactly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tdt.errors import InputError
from tdt.inference import DriftModel, Posterior
from tdt.twin._pbpk_twin import drifting_model
from tdt.twin._qa import QAReport
from tdt.twin._record import CycleData, PatientRecord

KIND = "pbpk"


def pbpk_state(twin) -> tuple[dict, bytes]:
    """(state dict for ``state.json``, bytes of ``arrays.nc``) of a PBPK twin."""
    state = {
        "kind": KIND,
        "record": twin.record.to_dict(),
        "model": {"name": twin.model_name},
        "settings": {"n_draws": twin.n_draws, "total_cycles": twin.total_cycles,
                     "drift": twin.drift.to_dict(), "calibration_sd": twin.calibration_sd,
                     "seed": twin.seed, "engine": twin.engine, "nuts_options": twin.nuts_options,
                     "interval_h": twin.interval_h, "ligand_nmol": twin.ligand_nmol},
        "ligand_per_cycle_nmol": [float(v) for v in twin.ligand_per_cycle],
        "cycles": [c.to_dict() for c in twin.cycles],
        "qa_reports": [r.to_dict() for r in twin.qa_reports],
        "posterior": twin.nuts_posterior is not None,
        # the fit's VOI order fixes the drifting parameters' order, hence the seeded drift
        # streams of future cycles (state.json's cycle data are written with sorted keys)
        "fit_organs": (list(twin.nuts_posterior.data.organ_names)
                       if twin.nuts_posterior is not None else []),
    }
    if twin.nuts_posterior is None:
        return state, b""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "posterior.nc"
        twin.nuts_posterior.to_netcdf(path)
        return state, path.read_bytes()


def rebuild_pbpk(state: dict, arrays: bytes, twin_class, audit):
    """The PBPK twin from a verified file's members (errors: InputError / KeyError...)."""
    settings = state["settings"]
    twin = twin_class(PatientRecord.from_dict(state["record"]), model=state["model"]["name"],
                      n_draws=int(settings["n_draws"]),
                      total_cycles=int(settings["total_cycles"]),
                      drift=DriftModel(**settings["drift"]),
                      calibration_sd=float(settings["calibration_sd"]),
                      seed=int(settings["seed"]), nuts_options=settings["nuts_options"],
                      interval_h=float(settings["interval_h"]),
                      ligand_nmol=float(settings["ligand_nmol"]), _audit=audit)
    twin.cycles = [CycleData.from_dict(c) for c in state["cycles"]]
    twin.qa_reports = [QAReport.from_dict(r) for r in state["qa_reports"]]
    twin.ligand_per_cycle = [float(v) for v in state["ligand_per_cycle_nmol"]]
    if len(twin.ligand_per_cycle) != len(twin.cycles) or \
            len(twin.qa_reports) != len(twin.cycles):
        raise InputError(f"state.json: {len(twin.cycles)} cycles but "
                         f"{len(twin.ligand_per_cycle)} ligand amounts and "
                         f"{len(twin.qa_reports)} QA reports; expected one of each per cycle")
    if not state["posterior"]:
        if twin.cycles:
            raise InputError("state.json: assimilated cycles but no posterior stored")
        return twin
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "arrays.nc"
        path.write_bytes(arrays)
        organs = tuple(str(o) for o in state["fit_organs"])
        _, forward = drifting_model(twin.pbpk, twin.spec, organs, len(twin.cycles), twin.drift)
        posterior = Posterior.from_netcdf(path, forward=forward)
    if tuple(posterior.data.organ_names) != organs:
        raise InputError(f"arrays.nc: the posterior's VOIs {posterior.data.organ_names} are not "
                         f"the cycles' {organs}")
    twin.nuts_posterior, twin.drift_forward = posterior, forward
    return twin

