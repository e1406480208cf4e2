"""Therapy predicted from the pre-therapy PET: coverage on simulated theranostic patients (issue 25).

Patients are drawn from the population prior of the pair ``psma11_psma617``: the PET twin's
sampled parameters (shared: ``GFR``, ``R_<VOI>``; PSMA-11's own ``krel_<VOI>``) and the
therapy's own ``krel_<VOI>`` (PSMA-617), independently, all lognormal around the catalog values;
everything else at its default; one 10 mL lesion. Each patient's [68Ga]Ga-PSMA-11 PET (150 MBq,
2 nmol) at ``PET_TIMES_H`` gives VOI activities with lognormal noise (SD drawn per patient,
below) and a 3 % calibration error drawn from the measurement model's prior. The patients are fitted batch by batch with one
compiled NUTS chain (``fit_patients(chain_method="parallel")`` on ``pet_twin``), each PET posterior becomes a therapy posterior
(:func:`tdt.inference._pretherapy.therapy_posterior`) and cycle-1 doses of 7.4 GBq / 150 nmol
177Lu-PSMA-617 are predicted (``predict_doses``). Truth and the population-average baseline
(the prior median patient: what a clinic assumes when it gives every patient the same
activity) go through the same ``predict_doses`` pipeline with one draw each.

The measurement noise is part of the prior predictive too: each patient's proportional noise SD
is drawn from the fitted measurement model's own prior (``MeasurementModel()``: lognormal,
median 0.10, log-SD 0.4), as in an SBC (Talts et al. 2018). With the SD fixed at its prior
median (the first version of this benchmark) the fit marginalises over a noise SD it does not
know and its intervals are correctly wider than the fixed-noise truth needs: lesion coverage
0.98 on 50 patients.

Reported per organ: coverage of the 90 % credible interval, median |relative error| of the
predicted median, and of the population-average dose. ``python benchmarks/bench_pretherapy.py
[N] [--times 1,2]`` (``nice``); writes benchmarks/results/pretherapy.json and
docs/figures/pretherapy_coverage.png.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PAIR = "psma11_psma617"
PET_ORGANS = ("kidneys", "salivary_glands", "liver", "lesion_1")
DOSE_ORGANS = ("kidneys", "salivary_glands", "red_marrow", "lesion_1")
LESION_ML = 10.0
CALIBRATION_SD = 0.03
#: posterior draws per patient whose doses are computed
PRED_DRAWS = 100


def _doses(posterior):
    pred = posterior.predict_doses(radiobiology=False)
    return {o: np.asarray(pred.dose_gy[o]) for o in DOSE_ORGANS}


def simulate_cohort(n_patients: int, pet_times, seed: int):
    """The PET data sets (one protocol) and each patient's true therapy log θ."""
    import jax.numpy as jnp

    from tdt.dosimetry import is_lesion
    from tdt.inference import MeasurementModel, OrganSeries, PatientData
    from tdt.inference._pretherapy import pet_twin, therapy_twin
    from tdt.pbpk import get_pair

    pair = get_pair(PAIR)
    rng = np.random.default_rng(seed)
    times = np.asarray(pet_times, dtype=float)
    template = PatientData(
        {o: OrganSeries(times, np.ones_like(times), volume_ml=LESION_ML if is_lesion(o) else None,
                        recovery=1.0 if is_lesion(o) else None) for o in PET_ORGANS},
        administered_activity_mbq=pair.diagnostic_activity_mbq,
        ligand_nmol=pair.diagnostic_ligand_nmol, nuclide="Ga-68",
        calibration_sd=CALIBRATION_SD)
    diag_twin = pet_twin(pair, template)
    ther_twin = therapy_twin(pair, diag_twin, PET_ORGANS, {"lesion_1": LESION_ML})
    schedule = pair.diagnostic_schedule()
    shared = set(pair.shared_parameters(diag_twin.forward, ther_twin.forward))
    noise = MeasurementModel()  # the fit's default measurement model: its noise-SD prior
    datasets, truths = [], []
    for i in range(n_patients):
        z_d = rng.standard_normal(diag_twin.n_params)
        log_d = diag_twin.log_theta(jnp.asarray(z_d))
        sim = diag_twin.forward.simulate(diag_twin.params(log_d), schedule, jnp.asarray(times))
        calib = np.exp(CALIBRATION_SD * rng.standard_normal())
        noise_sd = noise.noise_sd_median * np.exp(noise.noise_sd_sd_log * rng.standard_normal())
        organs = {}
        for o in PET_ORGANS:
            noisy = np.asarray(sim.activity_mbq[o]) * calib * np.exp(
                noise_sd * rng.standard_normal(times.size))
            organs[o] = OrganSeries(times, noisy, volume_ml=LESION_ML if is_lesion(o) else None,
                                    recovery=1.0 if is_lesion(o) else None)
        datasets.append(PatientData(
            organs, administered_activity_mbq=pair.diagnostic_activity_mbq,
            ligand_nmol=pair.diagnostic_ligand_nmol, nuclide="Ga-68",
            calibration_sd=CALIBRATION_SD, patient_id=f"virtual-{i}"))
        log_t = np.array(ther_twin.log_theta(jnp.asarray(rng.standard_normal(
            ther_twin.n_params))))
        for j, name in enumerate(ther_twin.sampled):  # shared values: the patient's own
            if name in shared:
                log_t[j] = float(log_d[diag_twin.sampled.index(name)])
        truths.append(log_t)
    return pair, diag_twin, datasets, truths


