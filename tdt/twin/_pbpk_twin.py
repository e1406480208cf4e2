"""The twin on the receptor-PBPK posterior: ``Twin(record, model="psma617" | "dotatate" |
"psma_it")`` (any registered receptor PBPK, :func:`tdt.pbpk.model_names` ``("pbpk")``).

State: the **NUTS draws** of one joint fit of *all* cycles imaged so far (not a Gaussian
summary). ``assimilate(cycle k)`` refits cycles 1..k together through :func:`tdt.inference.
fit_patient` (PyMC model, JAX gradients, the multi-bolus sampler path of
:mod:`tdt.inference._fast_pbpk`): one schedule of k boluses ``interval_h`` apart (the body still
holds the earlier cycles' activity and peptide), one calibration factor per cycle (session
``cycle<k>``), VOI activities taken as recovery-corrected with a residual error: recovery 1
with a free log recovery per VOI (prior N(0, ``MeasurementModel().recovery_sd``²) = 0.10²),
shared by all cycles (the linear twin fixes the recovery at 1).

Drift (:class:`DriftingPbpk`): between cycles the patient's uptake amplitudes (receptor density
``R_<VOI>``, or the registry's uptake parameter, e.g. ``f_reabs`` for DOTATATE kidneys and, next
to ``R_kidneys``, for PSMA kidneys) and the
glomerular filtration ``GFR`` change by a log-normal factor per cycle: lesions N(μ_L, σ_L²),
the others N(0, σ_O²), with the twin's :class:`~tdt.inference._gaussian_state.DriftModel`
numbers (μ_L = −0.1, σ_L = 0.2, σ_O = 0.05 per cycle: stated ASSUMPTIONS, not fitted to
published inter-cycle variability, as for the linear twin). Parameters are piecewise constant,
switching at each administration. Because every cycle's factors are sampled jointly, the draws
of past cycles' parameters are the smoothing posterior given all images (no backward sampling
needed). Future cycles get fresh factors from the drift prior per draw (seeded).

Prediction: per draw, the whole schedule (past + future) is re-simulated (``jax.vmap`` of
:func:`tdt.inference._fast_pbpk.solve_boluses`, per-administration TIA windows), and each
cycle's TIAs and activity curves go through :func:`tdt.inference._predictive.dose_prediction` —
the dosimetry of :meth:`tdt.inference.Posterior.predict_doses` (MIRD S-values mass-scaled to
the record, spheres for lesions, remainder of body from the model's whole-body TIA) and BED by
the G-factor of each draw's dose-rate history (:func:`tdt.radiobiology.bed`). Cycles are weeks
apart, so cumulative BED is the sum of cycle BEDs (as in the linear twin; the residual activity
itself is in each window's TIA).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.inference import (
    DriftModel,
    MeasurementModel,
    OrganSeries,
    PatientData,
    custom_model,
    fit_patient,
    gate_flag,
    solve_boluses,
    summarise_draws,
)
from tdt.pbpk import Administration, Schedule, get_model
from tdt.radiobiology import is_lesion
from tdt.twin._audit import AuditLog
from tdt.twin._pbpk_doses import cycle_doses, report_organs, simulate_paths
from tdt.twin._pbpk_programs import built_model, laplace_program
from tdt.twin._plan_marrow import pbpk_blood_marrow
from tdt.twin._record import PatientRecord

#: Days between cycles by default: 6 weeks (VISION / Pluvicto label; Lutathera: 8 weeks).
DEFAULT_INTERVAL_H = 6 * 7 * 24.0


class DriftingPbpk:
    """Receptor PBPK ``base`` over ``n_cycles`` administrations whose ``drifting`` parameters
    are multiplied at administration k >= 2 by the factor ``drift_<name>_c<k>`` (lognormal
    prior: median e^μ, log-SD σ per name). Protocol of tdt.pbpk models (``parameter_names``,
    ``default_params``, ``priors``, ``simulate``) so that :func:`tdt.inference.custom_model` and
    :func:`tdt.inference.fit_patient` fit it as they are."""

    kind = "pbpk_drift"

    def __init__(self, base, drifting, n_cycles: int, step: dict[str, tuple[float, float]]):
        self.base, self.n_cycles, self.step = base, int(n_cycles), dict(step)
        self.drifting = tuple(n for n in drifting if n in self.step)  # sd 0: no drift
        self.factor_names = tuple(f"drift_{n}_c{k}" for k in range(2, self.n_cycles + 1)
                                  for n in self.drifting)
        self.parameter_names = (*base.parameter_names, *self.factor_names)
        self.organs, self.compartments = base.organs, base.compartments
        self.nuclide = base.nuclide

    def default_params(self) -> dict[str, float]:
        factors = {f: float(np.exp(self.step[f.split("drift_", 1)[1].rsplit("_c", 1)[0]][0]))
                   for f in self.factor_names}
        return base_defaults(self.base) | factors

    def priors(self) -> dict[str, tuple[float, float]]:
        out = dict(self.base.priors())
        for f in self.factor_names:
            mean, sd = self.step[f.split("drift_", 1)[1].rsplit("_c", 1)[0]]
            out[f] = (float(np.exp(mean)), float(sd))
        return out

    def per_cycle(self, params: dict, n_admin: int | None = None) -> dict:
        """Parameters per administration: drifting ones (n_admin,), the others scalar."""
        n_admin = self.n_cycles if n_admin is None else n_admin
        out = {n: params[n] for n in self.base.parameter_names}
        for name in self.drifting:
            factors = [jnp.ones(())] + [jnp.asarray(params[f"drift_{name}_c{k}"])
                                        for k in range(2, n_admin + 1)]
            out[name] = params[name] * jnp.cumprod(jnp.stack(factors))
        return out

    def simulate(self, params: dict, schedule, times_h):
        organs = body_compartments(self.base)
        activity, tia, ok = solve_boluses(self.base, self.per_cycle(params), schedule, times_h,
                                          organs)
        return SimpleNamespace(activity_mbq={o: activity[i] for i, o in enumerate(organs)},
                               tia_mbq_h={o: tia[i] for i, o in enumerate(organs)}, ok=ok)


def base_defaults(forward) -> dict[str, float]:
    return {k: float(v) for k, v in forward.default_params().items()}


def body_compartments(forward) -> tuple[str, ...]:
    """Every reported compartment still in the body (all but excreted urine)."""
    return tuple(c for c in forward.compartments if c != "urine")


def drift_steps(names, drift) -> dict[str, tuple[float, float]]:
    """Per drifting parameter: (mean, sd) of its log step per cycle (module docstring)."""
    out = {}
    for name in names:
        lesion = is_lesion(name.split("_", 1)[1]) if "_" in name else False
        out[name] = ((drift.lesion_log_mean, drift.lesion_log_sd) if lesion
                     else (0.0, drift.organ_log_sd))
    return {n: v for n, v in out.items() if v[1] > 0}


def init_pbpk(self, record, model, n_draws: int = 1000, total_cycles: int = 6,
               drift: DriftModel | None = None, calibration_sd: float = 0.03, seed: int = 0,
               audit_path=None, nuts_options: dict | None = None,
               interval_h: float = DEFAULT_INTERVAL_H, ligand_nmol: float = 100.0,
               engine: str = "nuts", _audit: AuditLog | None = None):
    """Set up ``self`` (a :class:`tdt.Twin`) as the PBPK twin of registry entry ``model``.

    ``engine``: ``"nuts"`` (default) or ``"laplace"`` — the same joint model of all cycles,
    but independent draws of its Laplace approximation instead of NUTS (``fit_patient(...,
    sampler="laplace")``, :mod:`tdt.inference._laplace_draws`): a preview, labelled "LAPLACE
    PREVIEW" in every summary and report, gated by its Pareto k̂ (stored in ``nuts_options``
    as ``sampler``, so a saved twin keeps its engine)."""
    if not isinstance(record, PatientRecord):
        raise InputError(f"record: expected a PatientRecord, got {type(record).__name__}")
    if not (isinstance(n_draws, int) and n_draws >= 20):
        raise InputError(f"n_draws: got {n_draws!r}; expected an integer >= 20")
    if not (interval_h > 0 and ligand_nmol > 0):
        raise InputError(f"interval_h / ligand_nmol: got {interval_h!r} / {ligand_nmol!r}; "
                         "expected > 0 h and > 0 nmol")
    if engine not in ("nuts", "laplace"):
        raise InputError(f"engine: got {engine!r}; expected 'nuts' or 'laplace'")
    nuts_options = dict(nuts_options or {})
    if engine == "laplace":
        nuts_options["sampler"] = "laplace"
    engine = "laplace" if nuts_options.get("sampler") == "laplace" else "nuts"
    self.record, self.engine, self.model_name = record, engine, str(model)
    self.spec, self.pbpk = build_pbpk(model, record)
    self.model = self.pbpk
    self.n_draws, self.total_cycles, self.seed = n_draws, int(total_cycles), int(seed)
    self.drift, self.calibration_sd = drift or DriftModel(), float(calibration_sd)
    self.nuts_options = nuts_options
    self.interval_h, self.ligand_nmol = float(interval_h), float(ligand_nmol)
    self.ligand_per_cycle: list[float] = []
    self.cycles, self.qa_reports, self.filtered = [], [], []
    self.nuts_posterior = self.drift_forward = None
    self.audit = _audit if _audit is not None else AuditLog(audit_path)
    if _audit is None:
        self.audit.append("create", {
            "patient_id": record.patient_id, "model": self.model_name, "engine": engine,
            "n_draws": n_draws, "total_cycles": self.total_cycles, "seed": self.seed,
            "drift": self.drift.to_dict(), "interval_h": self.interval_h,
            "ligand_nmol": self.ligand_nmol, "calibration_sd": self.calibration_sd})


def build_pbpk(model: str, record):
    """The receptor PBPK of registry entry ``model`` with the record's lesions (grid solver).
    One model object per (model, lesion names, nuclide): the compiled programs keyed by it
    (:func:`simulate_paths`, :class:`tdt.twin.LigandResponse`) serve every twin of that
    structure, e.g. every patient of a virtual trial."""
    spec = get_model(model)
    if spec.kind != "pbpk":
        raise InputError(f"model: {model!r} is a {spec.kind} model; expected a receptor PBPK")
    lesions = tuple(sorted(record.lesions, key=lambda n: int(n.split("_")[1])))
    return spec, built_model(spec.key, lesions, record.nuclide)


def fit_data(record, cycles, interval_h: float, ligand_nmol, calibration_sd: float):
    """One :class:`PatientData` with every imaged cycle (times after the first administration,
    one calibration session per cycle) and its multi-bolus :class:`Schedule`."""
    schedule = Schedule([Administration(k * interval_h, c.activity_mbq, ligand_nmol[k])
                         for k, c in enumerate(cycles)])
    series: dict[str, list] = {}
    for k, cycle in enumerate(cycles):
        for organ, (t, a) in cycle.measurements.items():
            entry = series.setdefault(organ, [[], [], []])
            entry[0] += list(np.asarray(t) + k * interval_h)
            entry[1] += list(a)
            entry[2] += [f"cycle{k + 1}"] * len(t)
    # recovery 1 with MeasurementModel's recovery_sd: a free log recovery per VOI (module doc)
    organs = {o: OrganSeries(t, a, volume_ml=record.lesions.get(o), recovery=1.0, sessions=s)
              for o, (t, a, s) in series.items()}
    return PatientData(organs, calibration_sd=calibration_sd, schedule=schedule,
                       nuclide=record.nuclide, patient_id=record.patient_id), schedule


def drifting_model(base, spec, organ_names, n_cycles: int, drift):
    """(sampled names, :class:`DriftingPbpk`) of a joint fit of ``n_cycles`` cycles imaging
    ``organ_names``: the registry's identifiable subset, all but ``krel_*`` drifting. The one
    rule used by the fit and by :func:`tdt.twin._pbpk_twin_file.rebuild_pbpk` (a loaded twin)."""
    sampled = spec.identifiable_parameters(base, tuple(organ_names))
    drifting = [n for n in sampled if not n.startswith("krel_")]
    return sampled, DriftingPbpk(base, drifting, int(n_cycles), drift_steps(drifting, drift))


def assimilate_pbpk(base, spec, record, cycles, drift, interval_h, ligand_nmol,
                    calibration_sd, nuts_options):
    """Joint NUTS fit of all ``cycles`` (module docstring) → (Posterior, DriftingPbpk)."""
    data, schedule = fit_data(record, cycles, interval_h, ligand_nmol, calibration_sd)
    for organ in data.organ_names:
        if organ not in base.compartments:
            raise InputError(f"CycleData.measurements organ: {organ!r} is not in the "
                             f"{spec.key} model; expected one of {base.compartments}")
    sampled, forward = drifting_model(base, spec, data.organ_names, len(cycles), drift)
    twin_model = custom_model(forward, sampled=(*sampled, *forward.factor_names), kind="pbpk",
                              options={"model": spec.key, "organs": data.organ_names})
    options = {"draws": 500, "tune": 500, "chains": 2, "seed": 0} | dict(nuts_options)
    noise = float(np.max([c.relative_sd for c in cycles]))
    measurement = MeasurementModel(fixed_noise_sd=noise)
    if options.get("sampler") == "laplace":  # one compiled program per structure
        program = laplace_program(spec, base, forward, data, twin_model, measurement, schedule)
        posterior = program.fit(data, schedule, draws=options["draws"],
                                chains=options["chains"], seed=options["seed"])
        return posterior, forward
    posterior = fit_patient(data, model=twin_model, schedule=schedule,
                            measurement=measurement, **options)
    return posterior, forward


@dataclass
class PbpkPrediction:
    """Per-draw doses of every cycle of a PBPK twin's schedule (past ones: delivered).

    ``cycles``: one :class:`tdt.inference.DosePrediction` per administration (dose_gy, bed_gy,
    eqd2_gy, tia_mbq_h, ntcp: organ → (n_draws,)); ``n_past``: how many are already given;
    ``converged``: the posterior's convergence gate (``flag`` "NOT CONVERGED" otherwise).
    """

    cycles: list
    n_past: int
    converged: bool
    activities_mbq: tuple[float, ...]
    notes: list[str] = field(default_factory=list)
    #: per-draw factor on the model's marrow TIA from blood samples (tdt.twin._plan_marrow)
    marrow_scale: np.ndarray | None = None
    #: the posterior's method: ``"nuts"`` or ``"laplace"`` (the twin's ``engine``)
    method: str = "nuts"

    @property
    def flag(self) -> str:
        return gate_flag(self.converged, self.method)

    def _sum(self, quantity: str, cycles) -> dict[str, np.ndarray]:
        organs = set.intersection(*(set(getattr(c, quantity)) for c in cycles))
        return {o: sum(np.asarray(getattr(c, quantity)[o]) for c in cycles) for o in organs}

    @property
    def future(self) -> list:
        return self.cycles[self.n_past:]

    @property
    def delivered_dose_gy(self) -> dict[str, np.ndarray]:
        return self._sum("dose_gy", self.cycles[:self.n_past]) if self.n_past else {}

    @property
    def delivered_bed_gy(self) -> dict[str, np.ndarray]:
        return self._sum("bed_gy", self.cycles[:self.n_past]) if self.n_past else {}

    @property
    def cumulative_dose_gy(self) -> dict[str, np.ndarray]:
        return self._sum("dose_gy", self.cycles)

    @property
    def cumulative_bed_gy(self) -> dict[str, np.ndarray]:
        return self._sum("bed_gy", self.cycles)

    def summary(self) -> list[dict]:
        """Rows: quantity, organ, median, ci90_low, ci90_high, flag (per future cycle, then
        cumulative over the whole course)."""
        rows = []
        for j, cycle in enumerate(self.future):
            for organ, d in cycle.dose_gy.items():
                rows.append({"quantity": f"cycle{self.n_past + j + 1}_dose_gy", "organ": organ,
                             **summarise_draws(d), "flag": self.flag})
        for name, values in (("cumulative_dose_gy", self.cumulative_dose_gy),
                             ("cumulative_bed_gy", self.cumulative_bed_gy)):
            for organ, v in sorted(values.items()):
                rows.append({"quantity": name, "organ": organ, **summarise_draws(v),
                             "flag": self.flag})
        return rows


def future_factors(forward: DriftingPbpk, n_draws: int, n_future: int, seed) -> dict:
    """Drift factors of future cycles per draw: name → (n_draws, n_future), cumulative from the
    last imaged cycle (e^{Σ steps}); deterministic for a seed."""
    seed = tuple(np.atleast_1d(seed).tolist())
    out = {}
    for i, name in enumerate(forward.drifting):
        mean, sd = forward.step[name]
        # one stream per parameter, filled cycle by cycle: cycle j's steps do not depend on
        # how many future cycles are asked for (predict and pbpk_parameter_draws agree)
        normals = np.random.default_rng([*seed, 31, i]).standard_normal((n_future, n_draws))
        out[name] = np.exp(np.cumsum(normals.T * sd + mean, axis=1))
    return out


def parameter_paths(posterior, forward: DriftingPbpk, n_draws: int, n_future: int, seed):
    """Per draw and administration (past + future): parameter values, name → (n, K + m), and
    the draw indices used (a seeded subset of ``n_draws`` posterior draws)."""
    log_theta = posterior.log_theta_draws
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 17])
    idx = np.sort(rng.choice(log_theta.shape[0], min(n_draws, log_theta.shape[0]),
                             replace=False))
    twin_model = posterior.twin
    params = jax.vmap(twin_model.params)(jnp.asarray(log_theta[idx]))
    past = jax.vmap(forward.per_cycle)(params)
    k = forward.n_cycles
    factors = future_factors(forward, idx.size, n_future, seed)
    out = {}
    for name in forward.base.parameter_names:
        value = np.broadcast_to(np.asarray(past[name]).reshape(idx.size, -1), (idx.size, k))
        if name in factors:
            value = np.concatenate([value, value[:, -1:] * factors[name]], axis=1)
        else:
            value = np.broadcast_to(value[:, :1], (idx.size, k + n_future))
        out[name] = np.array(value)
    return out, idx


def predict_pbpk(twin, activities_mbq, ligand_nmol) -> PbpkPrediction:
    """Doses of the past cycles and of future ``activities_mbq`` (module docstring)."""
    forward, posterior, record = twin.drift_forward, twin.nuts_posterior, twin.record
    past = list(twin.cycles)
    n_future = len(activities_mbq)
    interval = twin.interval_h
    admins = [Administration(k * interval, c.activity_mbq, twin.ligand_per_cycle[k])
              for k, c in enumerate(past)]
    admins += [Administration((len(past) + j) * interval, float(a), float(ligand_nmol[j]))
               for j, a in enumerate(activities_mbq)]
    schedule = Schedule(admins)
    paths, _ = parameter_paths(posterior, forward, twin.n_draws, n_future,
                               (twin.seed, len(past)))
    organs = body_compartments(forward.base)
    histories, tia, ok = simulate_paths(forward.base, paths, schedule, organs)
    report, sources = report_organs(record, organs, tuple(posterior.data.organ_names))
    marrow = (pbpk_blood_marrow(twin, tia[:, :, organs.index("red_marrow")],
                                [a.activity_mbq for a in admins]) if "red_marrow" in report else None)
    cycles = cycle_doses(record, organs, histories, tia, ok,
                         [a.activity_mbq for a in admins], report, sources,
                         posterior.converged, posterior.diagnostics.method, marrow)
    notes = ["urinary-bladder contents not a source (model urine not on the sampler path)",
             *([] if marrow is None else [marrow.note()])]
    if not bool(np.all(ok)):
        notes.append(f"{int(np.sum(~ok))} draws had a failed solve")
    return PbpkPrediction(cycles, len(past), posterior.converged,
                          tuple(float(a.activity_mbq) for a in admins), notes,
                          None if marrow is None else marrow.scale,
                          posterior.diagnostics.method)
