"""A reviewer's re-run: re-execute a study from a run's manifest and compare every number.

``tdt verify --rerun runs/<study>/<run-id>`` reads the run's manifest (the resolved study, the
``-p`` overrides, the notebook and dataset sha256s, the environment), re-executes the study into
a fresh folder ``runs/_rerun/<time>/<study>/<run-id>/`` (never over the original), and compares
every numeric result with :func:`tdt.pipeline._compare.compare_outputs`. The original run is
only read.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tdt.catalog import sha256_file
from tdt.errors import StudyError
from tdt.pipeline import _manifest as mf
from tdt.pipeline._compare import Comparison, compare_outputs
from tdt.pipeline._environment import environment_warning
from tdt.pipeline._runner import repo_root, run_study
from tdt.pipeline._spec import validate_study


@dataclass(frozen=True)
class RerunResult:
    """The original and re-executed runs, the comparison rows and the environment warning."""

    original: Path
    rerun: Path
    rows: list[Comparison]
    environment_warning: str | None

    @property
    def agrees(self) -> bool:
        return all(row.ok for row in self.rows)


def _study_source(manifest: dict[str, Any], root: Path) -> Path:
    """The study file named by the manifest's reproduce command, inside ``root``."""
    try:
        words = shlex.split(manifest.get("reproduce") or "")
        relative = words[2] if words[:2] == ["tdt", "run"] and len(words) > 2 else None
    except ValueError:
        relative = None
    if relative is None:
        raise StudyError("run manifest: no reproduce command naming the study file")
    path = Path(relative)
    return path if path.is_absolute() else root / path


def spec_from_manifest(run_dir: Path, root: Path):
    """Rebuild the run's StudySpec from its copied ``study.yaml`` and recorded overrides.

    The copy is validated as if it stood at the original study path (so notebook paths resolve
    as they did), then checked against the manifest: the resolved study and every notebook's
    sha256 must be the ones the run used, else ``StudyError`` (that would not be a re-run).
    """
    manifest = mf.read_manifest(run_dir)
    copy = run_dir / "study.yaml"
    if not copy.is_file():
        raise StudyError(f"run {run_dir}: no study.yaml copy; it cannot be re-executed")
    data = yaml.safe_load(copy.read_text())
    spec = validate_study(data, source=_study_source(manifest, root),
                          overrides=manifest.get("overrides") or {})
    recorded = {k: v for k, v in manifest["study"].items() if k != "description"}
    if mf.canonical_json(spec.canonical()) != mf.canonical_json(recorded):
        raise StudyError(f"run {run_dir}: the study rebuilt from study.yaml and the overrides "
                         "does not match the manifest's resolved study")
    recorded_notebooks = manifest["inputs"]["notebooks"]
    for raw, path in zip(spec.notebooks, spec.notebook_paths, strict=True):
        if sha256_file(path) != recorded_notebooks.get(raw):
            raise StudyError(
                f"notebook {raw}: its sha256 differs from the run's (the notebook changed since "
                "the run); check out the run's commit "
                f"({(manifest['environment'].get('git') or {}).get('commit') or 'unknown'}) "
                "to re-run it")
    return spec


def rerun(run_dir: Path | str, runs_dir: Path | str | None = None, rtol: float = 1e-9,
          atol: float = 0.0, progress: bool = False, log=None) -> RerunResult:
    """Re-execute ``run_dir``'s study into a fresh folder and compare all numeric results."""
    run_dir = Path(run_dir).resolve()
    problems = mf.verify_run(run_dir)
    if problems:
        raise StudyError(f"run {run_dir} fails verification ({problems[0]}); a re-run needs an "
                         "intact original")
    manifest = mf.read_manifest(run_dir)
    root = repo_root(Path.cwd())
    spec = spec_from_manifest(run_dir, root)
    warning = environment_warning(manifest.get("environment") or {},
                                  mf.environment(root))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(runs_dir) if runs_dir else run_dir.parents[1] / "_rerun" / stamp
    result = run_study(spec, runs_dir=target, force=True, progress=progress, log=log)
    rows = compare_outputs(run_dir, result.run_dir, rtol=rtol, atol=atol)
    return RerunResult(run_dir, result.run_dir, rows, warning)
