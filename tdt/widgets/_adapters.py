"""Adapters: posterior / twin → :class:`~tdt.widgets.ScenarioInputs`.

A reduced linear model is linear and time-invariant in the administered activity, so the
absorbed dose per MBq of any schedule equals the dose of the fitted schedule divided by its
total activity, and each organ's dose-rate tail has one effective half-life. Both come from
``Posterior.predict_doses`` (per draw, vmapped) — nothing is re-derived here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tdt.errors import InputError
from tdt.radiobiology import tissue
from tdt.widgets._inputs import ScenarioInputs

#: regions the explorer shows by default (others, e.g. plasma or remainder, are bookkeeping)
DEFAULT_REGIONS = ("kidneys", "salivary_glands", "red_marrow", "liver", "spleen")


def _select(names: Sequence[str], regions: Sequence[str] | None) -> tuple[str, ...]:
    if regions is not None:
        missing = [r for r in regions if r not in names]
        if missing:
            raise InputError(
                f"regions: {missing} not in the posterior's predictions; expected any of "
                f"{sorted(names)}"
            )
        return tuple(regions)
    chosen = tuple(r for r in names if r in DEFAULT_REGIONS or r.startswith("lesion"))
    return chosen or tuple(names)


def inputs_from_dose_prediction(prediction, total_activity_mbq: float,
                                regions: Sequence[str] | None = None,
                                source: str = "posterior") -> ScenarioInputs:
    """From a ``tdt.inference.DosePrediction`` of a schedule with ``total_activity_mbq`` (MBq)."""
    if not total_activity_mbq > 0:
        raise InputError(f"total_activity_mbq: {total_activity_mbq!r}; expected > 0 MBq")
    doses = prediction.dose_gy
    teff = prediction.effective_half_life_h
    names = [r for r in doses if r in teff]
    chosen = _select(names, regions)
    dose = {r: np.asarray(doses[r], float) / float(total_activity_mbq) for r in chosen}
    half_lives = {r: np.asarray(teff[r], float) for r in chosen}
    keep = np.all([np.isfinite(v) & (v > 0) for v in (*dose.values(), *half_lives.values())],
                  axis=0)
    if not np.any(keep):
        raise InputError("posterior: no draw has finite positive doses and half-lives")
    dropped = int(keep.size - keep.sum())
    notes = (f"{dropped} draws with failed solves were dropped.",) if dropped else ()
    if not getattr(prediction, "converged", True):
        notes = notes + ("Posterior NOT CONVERGED (sampler diagnostics failed).",)
    return ScenarioInputs.from_arrays(
        {r: v[keep] for r, v in dose.items()}, {r: v[keep] for r, v in half_lives.items()},
        source=source, converged=getattr(prediction, "converged", None), notes=notes,
    )


def inputs_from_posterior(posterior, regions: Sequence[str] | None = None,
                          max_draws: int | None = 4000, phantom: str = "adult-male",
                          seed: int = 0) -> ScenarioInputs:
    """From a ``tdt.inference.Posterior`` (uses ``predict_doses`` on the fitted schedule)."""
    if not hasattr(posterior, "predict_doses"):
        raise InputError(
            f"posterior: {type(posterior).__name__} has no predict_doses(); expected a "
            "tdt.inference.Posterior"
        )
    schedule = posterior.schedule
    if schedule is None:
        raise InputError("posterior.schedule: None; the fitted schedule is needed for dose/MBq")
    prediction = posterior.predict_doses(phantom=phantom, max_draws=max_draws,
                                         radiobiology=False, seed=seed)
    total = float(np.sum(np.asarray(schedule.activity_mbq)))
    converged = getattr(posterior, "converged", None)
    return inputs_from_dose_prediction(
        prediction, total, regions,
        source="posterior of the reduced linear model"
               + ("" if converged is not False else " — NOT CONVERGED"),
    )


def inputs_from_dose_draws(draws, regions: Sequence[str] | None = None,
                           source: str = "twin") -> ScenarioInputs:
    """From a ``tdt.twin.DoseDraws`` (next cycle's response + what is already delivered).

    The twin stores, per draw and target, the dose per MBq d and the quadratic BED coefficient
    q (BED = d A + q A² for one cycle). The equivalent mono-exponential effective half-life
    follows from Dale's form q = d² T_rep / ((T_rep + T_eff) α/β) with the twin's own tissue
    parameters: T_eff = T_rep (d² / (q α/β) − 1). It reproduces the twin's BED exactly at those
    parameters (:func:`tdt.radiobiology._parameters.tissue`, the table the twin uses too). Past
    cycles' dose and BED (``prior_dose_gy``/``prior_bed_gy``) are carried over.
    """
    names = list(draws.organs)
    chosen = _select(names, regions)
    index = [names.index(r) for r in chosen]
    d = np.asarray(draws.dose_per_mbq)[0][:, index]
    q = np.asarray(draws.bed_quadratic)[0][:, index]
    lq = [tissue(r) for r in chosen]
    ab = np.array([p.alpha_beta_gy for p in lq])
    trep = np.array([p.repair_half_time_h for p in lq])
    with np.errstate(divide="ignore", invalid="ignore"):
        t_eff = trep * (d**2 / (q * ab) - 1.0)
    # q -> 0 (very long T_eff) or rounding near T_eff -> 0: keep within physical bounds
    t_eff = np.clip(np.nan_to_num(t_eff, nan=1e4, posinf=1e4), 1e-3, 1e4)
    return ScenarioInputs(
        regions=tuple(chosen), dose_per_mbq_gy=d, effective_half_life_h=t_eff,
        delivered_dose_gy=np.asarray(draws.prior_dose_gy)[:, index],
        delivered_bed_gy=np.asarray(draws.prior_bed_gy)[:, index],
        source=source,
        notes=("Cumulative quantities include the dose and BED already delivered (twin).",),
    )


def inputs_from_twin(twin, regions: Sequence[str] | None = None) -> ScenarioInputs:
    """From a ``tdt.twin.Twin``: its response for the next cycle (``twin.response(1)``), i.e.
    the current posterior after the last assimilated cycle, plus what was delivered."""
    if not hasattr(twin, "response"):
        raise InputError(
            f"twin: {type(twin).__name__} has no response(); expected a tdt.twin.Twin"
        )
    given = len(getattr(twin, "cycles", ()))
    return inputs_from_dose_draws(
        twin.response(1), regions,
        source=f"twin after {given} assimilated cycle{'s' if given != 1 else ''}",
    )
