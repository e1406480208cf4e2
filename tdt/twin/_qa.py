"""QA report of a twin update: the checks a medical physicist and an auditor ask for.

Checks (status ``pass`` / ``warn`` / ``fail``; the report's status is the worst one):

- ``time_points``: every VOI has >= 3 time points and its last one at >= 96 h (warn otherwise;
  EANM/MIRD 177Lu dosimetry guidance recommends >= 3 points up to several days).
- ``tia_extrapolated``: fraction of each VOI's TIA accrued after the last imaging time (posterior
  median); warn above 20 %.
- ``fit``: the update's fit diagnostics (Laplace: optimiser converged, Hessian positive definite;
  NUTS: R-hat, ESS, divergences from tdt.inference); fail when not converged. The PBPK twin's
  Laplace draws (``engine="laplace"``): warn "LAPLACE PREVIEW" when their Pareto k̂ <= 0.7,
  fail above.
- ``calibration``: a calibration factor is present (fail if not) and valid on the imaging date
  (fail if expired, warn if the imaging date is unknown).
- ``outliers``: data points whose standardised residual against the posterior predictive
  exceeds 3 in absolute value (warn, listed).
- ``plausibility``: the warnings recorded with the input (``CycleData.input_warnings``, e.g. from
  ``Study.warnings``) and the TAC checks of :func:`tdt.kinetics._validation.check_tac_plausibility`
  (a VOI above the administered activity decayed to the scan, a time or activity unit that looks
  wrong, a curve still rising at its last point); warn when any, each listed.
- ``provenance`` (always pass): model, dosimetry method, package versions, sha256 of the data.
"""

from __future__ import annotations

import importlib.metadata as md
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

import tdt
from tdt.errors import collect_implausible
from tdt.kinetics import check_tac_plausibility
from tdt.twin._record import CycleData

STATUS_ORDER = {"pass": 0, "warn": 1, "fail": 2}
EXTRAPOLATION_LIMIT = 0.20
OUTLIER_Z = 3.0
MIN_POINTS = 3
MIN_LAST_TIME_H = 96.0


@dataclass(frozen=True)
class QACheck:
    name: str
    status: str
    message: str
    value: object = None

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message,
                "value": self.value}


@dataclass(frozen=True)
class QAReport:
    """All checks of one update, with the data hash and versions."""

    cycle: int
    checks: tuple[QACheck, ...]
    data_sha256: str
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return max((c.status for c in self.checks), key=STATUS_ORDER.__getitem__, default="pass")

    def check(self, name: str) -> QACheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"cycle": self.cycle, "status": self.status, "data_sha256": self.data_sha256,
                "versions": dict(self.versions), "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, data: Mapping) -> QAReport:
        """The report written by :meth:`to_dict` (twin files)."""
        return cls(data["cycle"], tuple(QACheck(c["name"], c["status"], c["message"], c["value"])
                                        for c in data["checks"]),
                   data["data_sha256"], data["versions"])

    def __str__(self) -> str:
        lines = [f"QA report, cycle {self.cycle}: {self.status.upper()} (data sha256 "
                 f"{self.data_sha256[:12]}...)"]
        lines += [f"  [{c.status:4}] {c.name}: {c.message}" for c in self.checks]
        return "\n".join(lines)


