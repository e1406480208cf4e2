"""``tdt.Twin``: the living twin of one patient.

Lifecycle::

    twin = Twin(record)                       # the receptor PBPK of record.radiopharmaceutical
    twin = Twin(record, model="reduced")      # population prior, reduced linear model
    report = twin.assimilate(cycle_1_data)    # posterior update + QA report (+ audit entry)
    twin.predict([7400, 7400])                # posterior predictive dose / BED / TCP / NTCP
    p = twin.plan()                           # activities for the remaining cycles (+ audit)
    twin.save("patient.tdtwin"); Twin.load("patient.tdtwin")

State: a Gaussian posterior over the log rate constants (see :mod:`tdt.twin._assimilate`),
materialised as ``n_draws`` draws through fixed standard normals, and the activities given.

Delivered dose: the dose and BED of every past cycle j are computed per draw from that cycle's
own kinetics θ_j, drawn jointly with the current posterior's draw θ_k given all images so far
(forward filtering, backward sampling through the drift model:
:func:`tdt.twin._assimilate.backward_sample`). Past and future doses of one draw therefore lie on
one kinetic path. (Until 2026-11-21 every past cycle was recomputed with θ_k itself; the
kinetics drift between cycles, so that put the delivered kidney BED off by the drift and made
the planner's 5 % risk ~10 % realised in the virtual trial — docs/twin.md "Planner calibration".)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tdt.errors import InputError
from tdt.radiobiology import dose_limit
from tdt.twin._assimilate import (
    DriftModel,
    GaussianPosterior,
    assimilate_laplace,
    assimilate_nuts,
    backward_sample,
    posterior_predictive_z,
)
from tdt.twin._audit import AuditLog
from tdt.twin._draws import DoseDraws
from tdt.twin._pbpk_assimilate import pbpk_assimilate
from tdt.twin._pbpk_plan import plan_pbpk
from tdt.twin._pbpk_twin import init_pbpk, parameter_paths, predict_pbpk
from tdt.twin._plan import Constraint, Plan, Policy, TcpModel, evaluate, plan
from tdt.twin._plan_ligand import LigandPlan
from tdt.twin._plan_marrow import cycle_marrow_tia, future_marrow_tia, marrow_method
from tdt.twin._predict import Prediction, activities_from, predict_schedule
from tdt.twin._qa import QAReport, build_report
from tdt.twin._record import CycleData, PatientRecord
from tdt.twin._response import DoseMatrix, dose_matrix, response_draws, tia_fraction_after
from tdt.twin._tissues import dose_targets
from tdt.twin._twin_file import load_twin, save_twin
from tdt.twin._twin_models import (
    _build_model,
    _is_pbpk,
    default_twin_model,
)


class Twin:
    """A patient's theranostic digital twin (see module docstring).

    Parameters
    ----------
    record: the :class:`PatientRecord` (masses, lesions with volumes, risk factors).
    model: default (``None``): the receptor PBPK of ``record.radiopharmaceutical``
        (:func:`default_twin_model`; the PBPK twin below). Or a registered model name with a
        reduced linear table (``"reduced"`` /
        ``"psma617"``: the reduced linear 177Lu-PSMA-617 model with the record's lesions; see
        :func:`twin_model_names`) or a linear model object (``tdt.pbpk.reduced_linear(...)``).
    prior: population prior over log rate constants (default: the model table's priors).
    n_draws: posterior draws used for every prediction and plan (default 1000).
    total_cycles: cycles in the treatment course (default 6).
    drift: between-cycle random walk of the parameters (:class:`DriftModel`).
    calibration_sd: relative sd of the per-cycle calibration factor (default 0.03).
    dosimetry: ``"auto"``, ``"svalues"`` or ``"local"`` (see :func:`dose_matrix`).
    seed: seed of the standard normals behind the draws and the drift paths.
    audit_path: file mirroring the append-only audit log (optional).
    engine: ``"laplace"`` (default, fast) or ``"nuts"`` (tdt.inference NUTS, summarised as a
        Gaussian; ``nuts_options`` go to :func:`assimilate_nuts`).

    A registered **receptor PBPK** name (``"psma617"``, ``"dotatate"``, ``"psma_it"``:
    ``tdt.pbpk.model_names("pbpk")``) gives the PBPK twin (:mod:`tdt.twin._pbpk_twin`): NUTS
    draws of a joint fit of all cycles with drift, ``interval_h`` between administrations
    (default 6 weeks) and ``ligand_nmol`` peptide per administration (default 100 nmol, an
    ASSUMPTION); ``nuts_options`` go to :func:`tdt.inference.fit_patient` (default 2 × (500 +
    500)); ``engine="laplace"`` replaces NUTS by independent draws of the joint model's Laplace
    approximation, a preview labelled "LAPLACE PREVIEW" in every summary and QA report and gated
    by its Pareto k̂ (:mod:`tdt.inference._laplace_draws`; checked against NUTS in
    tests/twin/test_twin_pbpk_laplace.py). ``model="reduced"`` is the reduced linear PSMA-617
    twin (Laplace updates in milliseconds: the virtual trial's twin).
    """

    def __init__(self, record: PatientRecord, model=None, *args, **kwargs):
        if model is None:
            if not isinstance(record, PatientRecord):
                raise InputError(f"record: expected a PatientRecord, got {type(record).__name__}")
            model = default_twin_model(record)
        if _is_pbpk(model):
            init_pbpk(self, record, model, **kwargs)
        else:
            self._init_linear(record, model, *args, **kwargs)

    @classmethod
    def from_pretherapy(cls, pet, pair="psma11_psma617", record=None, **options) -> Twin:
        """PBPK twin predicted from the pre-therapy PET (:mod:`tdt.twin._pretherapy_twin`)."""
        from tdt.twin._pretherapy_twin import from_pretherapy  # a Twin subclass: import cycle
        return from_pretherapy(pet, pair, record, **options)

    @property
    def is_pbpk(self) -> bool:
        """True for the receptor-PBPK twin (state: NUTS draws), False for the linear one."""
        return getattr(self, "pbpk", None) is not None

    def _need_pbpk_fit(self, what: str):
        if self.nuts_posterior is None:
            raise InputError(f"Twin.{what}: the PBPK twin has no posterior yet; assimilate a "
                             "cycle first (its prior predictive is not offered)")

    def pbpk_parameter_draws(self, n_cycles: int | None = None) -> list[dict[str, np.ndarray]]:
        """PBPK twin: the full parameter set (model units) per draw for every future cycle,
        with drift — what a planner needs. List over future cycles of name -> (n_draws,); the
        same draws and drift as :meth:`predict` (seeded by the twin's seed and cycle count)."""
        if not self.is_pbpk:
            raise InputError("Twin.pbpk_parameter_draws: not a PBPK twin (model='reduced')")
        self._need_pbpk_fit("pbpk_parameter_draws")
        n = self.cycles_remaining if n_cycles is None else int(n_cycles)
        paths, _ = parameter_paths(self.nuts_posterior, self.drift_forward, self.n_draws,
                                   max(n, 1), (self.seed, len(self.cycles)))
        k = len(self.cycles)
        return [{name: v[:, k + j] for name, v in paths.items()} for j in range(n)]

    def _init_linear(self, record: PatientRecord, model="reduced",
                     prior: GaussianPosterior | None = None,
                     n_draws: int = 1000, total_cycles: int = 6, drift: DriftModel | None = None,
                     calibration_sd: float = 0.03, dosimetry: str = "auto", seed: int = 0,
                     audit_path=None, engine: str = "laplace", nuts_options: dict | None = None,
                     _audit: AuditLog | None = None):

        if not isinstance(record, PatientRecord):
            raise InputError(f"record: expected a PatientRecord, got {type(record).__name__}")
        if not (isinstance(n_draws, int) and n_draws >= 20):
            raise InputError(f"n_draws: got {n_draws!r}; expected an integer >= 20")
        if not (isinstance(total_cycles, int) and total_cycles >= 1):
            raise InputError(f"total_cycles: got {total_cycles!r}; expected an integer >= 1")
        if engine not in ("laplace", "nuts"):
            raise InputError(f"engine: got {engine!r}; expected 'laplace' or 'nuts'")
        self.engine = engine
        self.nuts_options = dict(nuts_options or {})
        self.record = record
        self.model, self.model_name = _build_model(model, record)
        self.prior = prior or GaussianPosterior.from_model_priors(self.model)
        self.posterior = self.prior
        self.n_draws = n_draws
        self.total_cycles = total_cycles
        self.drift = drift or DriftModel()
        self.calibration_sd = float(calibration_sd)
        self.dosimetry = dosimetry
        self.seed = int(seed)
        self.cycles: list[CycleData] = []
        #: posterior after each assimilated cycle (given the data up to it), for the delivered
        #: dose (backward sampling); the last one is ``self.posterior``
        self.filtered: list[GaussianPosterior] = []
        self.qa_reports: list[QAReport] = []
        self.targets = dose_targets(self.model.organs)
        self.matrix: DoseMatrix = dose_matrix(self.targets, self.model.organs, record, dosimetry)
        self._z = self.prior.standard_normals(n_draws, self.seed)
        self.audit = _audit if _audit is not None else AuditLog(audit_path)
        if _audit is None:
            self.audit.append("create", self._describe())

    # ------------------------------------------------------------------ state
    def _describe(self) -> dict:
        return {"patient_id": self.record.patient_id, "model": self.model_name,
                "organs": list(self.model.organs), "targets": list(self.targets),
                "n_draws": self.n_draws, "total_cycles": self.total_cycles,
                "drift": self.drift.to_dict(), "calibration_sd": self.calibration_sd,
                "dosimetry": self.matrix.method, "seed": self.seed, "engine": self.engine,
                "kidney_bed_limit_gy": self.record.kidney_bed_limit_gy}

    @property
    def n_assimilated(self) -> int:
        return len(self.cycles)

    @property
    def cycles_remaining(self) -> int:
        return max(self.total_cycles - len(self.cycles), 0)

    def parameter_draws(self) -> dict[str, np.ndarray]:
        """Current posterior draws of the rate constants (1/h), name -> (n_draws,); for the
        PBPK twin, the sampled parameters (NUTS draws, all chains)."""
        if self.is_pbpk:
            self._need_pbpk_fit("parameter_draws")
            return self.nuts_posterior.parameter_draws
        return self.posterior.draws(self._z)

    def default_constraints(self) -> tuple[Constraint, ...]:
        """P(kidney BED > record's limit) <= 5 %, P(red-marrow dose > 2 Gy) <= 5 %."""
        organs = self.pbpk.organs if self.is_pbpk else self.targets
        out = [Constraint("kidneys", "bed", self.record.kidney_bed_limit_gy, 0.05)]
        if "red_marrow" in organs:
            out.append(Constraint.from_limit(dose_limit("red_marrow_dose"), 0.05))
        return tuple(out)

    def response(self, n_cycles: int) -> DoseDraws:
        """Per-draw response of the next ``n_cycles`` cycles, with drift, plus what is delivered.

        The current posterior describes the last imaged cycle (or, before any imaging, cycle 1):
        future cycle c is c (+1 after imaging) drift steps away. Drift steps are drawn per draw
        with a seed fixed by the twin's seed and the number of assimilated cycles.
        """
        if self.is_pbpk:
            raise InputError("Twin.response: the PBPK twin has no linear response; use "
                             "twin.predict(...) (delivered: PbpkPrediction.delivered_*)")
        n_cycles = max(int(n_cycles), 1)
        names = self.posterior.names
        base = self.posterior.log_draws(self._z)  # (n_draws, p)
        mu, sd = self.drift.step(names)
        rng = np.random.default_rng([self.seed, 7919, len(self.cycles)])
        steps = rng.standard_normal((n_cycles, self.n_draws, len(names))) * sd + mu
        if not self.cycles:
            steps[0] = 0.0
        log_theta = base[None] + np.cumsum(steps, axis=0)
        params = {n: np.exp(log_theta[..., i]) for i, n in enumerate(names)}
        marrow = future_marrow_tia(self)  # blood-based marrow (None: the model's compartment)
        dose, bed = self.delivered()
        return response_draws(self.model, params, self.matrix, marrow).with_prior(dose, bed)

    @property
    def marrow_method(self) -> str:
        """``"blood"`` (blood samples), ``"image_l2l4"`` (L2–L4 VOI) or ``"image"`` (model)."""
        return marrow_method(self.cycles)

    @property
    def activities_given_mbq(self) -> tuple[float, ...]:
        return tuple(float(c.activity_mbq) for c in self.cycles)

    def delivered(self) -> tuple[np.ndarray, np.ndarray]:
        """Absorbed dose and BED (Gy) delivered so far, per draw and target (n_draws, n_targets).

        Every past cycle is evaluated with its own kinetics, drawn jointly with the current
        posterior's draws given all images (:meth:`past_log_draws`; see module doc).
        """
        if self.is_pbpk:
            raise InputError("Twin.delivered: the PBPK twin has no linear response; use "
                             "twin.predict(...) (delivered: PbpkPrediction.delivered_*)")
        dose = np.zeros((self.n_draws, len(self.targets)))
        bed = np.zeros_like(dose)
        names = self.posterior.names
        for k, (log_theta, cycle) in enumerate(zip(self.past_log_draws(), self.cycles,
                                                   strict=True)):
            params = {n: np.exp(log_theta[:, i]) for i, n in enumerate(names)}
            ev = evaluate(response_draws(self.model, params, self.matrix,
                                         marrow_tia_per_mbq=cycle_marrow_tia(self, k)),
                          [cycle.activity_mbq], constraints=())
            dose += ev.cumulative_dose_gy
            bed += ev.cumulative_bed_gy
        return dose, bed

    def past_log_draws(self) -> list[np.ndarray]:
        """log θ (n_draws, p) of every assimilated cycle, cycle 1 first, jointly with the current
        posterior's draws (the last entry) given all data: backward sampling through the drift
        model (:func:`tdt.twin._assimilate.backward_sample`). Deterministic (seeded by the
        twin's seed). A twin without per-cycle posteriors (``filtered``; files written before
        format 2) uses the current posterior's draws for every past cycle, as before."""
        if self.is_pbpk:
            raise InputError("Twin.past_log_draws: the PBPK twin has no linear response; use "
                             "twin.predict(...) (delivered: PbpkPrediction.delivered_*)")
        last = self.posterior.log_draws(self._z)
        if len(self.filtered) != len(self.cycles):
            return [last] * len(self.cycles)
        return backward_sample(self.filtered, self.drift, last, (self.seed, 104729))

    # ------------------------------------------------------------------ assimilate
    def assimilate(self, cycle: CycleData) -> QAReport:
        """Update the posterior with one cycle's imaging; return (and log) the QA report."""
        if not isinstance(cycle, CycleData):
            raise InputError(f"cycle: expected a CycleData, got {type(cycle).__name__}")
        if self.cycles_remaining == 0:
            raise InputError(f"cycle: all {self.total_cycles} cycles are already assimilated")
        if self.is_pbpk:
            return pbpk_assimilate(self, cycle)
        prior = self.posterior if not self.cycles else self.posterior.drifted(self.drift)
        if self.engine == "nuts":
            posterior = assimilate_nuts(self.model, prior, cycle, self.calibration_sd,
                                        **self.nuts_options)
        else:
            posterior = assimilate_laplace(self.model, prior, cycle, self.calibration_sd)
        draws = posterior.draws(self._z)
        response = response_draws(self.model, draws, self.matrix)
        delivered = evaluate(response, [cycle.activity_mbq], constraints=())
        extrapolated = {}
        for organ, (t, _) in cycle.measurements.items():
            extrapolated[organ] = float(np.median(
                tia_fraction_after(self.model, draws, organ, float(t[-1]))))
        z_scores = posterior_predictive_z(self.model, posterior, cycle, self._z[:400],
                                          self.calibration_sd)
        report = build_report(len(self.cycles) + 1, cycle, posterior.diagnostics, extrapolated,
                              z_scores, {"model": self.model_name, "engine": posterior.method,
                                         "dosimetry": self.matrix.method},
                              nuclide=self.record.nuclide)
        # commit the update only once everything above succeeded
        self.posterior = posterior
        self.filtered.append(posterior)
        self.cycles.append(cycle)
        self.qa_reports.append(report)
        self.audit.append("assimilate", {
            "cycle": len(self.cycles), "data_sha256": cycle.sha256(),
            "activity_mbq": cycle.activity_mbq, "qa": report.to_dict(),
            "posterior": {"method": posterior.method, "mean_log": posterior.mean,
                          "sd_log": posterior.sd_log, "diagnostics": posterior.diagnostics},
            "delivered_cycle": {o: _stats(delivered.cumulative_dose_gy[:, j])
                                for j, o in enumerate(self.targets)},
        })
        return report

    # ------------------------------------------------------------------ predict / plan
    def predict(self, schedule, tcp: TcpModel | None = None) -> Prediction:
        """Posterior predictive for proposed future activities (MBq list or pbpk Schedule).

        PBPK twin: a :class:`~tdt.twin._pbpk_twin.PbpkPrediction` (per-draw dose/BED of every
        past and future cycle, re-simulated with drift); a Schedule's ligand amounts are used,
        a list gets the twin's ``ligand_nmol``; ``tcp`` is not used."""
        if self.is_pbpk:
            self._need_pbpk_fit("predict")
            ligand = (np.asarray(schedule.ligand_nmol, dtype=float)
                      if hasattr(schedule, "ligand_nmol") else None)
            x = activities_from(schedule)
            if ligand is None or not np.all(ligand > 0):
                ligand = np.full(len(x), self.ligand_nmol)
            return predict_pbpk(self, list(x), list(ligand))
        x = activities_from(schedule)
        return predict_schedule(self.response(len(x)), x, tcp)

    def plan(self, objective: str = "tumour_bed", constraints: Sequence[Constraint] | None = None,
             policy: Policy | None = None, n_cycles: int | None = None, method: str = "uniform",
             tcp: TcpModel | None = None, **ligand_options) -> Plan | LigandPlan:
        """Activities for the remaining cycles (see :func:`tdt.twin.plan`); audited. The PBPK
        twin plans activity *and* ligand amount (:mod:`tdt.twin._pbpk_plan`): the same in every
        cycle (``method="uniform"``) or per cycle (``"gradient"``); ``ligand_options`` (PBPK
        twin only) go to its planners (bounds, ``max_evaluations``, ``n_nodes``, ...)."""
        if self.is_pbpk:
            self._need_pbpk_fit("plan")
            if policy is not None:
                raise InputError(f"Twin.plan: policy={policy!r}; the PBPK twin takes its "
                                 "bounds as activity_bounds_mbq / ligand_bounds_nmol")
            result = plan_pbpk(self, objective, constraints, n_cycles, tcp, method,
                               **ligand_options)
        else:
            if ligand_options:
                raise InputError(f"Twin.plan: {sorted(ligand_options)} apply to the PBPK twin "
                                 "only (activity and ligand planning)")
            n = self.cycles_remaining if n_cycles is None else int(n_cycles)
            constraints = (self.default_constraints() if constraints is None
                           else tuple(constraints))
            result = plan(self.response(max(n, 1)), n, objective, constraints, policy, method,
                          tcp)
        unreliable = [r.cycle for r in self.qa_reports if r.check("fit").status == "fail"]
        payload = result.to_dict() | {"cycles_assimilated": len(self.cycles),
                                      "unreliable_fits": unreliable}
        self.audit.append("plan", payload)
        return result

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the twin to ``path`` (versioned zip, see :mod:`tdt.twin._twin_file`; the PBPK
        twin stores its NUTS posterior, :mod:`tdt.twin._pbpk_twin_file`)."""
        if type(self) is not Twin:
            raise InputError(f"Twin.save: a {type(self).__name__} (pre-therapy PET twin) "
                             "cannot be saved yet; twin.nuts_posterior.to_netcdf(path) can")
        file_mac = save_twin(self, path)
        self.audit.append("save", {"path_name": str(path).rsplit("/", 1)[-1],
                                   "file_mac": file_mac})

    @classmethod
    def load(cls, path, allow_unsigned: bool = False) -> Twin:
        """Read a twin written by :meth:`save`; newer, edited (HMAC mismatch), unsigned (unless
        ``allow_unsigned``) or corrupted files raise InputError naming the file."""
        return load_twin(path, cls, allow_unsigned=allow_unsigned)


def _stats(values: np.ndarray) -> dict:
    return {"median": float(np.median(values)), "q05": float(np.quantile(values, 0.05)),
            "q95": float(np.quantile(values, 0.95))}
