"""``tdt report RUN...``: a static HTML supplement built from verified runs.

Layout of the supplement directory (default ``runs/_supplement/<study>-<run-id>/``)::

    index.html                       runs, their status and convergence, how to reproduce
    <study>-<run-id>/index.html      parameters, inputs, environment, results, figures
    <study>-<run-id>/*.html          executed notebooks rendered by nbconvert
    <study>-<run-id>/files/...       figures, JSON results, manifest.json, study.yaml

Every run is re-hashed first (:func:`tdt.pipeline.manifest.verify_run`); a run that fails is
refused, so a supplement only ever shows intact runs. Fits whose convergence flags are false
are marked "NOT CONVERGED" on every page that shows them. Written atomically (temporary
directory, then rename).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tdt.errors import StudyError
from tdt.pipeline import manifest as mf

SUPPLEMENT_DIR = "_supplement"
_TEXT_SUFFIXES = {".json", ".yaml", ".yml", ".csv", ".txt"}
_IMAGE_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
.bad{color:#fff;background:#b00020;padding:.1em .4em;border-radius:3px}
.good{color:#fff;background:#1b5e20;padding:.1em .4em;border-radius:3px}
.unknown{background:#ddd;padding:.1em .4em;border-radius:3px}img{max-width:100%}
code{background:#f1f1f1;padding:0 .2em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n{body}\n"
            "</body></html>\n")


def _badge(converged: bool | None) -> str:
    if converged is None:
        return "<span class='unknown'>no convergence flags</span>"
    return ("<span class='good'>converged</span>" if converged
            else "<span class='bad'>NOT CONVERGED</span>")


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None,
           raw: bool = False) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = (str(c) if raw else _e(c) for c in row)
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_notebook(path: Path) -> str:
    """HTML of an executed notebook (nbconvert's ``lab`` template, images embedded)."""
    import nbformat
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


def _run_page(run_dir: Path, manifest: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True)
    files = out / "files"
    notebooks_html = []
    figures = []
    texts = []
    for rel in sorted([*manifest["outputs"], mf.MANIFEST]):
        src = run_dir / rel
        suffix = src.suffix.lower()
        if suffix == ".ipynb":
            name = rel.replace("/", "-").removesuffix(".ipynb") + ".html"
            (out / name).write_text(render_notebook(src))
            notebooks_html.append((rel, name))
        elif suffix in _IMAGE_SUFFIXES or suffix in _TEXT_SUFFIXES or suffix == ".nc":
            (files / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, files / rel)
            if suffix in _IMAGE_SUFFIXES:
                figures.append(rel)
            elif suffix in _TEXT_SUFFIXES and rel != mf.MANIFEST:
                texts.append(rel)
    study = manifest["study"]
    env = manifest["environment"]
    body = ["<p><a href='../index.html'>&larr; supplement index</a></p>",
            f"<h1>{_e(study['name'])} <small>v{_e(study['version'])}</small></h1>",
            f"<p>{_e(study.get('description', ''))}</p>",
            f"<p>run <code>{_e(manifest['run_id'])}</code> &middot; status "
            f"<b>{_e(manifest['status'])}</b> &middot; {_badge(manifest.get('converged'))} "
            f"&middot; {manifest['timings']['seconds']:.1f} s &middot; "
            f"{_e(manifest['timings']['started_utc'])}</p>",
            "<h2>How to reproduce</h2>",
            f"<pre>{_e(reproduce_block([manifest], [str(run_dir)]))}</pre>",
            "<h2>Executed notebooks</h2><ul>"]
    body += [f"<li><a href='{_e(h)}'>{_e(rel)}</a></li>" for rel, h in notebooks_html]
    body.append("</ul><h2>Parameters</h2>")
    body.append(_table([(p["dir"], json.dumps(p["parameters"], sort_keys=True), p["status"],
                         sum(n["seconds"] for n in p["notebooks"]))
                        for p in manifest["points"]], ("point", "parameters", "status", "s")))
    if manifest.get("convergence"):
        body.append("<h2>Convergence</h2>")
        rows = []
        for point, fits in manifest["convergence"].items():
            for fit, flags in fits.items():
                flags = flags if isinstance(flags, dict) else {"converged": False}
                detail = {k: v for k, v in flags.items() if k != "converged"}
                rows.append((_e(point), _e(fit), _badge(bool(flags.get("converged"))),
                             _e(json.dumps(detail, sort_keys=True))))
        body.append(_table(rows, ("point", "fit", "flag", "diagnostics"), raw=True))
    if figures:
        body.append("<h2>Figures</h2>")
        body += [f"<figure><img src='files/{_e(f)}' alt='{_e(f)}'>"
                 f"<figcaption>{_e(f)}</figcaption></figure>" for f in figures]
    if texts:
        body.append("<h2>Results</h2>")
        for rel in texts:
            text = (run_dir / rel).read_text(errors="replace")
            clipped = text if len(text) < 20000 else text[:20000] + "\n... (truncated)"
            body.append(f"<h3><a href='files/{_e(rel)}'>{_e(rel)}</a></h3><pre>{_e(clipped)}</pre>")
    body.append("<h2>Inputs</h2>")
    rows = [("notebook", k, v) for k, v in manifest["inputs"]["notebooks"].items()]
    rows += [(f"dataset ({v['kind']})", k, v["sha256"])
             for k, v in manifest["inputs"]["datasets"].items()]
    body.append(_table(rows, ("kind", "name", "sha256")))
    body.append("<h2>Environment</h2>")
    git = env["git"]
    body.append(_table([("git commit", git.get("commit")), ("uncommitted changes", git.get("dirty")),
                        *[(k, v) for k, v in env["platform"].items()],
                        *[(k, v) for k, v in env["packages"].items() if v]]))
    body.append("<h2>Outputs (sha256)</h2>")
    body.append(_table(sorted(manifest["outputs"].items()), ("file", "sha256")))
    body.append(f"<p><a href='files/{mf.MANIFEST}'>manifest.json</a></p>")
    (out / "index.html").write_text(_page(f"{study['name']} {manifest['run_id']}", "\n".join(body)))


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
    tmp = out.parent / f".tmp-report-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        rows = []
        for d, m in zip(dirs, manifests, strict=True):
            slug = f"{m['study']['name']}-{m['run_id']}"
            _run_page(d, m, tmp / slug)
            rows.append((f"<a href='{_e(slug)}/index.html'>{_e(m['study']['name'])}</a>",
                         f"<code>{_e(m['run_id'])}</code>", _e(m["status"]),
                         _badge(m.get("converged")), _e(f"{m['timings']['seconds']:.1f}"),
                         _e(m["timings"]["started_utc"])))
        shown_dirs = [os.path.relpath(d) if not Path(d).is_absolute() else str(d) for d in dirs]
        body = ["<h1>tdt supplement</h1>",
                f"<p>Built {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from "
                f"{len(dirs)} verified run(s).</p>",
                _table(rows, ("study", "run", "status", "convergence", "s", "started"), raw=True),
                "<h2>How to reproduce</h2>",
                f"<pre>{_e(reproduce_block(manifests, shown_dirs))}</pre>"]
        (tmp / "index.html").write_text(_page("tdt supplement", "\n".join(body)))
        if out.exists():
            old = out.parent / f".old-report-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"