def package_versions() -> dict[str, str]:
    """Versions of tdt and the numerical packages the twin's results depend on."""
    versions = {"tdt": tdt.__version__, "python": platform.python_version()}
    for name in ("jax", "numpy", "scipy", "optimistix", "xarray", "pymc", "arviz"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def time_point_check(cycle: CycleData) -> QACheck:
    problems = []
    for organ, (t, _) in cycle.measurements.items():
        if len(t) < MIN_POINTS:
            problems.append(f"{organ}: {len(t)} time point(s) < {MIN_POINTS}")
        if t[-1] < MIN_LAST_TIME_H:
            problems.append(f"{organ}: last point at {t[-1]:g} h < {MIN_LAST_TIME_H:g} h")
    coverage = {o: [float(t[0]), float(t[-1]), len(t)] for o, (t, _) in cycle.measurements.items()}
    if problems:
        return QACheck("time_points", "warn", "; ".join(problems), coverage)
    return QACheck("time_points", "pass", f">= {MIN_POINTS} points up to >= {MIN_LAST_TIME_H:g} h "
                   "for every VOI", coverage)


def extrapolation_check(fractions: Mapping[str, float]) -> QACheck:
    flagged = {o: f for o, f in fractions.items() if f > EXTRAPOLATION_LIMIT}
    values = {o: round(float(f), 4) for o, f in fractions.items()}
    if flagged:
        text = ", ".join(f"{o} {100 * f:.0f} %" for o, f in flagged.items())
        return QACheck("tia_extrapolated", "warn",
                       f"TIA extrapolated beyond the last point > {100 * EXTRAPOLATION_LIMIT:.0f} %: "
                       f"{text}", values)
    return QACheck("tia_extrapolated", "pass",
                   f"<= {100 * EXTRAPOLATION_LIMIT:.0f} % of every VOI's TIA extrapolated", values)


def fit_check(diagnostics: Mapping) -> QACheck:
    converged = bool(diagnostics.get("converged", False))
    shown = {k: v for k, v in diagnostics.items() if isinstance(v, (bool, int, float, str))
             and not (isinstance(v, float) and math.isnan(v))}
    if diagnostics.get("method") == "laplace":  # PBPK twin engine="laplace": always visible
        k_hat = diagnostics.get("pareto_k")
        k_hat = float("nan") if k_hat is None else float(k_hat)
        if converged:
            return QACheck("fit", "warn", f"LAPLACE PREVIEW (not NUTS): Pareto k-hat {k_hat:.2f}"
                           " <= 0.7; confirm with engine='nuts' before a decision", shown)
        return QACheck("fit", "fail", f"LAPLACE PREVIEW NOT usable: Pareto k-hat {k_hat:.2f} > "
                       "0.7 (the Gaussian misses the posterior); refit with engine='nuts'", shown)
    if converged:
        return QACheck("fit", "pass", "fit converged", shown)
    return QACheck("fit", "fail", "fit did NOT converge; results are marked unreliable", shown)


def calibration_check(cycle: CycleData) -> QACheck:
    cal = cycle.calibration
    if cal is None:
        return QACheck("calibration", "fail", "no calibration factor recorded for this cycle")
    value = cal.to_dict()
    if cycle.imaged_on is None:
        return QACheck("calibration", "warn", "calibration present; imaging date unknown, "
                       "validity not checked", value)
    if not cal.valid_on(cycle.imaged_on):
        return QACheck("calibration", "fail", f"calibration of {cal.measured_on} not valid on "
                       f"{cycle.imaged_on} (valid {cal.valid_days} days)", value)
    return QACheck("calibration", "pass", f"calibration of {cal.measured_on} valid on "
                   f"{cycle.imaged_on}", value)


def outlier_check(z_scores: Mapping[str, np.ndarray], cycle: CycleData) -> QACheck:
    found = []
    for organ, z in z_scores.items():
        t = cycle.measurements[organ][0]
        for ti, zi in zip(t, np.asarray(z), strict=True):
            if abs(zi) > OUTLIER_Z:
                found.append({"organ": organ, "time_h": float(ti), "z": round(float(zi), 2)})
    if found:
        return QACheck("outliers", "warn", f"{len(found)} point(s) with |z| > {OUTLIER_Z:g} "
                       "against the posterior predictive", found)
    return QACheck("outliers", "pass", f"no point with |z| > {OUTLIER_Z:g}", [])


def plausibility_check(cycle: CycleData, nuclide: str = "Lu-177") -> QACheck:
    """Recorded input warnings plus the TAC plausibility checks against the administered activity."""
    with collect_implausible(reemit=False) as found:
        for organ, (t, a) in cycle.measurements.items():
            check_tac_plausibility(t, a, nuclide, administered_mbq=cycle.activity_mbq,
                                   name=f"measurements[{organ!r}]")
    messages = [*cycle.input_warnings, *(str(w) for w in found)]
    if messages:
        return QACheck("plausibility", "warn", f"{len(messages)} implausible input(s): "
                       + "; ".join(messages), messages)
    return QACheck("plausibility", "pass", "no implausible input recorded", [])


def build_report(cycle_index: int, cycle: CycleData, diagnostics: Mapping,
                 extrapolated: Mapping[str, float], z_scores: Mapping[str, np.ndarray],
                 provenance: Mapping, nuclide: str = "Lu-177") -> QAReport:
    versions = package_versions()
    checks = (
        plausibility_check(cycle, nuclide),
        time_point_check(cycle),
        extrapolation_check(extrapolated),
        fit_check(diagnostics),
        calibration_check(cycle),
        outlier_check(z_scores, cycle),
        QACheck("provenance", "pass", "model, dosimetry and package versions recorded",
                dict(provenance) | {"versions": versions, "data_sha256": cycle.sha256()}),
    )
    return QAReport(cycle_index, checks, cycle.sha256(), versions)
