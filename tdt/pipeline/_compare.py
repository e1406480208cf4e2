"""Compare the numeric results of two runs, quantity by quantity (``tdt verify --against/--rerun``).

Every JSON output is flattened to its leaves (``summary.json:organs.kidneys.dose_gy``) and every
NetCDF output (ArviZ InferenceData and plain xarray files) to its variables
(``posterior.nc:/posterior/tia``). Two numbers agree when ``|a - b| <= atol + rtol·|b|``,
elementwise for arrays (NaN equals NaN).

Tolerances, and why they are what they are:

- **Default ``rtol = 1e-9``, ``atol = 0`` (bitwise up to printing).** With the locked
  environment on the same kind of CPU, every computation of a study is deterministic: NumPy and
  JAX draws are seeded from the study's ``seed``, NUTS chains are sequential functions of their
  keys, and XLA's CPU reductions are not reordered between runs. The only allowed difference is
  the last printed digit of a float.
- **Timing fields** of ``convergence.json`` (``sampling_time_s``, ``min_ess_per_s``, ...) measure
  the machine, not the science: they are never compared.
- **Executed notebooks, ``study.yaml``, figures**: compared by presence only (they carry
  timestamps, kernel ids and library version strings; their numbers are in the JSON/NetCDF).
- **Attributes** of NetCDF files (``created_at``, library versions) are metadata: not compared.
- On another CPU architecture or another environment, floating-point reassociation makes MCMC
  chains diverge after some hundreds of steps: compare with ``--rtol`` of a few Monte Carlo
  standard errors of the quantity (e.g. ``--rtol 0.05`` for posterior means with ESS ≥ 400 and a
  posterior CV ≤ 0.5: MCSE/mean ≤ 0.5/√400 = 2.5 %, and two independent runs differ by ≤ √2·2·MCSE
  ≈ 7 % at 95 %). ``tdt verify`` warns when the environments differ.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdt.pipeline._manifest import MANIFEST, read_manifest

#: Keys of convergence.json that measure speed, not results (they differ between machines).
TIMING_KEYS = ("sampling_time_s", "min_ess_per_s", "seconds", "wall_time_s")
_PRESENCE_ONLY = (".ipynb", ".png", ".svg", ".pdf", ".html", ".marker", ".csv")


@dataclass(frozen=True)
class Comparison:
    """One compared quantity: ``verdict`` is ``same``, ``within tolerance``, ``DIFFERENT``,
    ``MISSING`` (in one run only) or ``present`` (compared by presence)."""

    quantity: str
    original: str
    rerun: str
    difference: str
    verdict: str

    @property
    def ok(self) -> bool:
        return self.verdict in ("same", "within tolerance", "present")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number_row(where: str, a: float, b: float, rtol: float, atol: float) -> Comparison:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return Comparison(where, _fmt(a), _fmt(b), "0", "same")
    diff = abs(a - b)
    rel = diff / abs(b) if b else math.inf
    verdict = "within tolerance" if diff <= atol + rtol * abs(b) else "DIFFERENT"
    return Comparison(where, _fmt(a), _fmt(b), f"{a - b:+.3g} ({rel:.2g} rel)", verdict)


def _json_rows(a: Any, b: Any, where: str, rtol: float, atol: float,
               out: list[Comparison]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in TIMING_KEYS:
                continue
            child = f"{where}{key}" if where.endswith(":") else f"{where}.{key}"
            if key not in a or key not in b:
                out.append(Comparison(child, _fmt(a.get(key, "—")), _fmt(b.get(key, "—")),
                                      "only in one run", "MISSING"))
            else:
                _json_rows(a[key], b[key], child, rtol, atol, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(Comparison(where, f"{len(a)} items", f"{len(b)} items", "length",
                                  "DIFFERENT"))
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _json_rows(x, y, f"{where}[{i}]", rtol, atol, out)
    elif (isinstance(a, int | float) and isinstance(b, int | float)
          and not isinstance(a, bool) and not isinstance(b, bool)):
        out.append(_number_row(where, float(a), float(b), rtol, atol))
    else:
        out.append(Comparison(where, _fmt(a), _fmt(b), "" if a == b else "differs",
                              "same" if a == b else "DIFFERENT"))


def _netcdf_arrays(path: Path) -> dict[str, np.ndarray]:
    # h5py is optional; only to compare NetCDF outputs
    import h5py

    arrays: dict[str, np.ndarray] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            arrays["/" + name] = obj[()]

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return arrays


def _array_row(where: str, a: np.ndarray, b: np.ndarray, rtol: float,
               atol: float) -> Comparison:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return Comparison(where, f"shape {a.shape}", f"shape {b.shape}", "shape", "DIFFERENT")
    if a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":
        same = bool(np.array_equal(a, b))
        return Comparison(where, f"{a.size} values", f"{b.size} values", "" if same else "differs",
                          "same" if same else "DIFFERENT")
    a64, b64 = a.astype(float), b.astype(float)
    summary_a = f"mean {np.nanmean(a64):.6g} ({a.size})" if a.size else "empty"
    summary_b = f"mean {np.nanmean(b64):.6g} ({b.size})" if b.size else "empty"
    both_nan = np.isnan(a64) & np.isnan(b64)
    diff = np.where(both_nan, 0.0, np.abs(a64 - b64))
    if not np.any(diff):
        return Comparison(where, summary_a, summary_b, "0", "same")
    worst = float(np.nanmax(diff))
    rel = float(np.nanmax(diff / np.where(b64 != 0, np.abs(b64), np.inf)))
    ok = bool(np.all(diff <= atol + rtol * np.abs(b64)))
    return Comparison(where, summary_a, summary_b, f"max |Δ| {worst:.3g} ({rel:.2g} rel)",
                      "within tolerance" if ok else "DIFFERENT")


def compare_outputs(first: Path | str, second: Path | str, rtol: float = 1e-9,
                    atol: float = 0.0) -> list[Comparison]:
    """One :class:`Comparison` per numeric quantity of two runs' outputs (see module docs)."""
    first, second = Path(first), Path(second)
    a_out = read_manifest(first)["outputs"]
    b_out = read_manifest(second)["outputs"]
    rows: list[Comparison] = []
    for name in sorted(set(a_out) | set(b_out)):
        if name in (MANIFEST, "study.yaml"):
            continue
        if name not in a_out or name not in b_out:
            rows.append(Comparison(name, "present" if name in a_out else "—",
                                   "present" if name in b_out else "—", "only in one run",
                                   "MISSING"))
            continue
        if name.endswith(_PRESENCE_ONLY):
            rows.append(Comparison(name, "present", "present", "", "present"))
            continue
        try:
            if name.endswith(".json"):
                a_data = json.loads((first / name).read_text())
                b_data = json.loads((second / name).read_text())
                _json_rows(a_data, b_data, name + ":", rtol, atol, rows)
            elif name.endswith(".nc"):
                a_arr, b_arr = _netcdf_arrays(first / name), _netcdf_arrays(second / name)
                for var in sorted(set(a_arr) | set(b_arr)):
                    if var not in a_arr or var not in b_arr:
                        rows.append(Comparison(f"{name}:{var}", "", "", "only in one run",
                                               "MISSING"))
                    else:
                        rows.append(_array_row(f"{name}:{var}", a_arr[var], b_arr[var],
                                               rtol, atol))
            else:
                same = a_out[name] == b_out[name]
                rows.append(Comparison(name, a_out[name][:12], b_out[name][:12],
                                       "" if same else "bytes differ",
                                       "same" if same else "DIFFERENT"))
        except (OSError, ValueError) as exc:
            rows.append(Comparison(name, "", "", f"unreadable ({exc})", "DIFFERENT"))
    return rows


