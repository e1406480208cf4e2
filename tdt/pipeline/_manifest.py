"""Provenance of a run: ``manifest.json`` (hashes, environment, git state) and its verification.

The manifest records what went in (resolved study, parameters, notebook and dataset sha256s),
where it ran (Python, package versions, platform, git commit and dirty flag) and what came out
(sha256 of every file of the run directory, timings, status, convergence flags). It holds no
host name, user name, absolute path or patient identifier.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import tdt
from tdt.catalog import tree_files
from tdt.errors import StudyError
from tdt.pipeline._environment import installed_distributions, lock_info

MANIFEST = "manifest.json"
SCHEMA = "tdt-run-manifest/1"
STATUS_COMPLETE = "complete"

#: Packages whose versions are recorded (those that can change a result or its rendering).
PACKAGES = (
    "tdt", "numpy", "scipy", "jax", "jaxlib", "equinox", "diffrax", "optimistix", "pymc",
    "pytensor", "numpyro", "arviz", "xarray", "h5netcdf", "pydicom", "radioactivedecay",
    "matplotlib", "papermill", "nbformat", "nbconvert", "ipykernel", "dask", "distributed",
    "pyyaml",
)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace) used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (``None`` when a package is absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=1)
def tdt_source_sha256() -> str:
    """sha256 over tdt's own Python source (sorted relative paths and file bytes).

    Part of the cache key: a code change in the package re-runs studies even when the version
    string did not change (an editable install during development, an unreleased fix). Computed
    once per process (~200 small files).
    """
    root = Path(tdt.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


#: Packages whose versions enter the cache key (they can change a number, not only a rendering).
RESULT_PACKAGES = (
    "numpy", "scipy", "jax", "jaxlib", "diffrax", "optimistix", "pymc", "pytensor", "numpyro",
    "arviz", "pydicom", "radioactivedecay",
)


def platform_info() -> dict[str, Any]:
    """Interpreter and machine description, without host or user names."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def git_info(root: Path) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository at ``root``."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                 text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file + fsync + ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with tmp.open("w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    """The manifest of ``run_dir`` (``StudyError`` when missing or unreadable)."""
    path = Path(run_dir) / MANIFEST
    if not Path(run_dir).is_dir():
        raise StudyError(f"run {run_dir}: no such directory")
    if not path.is_file():
        raise StudyError(f"run {run_dir}: no {MANIFEST} (incomplete or not a run directory)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise StudyError(f"run {run_dir}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise StudyError(f"run {run_dir}: {MANIFEST} is not a {SCHEMA} manifest")
    return manifest


def output_files(run_dir: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file of a run directory except the manifest."""
    return {k: v for k, v in tree_files(run_dir).items() if k != MANIFEST}


def verify_run(run_dir: Path | str) -> list[str]:
    """Problems found when re-hashing a run (empty list: the run is complete and intact).

    Checks: the directory is not a temporary one, the manifest exists with status complete,
    every recorded output exists with its sha256, and no unrecorded file was added.
    """
    run_dir = Path(run_dir)
    if run_dir.name.startswith(".tmp-"):
        return [f"{run_dir.name} is a temporary directory of an unfinished (or killed) run"]
    try:
        manifest = read_manifest(run_dir)
    except StudyError as exc:
        return [str(exc)]
    problems = []
    if manifest.get("status") != STATUS_COMPLETE:
        problems.append(f"status is {manifest.get('status')!r}, not {STATUS_COMPLETE!r}")
    recorded = manifest.get("outputs") or {}
    actual = output_files(run_dir)
    for name, digest in sorted(recorded.items()):
        if name not in actual:
            problems.append(f"{name}: missing")
        elif actual[name] != digest:
            problems.append(f"{name}: sha256 {actual[name][:12]}..., recorded {digest[:12]}...")
    for name in sorted(set(actual) - set(recorded)):
        problems.append(f"{name}: not recorded in the manifest (added after the run)")
    return problems


def environment(root: Path) -> dict[str, Any]:
    """Everything about where a run executes: platform, packages, lock file, git.

    ``packages`` holds the versions of the packages that compute or render results;
    ``installed`` every distribution of the interpreter; ``lock`` the sha256 of the committed
    ``requirements.lock`` and whether the installed versions match it.
    """
    return {
        "platform": platform_info(),
        "packages": package_versions(),
        "installed": installed_distributions(),
        "lock": lock_info(),
        "tdt_source_sha256": tdt_source_sha256(),
        "git": git_info(root),
        "executable": Path(sys.executable).name,
    }