def _batch_rows(pair, diag_twin, datasets, posts, truths, first: int, seed: int):
    """Per-patient rows (dose draws summarised) of one fitted batch; the population median
    dose computed in the same predict_doses call (one compilation per batch shape)."""
    from tdt.inference import with_draws
    from tdt.inference._pretherapy import therapy_posterior

    stacked, index = [], []
    sub = np.random.default_rng(seed + 7 + first)
    therapy = None
    for i, (data, post, log_t) in enumerate(zip(datasets, posts, truths, strict=True)):
        therapy = therapy_posterior(pair, diag_twin, post, data, seed=seed + first + i)
        draws_i = therapy.log_theta_draws
        keep = sub.choice(draws_i.shape[0], min(PRED_DRAWS, draws_i.shape[0]), replace=False)
        stacked += [draws_i[keep], np.asarray(log_t)[None, :]]
        index += [("pred", i)] * keep.size + [("true", i)]
    stacked.append(np.asarray(therapy.twin.prior_loc)[None, :])
    index.append(("population", -1))
    doses = _doses(with_draws(therapy, np.concatenate(stacked)))
    kind = np.array([k for k, _ in index])
    who = np.array([i for _, i in index])
    population = {o: float(doses[o][kind == "population"][0]) for o in DOSE_ORGANS}
    rows = []
    for i, post in enumerate(posts):
        dg = post.diagnostics
        row = {"patient": first + i, "converged": bool(post.converged),
               "divergences": int(dg.divergences), "max_rhat": float(dg.max_rhat),
               "min_ess_bulk": float(dg.min_ess_bulk)}
        for o in DOSE_ORGANS:
            pred = doses[o][(kind == "pred") & (who == i)]
            d = float(doses[o][(kind == "true") & (who == i)][0])
            lo, med, hi = np.percentile(pred, [5, 50, 95])
            row[o] = {"true": d, "pred": float(med), "lo": float(lo), "hi": float(hi),
                      "covered": bool(lo <= d <= hi), "rel_err": float(abs(med - d) / d),
                      "population": population[o],
                      "pop_rel_err": float(abs(population[o] - d) / d)}
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Coverage of the 90 % CrI, median |relative error| of the predicted median and of the
    population-median dose (population-average dosing), median relative CrI width."""
    out = {}
    for o in DOSE_ORGANS:
        r = [row[o] for row in rows]
        out[o] = {"coverage90": float(np.mean([x["covered"] for x in r])),
                  "median_abs_rel_error": float(np.median([x["rel_err"] for x in r])),
                  "population_median_abs_rel_error": float(np.median(
                      [x["pop_rel_err"] for x in r])),
                  "median_ci90_width_rel": float(np.median(
                      [(x["hi"] - x["lo"]) / x["true"] for x in r]))}
    return out


def run(n_patients: int = 20, pet_times=(1.0,), draws: int = 500, tune: int = 500,
        chains: int = 2, seed: int = 0, batch: int = 5, checkpoint: Path | None = None,
        max_tree_depth: int = 10) -> dict:
    """Simulate the cohort, then fit and predict it batch by batch (one NUTS chain compiled
    once, every (patient, chain) in threads: ``fit_patients(chain_method="parallel")``; same
    shapes, so later batches reuse the compiled kernel), writing ``checkpoint`` after each."""
    from tdt.inference import fit_patients

    t0 = time.time()
    pair, diag_twin, datasets, truths = simulate_cohort(n_patients, pet_times, seed)
    seconds = {"simulate": time.time() - t0, "fit": 0.0, "predict": 0.0}
    rows: list[dict] = []
    result = {}
    for first in range(0, n_patients, batch):
        part = slice(first, min(first + batch, n_patients))
        t0 = time.time()
        posts = fit_patients(datasets[part], model=diag_twin, draws=draws, tune=tune,
                             chains=chains, seed=seed + first, target_accept=0.9,
                             max_tree_depth=max_tree_depth, chain_method="parallel")
        seconds["fit"] += time.time() - t0
        t0 = time.time()
        rows += _batch_rows(pair, diag_twin, datasets[part], posts, truths[part], first, seed)
        seconds["predict"] += time.time() - t0
        result = {"pair": PAIR, "n_patients": len(rows), "n_planned": n_patients,
                  "pet_times_h": [float(t) for t in pet_times], "draws": draws, "tune": tune,
                  "chains": chains, "pred_draws": PRED_DRAWS, "max_tree_depth": max_tree_depth,
                  "converged": int(sum(r["converged"] for r in rows)),
                  "rhat_ok_no_divergence": int(sum(r["max_rhat"] <= 1.05 and r["divergences"] == 0
                                                   for r in rows)),
                  "seconds": dict(seconds), "summary": summarise(rows), "rows": rows}
        if checkpoint is not None:
            checkpoint.write_text(json.dumps(result, indent=1))
        print(f"{len(rows)}/{n_patients} patients, {time.time():.0f}", flush=True)
    return result


def figure(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(DOSE_ORGANS), figsize=(4 * len(DOSE_ORGANS), 3.6))
    for ax, organ in zip(axes, DOSE_ORGANS, strict=True):
        r = {k: [row[organ][k] for row in result["rows"]]
             for k in ("true", "pred", "lo", "hi", "covered")}
        true, pred = np.asarray(r["true"]), np.asarray(r["pred"])
        err = np.vstack([pred - np.asarray(r["lo"]), np.asarray(r["hi"]) - pred])
        colors = ["tab:blue" if c else "tab:red" for c in r["covered"]]
        ax.errorbar(true, pred, yerr=err, fmt="none", ecolor="0.7", lw=1)
        ax.scatter(true, pred, c=colors, s=14, zorder=3)
        lim = [min(true.min(), np.min(r["lo"])) * 0.9, max(true.max(), np.max(r["hi"])) * 1.1]
        ax.plot(lim, lim, "k--", lw=0.8)
        s = result["summary"][organ]
        ax.set_title(f"{organ}: 90 % CrI covers {s['coverage90']:.0%}", fontsize=9)
        ax.set_xlabel("true cycle-1 dose (Gy)")
        ax.set_ylabel("predicted from PET (Gy)")
    fig.suptitle(f"68Ga-PSMA-11 PET ({', '.join(f'{t:g}' for t in result['pet_times_h'])} h) "
                 f"-> 177Lu-PSMA-617 7.4 GBq, {result['n_patients']} virtual patients",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=20)
    parser.add_argument("--times", default="1")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--max-tree-depth", type=int, default=10)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    tag = "_".join(args.times.split(","))
    result = run(args.n, tuple(float(t) for t in args.times.split(",")), args.draws, args.tune,
                 args.chains, batch=args.batch, checkpoint=out / f"pretherapy_t{tag}.json",
                 max_tree_depth=args.max_tree_depth)
    figure(result, HERE.parent / "docs" / "figures" / f"pretherapy_coverage_t{tag}.png")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
