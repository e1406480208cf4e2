"""Execute a study with papermill into ``runs/<study>/<run-id>/``, atomically and cached.

- The **cache key** is the sha256 of: the resolved study (name, version, notebooks, datasets,
  parameters, grid, seed), the bytes of every notebook, the sha256 of every input dataset, the
  tdt version, the sha256 of tdt's own source, and the versions of the packages that compute
  results (numpy, jax, pymc, ...). Not the wall time, the executor or the description. The run id is its first
  16 hex digits, so the same inputs always map to the same directory.
- **Atomic**: a run executes in ``runs/<study>/.tmp-<run-id>-<uuid>/``; ``manifest.json`` with
  ``status: complete`` is written last, then the directory is renamed to ``<run-id>/``. A killed
  run leaves only a ``.tmp-*`` directory, which neither the cache nor ``tdt verify`` accepts
  (and the next run of the same key removes).
- **Concurrency**: an ``fcntl.flock`` on ``runs/<study>/.lock-<run-id>`` is held while
  executing; a second ``tdt run`` of the same inputs waits, then finds the completed run (a cache
  hit). Different inputs use different locks and run in parallel.
- A run whose notebook fails is kept for inspection as ``runs/<study>/failed-<run-id>-<time>/``
  (manifest status ``failed``) and raises :class:`~tdt.errors.StudyError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import json
import os
import shlex
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tdt import __version__, catalog
from tdt.errors import StudyError
from tdt.pipeline import _manifest as mf
from tdt.pipeline._executors import make_executor
from tdt.pipeline._results import CONVERGENCE_FILE, PRIORS_FILE
from tdt.pipeline._spec import StudySpec, load_study

KERNEL_NAME = "python3"
CACHE_SCHEMA = 1
POINTS_DIR = "points"


@dataclass(frozen=True)
class RunResult:
    """A finished run: its directory, whether it came from the cache, and its manifest."""

    run_dir: Path
    cache_hit: bool
    manifest: dict[str, Any]
    seconds: float


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def _flock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_inputs(spec: StudySpec) -> dict[str, Any]:
    """Hash the notebooks and the (verified) datasets of a study."""
    names = [p.name for p in spec.notebook_paths]
    if len(set(names)) != len(names):
        raise StudyError(f"study {spec.name}: notebooks {names} share a file name; the executed "
                         "copies would overwrite each other")
    notebooks = {raw: catalog.sha256_file(path)
                 for raw, path in zip(spec.notebooks, spec.notebook_paths, strict=True)}
    datasets = {}
    for name in spec.datasets:
        path = catalog.dataset_path(name)  # CatalogError on a hash mismatch
        item = catalog.entries()[name]
        datasets[name] = {"kind": item.kind, "sha256": item.sha256, "path": str(path)}
    return {"notebooks": notebooks, "datasets": datasets}


def cache_key(spec: StudySpec, inputs: dict[str, Any]) -> str:
    """sha256 of everything that determines a run's results (see the module docstring)."""
    payload = {
        "cache_schema": CACHE_SCHEMA,
        "tdt": __version__,
        "tdt_source": mf.tdt_source_sha256(),
        "packages": mf.package_versions(mf.RESULT_PACKAGES),
        "study": spec.canonical(),
        "notebooks": inputs["notebooks"],
        "datasets": {k: v["sha256"] for k, v in inputs["datasets"].items()},
    }
    return mf.sha256_text(mf.canonical_json(payload))


def reproduce_command(spec: StudySpec, executor: str | None = None) -> str:
    """The ``tdt run`` command line that re-creates this run (paths relative to the repo)."""
    source = spec.source
    shown = str(source) if source else "STUDY.yaml"
    if source is not None:
        root = repo_root(source.parent)
        with contextlib.suppress(ValueError):
            shown = str(source.relative_to(root))
    parts = ["tdt", "run", shown]
    for key, value in sorted(spec.overrides.items()):
        text = value if isinstance(value, str) else mf.canonical_json(value)
        parts += ["-p", f"{key}={text}"]
    if executor and executor != spec.executor:
        parts += ["--executor", executor]
    return shlex.join(parts)


