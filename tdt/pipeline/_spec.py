"""Study specifications: ``studies/*.yaml``, validated strictly (unknown keys are errors).

A study is a named, versioned, parameterised analysis::

    name: reference_patient          # [a-z0-9][a-z0-9_-]*, the directory under runs/
    version: 1                       # bump when the analysis changes meaning
    description: "..."               # optional, free text (not part of the cache key)
    notebooks: [../notebooks/02_patient_dosimetry.ipynb, ...]   # executed in order
    datasets: [phantom_patient]      # data_catalog names, hash-checked before running
    parameters: {activity_gbq: 7.4}  # injected into the cell tagged `parameters`
    grid: {activity_gbq: [6.0, 7.4]} # optional sweep: the Cartesian product of the lists
    seed: 0                          # injected as `seed`
    executor: local                  # or dask: how grid points are fanned out
    workers: 2                       # optional, Dask LocalCluster workers
    timeout_s: 1800                  # optional, per-cell execution timeout (s)

Notebook paths are resolved against the study file's directory, then against its parent (the
repository root for ``studies/``). Every notebook must have a cell tagged ``parameters``
(papermill convention), and every study parameter must be assigned in the ``parameters`` cell
of at least one notebook. Besides the study parameters, tdt injects ``seed``, ``output_dir``
(``"."``: notebooks run with the run directory as working directory) and ``datasets``
(``{name: absolute path}``). Every problem raises :class:`~tdt.errors.StudyError` naming the
field, the value and what was expected.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tdt import catalog
from tdt.errors import StudyError, suggest

#: Names tdt injects into every notebook; a study may not define them as parameters.
RESERVED = ("seed", "output_dir", "datasets")
EXECUTORS = ("local", "dask")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FIELDS = {
    "name": "a study name matching [a-z0-9][a-z0-9_-]*",
    "version": "a string or integer",
    "description": "a string",
    "notebooks": "a non-empty list of notebook paths",
    "datasets": "a list of data-catalog names",
    "parameters": "a mapping of parameter names to values",
    "grid": "a mapping of parameter names to non-empty lists of values",
    "seed": "a non-negative integer",
    "executor": "'local' or 'dask'",
    "workers": "a positive integer",
    "timeout_s": "a positive number of seconds",
}
_REQUIRED = ("name", "version", "notebooks")


@dataclass(frozen=True)
class StudySpec:
    """A validated study. ``notebook_paths`` are absolute; ``source`` is the YAML file."""

    name: str
    version: str
    notebooks: tuple[str, ...]
    notebook_paths: tuple[Path, ...]
    datasets: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seed: int = 0
    executor: str = "local"
    workers: int | None = None
    timeout_s: float | None = None
    description: str = ""
    source: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    #: names assigned in each notebook's ``parameters`` cell (what papermill injects there)
    declared: tuple[frozenset[str], ...] = ()

    def points(self) -> list[dict[str, Any]]:
        """Resolved parameters of every grid point (one point when there is no grid)."""
        keys = sorted(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        return [{**self.parameters, **dict(zip(keys, combo, strict=True))} for combo in combos]

    def canonical(self) -> dict[str, Any]:
        """What defines the results (the cache key's study part): no description, no executor."""
        return {
            "name": self.name,
            "version": self.version,
            "notebooks": list(self.notebooks),
            "datasets": list(self.datasets),
            "parameters": self.parameters,
            "grid": {k: self.grid[k] for k in sorted(self.grid)},
            "seed": self.seed,
        }


def _fail(where: str, message: str) -> StudyError:
    return StudyError(f"{where}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(where: str, key: str, value: Any) -> None:
    """Parameter values must be JSON data (they are hashed and injected as Python literals)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise _fail(where, f"parameter {key!r} = {value!r}; expected JSON-like data "
                           "(number, string, bool, null, list, mapping)") from None


def _declared_parameters(path: Path, where: str) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (StudyError if none)."""
    try:
        notebook = json.loads(path.read_text())
        cells = notebook["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _fail(where, f"notebook {path.name}: not a readable .ipynb ({exc})") from None
    for cell in cells:
        if "parameters" in (cell.get("metadata", {}).get("tags") or []):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            try:
                tree = ast.parse(source)
            except SyntaxError as exc:
                raise _fail(where, f"notebook {path.name}: parameters cell: {exc}") from None
            names: set[str] = set()
            for node in ast.walk(tree):
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            return names
    raise _fail(where, f"notebook {path.name}: no cell tagged 'parameters' (papermill needs one)")


def _resolve_notebook(raw: str, base: Path, where: str) -> Path:
    candidates = [base / raw, base.parent / raw] if not Path(raw).is_absolute() else [Path(raw)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise _fail(where, f"notebooks: {raw!r} not found (looked in {base} and {base.parent})")


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``-p key=value`` (the value as YAML: ``7.4``, ``true``, ``[1, 2]``, ``abc``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise StudyError(f"-p {text!r}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and value == raw.strip():
        # YAML 1.1 reads "1e-3" (no dot in the mantissa) as a string; a number is meant
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number) and any(c.isdigit() for c in value):
                value = number
    return key, value


def _apply_overrides(data: dict, overrides: dict[str, Any], where: str) -> None:
    parameters = data.get("parameters") or {}
    grid = data.get("grid") or {}
    if not isinstance(parameters, dict) or not isinstance(grid, dict):
        return  # the type errors are reported by validate_study
    for key, value in overrides.items():
        if key == "seed":
            data["seed"] = value
            continue
        if key not in parameters and key not in grid:
            known = sorted(set(parameters) | set(grid) | {"seed"})
            raise _fail(where, f"-p {key}: unknown parameter.{suggest(key, known)} "
                               f"Expected one of: {', '.join(known)}")
        old = parameters.get(key)
        if key in grid and key not in parameters:
            old = grid[key][0] if grid[key] else None
        if isinstance(old, str) and not isinstance(value, str):
            value = str(value) if not isinstance(value, bool) else ("true" if value else "false")
        ok = (
            old is None
            or (isinstance(old, bool) and isinstance(value, bool))
            or (_is_number(old) and _is_number(value))
            or (isinstance(old, str) and isinstance(value, str))
            or (isinstance(old, list) and isinstance(value, list))
            or (isinstance(old, dict) and isinstance(value, dict))
        )
        if not ok:
            raise _fail(where, f"-p {key}={value!r}: expected a {type(old).__name__} like the "
                               f"study's value {old!r}")
        parameters[key] = value
        grid.pop(key, None)  # an override pins a swept parameter to one value
    data["parameters"] = parameters
    if "grid" in data:
        data["grid"] = grid


def _check_parameters(where: str, parameters: dict) -> None:
    for key, value in parameters.items():
        if not key.isidentifier():
            raise _fail(where, f"parameters: name {key!r} is not a Python identifier")
        if key in RESERVED:
            raise _fail(where, f"parameters: {key!r} is reserved (tdt injects "
                               f"{', '.join(RESERVED)}); use the top-level key or rename it")
        _check_value(where, key, value)


def _check_grid(where: str, grid: dict, parameters: dict) -> None:
    for key, values in grid.items():
        if key not in parameters:
            raise _fail(where, f"grid: {key!r} is not a parameter.{suggest(key, parameters)} "
                               "Every grid key needs a default in parameters")
        if not isinstance(values, list) or not values:
            raise _fail(where, f"grid: {key} = {values!r}; expected a non-empty list of values")
        for value in values:
            _check_value(where, f"grid.{key}", value)
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise _fail(where, f"grid: {key} = {values!r} has duplicate values")


def _declared_per_notebook(where: str, paths: tuple[Path, ...],
                           parameters: dict) -> tuple[frozenset, ...]:
    """The parameter names each notebook's ``parameters`` cell assigns; every study parameter
    must be declared by at least one notebook."""
    per_notebook = tuple(frozenset(_declared_parameters(p, where)) for p in paths)
    declared = set().union(*per_notebook)
    undeclared = sorted(set(parameters) - declared)
    if undeclared:
        raise _fail(where, f"parameter {undeclared[0]!r} is not assigned in the 'parameters' "
                           f"cell of any notebook ({', '.join(p.name for p in paths)}); "
                           f"declared there: {', '.join(sorted(declared)) or 'nothing'}")
    return per_notebook


def _check_datasets_in_catalog(where: str, datasets: list[str]) -> None:
    table = catalog.entries()
    for dataset in datasets:
        if dataset not in table:
            raise _fail(where, f"datasets: {dataset!r} is not in the data catalog."
                               f"{suggest(dataset, table)} See `tdt catalog list`")


def validate_study(data: Any, source: Path | None = None,
                   overrides: dict[str, Any] | None = None,
                   check_datasets: bool = True) -> StudySpec:
    """Validate a parsed study mapping; ``overrides`` (from ``-p``) replace parameters."""
    where = f"study {source}" if source else "study"
    if not isinstance(data, dict):
        raise _fail(where, f"expected a mapping at top level, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        key = unknown[0]
        raise _fail(where, f"unknown key {key!r}.{suggest(key, _FIELDS)} "
                           f"Allowed keys: {', '.join(_FIELDS)}")
    for key in _REQUIRED:
        if data.get(key) is None:
            raise _fail(where, f"missing required key {key!r} ({_FIELDS[key]})")
    data = json.loads(json.dumps(data, default=str))  # deep copy; dates etc. become strings
    if overrides:
        _apply_overrides(data, dict(overrides), where)

    def expect(key: str, ok: bool) -> None:
        if not ok:
            raise _fail(where, f"{key} = {data[key]!r}; expected {_FIELDS[key]}")

    name = data["name"]
    expect("name", isinstance(name, str) and bool(_NAME.match(name)))
    expect("version", isinstance(data["version"], str | int) and not isinstance(
        data["version"], bool) and str(data["version"]) != "")
    if "description" in data:
        expect("description", isinstance(data["description"], str))
    notebooks = data["notebooks"]
    if isinstance(notebooks, str):
        notebooks = [notebooks]
    data["notebooks"] = notebooks
    expect("notebooks", isinstance(notebooks, list) and bool(notebooks)
           and all(isinstance(n, str) and n.endswith(".ipynb") for n in notebooks))
    datasets = data.get("datasets") or []
    data["datasets"] = datasets
    expect("datasets", isinstance(datasets, list) and all(isinstance(d, str) for d in datasets))
    parameters = data.get("parameters") or {}
    data["parameters"] = parameters
    expect("parameters", isinstance(parameters, dict))
    _check_parameters(where, parameters)
    grid = data.get("grid") or {}
    data["grid"] = grid
    expect("grid", isinstance(grid, dict))
    _check_grid(where, grid, parameters)
    seed = data.get("seed", 0)
    data["seed"] = seed
    expect("seed", isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0)
    executor = data.get("executor", "local")
    data["executor"] = executor
    expect("executor", executor in EXECUTORS)
    if data.get("workers") is not None:
        expect("workers", isinstance(data["workers"], int) and not isinstance(
            data["workers"], bool) and data["workers"] >= 1)
    if data.get("timeout_s") is not None:
        expect("timeout_s", _is_number(data["timeout_s"]) and data["timeout_s"] > 0)

    # relative notebook paths: from the study file's folder, else its parent (the repository
    # root for studies/); resolved so that `cd studies && tdt run x.yaml` finds ../notebooks
    base = source.resolve().parent if source else Path.cwd()
    paths = tuple(_resolve_notebook(n, base, where) for n in notebooks)
    per_notebook = _declared_per_notebook(where, paths, parameters)
    if check_datasets and datasets:
        _check_datasets_in_catalog(where, datasets)
    return StudySpec(
        name=name,
        version=str(data["version"]),
        notebooks=tuple(notebooks),
        notebook_paths=paths,
        datasets=tuple(datasets),
        parameters=parameters,
        grid=grid,
        seed=seed,
        executor=executor,
        workers=data.get("workers"),
        timeout_s=data.get("timeout_s"),
        description=data.get("description", ""),
        source=source.resolve() if source else None,
        overrides=dict(overrides or {}),
        declared=per_notebook,
    )


def load_study(path: Path | str, overrides: dict[str, Any] | None = None) -> StudySpec:
    """Read and validate ``studies/<name>.yaml`` (``StudyError`` on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise StudyError(f"study {path}:{line}: {problem}") from None
    return validate_study(data, source=path, overrides=overrides)
