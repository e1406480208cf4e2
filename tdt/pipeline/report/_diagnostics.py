"""MCMC diagnostics for the supplement: ArviZ summary table, rank and trace plots.

Made from the posterior NetCDF files a run saved (ArviZ InferenceData with a ``posterior``
group). Only small variables are shown (≤ 12 elements per draw, up to ``MAX_VARIABLES``):
the model's parameters, not large derived arrays. Rank plots (Vehtari et al. 2021) of the first
two variables, trace plots of the first.
"""

from __future__ import annotations

from pathlib import Path

from tdt.pipeline.report._html import e, table

MAX_VARIABLES = 8


def _scalar_variables(posterior) -> list[str]:
    """Parameters with at most 12 elements per draw (e.g. one rate per organ), up to 8."""
    names = []
    for name, variable in posterior.data_vars.items():
        size = 1
        for dim in variable.dims:
            if dim not in ("chain", "draw"):
                size *= posterior.sizes[dim]
        if size <= 12:
            names.append(name)
    return names[:MAX_VARIABLES]


def diagnostics_section(run_dir: Path, netcdf_files: list[str], out: Path) -> str:
    """Summary tables and rank/trace plots, written under ``out/diagnostics/``; HTML returned."""
    # arviz is heavy; only when a run has posterior diagnostics
    import arviz as az

    # matplotlib is heavy; only for diagnostics figures
    import matplotlib

    matplotlib.use("Agg", force=True)
    # matplotlib is heavy; only for diagnostics figures
    import matplotlib.pyplot as plt

    parts = []
    for rel in netcdf_files:
        try:
            idata = az.from_netcdf(run_dir / rel)
        except (OSError, ValueError, KeyError):
            continue
        if "posterior" not in idata.groups():
            continue
        names = _scalar_variables(idata.posterior)
        if not names:
            continue
        summary = az.summary(idata, var_names=names, kind="all", round_to="none")
        rows = [(name, row["mean"], row["sd"], row["hdi_3%"], row["hdi_97%"],
                 f"{row['r_hat']:.3f}", round(row["ess_bulk"]), round(row["ess_tail"]))
                for name, row in summary.iterrows()]
        parts.append(f"<h3>{e(rel)}</h3>")
        parts.append(table(rows, ("variable", "mean", "sd", "HDI 3 %", "HDI 97 %", "R-hat",
                                  "ESS bulk", "ESS tail")))
        stem = rel.replace("/", "-").removesuffix(".nc")
        (out / "diagnostics").mkdir(exist_ok=True)
        figures = []
        for kind, plot, shown in (("rank", az.plot_rank, names[:2]),
                                  ("trace", az.plot_trace, names[:1])):
            try:
                axes = plot(idata, var_names=shown)
            except (ValueError, TypeError):
                continue
            fig = axes.ravel()[0].figure if hasattr(axes, "ravel") else axes.figure
            fig.tight_layout()
            path = out / "diagnostics" / f"{stem}-{kind}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            figures.append(f"<figure><img src='diagnostics/{e(path.name)}' alt='{kind} plot'>"
                           f"<figcaption>{kind} plot ({e(', '.join(shown))})</figcaption>"
                           "</figure>")
        parts += figures
    return "\n".join(parts)
