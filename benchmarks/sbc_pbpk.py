"""SBC of the PSMA-617 PBPK posterior (issue 21, item 5), part of ``make bench BENCH=inference``.

``run(quick)``: :func:`tdt.inference.run_sbc_pbpk` — 100 patients from the PBPK prior
predictive (standard protocol: kidneys, salivary glands, liver, lesions of 10 and 4 mL; SPECT at
4, 24, 48, 96, 168 h; 7.4 GBq), 2 chains x (600 warm-up + 600 draws) each, one compilation,
(patient, chain) pairs in threads. Writes ``benchmarks/results/sbc_pbpk_records.jsonl`` (one
line per patient, as fits finish), ``benchmarks/results/sbc_pbpk_summary.json`` and the rank
histograms ``docs/figures/sbc_pbpk.png``. ``quick``: 8 patients, 2 x (150 + 100).

A partial run (e.g. stopped at a deadline) is summarised from its checkpoint with
``python -m benchmarks.sbc_pbpk --records benchmarks/results/sbc_pbpk_records.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from scipy import stats

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "results" / "sbc_pbpk_records.jsonl"
SUMMARY = HERE / "results" / "sbc_pbpk_summary.json"
FIGURE = HERE.parent / "docs" / "figures" / "sbc_pbpk.png"
LAPLACE_RECORDS = HERE / "results" / "sbc_pbpk_laplace_records.jsonl"
LAPLACE_SUMMARY = HERE / "results" / "sbc_pbpk_laplace_summary.json"
LAPLACE_FIGURE = HERE.parent / "docs" / "figures" / "sbc_pbpk_laplace.png"
BINS = 10


def figure(summary: dict, path: Path = FIGURE) -> None:
    """Rank histograms (TIA and dose per organ) with the 99 % band of a uniform histogram
    (Binomial(n, 1/BINS) per bin, Talts et al. 2018, Fig. 2 convention)."""
    import matplotlib  # noqa: PLC0415 - plotting only when a figure is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after the backend is chosen

    table = summary["table"]
    organs = list(dict.fromkeys(k.split(":", 1)[1] for k in table))
    n = summary["n_fitted"]
    lo, hi = stats.binom.interval(0.99, n, 1 / BINS)
    fig, axes = plt.subplots(2, len(organs), figsize=(2.3 * len(organs), 4.6), sharey=True,
                             layout="constrained")
    for row, quantity in enumerate(("tia", "dose")):
        for col, organ in enumerate(organs):
            ax = axes[row, col]
            entry = table[f"{quantity}:{organ}"]
            ax.axhspan(lo, hi, color="0.85", lw=0)
            ax.axhline(n / BINS, color="0.5", lw=0.6)
            ax.hist(entry["ranks"], bins=BINS, range=(0, 1), color="C0", edgecolor="white")
            ax.set_title(f"{quantity} {organ}\n50%: {entry['coverage50']:.2f}  90%: "
                         f"{entry['coverage90']:.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
            if row == 1:
                ax.set_xlabel("rank of truth", fontsize=7)
    what = ("Laplace preview" if summary.get("sampler") == "laplace" else "posterior") + (
        f", noise SD fixed at {summary['fixed_noise_sd']:g}" if summary.get("fixed_noise_sd")
        else "")
    fig.suptitle(f"SBC of the PSMA-617 PBPK {what}: {n} patients from the prior, "
                 f"{summary['n_converged']} pass the gate (grey: 99 % band of uniform ranks)",
                 fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rows(summary: dict) -> list[dict]:
    """Benchmark rows: coverage of each organ's TIA and dose (target: nominal ± 0.05), the
    pooled coverage, convergence counts and the wall time."""
    n, note = summary["n_fitted"], f"{summary['n_fitted']} patients"
    out = []
    for key, entry in summary["table"].items():
        for level in (50, 90):
            out.append({"case": f"SBC PBPK {level}% coverage {key}",
                        "tdt": entry[f"coverage{level}"], "baseline": level / 100,
                        "unit": "fraction", "ratio": None,
                        "target": f"{level / 100:.2f} ± 0.05",
                        "note": f"{note}; converged only: "
                                f"{entry[f'coverage{level}_converged']}"})
    for level in (50, 90):
        out.append({"case": f"SBC PBPK {level}% coverage pooled", "unit": "fraction",
                    "tdt": summary["pooled"][f"coverage{level}"], "baseline": level / 100,
                    "ratio": None, "target": f"{level / 100:.2f} ± 0.05", "note": note})
    out.append({"case": "SBC PBPK fits passing the gate", "tdt": summary["n_converged"],
                "baseline": n, "unit": "fits", "ratio": None, "target": "all",
                "note": (f"Pareto k-hat max {summary['max_pareto_k']:.2f}, median "
                         f"{summary['median_pareto_k']:.2f} (gate <= 0.7)")
                if "max_pareto_k" in summary else
                f"max R-hat {summary['max_rhat']:.3f}, min bulk ESS "
                f"{summary['min_ess_bulk']:.0f}, {summary['divergences']} divergences"})
    out.append({"case": "SBC PBPK wall (simulate + fit all)", "unit": "s", "ratio": None,
                "tdt": summary.get("total_wall_s", summary["fit_wall_s"]), "baseline": None,
                "target": "", "note": f"{note}, one compilation; cpu {summary.get('cpu_s')}"})
    return out


def markdown_table(summary: dict) -> str:
    """The docs/inference.md table: coverage of each VOI's TIA and dose (all fits; converged
    fits in parentheses) and the median absolute error of the posterior median."""
    organs = list(dict.fromkeys(k.split(":", 1)[1] for k in summary["table"]))
    lines = ["| VOI | TIA 50 % | TIA 90 % | dose 50 % | dose 90 % | median abs. error (TIA) |",
             "|---|---|---|---|---|---|"]
    for organ in organs:
        cells = []
        for quantity in ("tia", "dose"):
            e = summary["table"][f"{quantity}:{organ}"]
            for level in (50, 90):
                cells.append(f"{e[f'coverage{level}']:.2f} "
                             f"({e[f'coverage{level}_converged']:.2f})")
        err = summary["table"][f"tia:{organ}"]["median_abs_rel_error"]
        lines.append(f"| {organ} | " + " | ".join(cells) + f" | {100 * err:.1f} % |")
    pooled = summary["pooled"]
    lines.append(f"| pooled (all VOIs, TIA and dose) | {pooled['coverage50']:.2f} | "
                 f"{pooled['coverage90']:.2f} | | | |")
    return "\n".join(lines)


def _summarise(records_path: Path) -> dict:
    from tdt.inference import read_sbc_records, summarise_sbc_records  # noqa: PLC0415 - CLI only

    return summarise_sbc_records(read_sbc_records(records_path))


def run(quick: bool = False) -> list[dict]:
    from tdt.inference import run_sbc_pbpk  # noqa: PLC0415 - tdt.inference imports PyMC (slow)

    cpu0 = time.process_time()
    summary = run_sbc_pbpk(n_patients=8 if quick else 100, draws=100 if quick else 600,
                           tune=150 if quick else 600, chains=2, seed=2026, checkpoint=RECORDS)
    summary["cpu_s"] = round(time.process_time() - cpu0, 1)
    summary["load"] = os.getloadavg()[0]
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=1))
    figure(summary)
    return rows(summary)


def run_laplace(quick: bool = False) -> list[dict]:
    """The same SBC for the Laplace preview (``sampler="laplace"``, one compilation for the
    cohort): is the preview calibrated? Same patients (seed), 2 x 600 iid draws each, once with
    the noise SD free (as the NUTS SBC) and once fixed at 10 % (the PBPK twin's measurement
    model). Writes ``*_laplace[_fixed_noise]`` records/summaries and figures
    ``docs/figures/sbc_pbpk_laplace[_fixed_noise].png``."""
    out = []
    for fixed_noise_sd in (None, 0.1):
        out += _laplace_sbc(quick, fixed_noise_sd)
    return out + [laplace_cohort_row(2 if quick else 5)]


def _laplace_sbc(quick: bool, fixed_noise_sd: float | None) -> list[dict]:
    from tdt.inference import MeasurementModel, run_sbc_pbpk  # noqa: PLC0415 - imports PyMC

    suffix = "" if fixed_noise_sd is None else "_fixed_noise"
    records = LAPLACE_RECORDS.with_name(f"sbc_pbpk_laplace{suffix}_records.jsonl")
    cpu0 = time.process_time()
    summary = run_sbc_pbpk(n_patients=8 if quick else 100, draws=100 if quick else 600,
                           chains=2, seed=2026, checkpoint=records, sampler="laplace",
                           measurement=MeasurementModel(fixed_noise_sd=fixed_noise_sd))
    summary["cpu_s"] = round(time.process_time() - cpu0, 1)
    summary["load"] = os.getloadavg()[0]
    summary["fixed_noise_sd"] = fixed_noise_sd
    LAPLACE_SUMMARY.with_name(f"sbc_pbpk_laplace{suffix}_summary.json").write_text(
        json.dumps(summary, indent=1, default=float))
    figure(summary, LAPLACE_FIGURE.with_name(f"sbc_pbpk_laplace{suffix}.png"))
    what = "SBC PBPK Laplace preview" + ("" if fixed_noise_sd is None else
                                         f" (noise SD fixed {fixed_noise_sd:g})")
    return [dict(r, case=r["case"].replace("SBC PBPK", what)) for r in rows(summary)]


def laplace_cohort_row(n_patients: int = 5) -> dict:
    """One compilation for the cohort vs the per-patient preview (the baseline a user would
    write: a loop of ``fit_patient(..., sampler="laplace")``), same patients, same draws and
    seeds (``seed + p``); also checks that both give the same kidney TIA. Run in a subprocess
    with an empty JAX compilation cache, so that neither side reuses programs compiled by an
    earlier run (tdt turns the persistent cache on at import)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="tdt-jax-cache-") as cache:
        env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache)
        done = subprocess.run(
            [sys.executable, "-c", "import json, benchmarks.sbc_pbpk as b; "
             f"print(json.dumps(b._cohort_timing({int(n_patients)})))"],
            cwd=HERE.parent, env=env, capture_output=True, text=True, check=True)
    timing = json.loads(done.stdout.strip().splitlines()[-1])
    return {"case": f"Laplace preview of {n_patients} PBPK patients: fit_patients (one "
                    "compilation) vs fit_patient loop, cold cache", "tdt": timing["batch_s"],
            "baseline": timing["single_s"], "unit": "s",
            "ratio": timing["single_s"] / timing["batch_s"], "target": "> 1",
            "note": "max relative difference of kidney TIA medians "
                    f"{timing['max_rel_diff']:.1e}"}


