"""Simulation-based calibration (SBC) of the receptor-PBPK posterior (PSMA-617 by default).

Patients are drawn from the prior predictive of the very PyMC model that
``fit_patient(model="psma617")`` fits (:func:`tdt.inference.simulate_cohort`: the identifiable
PBPK parameters under their cited lognormal priors, calibration factor per session, partial-
volume recovery of the lesions, noise SD and noisy activities), on the standard protocol
(:func:`tdt.inference.standard_template`: kidneys, salivary glands, liver, two lesions; SPECT at
4, 24, 48, 96, 168 h after one 7.4 GBq administration). All patients are fitted by
:func:`tdt.inference.fit_patients` with ONE compiled NUTS chain run for every (patient, chain)
pair in threads (``chain_method="parallel"``). For every organ's TIA and absorbed dose the rank
of the truth among the posterior draws and the hit of the 50 % / 90 % central intervals are
recorded (statistics of :mod:`tdt.inference._sbc`); if inference is correct the ranks are
uniform and the p % interval covers the truth in p % of patients (Talts, Betancourt, Simpson,
Vehtari, Gelman, arXiv:1804.06788; Cook, Gelman, Rubin, JCGS 2006;15:675).

Every fit is kept, converged or not: the summary gives coverage over all fits and over the
converged ones, and counts both. A checkpoint file (JSON lines, one patient per line, written
as each fit finishes) lets a partial run be summarised with :func:`summarise_sbc_records`.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from tdt.errors import PlausibilityWarning
from tdt.inference._batch import fit_patients
from tdt.inference._measurement import MeasurementModel
from tdt.inference._models import resolve_model
from tdt.inference._predictive import doses_from_tia
from tdt.inference._sbc import (
    central_interval_coverage,
    rank_statistics,
    simulate_cohort,
    standard_template,
)

#: Central interval levels checked by the SBC.
LEVELS = (0.5, 0.9)
#: Quantities checked per organ: TIA (MBq·h) and absorbed dose (Gy).
QUANTITIES = ("tia", "dose")


def _patient_record(index: int, posterior, true_tia: dict, true_dose: dict) -> dict:
    """One patient's SBC record: per organ and quantity the truth, the posterior median, the
    rank of the truth in [0, 1] and the 50 % / 90 % interval hits; plus the diagnostics."""
    draws = {"tia": posterior.tia_draws, "dose": posterior.dose_draws()}
    truth = {"tia": true_tia, "dose": true_dose}
    result = {}
    for quantity in QUANTITIES:
        for organ, values in draws[quantity].items():
            t = np.asarray([truth[quantity][organ]])
            hits = central_interval_coverage([values], t, LEVELS)
            result[f"{quantity}:{organ}"] = {
                "truth": float(t[0]), "median": float(np.median(values)),
                "rank": float(rank_statistics([values], t)[0]),
                "in50": bool(hits[0.5] == 1.0), "in90": bool(hits[0.9] == 1.0)}
    d = posterior.diagnostics
    return {"patient": index, "converged": bool(d.converged), "max_rhat": float(d.max_rhat),
            "min_ess_bulk": float(d.min_ess_bulk), "divergences": int(d.divergences),
            "n_draws": int(np.size(next(iter(draws["tia"].values())))),
            "elapsed_s": float(d.sampling_time_s), "pareto_k": d.pareto_k, "quantities": result}


def summarise_sbc_records(records: list[dict]) -> dict:
    """Coverage (50 % / 90 %) per quantity over all fits and over converged fits, the ranks,
    convergence counts and the pooled coverage (every organ and quantity together)."""
    if not records:
        return {"n_fitted": 0}
    converged = [r for r in records if r["converged"]]
    keys = list(records[0]["quantities"])

    def coverage(rows, key, level):
        hits = [r["quantities"][key][f"in{int(level * 100)}"] for r in rows]
        return float(np.mean(hits)) if hits else None

    table = {}
    for key in keys:
        table[key] = {
            "coverage50": coverage(records, key, 0.5), "coverage90": coverage(records, key, 0.9),
            "coverage50_converged": coverage(converged, key, 0.5),
            "coverage90_converged": coverage(converged, key, 0.9),
            "ranks": [r["quantities"][key]["rank"] for r in records],
            "median_abs_rel_error": float(np.median([
                abs(r["quantities"][key]["median"] / r["quantities"][key]["truth"] - 1)
                for r in records]))}
    pooled = {f"coverage{int(level * 100)}": float(np.mean(
        [r["quantities"][k][f"in{int(level * 100)}"] for r in records for k in keys]))
        for level in LEVELS}
    pareto = [r["pareto_k"] for r in records if r.get("pareto_k") is not None]
    laplace = {"max_pareto_k": float(max(pareto)), "median_pareto_k": float(np.median(pareto))
               } if pareto else {}
    return laplace | {
        "n_fitted": len(records), "n_converged": len(converged),
        "max_rhat": float(max(r["max_rhat"] for r in records)),
        "median_max_rhat": float(np.median([r["max_rhat"] for r in records])),
        "min_ess_bulk": float(min(r["min_ess_bulk"] for r in records)),
        "median_min_ess_bulk": float(np.median([r["min_ess_bulk"] for r in records])),
        "n_with_divergences": int(sum(r["divergences"] > 0 for r in records)),
        "divergences": int(sum(r["divergences"] for r in records)),
        "n_rhat_gt_1_01": int(sum(r["max_rhat"] > 1.01 for r in records)),
        "n_draws_per_fit": records[0]["n_draws"], "pooled": pooled, "table": table,
        "fit_wall_s": float(max(r["elapsed_s"] for r in records)),
    }


def read_sbc_records(path) -> list[dict]:
    """The records of a checkpoint file written by :func:`run_sbc_pbpk` (JSON lines)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def run_sbc_pbpk(n_patients: int = 100, draws: int = 400, tune: int = 400, chains: int = 2,
                 seed: int = 2026, model: str = "psma617", template=None,
                 measurement: MeasurementModel | None = None, target_accept: float = 0.8,
                 checkpoint=None, sampler: str = "nuts") -> dict:
    """SBC of the PBPK posterior: ``n_patients`` from the prior predictive of ``model`` on the
    standard protocol (or ``template``), fitted with one compilation; returns
    :func:`summarise_sbc_records` plus the settings and wall times (s). ``checkpoint``: a path
    for the per-patient JSON lines (overwritten), written as each fit finishes.
    ``target_accept`` 0.8: the PBPK default of ``fit_patient``. ``sampler="laplace"``: the
    calibration of the Laplace preview instead (:func:`fit_patients` with ``sampler="laplace"``;
    ``tune`` unused; "converged" = Pareto k̂ ≤ 0.7)."""
    template = template or standard_template()
    measurement = measurement or MeasurementModel()
    twin = resolve_model(model, template)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # prior-predictive patients are plausible under the model by construction; the TAC
        # heuristics (e.g. flat lesion uptake at 96-168 h) would warn for many of them
        warnings.simplefilter("ignore", PlausibilityWarning)
        cohort = simulate_cohort(template, twin, n_patients, seed=seed, measurement=measurement)
    simulate_s = time.perf_counter() - start
    volumes = {o: s.volume_ml for o, s in template.organs.items() if s.volume_ml is not None}
    true_dose = doses_from_tia(cohort.true_tia_mbq_h, template.nuclide, "adult-male", None,
                               volumes)
    out = Path(checkpoint) if checkpoint is not None else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("")
    records: list[dict] = []

    def on_posterior(p, posterior):
        record = _patient_record(
            p, posterior, {o: v[p] for o, v in cohort.true_tia_mbq_h.items()},
            {o: v[p] for o, v in true_dose.items()})
        records.append(record)
        if out is not None:
            with out.open("a") as f:
                f.write(json.dumps(record) + "\n")

    fit_patients(cohort.datasets, model=twin, draws=draws, tune=tune, chains=chains,
                 seed=seed, measurement=measurement, target_accept=target_accept,
                 chain_method="parallel", on_posterior=on_posterior, sampler=sampler)
    summary = summarise_sbc_records(records)
    summary.update({"model": twin.options.get("model", model), "n_patients": n_patients,
                    "sampler": sampler,
                    "draws": draws, "tune": tune if sampler == "nuts" else None,
                    "chains": chains, "seed": seed,
                    "times_h": list(template.times_h), "organs": list(template.organ_names),
                    "simulate_s": simulate_s, "total_wall_s": time.perf_counter() - start})
    return summary
