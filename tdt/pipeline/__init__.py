"""Reproducible studies: papermill-executed, versioned analyses with provenance.

- :mod:`~tdt.pipeline._spec`: ``studies/*.yaml`` schema (strict) → :class:`StudySpec`.
- :mod:`~tdt.pipeline._runner`: :func:`run_study` (atomic run directories, cache, locking).
- :mod:`~tdt.pipeline._manifest`: hashes, environment, git; :func:`verify_run`.
- :mod:`~tdt.pipeline._executors`: local or Dask (LocalCluster on 127.0.0.1, or a scheduler).
- :mod:`~tdt.pipeline.report`: :func:`build_report`, the static HTML supplement.
- `tdt.pipeline.results` (module `_results`): helpers notebooks call to save results into their run.

Importing this package is light: papermill, nbconvert and dask load only when used.
"""

from tdt.pipeline import _results as results  # the notebooks' namespace: results.save_*
from tdt.pipeline._compare import compare_runs
from tdt.pipeline._manifest import read_manifest, verify_run
from tdt.pipeline._runner import RunResult, cache_key, run_study
from tdt.pipeline._spec import StudySpec, load_study, parse_override, validate_study
from tdt.pipeline.report import build_report

__all__ = [
    "RunResult", "StudySpec", "build_report", "cache_key", "compare_runs", "load_study",
    "parse_override",
    "read_manifest", "results", "run_study", "validate_study", "verify_run",
]
