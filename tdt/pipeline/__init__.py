"""Reproducible studies: papermill-executed, versioned analyses with provenance.

- :mod:`~tdt.pipeline.spec`: ``studies/*.yaml`` schema (strict) → :class:`StudySpec`.
- :mod:`~tdt.pipeline.runner`: :func:`run_study` (atomic run directories, cache, locking).
- :mod:`~tdt.pipeline.manifest`: hashes, environment, git; :func:`verify_run`.
- :mod:`~tdt.pipeline.executors`: local or Dask (LocalCluster on 127.0.0.1, or a scheduler).
- :mod:`~tdt.pipeline.report`: :func:`build_report`, the static HTML supplement.
- :mod:`~tdt.pipeline.results`: helpers notebooks call to save results into their run.

Importing this package is light: papermill, nbconvert and dask load only when used.
"""

from tdt.pipeline import results
from tdt.pipeline.compare import compare_runs
from tdt.pipeline.manifest import read_manifest, verify_run
from tdt.pipeline.report import build_report
from tdt.pipeline.runner import RunResult, cache_key, run_study
from tdt.pipeline.spec import StudySpec, load_study, parse_override, validate_study

__all__ = [
    "RunResult", "StudySpec", "build_report", "cache_key", "compare_runs", "load_study",
    "parse_override",
    "read_manifest", "results", "run_study", "validate_study", "verify_run",
]
