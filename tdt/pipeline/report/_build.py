"""``tdt report RUN...``: a static HTML supplement built from verified runs.

Layout of the supplement directory (default ``runs/_supplement/<study>-<run-id>/``)::

    index.html                       runs, their status and convergence, how to reproduce
    <study>-<run-id>/index.html      methods, results tables, convergence and MCMC diagnostics,
                                     figures, grid comparison, notebooks, provenance (collapsed)
    <study>-<run-id>/*.html          executed notebooks rendered by nbconvert
    <study>-<run-id>/diagnostics/    rank and trace plots (ArviZ)
    <study>-<run-id>/files/...       every output of the run with its manifest: a copy that
                                     ``tdt verify RUN --against <it>`` accepts

Every run is re-hashed first (:func:`tdt.pipeline._manifest.verify_run`); a run that fails is
refused, so a supplement only ever shows intact runs. Fits whose convergence flags are false
are marked "NOT CONVERGED" on every page that shows them. Written atomically (temporary
directory, then rename).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tdt._atomic import atomic_directory
from tdt.errors import StudyError
from tdt.pipeline import _manifest as mf
from tdt.pipeline.report._diagnostics import diagnostics_section
from tdt.pipeline.report._html import badge, e, number, page, table
from tdt.pipeline.report._methods import methods_html
from tdt.pipeline.report._results import grid_comparison, results_section

SUPPLEMENT_DIR = "_supplement"
_IMAGE_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}


def render_notebook(path: Path) -> str:
    """HTML of an executed notebook (nbconvert's ``lab`` template, images embedded)."""
    # nbformat/nbconvert are heavy; only when notebooks are rendered
    import nbformat

    # nbformat/nbconvert are heavy; only when notebooks are rendered
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nbformat.read(str(path), as_version=4))
    return body


def reproduce_block(manifests: list[dict[str, Any]], run_dirs: list[str]) -> str:
    """Shell commands that rebuild these runs and this supplement from the repository.

    Run directories are shown relative to the repository (``runs/<study>/<run-id>``, where
    ``tdt run`` writes them), never as this machine's absolute paths.
    """
    run_dirs = [f"runs/{Path(d).parent.name}/{Path(d).name}" for d in run_dirs]
    commits = {m["environment"]["git"].get("commit") for m in manifests}
    lines = ["# from a clone of the tdt repository"]
    for commit in sorted(c for c in commits if c):
        lines.append(f"git checkout {commit}")
    if any(m["environment"]["git"].get("dirty") for m in manifests):
        lines.append("# WARNING: a run was made from a working tree with uncommitted changes")
    locks = {(m["environment"].get("lock") or {}).get("sha256") for m in manifests}
    locks.discard(None)
    lines += ["make venv        # installs requirements.lock (hash-checked), then tdt"]
    if locks:
        lines.append("sha256sum requirements.lock   # the run's: " + ", ".join(sorted(locks)))
    lines.append(".venv/bin/tdt catalog build")
    lines.append("# re-execute each run from its manifest and compare every number with it")
    for d in run_dirs:
        lines.append(f".venv/bin/tdt verify --rerun {d}")
    lines.append("# or step by step")
    for m in manifests:
        lines.append(".venv/bin/" + m["reproduce"])
    for d in run_dirs:
        lines.append(f".venv/bin/tdt verify {d}")
    lines.append("# same numbers as the published run? (its copy in PUBLISHED/)")
    for d in run_dirs:
        lines.append(f".venv/bin/tdt verify {d} --against PUBLISHED/{Path(d).name}")
    lines.append(".venv/bin/tdt report " + " ".join(run_dirs))
    return "\n".join(lines)


