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
from tdt.radiobiology import is_lesion
from tdt.widgets._inputs import ScenarioInputs
from tdt.widgets._scenario_types import Scenario, resolve_radiobiology

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
    chosen = tuple(r for r in names if r in DEFAULT_REGIONS or is_lesion(r))
    return chosen or tuple(names)


def equivalent_half_life(regions: Sequence[str], dose_per_mbq, bed_quadratic,
                         max_half_life_h: float = 1e4) -> np.ndarray:
    """Mono-exponential effective half-life (h) with the same one-cycle BED as d A + q A².

    Dale's form q = d² T_rep / ((T_rep + T_eff) α/β) solved for T_eff = T_rep (d² / (q α/β) − 1)
    with the explorer's own tissue parameters at their defaults (:func:`resolve_radiobiology`:
    tdt.radiobiology's table, the twin's too; generic late tissue for an organ without an
    entry): the explorer's BED then equals d A + q A² exactly at those parameters, for every A.
    ``dose_per_mbq``, ``bed_quadratic``: (n_draws, n_regions) Gy/MBq and Gy/MBq². q = 0 (an
    organ reported as dose only) gives the longest half-life, ``max_half_life_h`` (default
    10⁴ h: BED ≈ dose; the PBPK adapter passes the nuclide's physical half-life, the longest an
    effective half-life can be).
    """
    rb = resolve_radiobiology(tuple(regions), Scenario())
    d, q = np.asarray(dose_per_mbq, float), np.asarray(bed_quadratic, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_eff = rb.repair_half_time_h * (d**2 / (q * rb.alpha_beta_gy) - 1.0)
    # q -> 0 (very long T_eff) or rounding near T_eff -> 0: keep within physical bounds
    top = float(max_half_life_h)
    return np.clip(np.nan_to_num(t_eff, nan=top, posinf=top), 1e-3, top)


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
    parameters: T_eff = T_rep (d² / (q α/β) − 1) (:func:`equivalent_half_life`). Past cycles'
    dose and BED (``prior_dose_gy``/``prior_bed_gy``) are carried over.
    """
    names = list(draws.organs)
    chosen = _select(names, regions)
    index = [names.index(r) for r in chosen]
    d = np.asarray(draws.dose_per_mbq)[0][:, index]
    q = np.asarray(draws.bed_quadratic)[0][:, index]
    return ScenarioInputs(
        regions=tuple(chosen), dose_per_mbq_gy=d,
        effective_half_life_h=equivalent_half_life(chosen, d, q),
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
