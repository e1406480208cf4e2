"""Per-draw response of one cycle of a receptor PBPK as a function of the ligand amount.

For one bolus of activity A (MBq) and total peptide L (nmol, labelled + unlabelled) the hot
activity of every compartment is c e^{-λt} total(t; L) with c = A / L (tdt.inference._fast_pbpk,
fact 1): the *shape* of every time-activity curve depends on L only (receptor saturation), its
*scale* is proportional to A. Hence, per draw i and organ o, exactly (not a linearisation):

    D_io(A, L)   = d_io(L) · A                    (Gy; d: dose per MBq at ligand amount L)
    BED_io(A, L) = d_io(L) · A + q_io(L) · A²     (Gy; q = G_io(L) d_io(L)² / (α/β)_o)

with G the Lea–Catcheside G-factor of the organ's dose-rate shape (a pure shape functional, so
independent of A). This holds as long as L is at least the labelled atoms themselves,
L >= A / a_s (a_s: carrier-free specific activity, 727 MBq/nmol for 177Lu,
:func:`tdt.pbpk.specific_activity_mbq_per_nmol`); the planner's bounds enforce it.

Where each piece comes from (nothing is re-implemented here):

- kinetics: ``TwinModel.simulate`` of :func:`tdt.inference.custom_model`, which for a
  ``method="grid"`` PBPK and one bolus is the sampler's structured solve (``solve_bolus`` of
  tdt.inference's fast PBPK path, same scheme as the grid solver), jitted and vmapped; its
  derivative in L by forward-mode ``jax.jvp`` (one scalar input: forward mode is the cheap one);
- dosimetry: the MIRD map of ``Posterior.predict_doses``, :func:`tdt.inference.doses_from_tia`
  itself (S-values mass-scaled to the patient, lesions as spheres, the remainder of body from
  the whole-body TIA). It is linear in the TIAs on the physical domain (remainder TIA >= 0), so
  it is evaluated once on unit TIAs and kept as a matrix — the traceable form of the same map
  (tested equal to ``doses_from_tia`` on draws and to ``predict_doses``). Red marrow: image-based (the model's
  ``red_marrow`` compartment), as ``predict_doses(marrow="image")``, or, with ``marrow_scale``,
  that compartment's TIA times a per-draw factor (the PBPK twin's blood-based marrow,
  :mod:`tdt.twin._plan_marrow`). The urinary-bladder contents
  are not a source here (``predict_doses(void_interval_h=None)``);
- dose-rate history of organ o: Ḋ_o(t) ∝ A_o(t) (its own activity, as ``predict_doses``);
  G from :func:`tdt.radiobiology.dose_and_g_factor` on a log-spaced grid to ``linear_after_h``
  (168 h) with its exponential tail; α/β and T_rep from :func:`tdt.twin._tissues.tissue_parameters`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from tdt.dosimetry import REMAINDER_TISSUES
from tdt.errors import ConvergenceError, InputError, unknown_name_error
from tdt.inference import custom_model, doses_from_tia
from tdt.pbpk import EXCRETED_COMPARTMENTS, Administration, Schedule
from tdt.radiobiology import dose_and_g_factor, is_lesion
from tdt.twin._draws import DoseDraws
from tdt.twin._tissues import tissue_parameters

__all__ = ("LigandResponse",)

#: Reference activity of the solves (MBq); results are per MBq (exact: activity scales linearly).
_REFERENCE_ACTIVITY_MBQ = 1000.0


class LigandResponse:
    """d(L), q(L) per draw and organ for a receptor PBPK and per-draw parameters.

    ``forward``: a :class:`tdt.pbpk.PbpkModel` built with ``method="grid"`` (e.g.
    ``tdt.pbpk.get_model("psma617").build(lesions=2, method="grid")``).
    ``parameter_draws``: name -> (n_draws,) values (model units); parameters not given are fixed
    at ``forward.default_params()`` (like a twin's non-sampled parameters).
    ``organ_masses_g``: patient organ masses (g) for the self-S-values; ``lesion_volumes_ml``: per
    lesion of the model (default: the model's ``V_<lesion>`` default, mL).
    ``n_times``: points of the log-spaced dose-rate grid (0.05 h to ``linear_after_h``) used for G.
    ``marrow_scale``: optional (n_draws,) factor on each draw's ``red_marrow`` TIA (the
    blood-based calibration of the PBPK twin's marrow; its dose-rate shape is unchanged). The
    whole-body TIA stays the model's (the extra marrow TIA comes out of the remainder of body),
    as in ``predict_doses(marrow="blood")``.
    """

    def __init__(self, forward, parameter_draws: Mapping[str, np.ndarray], *,
                 organ_masses_g: Mapping[str, float] | None = None,
                 lesion_volumes_ml: Mapping[str, float] | None = None,
                 phantom: str = "adult-male", n_times: int = 40, marrow_scale=None):
        probe = Schedule([Administration(0.0, _REFERENCE_ACTIVITY_MBQ, 150.0)])
        # TwinModel.simulate takes the structured bolus solve for exactly these models
        if not (getattr(forward, "kind", None) == "pbpk" and hasattr(forward, "layout")
                and getattr(forward, "method", None) == "grid"):
            raise InputError(
                f"forward: got {forward!r}; expected a receptor PBPK built with method='grid' "
                "(e.g. tdt.pbpk.get_model('psma617').build(lesions=1, method='grid'))")
        self.forward = forward
        self.params = _full_params(forward, parameter_draws)
        self.n_draws = int(next(iter(self.params.values())).shape[0])
        # every parameter "sampled": TwinModel.params(log θ) = exp(log θ) gives the draws back
        self._twin = custom_model(forward, kind="pbpk")
        with np.errstate(divide="ignore"):  # a parameter fixed at 0 stays 0 (exp(-inf))
            self._log_theta = jnp.log(jnp.stack([self.params[n] for n in self._twin.sampled],
                                                axis=1))
        self.nuclide = forward.nuclide
        self.compartments = tuple(c for c in forward.layout.reported if c not in EXCRETED_COMPARTMENTS)
        lesions = tuple(c for c in self.compartments if is_lesion(c))
        defaults = forward.default_params()
        volumes = {les: float(defaults[f"V_{les}"]) for les in lesions}
        for name, value in (lesion_volumes_ml or {}).items():
            if name not in volumes:
                raise unknown_name_error("lesion_volumes_ml", name, lesions)
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"lesion_volumes_ml[{name!r}]: got {value!r}; expected a "
                                 "volume > 0 mL")
            volumes[name] = float(value)
        self.lesion_volumes_ml = volumes
        self.organ_masses_g = dict(organ_masses_g or {})
        self.phantom = phantom
        self.organs, self.dose_matrix = self._dose_matrix()
        # TIA' = TIA * scale + TIA_RM * shift: marrow x s, the same amount out of the remainder
        self.tia_scale = np.ones((self.n_draws, len(self.compartments)))
        self.tia_shift = np.zeros_like(self.tia_scale)
        if marrow_scale is not None:
            scale = np.asarray(marrow_scale, dtype=float)
            body = [c for c in self.compartments if c in REMAINDER_TISSUES]
            if ("red_marrow" not in self.compartments or not body
                    or scale.shape != (self.n_draws,) or not np.all(np.isfinite(scale) & (scale > 0))):
                raise InputError(f"marrow_scale: shape {scale.shape}; expected ({self.n_draws},) "
                                 "finite factors > 0 and a model with a red_marrow compartment")
            self.tia_scale[:, self.compartments.index("red_marrow")] = scale
            self.tia_shift[:, self.compartments.index(body[0])] = 1.0 - scale
        self._alpha_beta, self._repair_h, self.dose_only = self._radiobiology()
        self.times_h = np.concatenate([[0.0], np.geomspace(0.05, forward.linear_after_h,
                                                           int(n_times))])
        self._schedule = probe
        # draws and the dose matrix are arguments, not baked-in constants: one compiled program
        # serves every patient of the same model and organs (_compiled: shared by instances)
        self._value, self._tangent = _compiled(self)

    # ------------------------------------------------------------------ construction
    def _dose_matrix(self):
        """MIRD map of ``Posterior.predict_doses`` as a matrix, Gy per MBq·h: targets ×
        compartments. Same sources as its ``doses_from_tia`` (tdt.inference): the model
        compartments but the remainder tissues, plus the remainder of body from the whole-body
        TIA (every compartment, lesions excepted) — linear on TIAs >= 0, so unit TIAs give it."""
        n = len(self.compartments)
        eye = np.eye(n)
        tia = {c: eye[:, j] for j, c in enumerate(self.compartments)}
        doses = doses_from_tia(tia, nuclide=self.nuclide, phantom=self.phantom,
                               organ_masses_g=self.organ_masses_g or None,
                               volumes_ml=self.lesion_volumes_ml, total_body_tia_mbq_h=np.ones(n))
        targets = tuple(c for c in self.compartments
                        if c in doses and c not in REMAINDER_TISSUES)
        matrix = np.stack([np.asarray(doses[t], dtype=float) for t in targets])
        return targets, matrix

    def _radiobiology(self):
        ab, trep, dose_only = [], [], []
        for organ in self.organs:
            try:
                lq = tissue_parameters(organ)
            except InputError:  # no LQ parameters (e.g. lacrimal glands): dose only
                dose_only.append(organ)
                ab.append(1.0)
                trep.append(1.0)
                continue
            ab.append(lq.alpha_beta_gy)
            trep.append(lq.repair_half_time_h)
        return np.asarray(ab), np.asarray(trep), tuple(dose_only)

    # ------------------------------------------------------------------ the response
    def _one_draw(self, log_theta, log_ligand):
        leaves, treedef = jax.tree_util.tree_flatten(self._schedule)
        time_h, activity, _, infusion = leaves
        schedule = jax.tree_util.tree_unflatten(
            treedef, [time_h, activity, jnp.reshape(jnp.exp(log_ligand), (1,)), infusion])
        act, tia, ok = self._twin.simulate(log_theta, schedule, jnp.asarray(self.times_h),
                                           self.compartments)
        return act / _REFERENCE_ACTIVITY_MBQ, tia / _REFERENCE_ACTIVITY_MBQ, ok

    def _response(self, log_theta, matrix, scale, log_ligand):
        """(d, q, ok): (n_draws, n_organs) Gy/MBq and Gy/MBq², (n_draws,) solver success."""
        act, tia, ok = jax.vmap(self._one_draw, in_axes=(0, None))(log_theta, log_ligand)
        rm = self.compartments.index("red_marrow") if "red_marrow" in self.compartments else 0
        tia = tia * scale[0] + tia[:, rm:rm + 1] * scale[1]  # marrow_scale (constructor)
        d = tia @ matrix.T  # (n_draws, n_organs), Gy/MBq
        index = np.array([self.compartments.index(o) for o in self.organs])
        shape = jnp.maximum(act[:, index, :], 0.0)  # dose-rate shape ∝ own activity
        _, g = dose_and_g_factor(jnp.asarray(self.times_h), shape, jnp.asarray(self._repair_h),
                                 tail="exponential", validate=False)
        lq = jnp.asarray([o not in self.dose_only for o in self.organs])
        q = jnp.where(lq, g * d**2 / jnp.asarray(self._alpha_beta), 0.0)
        return d, q, ok

    def _check(self, ok, d, q, ligand_nmol):
        ok = np.asarray(ok) & np.all(np.isfinite(d), axis=1) & np.all(np.isfinite(q), axis=1)
        if not ok.all():
            raise ConvergenceError(
                f"ligand_nmol={ligand_nmol:g}: the PBPK solve failed for {int((~ok).sum())} of "
                f"{ok.size} draws; expected finite responses (check the parameter draws)")

    def _scale(self):
        return jnp.asarray(self.tia_scale), jnp.asarray(self.tia_shift)

    def coefficients(self, ligand_nmol: float) -> tuple[np.ndarray, np.ndarray]:
        """d (Gy/MBq) and q (Gy/MBq²), (n_draws, n_organs), at ``ligand_nmol`` per cycle."""
        ligand_nmol = _positive_ligand(ligand_nmol)
        d, q, ok = self._value(self._log_theta, jnp.asarray(self.dose_matrix),
                               self._scale(), jnp.log(ligand_nmol))
        d, q = np.asarray(d), np.asarray(q)
        self._check(ok, d, q, ligand_nmol)
        return d, q

    def coefficients_and_derivatives(self, ligand_nmol: float):
        """(d, q, ∂d/∂log L, ∂q/∂log L), each (n_draws, n_organs): forward-mode JAX derivative
        through the PBPK solve (``jax.jvp``)."""
        ligand_nmol = _positive_ligand(ligand_nmol)
        (d, q, ok), (dd, dq, _) = self._tangent(self._log_theta, jnp.asarray(self.dose_matrix),
                                                self._scale(), jnp.log(ligand_nmol))
        d, q = np.asarray(d), np.asarray(q)
        self._check(ok, d, q, ligand_nmol)
        return d, q, np.asarray(dd), np.asarray(dq)

    def draws(self, ligand_nmol: float, prior_dose_gy=None, prior_bed_gy=None) -> DoseDraws:
        """The :class:`DoseDraws` (one cycle, linear-quadratic in A) at ``ligand_nmol``."""
        d, q = self.coefficients(ligand_nmol)
        return DoseDraws(self.organs, d, q, prior_dose_gy, prior_bed_gy, self.dose_only)


#: compiled responses by (model object, compartments, organs, radiobiology, time grid): one
#: program for every LigandResponse of the same model — e.g. every patient of a virtual trial
#: (tdt.twin._pbpk_twin.build_pbpk returns one model object per structure)
_PROGRAMS: dict = {}
_MAX_PROGRAMS = 16


def _compiled(response: LigandResponse):
    """(value, tangent) jitted functions of ``response._response`` shared by every instance
    with the same structure (their constants: the model, compartments, organs, LQ
    parameters, time grid); the instance-specific arrays are arguments."""
    key = (id(response.forward), response.compartments, response.organs,
           tuple(response._alpha_beta), tuple(response._repair_h), response.dose_only,
           tuple(response.times_h))
    entry = _PROGRAMS.get(key)
    if entry is not None and entry[0] is response.forward:
        return entry[1], entry[2]
    value = jax.jit(response._response)
    tangent = jax.jit(lambda params, matrix, scale, log_l: jax.jvp(
        lambda x: response._response(params, matrix, scale, x), (log_l,), (1.0,)))
    if len(_PROGRAMS) >= _MAX_PROGRAMS:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    _PROGRAMS[key] = (response.forward, value, tangent)  # keeps the model alive: id stays valid
    return value, tangent


def _positive_ligand(value) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise InputError(f"ligand_nmol: got {value!r}; expected a finite amount > 0 nmol")
    return value


def _full_params(forward, parameter_draws: Mapping[str, np.ndarray]) -> dict:
    """Every model parameter as a (n_draws,) array: the draws given, the rest fixed."""
    if not isinstance(parameter_draws, Mapping) or not parameter_draws:
        raise InputError("parameter_draws: expected a non-empty dict name -> (n_draws,) values")
    names = forward.parameter_names
    sizes = set()
    out = {}
    for name, values in parameter_draws.items():
        if name not in names:
            raise unknown_name_error("parameter_draws", name, names)
        array = np.asarray(values, dtype=float)
        if array.ndim != 1 or array.size < 1:
            raise InputError(f"parameter_draws[{name!r}]: expected a 1-D array of draws, got "
                             f"shape {array.shape}")
        if not np.all(np.isfinite(array)) or np.any(array <= 0):
            raise InputError(f"parameter_draws[{name!r}]: expected finite values > 0 (model "
                             f"units), got min {np.min(array)!r}")
        sizes.add(array.size)
        out[name] = array
    if len(sizes) != 1:
        raise InputError(f"parameter_draws: every entry needs the same number of draws, got "
                         f"sizes {sorted(sizes)}")
    n = sizes.pop()
    defaults = forward.default_params()
    return {name: jnp.asarray(out.get(name, np.full(n, float(defaults[name]))))
            for name in names}
