"""The generated methods paragraph of a run page, with its references."""

from __future__ import annotations

from typing import Any

from tdt import catalog
from tdt.errors import TdtError
from tdt.pipeline.report._html import e

VEHTARI_2021 = ("Vehtari A, Gelman A, Simpson D, Carpenter B, Bürkner P-C. Rank-normalization, "
                "folding, and localization: an improved R-hat for assessing convergence of MCMC. "
                "Bayesian Analysis 2021;16(2):667–718.")
PAPERMILL = "papermill: parameterize and execute Jupyter notebooks (nteract), papermill.readthedocs.io."


def _dataset_citations(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name in manifest["inputs"]["datasets"]:
        try:
            item = catalog.entry(name)
        except TdtError:
            continue
        out.append((name, item.citation))
    return out


def methods_html(manifest: dict[str, Any]) -> str:
    """A methods paragraph: what was run, on what, with which sampler settings and software."""
    study = manifest["study"]
    env = manifest["environment"]
    packages = env.get("packages") or {}
    params = study.get("parameters") or {}
    notebooks = ", ".join(n.rsplit("/", 1)[-1] for n in study["notebooks"])
    sentences = [
        f"The study <i>{e(study['name'])}</i> (version {e(study['version'])}) executed the "
        f"notebooks {e(notebooks)} with papermill [1] in order, with seed {e(study['seed'])}"
        + (f" over a grid of {len(manifest['points'])} parameter points"
           if len(manifest["points"]) > 1 else "") + "."]
    datasets = _dataset_citations(manifest)
    if datasets:
        sentences.append("Input data: " + "; ".join(f"<code>{e(n)}</code> [{i + 2}]"
                                                    for i, (n, _) in enumerate(datasets)) + ".")
    fits = [f for point in (manifest.get("convergence") or {}).values() for f in point.values()
            if isinstance(f, dict)]
    if fits or {"chains", "draws"} <= set(params):
        chains = params.get("chains") or (fits[0].get("n_chains") if fits else None)
        draws = params.get("draws") or (fits[0].get("n_draws") if fits else None)
        tune = params.get("tune")
        setting = (f"{e(chains)} chains × {e(draws)} draws"
                   + (f" after {e(tune)} tuning steps" if tune else ""))
        ref = len(datasets) + 2
        sentences.append(
            f"Posteriors were sampled with the No-U-Turn sampler ({setting}); every posterior "
            f"was checked against the convergence gate max R-hat ≤ 1.01, min bulk ESS ≥ 400 and "
            f"no divergent transitions [{ref}], and a result from a posterior that fails it is "
            "marked NOT CONVERGED wherever it is shown.")
    versions = ", ".join(f"{k} {v}" for k, v in packages.items()
                         if k in ("tdt", "numpy", "scipy", "jax", "pymc", "pytensor", "numpyro",
                                  "arviz", "pydicom") and v)
    lock = env.get("lock") or {}
    python = (env.get("platform") or {}).get("python", "?")
    sentences.append(
        f"Software: Python {e(python)}, {e(versions)}"
        + (f"; the environment was installed from <code>requirements.lock</code> (sha256 "
           f"<code>{e(lock['sha256'][:16])}…</code>"
           + ("" if lock.get("matches_installed") else ", <b>installed versions differ</b>")
           + ")" if lock.get("sha256") else "") + ".")
    references = [PAPERMILL, *(c for _, c in datasets)]
    if fits or {"chains", "draws"} <= set(params):
        references.append(VEHTARI_2021)
    refs = "".join(f"<li>{e(r)}</li>" for r in references)
    return f"<p class='methods'>{' '.join(sentences)}</p><ol class='small'>{refs}</ol>"