def repo_root(start: Path) -> Path:
    """The repository holding ``start`` (``.git`` or ``pyproject.toml``); else, for a study in a
    ``studies/`` directory, that directory's parent."""
    for candidate in [start, *start.parents]:
        if (candidate / ".git").exists() or (candidate / "pyproject.toml").is_file():
            return candidate
    return start.parent if start.name == "studies" else start


def execute_task(task: dict[str, Any]) -> dict[str, Any]:
    """Execute the notebooks of one grid point with papermill (runs in a worker).

    Never raises: failures come back as ``status: failed`` with the error text.
    """
    if threading.current_thread() is threading.main_thread():
        return _execute_task(task)
    # In a worker thread (Dask with processes=False), jupyter_core keeps its event loop in a
    # ContextVar that the thread may have inherited from another thread, where that loop is
    # running ("This event loop is already running"): start from an empty context instead.
    return contextvars.Context().run(_execute_task, task)


def _execute_task(task: dict[str, Any]) -> dict[str, Any]:
    # papermill is heavy; only when a notebook is executed
    import papermill as pm

    out_dir = Path(task["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    # dataset paths relative to the kernel's working directory (the run folder): an executed
    # notebook must not show where on this machine the data live
    datasets = {name: os.path.relpath(path, out_dir) for name, path in task["datasets"].items()}
    parameters = {**task["parameters"], "seed": task["seed"], "output_dir": ".",
                  "datasets": datasets}
    record: dict[str, Any] = {"index": task["index"], "dir": task["rel_dir"],
                              "parameters": task["parameters"], "notebooks": [],
                              "status": mf.STATUS_COMPLETE}
    for raw, path, declared in task["notebooks"]:
        start = time.perf_counter()
        entry: dict[str, Any] = {"notebook": raw, "output": Path(path).name}
        try:
            pm.execute_notebook(
                str(path), str(out_dir / Path(path).name),
                # only the names this notebook declares: no "unknown parameter" noise
                parameters={k: v for k, v in parameters.items() if k in declared},
                kernel_name=task["kernel_name"],
                # the kernel's working directory, via nbclient's resources; papermill's own
                # `cwd=` would chdir this whole process, which races between Dask threads
                resources={"metadata": {"path": str(out_dir)}},
                progress_bar=({"desc": Path(path).stem, "leave": True} if task["progress"]
                              else False),
                execution_timeout=task["timeout_s"], start_timeout=120, log_output=False,
                # the kernel's own log (the TCP-transport notice at start, "KeyboardInterrupt
                # caught in kernel" at shutdown) is noise on a terminal: errors of the notebook
                # itself still fail the run with their traceback
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
            entry["status"] = mf.STATUS_COMPLETE
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal here
            ename = getattr(exc, "ename", type(exc).__name__)
            evalue = getattr(exc, "evalue", str(exc))
            cell = getattr(exc, "exec_count", None)
            where = f" (cell {cell})" if cell is not None else ""
            entry["status"] = "failed"
            entry["error"] = f"{ename}: {str(evalue).strip()[:500]}{where}"
            record["status"] = "failed"
        if (out_dir / Path(path).name).is_file():
            _relative_papermill_paths(out_dir / Path(path).name, raw)
        entry["seconds"] = round(time.perf_counter() - start, 3)
        record["notebooks"].append(entry)
        if record["status"] != mf.STATUS_COMPLETE:
            break
    return record


def _relative_papermill_paths(executed: Path, raw: str) -> None:
    """Replace papermill's absolute input/output paths in an executed notebook's metadata."""
    # nbformat is heavy; only when a notebook is executed
    import nbformat

    try:
        notebook = nbformat.read(str(executed), as_version=4)
    except (OSError, ValueError):
        return  # a notebook papermill could not finish writing: nothing to rewrite
    meta = notebook.metadata.get("papermill")
    if meta is not None:
        meta["input_path"], meta["output_path"] = raw, executed.name
        nbformat.write(notebook, str(executed))


def _tasks(spec: StudySpec, tmp: Path, inputs: dict[str, Any], progress: bool,
           kernel_name: str) -> list[dict[str, Any]]:
    points = spec.points()
    datasets = {name: info["path"] for name, info in inputs["datasets"].items()}
    tasks = []
    for index, params in enumerate(points):
        rel = "." if len(points) == 1 and not spec.grid else f"{POINTS_DIR}/{index:03d}"
        tasks.append({
            "index": index, "rel_dir": rel, "out_dir": str(tmp / rel), "parameters": params,
            "seed": spec.seed, "datasets": datasets,
            "notebooks": [(raw, str(p), sorted(d)) for raw, p, d in
                          zip(spec.notebooks, spec.notebook_paths, spec.declared, strict=True)],
            "kernel_name": kernel_name, "timeout_s": spec.timeout_s,
            "progress": progress and len(points) == 1,
        })
    return tasks


def _per_point(tmp: Path, records: list[dict[str, Any]], filename: str,
               unreadable: dict[str, Any]) -> dict[str, Any]:
    """``{point dir: content of <point>/<filename>}`` for the points that wrote one."""
    table: dict[str, Any] = {}
    for record in records:
        path = tmp / record["dir"] / filename
        if path.is_file():
            try:
                table[record["dir"]] = json.loads(path.read_text())
            except ValueError:
                table[record["dir"]] = {"_unreadable": unreadable}
    return table


def _convergence(tmp: Path, records: list[dict[str, Any]]) -> tuple[dict[str, Any], bool | None]:
    table = _per_point(tmp, records, CONVERGENCE_FILE, {"converged": False})
    flags = [bool(v.get("converged")) for point in table.values() for v in point.values()
             if isinstance(v, dict)]
    return table, (all(flags) if flags else None)


def find_cached(spec: StudySpec, runs_dir: Path, run_id: str) -> Path | None:
    """The complete, intact run directory of ``run_id`` (``StudyError`` if it was tampered)."""
    run_dir = runs_dir / spec.name / run_id
    if not (run_dir / mf.MANIFEST).is_file():
        return None
    problems = mf.verify_run(run_dir)
    if problems:
        raise StudyError(
            f"cached run {run_dir} fails verification ({problems[0]}); remove it or rerun "
            "with --force")
    return run_dir


def run_study(
    study: StudySpec | Path | str,
    overrides: dict[str, Any] | None = None,
    *,
    executor: str | None = None,
    scheduler: str | None = None,
    security: Any = None,
    workers: int | None = None,
    processes: bool = True,
    runs_dir: Path | str = "runs",
    force: bool = False,
    progress: bool = False,
    kernel_name: str = KERNEL_NAME,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Run a study (or return its cached run). See the module docstring for the guarantees."""
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    spec = study if isinstance(study, StudySpec) else load_study(study, overrides)
    runs_dir = Path(runs_dir).resolve()
    inputs = resolve_inputs(spec)
    key = cache_key(spec, inputs)
    run_id = key[:16]
    study_dir = runs_dir / spec.name
    if not force and (cached := find_cached(spec, runs_dir, run_id)):
        return RunResult(cached, True, mf.read_manifest(cached), time.perf_counter() - start)

    waiting = lambda: say(f"{spec.name}: another process is running these inputs; waiting")
    with _flock(study_dir / f".lock-{run_id}", on_wait=waiting):
        if not force and (cached := find_cached(spec, runs_dir, run_id)):
            say(f"{spec.name}: another process completed this run while we waited")
            return RunResult(cached, True, mf.read_manifest(cached), time.perf_counter() - start)
        for stale in study_dir.glob(f".tmp-{run_id}-*"):  # left by a killed run of this key
            shutil.rmtree(stale, ignore_errors=True)
        tmp = study_dir / f".tmp-{run_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            return _execute(spec, inputs, key, run_id, tmp, study_dir, start, executor,
                            scheduler, security, workers, processes, progress, kernel_name, say)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _execute(spec, inputs, key, run_id, tmp, study_dir, start, executor, scheduler, security,
             workers, processes, progress, kernel_name, say) -> RunResult:
    started = _utc_now()
    # the environment (git commit and dirty flag included) of the code that runs: captured
    # before the notebooks execute, not after (a commit made during a long run is not its code)
    root = repo_root(spec.source.parent) if spec.source else Path.cwd()
    environment = mf.environment(root)
    kind = executor or ("dask" if scheduler else spec.executor)
    if spec.source is not None:
        shutil.copyfile(spec.source, tmp / "study.yaml")
    tasks = _tasks(spec, tmp, inputs, progress, kernel_name)
    n_workers = workers or spec.workers
    say(f"{spec.name}: executing {len(tasks)} point(s) x {len(spec.notebooks)} notebook(s) "
        f"on {kind}")
    with make_executor(kind, scheduler=scheduler, n_workers=n_workers, processes=processes,
                       security=security) as pool:
        try:
            records = pool.map(execute_task, tasks, progress=progress)
        except Exception as exc:  # a lost worker, a cancelled future: not a notebook error
            if kind == "local":
                raise  # execute_task reports notebook errors itself: anything else is a bug
            raise StudyError(f"study {spec.name}: the {kind} executor failed "
                             f"({type(exc).__name__}: {exc})") from exc
    convergence, converged = _convergence(tmp, records)
    failed = [r for r in records if r["status"] != mf.STATUS_COMPLETE]
    manifest = {
        "schema": mf.SCHEMA,
        "status": "failed" if failed else mf.STATUS_COMPLETE,
        "run_id": run_id,
        "cache_key": key,
        "tdt_version": __version__,
        "study": {**spec.canonical(), "description": spec.description},
        "overrides": spec.overrides,
        "points": records,
        "inputs": {"notebooks": inputs["notebooks"],
                   "datasets": {k: {"kind": v["kind"], "sha256": v["sha256"]}
                                for k, v in inputs["datasets"].items()}},
        "environment": environment,
        "executor": {"kind": kind, "workers": n_workers, "remote": bool(scheduler)},
        "timings": {"started_utc": started, "finished_utc": _utc_now(),
                    "seconds": round(time.perf_counter() - start, 3)},
        "convergence": convergence,
        "converged": converged,
        "priors": _per_point(tmp, records, PRIORS_FILE, {"error": "priors.json unreadable"}),
        "reproduce": reproduce_command(spec, kind),
    }
    manifest["outputs"] = mf.output_files(tmp)
    if failed:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = study_dir / f"failed-{run_id}-{stamp}-{uuid.uuid4().hex[:4]}"
        mf.write_json_atomic(tmp / mf.MANIFEST, manifest)
        os.rename(tmp, target)
        first = next(n for n in failed[0]["notebooks"] if n["status"] != mf.STATUS_COMPLETE)
        point = f" point {failed[0]['dir']}" if spec.grid else ""
        raise StudyError(f"study {spec.name}{point}: notebook {first['notebook']} failed: "
                         f"{first.get('error', 'unknown error')}; executed notebook kept in "
                         f"{target}")
    mf.write_json_atomic(tmp / mf.MANIFEST, manifest)  # status complete: written last
    final = study_dir / run_id
    if final.exists():  # --force over an earlier run: swap, then delete the old one
        old = study_dir / f".old-{run_id}-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(study_dir)
    return RunResult(final, False, manifest, time.perf_counter() - start)


def _fsync_dir(path: Path) -> None:
    if sys.platform.startswith("linux"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
