"""The :class:`Posterior` of a twin fit: draws, diagnostics, posterior-predictive quantities.

Everything derived from a posterior is computed per draw (``jax.vmap`` over the draws of the
kinetic parameters) and summarised as the median and the 90 % equal-tailed credible interval
(5th–95th percentile). A posterior that failed the convergence gate carries the
"NOT CONVERGED" flag in ``summary()``, ``report()`` and every :class:`DosePrediction`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

from tdt.dosimetry import (
    REMAINDER_TISSUES,
    VOID_INTERVAL_H,
    sphere_organ,
    svalue_table,
    whole_body_tia_monoexponential,
)
from tdt.errors import InputError
from tdt.inference._diagnostics import (
    LAPLACE_LABEL,
    NOT_CONVERGED,
    Diagnostics,
    compute_diagnostics,
)
from tdt.inference._fast_pbpk import applicable as pbpk_fast_path_applies
from tdt.inference._measurement import MeasurementModel
from tdt.inference._pbpk_predict import EXCRETED, bolus_pbpk_predict
from tdt.inference._posterior_file import INTEGRITY_ATTR, check_seal, posterior_attrs, restore, seal
from tdt.inference._predictive import (
    L2_L4_TIA_SD_LOG,
    DosePrediction,
    bladder_tia_draws,
    blood_marrow_tia_draws,
    choose_marrow_method,
    dose_prediction,
    doses_from_tia,
    l2_l4_marrow_tia_draws,
    summarise_draws,
)
from tdt.pbpk import is_bolus_schedule

_ATTR = "tdt_posterior"


def is_dose_bearing(organ: str, targets) -> bool:
    """A model compartment reported as an organ dose: an S-value target or a sphere organ
    (lacrimal glands), not plasma / remainder tissues, lesions or urine."""
    return organ not in (*REMAINDER_TISSUES, *EXCRETED) and (
        sphere_organ(organ) is not None or organ in targets)


def _flatten(da) -> np.ndarray:
    """(chain, draw, ...) → (chain*draw, ...)."""
    values = np.asarray(da.values)
    return values.reshape((-1, *values.shape[2:]))


class Posterior:
    """Posterior of a patient fit.

    Attributes
    ----------
    idata: ArviZ InferenceData (posterior, sample_stats, observed_data).
    diagnostics: :class:`Diagnostics` (``converged`` is the gate).
    twin: the :class:`TwinModel` (forward model + prior), or None if it cannot be rebuilt.
    data: the :class:`PatientData` fitted.
    schedule: the administration schedule of the fitted data.
    """

    def __init__(self, idata, twin=None, data=None, diagnostics: Diagnostics | None = None,
                 schedule=None, measurement: MeasurementModel | None = None):
        self.idata = idata
        self.twin = twin
        self.data = data
        self.schedule = schedule
        self.measurement = measurement or MeasurementModel()
        self.diagnostics = diagnostics or compute_diagnostics(idata)

    # ------------------------------------------------------------------ basics
    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    @property
    def flag(self) -> str:
        return self.diagnostics.flag

    @property
    def n_draws(self) -> int:
        post = self.idata.posterior
        return int(post.sizes["chain"] * post.sizes["draw"])

    @property
    def log_theta_draws(self) -> np.ndarray:
        """(n_draws, n_params) log of the sampled kinetic parameters."""
        return _flatten(self.idata.posterior["log_theta"])

    @property
    def parameter_draws(self) -> dict[str, np.ndarray]:
        """Sampled kinetic parameter → (n_draws,) values (model units, e.g. 1/h)."""
        names = [str(n) for n in self.idata.posterior["theta"].coords["param"].values]
        values = _flatten(self.idata.posterior["theta"])
        return {n: values[:, i] for i, n in enumerate(names)}

    @property
    def tia_draws(self) -> dict[str, np.ndarray]:
        """Organ → (n_draws,) time-integrated activity (MBq·h) of the fitted schedule, from the
        model (true activity: calibration and recovery removed), to infinity."""
        da = self.idata.posterior["tia_mbq_h"]
        values = _flatten(da)
        organs = [str(o) for o in da.coords[da.dims[-1]].values]
        return {o: values[:, i] for i, o in enumerate(organs)}

    def draws(self, name: str) -> np.ndarray:
        """Any posterior variable, chains flattened: (n_draws, ...)."""
        if name not in self.idata.posterior:
            raise InputError(f"Posterior.draws: unknown variable {name!r}; have "
                             f"{sorted(self.idata.posterior.data_vars)}")
        return _flatten(self.idata.posterior[name])

    # ------------------------------------------------------------------ predictions
    def draw_subset(self, max_draws: int | None = None, seed: int = 0) -> np.ndarray:
        """(n, n_params) log θ draws: all, or a seeded subset of ``max_draws`` (in draw
        order) — the draws :meth:`predict` uses."""
        log_theta = self.log_theta_draws
        if max_draws is not None and max_draws < log_theta.shape[0]:
            idx = np.sort(np.random.default_rng(seed).choice(log_theta.shape[0], max_draws,
                                                             replace=False))
            log_theta = log_theta[idx]
        return log_theta

    def _need_twin(self, what: str):
        if self.twin is None or self.twin.forward is None:
            raise InputError(f"Posterior.{what}: the forward model is not available (custom "
                             "model not stored); pass forward= to Posterior.from_netcdf")

    def predict(self, schedule=None, times_h=None, organs=None, max_draws: int | None = None,
                seed: int = 0, fast: bool | None = None) -> dict[str, Any]:
        """Posterior-predictive TACs and TIAs for ``schedule`` (default: the fitted one).

        Returns ``{"times_h", "activity_mbq": organ → (n, n_times), "tia_mbq_h": organ → (n,),
        "ok": (n,)}``, with ``n`` = all draws or a seeded subset of ``max_draws``, and, when the
        model has an excreted ``urine`` compartment, ``"total_body_tia_mbq_h"`` (n,): the TIA of
        everything still in the body (all other compartments). Jitted once and vmapped over the
        draws.

        ``fast`` (default: whenever it applies, i.e. a grid-method receptor PBPK and a bolus
        schedule) solves by the PBPK fit's own structured bolus solve
        (:func:`tdt.inference._pbpk_predict.bolus_pbpk_predict`; urine by mass balance) instead of the model's
        general grid solver (the same grid scheme on the full state: agreement within 1 %,
        measured ≤ 0.4 % in activity, tests/inference/test_pretherapy.py; seconds per draw
        faster at many late time points); ``fast=False`` forces the model's own solver.
        """
        self._need_twin("predict")
        schedule = self.schedule if schedule is None else schedule
        if schedule is None:
            raise InputError("Posterior.predict: schedule is None and no fitted schedule stored")
        organs = tuple(organs or (self.data.organ_names if self.data else self.twin.organs))
        if times_h is None:
            times_h = default_time_grid(schedule)
        times = jnp.asarray(np.asarray(times_h, dtype=float))
        log_theta = self.draw_subset(max_draws, seed)
        twin = self.twin
        # boluses only: the urine's mass balance there counts every activity as given at once
        # (an infusion's line is not); infusions take the model's solver (exact, slower)
        if (fast is not False and is_bolus_schedule(schedule)
                and pbpk_fast_path_applies(twin.forward, schedule)):
            return bolus_pbpk_predict(twin, log_theta, schedule, times, organs)

        def one(lt):
            sim = twin.forward.simulate(twin.params(lt), schedule, times)
            ok = jnp.asarray(getattr(sim, "ok", True))
            compartments = tuple(getattr(sim, "compartments", ()) or ())
            body = (sum(sim.tia_mbq_h[c] for c in compartments if c not in EXCRETED)
                    if "urine" in compartments else jnp.nan)
            return ({o: sim.activity_mbq[o] for o in organs},
                    {o: sim.tia_mbq_h[o] for o in organs}, ok, body)

        activity, tia, ok, body = jax.jit(jax.vmap(one))(jnp.asarray(log_theta))
        out = {"times_h": np.asarray(times),
               "activity_mbq": {o: np.asarray(v) for o, v in activity.items()},
               "tia_mbq_h": {o: np.asarray(v) for o, v in tia.items()},
               "ok": np.asarray(ok)}
        if np.all(np.isfinite(np.asarray(body))):
            out["total_body_tia_mbq_h"] = np.asarray(body)
        return out

    def predict_doses(self, schedule=None, phantom: str = "adult-male",
                      organ_masses_g: dict[str, float] | None = None,
                      lesion_volumes_ml: dict[str, float] | None = None,
                      max_draws: int | None = None, radiobiology: bool = True,
                      tcp_alpha_per_gy: float | None = None, tcp_alpha_sd_per_gy: float = 0.0,
                      seed: int = 0, marrow: str = "auto", rmblr: float | None = None,
                      l2_l4_fraction: float | None = None,
                      whole_body_half_life_h: float | None = None,
                      void_interval_h: float | None = VOID_INTERVAL_H,
                      fast: bool | None = None) -> DosePrediction:
        """Per-draw TIA (MBq·h), absorbed dose (Gy), effective half-life (h), BED/EQD2 (Gy),
        NTCP (organs with cited LKB parameters) and TCP (lesions, when ``tcp_alpha_per_gy`` is
        given) for ``schedule`` (default: the fitted one), e.g. a planned next cycle.

        Reported: the fitted organs and lesions plus the model's other dose-bearing organs
        (e.g. the PBPK model's lacrimal glands, red marrow). ``marrow``: red-marrow method,
        ``"blood"`` (the patient's BloodSamples), ``"image_l2l4"`` (the patient's L2–L4 VOI,
        ``PatientData.marrow_l2_l4``, scaled by the L2–L4 marrow fraction), ``"image"`` (the
        model's red_marrow compartment, fitted to the marrow VOI), ``"auto"`` (blood when there
        are samples, else L2–L4, else image, else none) or ``"none"``; ``rmblr`` fixes the
        marrow/blood ratio (default: 1 for peptides, drawn per draw with its uncertainty, EANM
        2010 / Forrer 2009; pass ``tdt.dosimetry.RMBLR_ANTIBODY`` for antibodies);
        ``l2_l4_fraction`` fixes the L2–L4 fraction (default: drawn per draw from
        ``tdt.dosimetry.L2_L4_MARROW_FRACTION_RANGE``). Every dose includes the remainder-of-body cross-dose from
        the model's whole-body TIA; a model without an excreted ``urine`` compartment needs
        ``whole_body_half_life_h`` (Ã_WB = A T_eff / ln 2) for it. The urinary-bladder
        contents (model ``urine`` curve, voiding every ``void_interval_h``; None: left out)
        are a source too. ``fast``: the solver choice of :meth:`predict`.

        See :mod:`tdt.inference._predictive` for the definitions.
        """
        self._need_twin("predict_doses")
        schedule = self.schedule if schedule is None else schedule
        fitted = tuple(self.data.organ_names if self.data else self.twin.organs)
        model_organs = tuple(getattr(self.twin.forward, "compartments", self.twin.organs))
        nuclide = self.data.nuclide if self.data is not None else "Lu-177"
        targets = svalue_table(nuclide, phantom).targets
        extra = tuple(o for o in model_organs if o not in fitted and is_dose_bearing(o, targets))
        helpers = tuple(c for c in ("plasma", "urine") if c in model_organs and c not in fitted)
        pred = self.predict(schedule, organs=fitted + extra + helpers, max_draws=max_draws,
                            seed=seed, fast=fast)
        n = int(np.asarray(pred["ok"]).size)
        if void_interval_h is not None and "urine" in pred["activity_mbq"]:
            pred["bladder_tia_mbq_h"] = bladder_tia_draws(
                pred["times_h"], pred["activity_mbq"]["urine"], nuclide, void_interval_h)
        if "total_body_tia_mbq_h" not in pred and whole_body_half_life_h is not None:
            total = float(np.sum(np.asarray(schedule.activity_mbq)))
            pred["total_body_tia_mbq_h"] = np.full(n, float(whole_body_tia_monoexponential(
                total, whole_body_half_life_h)))
        volumes = dict(lesion_volumes_ml or {})
        if self.data is not None:
            for organ, series in self.data.organs.items():
                if series.volume_ml is not None:
                    volumes.setdefault(organ, series.volume_ml)
        blood = getattr(self.data, "blood", None)
        l2_l4 = getattr(self.data, "marrow_l2_l4", None)
        method = choose_marrow_method(marrow, blood is not None, "red_marrow" in pred["tia_mbq_h"],
                                      l2_l4 is not None)
        marrow_tia = None
        if method in ("blood", "image_l2l4"):  # measured for the fitted schedule: scale (linear)
            fitted_mbq = float(np.sum(np.asarray(self.data.resolve_schedule().activity_mbq)))
            scale = float(np.sum(np.asarray(schedule.activity_mbq))) / fitted_mbq
        if method == "blood":
            marrow_tia = blood_marrow_tia_draws(scale * blood.blood_tia_mbq_h_per_ml(nuclide), n,
                                                phantom, organ_masses_g, rmblr, seed)
        elif method == "image_l2l4":
            sd_log = float(np.hypot(L2_L4_TIA_SD_LOG, l2_l4.recovery_sd or 0.0))
            marrow_tia = l2_l4_marrow_tia_draws(scale * self.data.l2_l4_tia_mbq_h(nuclide), n,
                                                l2_l4_fraction, sd_log, seed)
        return dose_prediction(pred, nuclide=nuclide, phantom=phantom,
                               organ_masses_g=organ_masses_g, volumes_ml=volumes,
                               schedule=schedule,
                               radiobiology=radiobiology, converged=self.converged,
                               tcp_alpha_per_gy=tcp_alpha_per_gy,
                               tcp_alpha_sd_per_gy=tcp_alpha_sd_per_gy,
                               marrow_method=method, marrow_tia_mbq_h=marrow_tia,
                               report=fitted + extra, method=self.diagnostics.method)

    def dose_draws(self, phantom: str = "adult-male",
                   organ_masses_g: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Organ → (n_draws,) absorbed dose (Gy) of the fitted schedule (from ``tia_draws``)."""
        volumes = {}
        if self.data is not None:
            volumes = {o: s.volume_ml for o, s in self.data.organs.items()
                       if s.volume_ml is not None}
        nuclide = self.data.nuclide if self.data is not None else "Lu-177"
        return doses_from_tia(self.tia_draws, nuclide, phantom, organ_masses_g, volumes)

    # ------------------------------------------------------------------ reporting
    def summary(self) -> list[dict[str, Any]]:
        """Rows (quantity, organ/parameter, median, ci90_low, ci90_high, unit, flag) for the
        kinetic parameters and the TIAs."""
        rows = []
        for name, values in self.parameter_draws.items():
            rows.append({"quantity": "parameter", "organ": name, **summarise_draws(values),
                         "unit": "", "flag": self.flag})
        for organ, values in self.tia_draws.items():
            rows.append({"quantity": "tia_mbq_h", "organ": organ, **summarise_draws(values),
                         "unit": "MBq·h", "flag": self.flag})
        return rows

    def report(self) -> str:
        """Plain-text report; starts with a NOT CONVERGED banner when the gate failed, and a
        LAPLACE PREVIEW banner for Laplace draws (``fit_patient(sampler="laplace")``)."""
        lines = []
        if self.diagnostics.method == "laplace":
            lines.append(f"*** {LAPLACE_LABEL}: independent draws of the Laplace approximation, "
                         "not NUTS ***")
        if not self.converged:
            lines.append(f"*** {NOT_CONVERGED}: results below are not reliable ***")
        lines.append(str(self.diagnostics))
        for row in self.summary():
            lines.append(f"{row['quantity']:<10} {row['organ']:<22} {row['median']:.4g} "
                         f"[{row['ci90_low']:.4g}, {row['ci90_high']:.4g}] {row['unit']} "
                         f"{row['flag']}".rstrip())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Posterior({self.n_draws} draws; {self.diagnostics})"

    # ------------------------------------------------------------------ persistence
    def to_netcdf(self, path) -> Path:
        """Write the InferenceData plus everything needed to rebuild the model (JSON attrs)."""

        path = Path(path)
        idata = self.idata.copy()
        metadata = json.dumps(posterior_attrs(self) | self._extra_metadata())
        idata.posterior.attrs[_ATTR] = metadata
        idata.posterior.attrs.pop(INTEGRITY_ATTR, None)
        idata.posterior.attrs[INTEGRITY_ATTR] = seal(idata, metadata)
        tmp = path.with_name(path.name + ".tmp")
        idata.to_netcdf(str(tmp))
        tmp.replace(path)  # atomic: nothing half-written is left behind
        return path

    @classmethod
    def from_netcdf(cls, path, forward=None, allow_unsigned: bool = False) -> Posterior:
        """Read a posterior written by :meth:`to_netcdf`. ``forward`` supplies the forward
        model of a ``"custom"`` twin (reduced / pbpk models are rebuilt automatically).

        The keyed MAC (:mod:`tdt.inference._posterior_file`) is checked first: an edited or unsigned
        file (unless ``allow_unsigned``) is refused. Any unreadable or malformed file (not
        NetCDF, truncated, edited metadata) is one InputError naming the file."""

        path = Path(path)
        where = f"Posterior.from_netcdf: {path.name}"
        if not path.is_file():
            raise InputError(f"Posterior.from_netcdf: no file {str(path)!r}")
        try:
            idata = az.from_netcdf(str(path))
            posterior_group = idata.posterior
        except Exception as exc:  # h5py/netCDF/xarray raise many types for a damaged file
            raise InputError(f"{where}: not a readable NetCDF posterior (truncated or not "
                             f"NetCDF? {type(exc).__name__}: {exc})") from None
        metadata = posterior_group.attrs.get(_ATTR)
        if not isinstance(metadata, str):
            raise InputError(f"{where}: was not written by Posterior.to_netcdf (no tdt "
                             "metadata)")
        record = posterior_group.attrs.get(INTEGRITY_ATTR)
        if record is not None or not allow_unsigned:
            check_seal(idata, metadata, record, where)
        try:
            attrs = json.loads(metadata)
            twin, data, schedule, measurement, diagnostics = restore(attrs, forward)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise InputError(f"{where}: malformed tdt metadata ({type(exc).__name__}: {exc})"
                             ) from None
        return cls._from_parts(idata, attrs, where, twin=twin, data=data,
                               diagnostics=diagnostics, schedule=schedule,
                               measurement=measurement)

    def _extra_metadata(self) -> dict:
        """A subclass's own state, stored (and sealed) with the metadata JSON."""
        return {}

    @classmethod
    def _from_parts(cls, idata, attrs: dict, where: str, **parts) -> Posterior:
        """The object :meth:`from_netcdf` returns (a subclass reads its ``attrs`` here)."""
        return cls(idata, **parts)


def default_time_grid(schedule, n_per_cycle: int = 160, tail_h: float | None = None):
    """Time grid (h) for TACs and dose rates: log-spaced after every administration, out to
    ``tail_h`` (default 10 physical half-lives of Lu-177 ≈ 1600 h) after the last one."""
    starts = np.asarray(schedule.time_h, dtype=float)
    tail_h = 1600.0 if tail_h is None else tail_h
    pieces = []
    for k, t0 in enumerate(starts):
        end = starts[k + 1] if k + 1 < starts.size else t0 + tail_h
        span = end - t0
        pieces.append(t0 + np.concatenate([[0.0], np.geomspace(0.05, span, n_per_cycle)]))
    grid = np.unique(np.concatenate(pieces))
    return grid[np.isfinite(grid)]


def _isfinite(x) -> bool:
    return x is not None and math.isfinite(x)
