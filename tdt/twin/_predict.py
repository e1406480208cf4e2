"""Posterior predictive doses, BED, EQD2, TCP and NTCP of a proposed schedule.

Built on :func:`tdt.twin._plan.evaluate`: cumulative absorbed dose and BED per draw (delivered
cycles + proposed ones), EQD2 = BED / (1 + 2/(α/β)) (:func:`tdt.radiobiology.eqd2`), TCP from a
:class:`~tdt.twin._plan.TcpModel` when given, NTCP from :func:`tdt.radiobiology.ntcp_organ` (cited
LKB sets) for the organs that have one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tdt.errors import InputError
from tdt.radiobiology import NTCP_PARAMETERS, eqd2, ntcp_organ
from tdt.twin._draws import DoseDraws
from tdt.twin._plan import TcpModel, evaluate
from tdt.twin._tissues import tissue_parameters


def activities_from(schedule) -> np.ndarray:
    """Activities (MBq) of a ``tdt.pbpk.Schedule`` or of a sequence of numbers."""
    if hasattr(schedule, "activity_mbq") and hasattr(schedule, "time_h"):
        values = np.asarray(schedule.activity_mbq, dtype=float)
    else:
        values = np.atleast_1d(np.asarray(schedule, dtype=float))
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InputError(f"schedule: expected activities >= 0 MBq (1-D), got {schedule!r}")
    return values


@dataclass(frozen=True)
class Prediction:
    """Per-draw predictions for a schedule (cumulative over delivered + proposed cycles)."""

    activities_mbq: tuple[float, ...]
    organs: tuple[str, ...]
    cumulative_dose_gy: np.ndarray  # (n_draws, n_organs)
    cumulative_bed_gy: np.ndarray
    eqd2_gy: np.ndarray
    next_cycle_dose_gy: np.ndarray  # (n_draws, n_organs), zeros when no cycle is proposed
    per_cycle_dose_gy: np.ndarray | None = None  # (n_cycles, n_draws, n_organs)
    tcp: np.ndarray | None = None  # (n_draws,)
    ntcp: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self, interval: float = 0.9):
        """pandas DataFrame: per organ and quantity, mean, median and credible interval."""
        lo_q, hi_q = (1 - interval) / 2, (1 + interval) / 2
        rows = []
        for name, values in (("cumulative_dose_gy", self.cumulative_dose_gy),
                             ("cumulative_bed_gy", self.cumulative_bed_gy),
                             ("eqd2_gy", self.eqd2_gy),
                             ("next_cycle_dose_gy", self.next_cycle_dose_gy)):
            for j, organ in enumerate(self.organs):
                v = values[:, j]
                rows.append({"organ": organ, "quantity": name, "mean": v.mean(),
                             "median": np.median(v), "lower": np.quantile(v, lo_q),
                             "upper": np.quantile(v, hi_q)})
        extras = dict(self.ntcp)
        if self.tcp is not None:
            extras["tcp"] = self.tcp
        for name, v in extras.items():
            rows.append({"organ": name if name != "tcp" else "tumour", "quantity":
                         "tcp" if name == "tcp" else "ntcp", "mean": v.mean(),
                         "median": np.median(v), "lower": np.quantile(v, lo_q),
                         "upper": np.quantile(v, hi_q)})
        return pd.DataFrame(rows)

    def cycle_dose(self, organ: str, cycle: int = 0) -> np.ndarray:
        """Absorbed dose (Gy) per draw of proposed cycle ``cycle`` (0 = next) in ``organ``."""
        return self.per_cycle_dose_gy[cycle, :, self.organs.index(organ)]

    def to_dict(self) -> dict:
        table = self.summary()
        return {"activities_mbq": list(self.activities_mbq),
                "summary": table.to_dict(orient="records")}


def predict_schedule(draws: DoseDraws, schedule, tcp: TcpModel | None = None) -> Prediction:
    """Predictions for proposed future activities (``schedule``) over all draws."""
    x = activities_from(schedule)
    ev = evaluate(draws, x, constraints=(), objective="tcp" if tcp else None, tcp=tcp)
    # dose-only organs (no LQ parameters, e.g. lacrimal glands): BED and EQD2 undefined (NaN)
    alpha_beta = np.array([np.nan if o in draws.dose_only else tissue_parameters(o).alpha_beta_gy
                           for o in draws.organs])
    bed_gy = np.where(np.isnan(alpha_beta), np.nan, ev.cumulative_bed_gy)
    eqd2_gy = np.where(np.isnan(alpha_beta), np.nan, np.asarray(eqd2(
        ev.cumulative_bed_gy, np.nan_to_num(alpha_beta, nan=1.0), validate=False)))
    d, _ = draws.coefficients(max(len(x), 1))
    per_cycle = x[:, None, None] * d[: len(x)]
    next_dose = per_cycle[0] if len(x) else np.zeros_like(ev.cumulative_dose_gy)
    ntcp = {organ: np.asarray(ntcp_organ(organ, ev.cumulative_bed_gy[:, j],
                                         absorbed_dose_gy=ev.cumulative_dose_gy[:, j]))
            for j, organ in enumerate(draws.organs) if organ in NTCP_PARAMETERS}
    return Prediction(tuple(float(a) for a in x), draws.organs, ev.cumulative_dose_gy,
                      bed_gy, eqd2_gy, next_dose, per_cycle,
                      ev.objective_draws if tcp else None, ntcp)


def credible_width(values: np.ndarray, interval: float = 0.9) -> float:
    """Width of the central credible interval of ``values`` (same unit)."""
    lo, hi = np.quantile(values, [(1 - interval) / 2, (1 + interval) / 2])
    return float(hi - lo)


__all__: Sequence[str] = ("Prediction", "activities_from", "credible_width", "predict_schedule")
