"""Helpers that notebooks call to save results into the current run directory.

``tdt run`` executes each notebook with the run directory (or the grid point's directory) as
its working directory and injects ``output_dir = "."``; these helpers write there by default::

    from tdt.pipeline import results
    results.save_json("summary", {"kidney_dose_gy": 3.1})          # -> summary.json
    results.save_netcdf("posterior", posterior.idata)                # -> posterior.nc
    results.save_figure("tacs", fig)                                  # -> figures/tacs.png
    results.record_convergence("twin_fit", converged=True, r_hat_max=1.004)

Outside a run (interactive use) call :func:`use_output_dir` first, or pass ``output_dir=``.
The run's manifest lists every file written here with its sha256, and copies the convergence
flags of ``convergence.json`` so that a non-converged result is flagged wherever it is shown.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from tdt.errors import InputError

CONVERGENCE_FILE = "convergence.json"
PRIORS_FILE = "priors.json"
FIGURES_DIR = "figures"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_output_dir: Path | None = None


def use_output_dir(path: Path | str | None) -> Path | None:
    """Set (or with ``None`` reset) the default output directory; returns the previous one."""
    global _output_dir
    previous, _output_dir = _output_dir, (Path(path) if path is not None else None)
    return previous


def current_output_dir(path: Path | str | None = None) -> Path:
    """Directory results go to: ``path``, else :func:`use_output_dir`'s, else ``$TDT_OUTPUT_DIR``,
    else the working directory (the run directory under ``tdt run``). Created if missing."""
    chosen = Path(path) if path is not None else (
        _output_dir or Path(os.environ.get("TDT_OUTPUT_DIR") or "."))
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def _checked_name(name: str, suffix: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InputError(f"results name {name!r}: expected letters, digits, '_', '-', '.' "
                         "(no path separators)")
    return name if name.endswith(suffix) else name + suffix


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy/JAX scalars and arrays, paths and tuples to plain JSON data.

    Non-finite floats become ``null`` (JSON has no NaN); say so in the caller's docs if it matters.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return obj.as_posix()
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy / jax arrays and scalars
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise InputError(f"results: cannot save {type(obj).__name__} as JSON; expected numbers, "
                     "strings, lists, mappings or arrays")


def save_json(name: str, obj: Any, output_dir: Path | str | None = None) -> Path:
    """Write ``obj`` as ``<name>.json`` (sorted keys, arrays as lists). Returns the path."""
    path = current_output_dir(output_dir) / _checked_name(name, ".json")
    path.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
    return path


def load_json(name: str, output_dir: Path | str | None = None) -> Any:
    """Read ``<name>.json`` written by :func:`save_json` (e.g. by an earlier notebook)."""
    path = current_output_dir(output_dir) / _checked_name(name, ".json")
    if not path.is_file():
        raise InputError(f"results: {path.name} not found in {path.parent}")
    return json.loads(path.read_text())


def save_netcdf(name: str, data: Any, output_dir: Path | str | None = None) -> Path:
    """Write an ArviZ ``InferenceData`` or an xarray ``Dataset``/``DataArray`` as ``<name>.nc``."""
    path = current_output_dir(output_dir) / _checked_name(name, ".nc")
    if hasattr(data, "to_netcdf") and hasattr(data, "groups"):  # arviz.InferenceData
        data.to_netcdf(str(path), engine="h5netcdf")
    elif hasattr(data, "to_netcdf"):  # xarray.Dataset / DataArray
        data.to_netcdf(path, engine="h5netcdf")
    else:
        raise InputError(f"results: save_netcdf({name!r}) got {type(data).__name__}; expected "
                         "arviz.InferenceData or an xarray Dataset/DataArray")
    return path


def save_figure(name: str, fig: Any, output_dir: Path | str | None = None, dpi: int = 120,
                formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Save a matplotlib figure as ``figures/<name>.<fmt>`` (metadata without dates)."""
    directory = current_output_dir(output_dir) / FIGURES_DIR
    directory.mkdir(exist_ok=True)
    paths = []
    for fmt in formats:
        path = directory / _checked_name(name, f".{fmt}")
        # no creation date / software version in the file, so equal figures hash equal
        metadata = {"Software": None} if fmt == "png" else (
            {"CreationDate": None} if fmt == "pdf" else {"Date": None} if fmt == "svg" else None)
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths


def record_convergence(name: str, converged: bool, output_dir: Path | str | None = None,
                       **diagnostics: Any) -> Path:
    """Add ``{name: {"converged": bool, ...diagnostics}}`` to ``convergence.json``.

    The runner copies these flags into ``manifest.json``; the supplement marks every
    non-converged fit.
    """
    if not isinstance(converged, bool):
        converged = bool(converged)
    path = current_output_dir(output_dir) / CONVERGENCE_FILE
    table = json.loads(path.read_text()) if path.is_file() else {}
    _checked_name(name, "")
    table[name] = to_jsonable({"converged": converged, **diagnostics})
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return path


def record_prior(name: str, origin: dict[str, Any], output_dir: Path | str | None = None) -> Path:
    """Add ``{name: origin}`` to ``priors.json``: where a prior used by a fit or plan came from.

    ``origin`` is the prior's provenance (e.g. a federated prior's ``.provenance``: method,
    sites with their patient counts and file sha256s, model and tdt versions; or the catalog
    entry and sha256 of a population prior). The runner copies the table into
    ``manifest.json`` (``"priors"``) and the supplement shows it next to the convergence table.
    """
    if not isinstance(origin, dict):
        raise InputError(f"record_prior: origin = {type(origin).__name__}, expected a dict "
                         "(the prior's provenance)")
    path = current_output_dir(output_dir) / PRIORS_FILE
    table = json.loads(path.read_text()) if path.is_file() else {}
    _checked_name(name, "")
    table[name] = to_jsonable(origin)
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return path
