"""Blood-based red marrow for the linear twin's response and plan (EANM bone-marrow guideline).

When a cycle comes with blood samples (:class:`tdt.inference.BloodSamples` on
:class:`~tdt.twin.CycleData`), the red-marrow self-dose follows the EANM blood-based method
(Hindorf C, et al. EJNMMI 2010;37:1238): Ã_RM = RMBLR · [Ã_blood] / ρ_blood · m_RM, per draw
with RMBLR ~ 1 × exp(N(0, RMBLR_PEPTIDE_SD_LOG²)) and the blood-TIA error of
:func:`tdt.inference.blood_marrow_tia_draws` (the one home of those draws, shared with
``Posterior.predict_doses``). Per MBq administered (linear kinetics): the measured blood TIA
concentration divided by that cycle's activity.

In the reduced model this replaces the ``red_marrow`` compartment's activity by the plasma
curve scaled to that TIA, A_RM(t) = A_P(t) · Ã_RM / Ã_P per draw (the marrow concentration
follows blood, RMBLR constant): the marrow's self-dose, its cross-dose to the other targets and
the marrow BED (dose-rate history of blood) all follow; the cross-dose *to* the marrow from the
organs and the remainder stays the model's. Future cycles use the latest cycle with samples;
each delivered cycle uses its own samples, or the model (image-based) without them. A cycle
with an L2–L4 VOI (``CycleData.marrow_l2_l4``) and no blood samples gives the marrow TIA the
same way from the VOI (EANM image-based method: :func:`tdt.inference.l2_l4_marrow_tia_draws`,
Ã_L2–L4 / f per draw, f ~ U(6.7 %, 7.4 %); the shared home of ``Posterior.predict_doses``).

In the receptor-PBPK twin (:func:`pbpk_blood_marrow`) the marrow TIA is not linear in the
activity alone (the blood curve depends on the ligand amount and on the drifting parameters),
so blood samples *calibrate* the model's ``red_marrow`` compartment per draw instead of
replacing it: the latest sampled cycle k gives the factor s = Ã_RM,blood(k) / Ã_RM,model(k)
(same draw, its own parameters), and every future cycle's marrow TIA is s × the model's marrow
TIA at that cycle's parameters and ligand amount (``LigandResponse(marrow_scale=s)`` in the
plan). At the sampled cycle this is exactly the blood-based marrow; elsewhere it keeps the
model's dependence on the ligand amount. Delivered cycles use their own samples, or the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tdt.dosimetry import l2_l4_voi_tia
from tdt.errors import InputError
from tdt.inference import L2_L4_TIA_SD_LOG, blood_marrow_tia_draws, l2_l4_marrow_tia_draws

__all__ = ("PbpkMarrow", "blood_marrow_tia_per_mbq", "cycle_marrow_tia", "future_marrow_tia",
           "marrow_method", "pbpk_blood_marrow", "substitute_blood_marrow")


def measured_marrow(cycle) -> str | None:
    """The marrow measurement of one cycle: ``"blood"`` (blood samples, first choice),
    ``"image_l2l4"`` (an L2–L4 VOI) or None."""
    if getattr(cycle, "blood", None) is not None:
        return "blood"
    return "image_l2l4" if getattr(cycle, "marrow_l2_l4", None) is not None else None


def marrow_method(cycles: Sequence) -> str:
    """``"blood"`` when any assimilated cycle has blood samples, else ``"image_l2l4"`` when one
    has an L2–L4 VOI, else ``"image"`` (the model's red-marrow compartment)."""
    methods = {measured_marrow(c) for c in cycles}
    return "blood" if "blood" in methods else ("image_l2l4" if "image_l2l4" in methods
                                              else "image")


def blood_marrow_tia_per_mbq(cycle, n_draws: int, phantom: str, nuclide: str,
                             organ_masses_g: dict | None = None, seed: int = 0) -> np.ndarray:
    """(n_draws,) blood-based red-marrow TIA per MBq administered (MBq·h/MBq) of ``cycle``'s
    blood samples (module docstring)."""
    method = measured_marrow(cycle)
    if method is None:
        raise InputError("cycle.blood / cycle.marrow_l2_l4: no marrow measurement; the blood- or "
                         "L2-L4-based marrow needs one")
    if method == "image_l2l4":  # no blood samples: the L2-L4 VOI (module docstring)
        s = cycle.marrow_l2_l4
        tia = l2_l4_voi_tia(s.times_h, s.activity_mbq, s.recovery or 1.0, nuclide)
        sd_log = float(np.hypot(L2_L4_TIA_SD_LOG, s.recovery_sd or 0.0))
        return l2_l4_marrow_tia_draws(tia / float(cycle.activity_mbq), n_draws, None, sd_log,
                                      seed)
    per_mbq = cycle.blood.blood_tia_mbq_h_per_ml(nuclide) / float(cycle.activity_mbq)
    return blood_marrow_tia_draws(per_mbq, n_draws, phantom, organ_masses_g, seed=seed)


def cycle_marrow_tia(twin, k: int, n_draws: int | None = None) -> np.ndarray | None:
    """(n_draws,) blood-based marrow TIA per MBq of the twin's assimilated cycle ``k`` (0-based),
    seeded by the twin's seed and ``k`` (the same draws for its delivered dose and the future
    cycles); None when that cycle has no blood samples. ``n_draws``: default the twin's."""
    cycle = twin.cycles[k]
    if measured_marrow(cycle) is None:
        return None
    n_draws = twin.n_draws if n_draws is None else int(n_draws)
    return blood_marrow_tia_per_mbq(cycle, n_draws, twin.record.phantom,
                                    twin.record.nuclide, twin.record.organ_masses_g or None,
                                    seed=twin.seed * 1009 + k)


def future_marrow_tia(twin) -> np.ndarray | None:
    """Blood-based marrow TIA per MBq for future cycles: the latest cycle with blood samples."""
    sampled = [k for k, c in enumerate(twin.cycles) if measured_marrow(c) is not None]
    return cycle_marrow_tia(twin, sampled[-1]) if sampled else None


def substitute_blood_marrow(amplitudes: np.ndarray, rates: np.ndarray,
                            compartments: Sequence[str], marrow_tia_per_mbq) -> np.ndarray:
    """Amplitudes (n, n_compartments, K) with the ``red_marrow`` row replaced by the plasma row
    scaled per draw to ``marrow_tia_per_mbq`` (n,) (module docstring); a copy."""
    compartments = tuple(compartments)
    for name in ("red_marrow", "plasma"):
        if name not in compartments:
            raise InputError(f"model compartments {compartments}: the blood-based marrow needs "
                             f"a {name!r} compartment")
    rm, plasma = compartments.index("red_marrow"), compartments.index("plasma")
    target = np.asarray(marrow_tia_per_mbq, dtype=float)
    plasma_tia = np.sum(amplitudes[:, plasma, :] / rates, axis=-1)
    out = np.array(amplitudes, dtype=float, copy=True)
    out[:, rm, :] = amplitudes[:, plasma, :] * (target / plasma_tia)[:, None]
    return out


@dataclass(frozen=True)
class PbpkMarrow:
    """Red marrow of every administration of a PBPK twin's schedule (past, then future):
    ``methods`` ("blood", "image_l2l4" or "image"), ``tia_mbq_h`` ((n,) measured TIA draws, or None: the
    model's compartment) and ``scale`` ((n,) factor s on the model's marrow TIA for future
    cycles, None without blood samples; module docstring)."""

    methods: tuple[str, ...]
    tia_mbq_h: tuple
    scale: np.ndarray | None

    def note(self) -> str:
        if self.scale is None:
            return "red marrow: image-based (the PBPK model's red_marrow compartment)"
        kind = ("blood-based" if "blood" in self.methods or not self.methods
                else "image-based from the L2-L4 VOI")
        return (f"red marrow: {kind} (EANM 2010) for the cycles with marrow measurements; "
                "future cycles: the PBPK marrow x a per-draw factor calibrated on the latest "
                f"measured cycle (median {float(np.median(self.scale)):.3g})")


def pbpk_blood_marrow(twin, model_marrow_tia_mbq_h, activities_mbq) -> PbpkMarrow:
    """:class:`PbpkMarrow` from the model's marrow TIA per draw and administration
    ``model_marrow_tia_mbq_h`` (n, n_admin) and the administered ``activities_mbq`` (n_admin,)
    of a PBPK twin whose ``cycles`` are the first administrations (module docstring)."""
    model = np.asarray(model_marrow_tia_mbq_h, dtype=float)
    n, total = model.shape
    sampled = {k: cycle_marrow_tia(twin, k, n) for k, c in enumerate(twin.cycles)
               if measured_marrow(c) is not None}
    if not sampled:
        return PbpkMarrow(("image",) * total, (None,) * total, None)
    latest = max(sampled)
    scale = sampled[latest] * float(activities_mbq[latest]) / model[:, latest]
    tias = [sampled[k] * float(activities_mbq[k]) if k in sampled
            else None if k < len(twin.cycles) else model[:, k] * scale for k in range(total)]
    methods = tuple("image" if t is None else measured_marrow(twin.cycles[k if k in sampled
                                                                         else latest])
                    for k, t in enumerate(tias))
    return PbpkMarrow(methods, tuple(tias), scale)