def _rhat(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "—"


def _convergence_table(manifest: dict[str, Any]) -> str:
    rows = []
    for point, fits in manifest["convergence"].items():
        for fit, flags in fits.items():
            flags = flags if isinstance(flags, dict) else {"converged": False}
            rows.append((e(point), e(fit), badge(bool(flags.get("converged"))),
                         _rhat(flags.get("max_rhat", flags.get("r_hat_max"))),
                         number(flags.get("min_ess_bulk")), number(flags.get("min_ess_tail")),
                         number(flags.get("divergences")), number(flags.get("n_chains")),
                         number(flags.get("n_draws")), number(flags.get("sampling_time_s"))))
    return table(rows, ("point", "fit", "gate", "max R-hat", "min ESS bulk", "min ESS tail",
                        "divergences", "chains", "draws per chain", "sampling s"), raw=True)


def _short_sha(value: Any) -> str:
    return f"{value[:12]}…" if isinstance(value, str) and len(value) > 12 else str(value or "—")


def _priors_table(manifest: dict[str, Any]) -> str:
    """One row per prior a notebook recorded (``results.record_prior``): where it came from."""
    rows = []
    for point, priors in manifest["priors"].items():
        for name, origin in priors.items():
            origin = origin if isinstance(origin, dict) else {}
            sites = origin.get("sites") if isinstance(origin.get("sites"), list) else []
            model = origin.get("model")
            model = (f"{model.get('kind', '')} (tdt {', '.join(model.get('tdt_versions', []))})"
                     if isinstance(model, dict) else str(model or "—"))
            hashes = ", ".join(f"{s.get('site', '?')}: {_short_sha(s.get('sha256'))}"
                               for s in sites if isinstance(s, dict))
            rows.append((point, name, str(origin.get("method", origin.get("source", "—"))),
                         model, number(origin.get("n_sites", len(sites) or None)),
                         number(origin.get("n_patients")),
                         hashes or _short_sha(origin.get("sha256"))))
    return table(rows, ("point", "prior", "method / source", "model", "sites", "patients",
                        "file sha256"))


def _provenance(manifest: dict[str, Any], run_dir: Path) -> str:
    env = manifest["environment"]
    git = env["git"]
    lock = env.get("lock") or {}
    parts = ["<details><summary>Provenance: parameters, inputs, environment, output hashes"
             "</summary>", "<h3>How to reproduce</h3>",
             f"<pre>{e(reproduce_block([manifest], [str(run_dir)]))}</pre>",
             "<h3>Parameters</h3>",
             table([(p["dir"], ", ".join(f"{k} = {v}" for k, v in sorted(p["parameters"].items())),
                     p["status"], sum(n["seconds"] for n in p["notebooks"]))
                    for p in manifest["points"]], ("point", "parameters", "status", "s"))]
    rows = [("notebook", k, v) for k, v in manifest["inputs"]["notebooks"].items()]
    rows += [(f"dataset ({v['kind']})", k, v["sha256"])
             for k, v in manifest["inputs"]["datasets"].items()]
    parts += ["<h3>Inputs</h3>", table(rows, ("kind", "name", "sha256")), "<h3>Environment</h3>",
              table([("git commit", git.get("commit")),
                     ("uncommitted changes", git.get("dirty")),
                     ("requirements.lock sha256", lock.get("sha256")),
                     ("installed = lock", lock.get("matches_installed")),
                     *[(k, v) for k, v in env["platform"].items()],
                     *[(k, v) for k, v in env["packages"].items() if v]]),
              "<h3>Outputs (sha256)</h3>",
              table(sorted(manifest["outputs"].items()), ("file", "sha256")),
              f"<p><a href='files/{mf.MANIFEST}'>manifest.json</a></p></details>"]
    return "\n".join(parts)


def _input_checks(run_dir: Path, files: list[str]) -> str:
    """The recorded plausibility warnings (``input_warnings.json`` of any point), as a box."""
    found, skipped, checked = [], [], False
    for rel in files:
        if Path(rel).name != "input_warnings.json":
            continue
        try:
            data = json.loads((run_dir / rel).read_text())
        except (OSError, ValueError):
            continue
        checked = True
        prefix = "" if "/" not in rel else rel.rsplit("/", 1)[0] + ": "
        found += [prefix + str(w) for w in data.get("warnings", [])]
        skipped += [prefix + " — ".join(map(str, s)) for s in data.get("skipped", [])]
    if not checked:
        return ""
    if not found and not skipped:
        return "<p><span class='good'>input checks passed</span> no plausibility warning.</p>"
    items = "".join(f"<li>{e(w)}</li>" for w in found)
    items += "".join(f"<li>skipped file: {e(s)}</li>" for s in skipped)
    return (f"<div class='warn'><b>Input checks: {len(found)} plausibility warning(s), "
            f"{len(skipped)} skipped file(s)</b><ul>{items}</ul></div>")


def _run_page(run_dir: Path, manifest: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True)
    files = out / "files"
    notebooks_html, figures, json_files, netcdf = [], [], [], []
    for rel in sorted([*manifest["outputs"], mf.MANIFEST]):
        src = run_dir / rel
        (files / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, files / rel)  # every output: `tdt verify --against files/` works
        suffix = src.suffix.lower()
        if suffix == ".ipynb":
            name = rel.replace("/", "-").removesuffix(".ipynb") + ".html"
            (out / name).write_text(render_notebook(src))
            notebooks_html.append((rel, name))
        elif suffix in _IMAGE_SUFFIXES:
            figures.append(rel)
        elif (suffix == ".json" and rel != mf.MANIFEST and not rel.endswith("convergence.json")
              and not rel.endswith("priors.json")):
            json_files.append(rel)
        elif suffix == ".nc":
            netcdf.append(rel)
    study = manifest["study"]
    body = ["<p><a href='../index.html'>&larr; supplement index</a></p>",
            f"<h1>{e(study['name'])} <small>v{e(study['version'])}</small></h1>",
            f"<p>{e(study.get('description', ''))}</p>",
            f"<p>run <code>{e(manifest['run_id'])}</code> &middot; status "
            f"<b>{e(manifest['status'])}</b> &middot; {badge(manifest.get('converged'))} "
            f"&middot; {manifest['timings']['seconds']:.1f} s &middot; "
            f"{e(manifest['timings']['started_utc'])}</p>",
            _input_checks(run_dir, json_files),
            "<h2>Methods</h2>", methods_html(manifest)]
    if manifest.get("convergence"):
        body += ["<h2>Convergence</h2>", _convergence_table(manifest)]
    if manifest.get("priors"):
        body += ["<h2>Priors used, and where they came from</h2>", _priors_table(manifest)]
    comparison = grid_comparison(run_dir, manifest["points"], json_files)
    if comparison:
        body += ["<h2>Grid points compared</h2>", comparison]
    if json_files:
        body += ["<h2>Results</h2>", results_section(run_dir, json_files)]
    if figures:
        body.append("<h2>Figures</h2>")
        body += [f"<figure><img src='files/{e(f)}' alt='{e(f)}'>"
                 f"<figcaption>{e(f)}</figcaption></figure>" for f in figures]
    diagnostics = diagnostics_section(run_dir, netcdf, out) if netcdf else ""
    if diagnostics:
        body += ["<h2>MCMC diagnostics</h2>", diagnostics]
    body.append("<h2>Executed notebooks</h2><ul>")
    body += [f"<li><a href='{e(h)}'>{e(rel)}</a></li>" for rel, h in notebooks_html]
    body += ["</ul>", _provenance(manifest, run_dir)]
    (out / "index.html").write_text(page(f"{study['name']} {manifest['run_id']}", "\n".join(body)))


def default_report_dir(run_dirs: list[Path]) -> Path:
    """``runs/_supplement/<study>-<run-id>`` (one run) or ``runs/_supplement/supplement-<hash>``."""
    runs_root = run_dirs[0].resolve().parent.parent
    if len(run_dirs) == 1:
        name = f"{run_dirs[0].resolve().parent.name}-{run_dirs[0].name}"
    else:
        name = "supplement-" + mf.sha256_text("\n".join(sorted(str(d) for d in run_dirs)))[:10]
    return runs_root / SUPPLEMENT_DIR / name


def build_report(run_dirs: list[Path | str], out_dir: Path | str | None = None) -> Path:
    """Build the supplement for ``run_dirs``; returns the path of its ``index.html``."""
    if not run_dirs:
        raise StudyError("report: no run directories given")
    dirs = [Path(d) for d in run_dirs]
    manifests = []
    for d in dirs:
        problems = mf.verify_run(d)
        if problems:
            raise StudyError(f"report: run {d} fails verification ({problems[0]}); "
                             "only intact runs go into a supplement")
        manifests.append(mf.read_manifest(d))
    out = Path(out_dir) if out_dir else default_report_dir(dirs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out) as tmp:
        rows = []
        for d, m in zip(dirs, manifests, strict=True):
            slug = f"{m['study']['name']}-{m['run_id']}"
            _run_page(d, m, tmp / slug)
            rows.append((f"<a href='{e(slug)}/index.html'>{e(m['study']['name'])}</a>",
                         f"<code>{e(m['run_id'])}</code>", e(m["status"]),
                         badge(m.get("converged")), e(f"{m['timings']['seconds']:.1f}"),
                         e(m["timings"]["started_utc"])))
        shown_dirs = [os.path.relpath(d) if not Path(d).is_absolute() else str(d) for d in dirs]
        body = ["<h1>tdt supplement</h1>",
                f"<p>Built {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from "
                f"{len(dirs)} verified run(s).</p>",
                table(rows, ("study", "run", "status", "convergence", "s", "started"), raw=True),
                "<h2>How to reproduce</h2>",
                f"<pre>{e(reproduce_block(manifests, shown_dirs))}</pre>"]
        (tmp / "index.html").write_text(page("tdt supplement", "\n".join(body)))
    return out / "index.html"