def compare_runs(first: Path | str, second: Path | str, rtol: float = 1e-9) -> list[str]:
    """Lines describing every disagreement between two runs' results (empty: the same)."""
    return [f"{row.quantity}: {row.original} vs {row.rerun}"
            for row in compare_outputs(first, second, rtol=rtol) if not row.ok]


def format_table(rows: list[Comparison], limit: int = 60) -> str:
    """A plain-text table (quantity, original, re-run, difference, verdict).

    Disagreements come first; at most ``limit`` rows are printed, then a count of the rest.
    """
    ordered = sorted(rows, key=lambda r: r.ok)
    shown = ordered[:limit]
    header = ("quantity", "original", "re-run", "difference", "verdict")
    widths = [min(60, max(len(header[0]), *(len(r.quantity) for r in shown)) if shown else 8),
              18, 18, 22, 16]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    for r in shown:
        quantity = r.quantity if len(r.quantity) <= widths[0] else "…" + r.quantity[-widths[0] + 1:]
        cells = (quantity, r.original, r.rerun, r.difference, r.verdict)
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)))
    if len(ordered) > limit:
        lines.append(f"... {len(ordered) - limit} more rows, all agreeing")
    return "\n".join(lines)


def write_csv(rows: list[Comparison], path: Path) -> Path:
    """All rows as CSV (the full table behind :func:`format_table`)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["quantity", "original", "rerun", "difference", "verdict"])
        for r in rows:
            writer.writerow([r.quantity, r.original, r.rerun, r.difference, r.verdict])
    return path