def _cohort_timing(n_patients: int) -> dict:
    import warnings  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from tdt.inference import (  # noqa: PLC0415 - tdt.inference imports PyMC (slow)
        MeasurementModel,
        fit_patient,
        fit_patients,
        simulate_cohort,
        standard_template,
    )
    from tdt.inference._models import resolve_model  # noqa: PLC0415 - the SBC's own resolver

    template, measurement = standard_template(), MeasurementModel()
    twin = resolve_model("psma617", template)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = simulate_cohort(template, twin, n_patients, seed=2026, measurement=measurement)
        start = time.perf_counter()
        batch = fit_patients(cohort.datasets, model=twin, draws=600, chains=2, seed=2026,
                             measurement=measurement, sampler="laplace")
        batch_s = time.perf_counter() - start
        start = time.perf_counter()
        singles = [fit_patient(d, model=twin, draws=600, chains=2, seed=2026 + p,
                               measurement=measurement, sampler="laplace")
                   for p, d in enumerate(cohort.datasets)]
        single_s = time.perf_counter() - start
    worst = max(abs(np.median(b.tia_draws["kidneys"]) / np.median(s.tia_draws["kidneys"]) - 1)
                for b, s in zip(batch, singles, strict=True))
    return {"batch_s": batch_s, "single_s": single_s, "max_rel_diff": float(worst)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sbc_pbpk")
    parser.add_argument("--records", type=Path, default=RECORDS,
                        help="summarise a (partial) checkpoint instead of running")
    args = parser.parse_args()
    result = _summarise(args.records)
    SUMMARY.write_text(json.dumps(result, indent=1))
    figure(result)
    for r in rows(result):
        print(f"{r['case']:<48} {r['tdt']!s:>10}  {r['target']}  {r['note']}")
    print(markdown_table(result))
    print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=1))
