"""Strong peer (issue 21): nutpie on a *native* PyMC model of the reduced linear kinetic model,
side by side with tdt's ``fit_patient`` in one run.

Today's baselines in bench_inference.py (SciPy ``odeint`` Op + DEMetropolisZ, ``pm.ode``) are
the weakest a PyMC user would pick. The strongest: write the model in PyTensor, with the exact
bolus solution of the linear model, and sample it with nutpie (Rust NUTS) on the log-density
PyTensor compiles with numba (``nutpie.compile_pymc_model(model)``, its default backend).

The native model (:func:`native_model`) is tdt's own PyMC model of one patient
(:func:`tdt.inference._pymc_models.build_patient_model`: the TwinModel's non-centred prior
``log θ = prior_loc + prior_chol z``, calibration per session, recovery of small VOIs,
lognormal noise with a lognormal SD) with the forward model replaced by
:func:`native_forward` — so priors, measurement model and data are identical by construction;
only the solver and the sampler differ. :func:`native_forward` is the eigen-solution of the
mammillary generator written in PyTensor (Jacquez, Compartmental Analysis in Biology and
Medicine, 3rd ed. 1996, ch. 5; the same mathematics as :func:`tdt.pbpk.bolus_response`, whose
JAX code numba cannot compile): the plasma+organ block M of the generator is symmetrised by
D = diag(1, √(k_in,o/k_out,o)), S = D⁻¹ M D = U diag(w) Uᵀ, and a bolus of A MBq into plasma at
t_a gives x_o(t) = A Σ_k D_o U_ok U_0k e^{w_k (t − t_a)} MBq, TIA_o = A Σ_k D_o U_ok U_0k / (−w_k)
MBq·h. It is a second implementation on purpose (the peer must not call tdt's JAX code); the test
tests/inference/test_native_pymc_reduced.py checks it against tdt's matrix-exponential path.

``pytensor.tensor.nlinalg.eigh`` has a numba implementation but its gradient Op (``EighGrad``)
does not, so numba would run it in object mode (a Python call per gradient). :class:`_Eigh`
gives it the same gradient as a graph of ordinary tensor ops (the perturbation formula of
``EighGrad``), which numba compiles — what a PyMC user tuning for speed would do.

Rows, one run each (the 2-core machine is shared: the 1-minute load average is noted with each
row, and ratios are from this one run): tdt ``fit_patient`` (default backend, blackjax), nutpie
numba on the native model (nutpie's defaults and its low-rank mass matrix), nutpie's JAX backend
on tdt's JAX-wrapped model (``fit_patient(sampler="nutpie")``), and the PBPK fit
(``fit_patient(model=pbpk_model(...))``, psma617) when ``TDT_BENCH_NUTPIE_PBPK=1``.
``python -m benchmarks nutpie`` (``--quick``: 4 x (200 + 200)).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

#: Variables whose min bulk ESS is reported (those of tdt's convergence gate in a patient fit).
ESS_VARIABLES = ("z", "log_calibration", "log_recovery", "noise_sd", "tia_mbq_h")


def _eigh_op():
    """``eigh`` whose gradient is a PyTensor graph (numba-compilable), see module docstring."""
    import pytensor.tensor as pt
    from pytensor.tensor.nlinalg import Eigh

    class _Eigh(Eigh):
        def L_op(self, inputs, outputs, output_grads):
            # EighGrad.perform as tensor ops: g = V (diag(gw) + K) Vᵀ with
            # K[n, m] = (gvᵀ V)[n, m] / (w_n − w_m) (m ≠ n), then the 'L' triangle rule.
            w, v = outputs
            gw, gv = (_connected(o, g) for o, g in zip(outputs, output_grads, strict=True))
            n = w.shape[0]
            eye = pt.eye(n)
            diff = w[None, :] - w[:, None]  # [n, m] = w_m − w_n
            inverse = (1.0 - eye) / (-diff + eye)  # 1 / (w_n − w_m), 0 on the diagonal
            k = pt.dot(gv.T, v) * inverse
            g = pt.dot(pt.dot(v, pt.diag(gw) + k), v.T)
            return [pt.tril(g) + pt.triu(g, 1).T]

    return _Eigh()


def _connected(output, grad):
    from pytensor.gradient import DisconnectedType

    return output.zeros_like() if isinstance(grad.type, DisconnectedType) else grad


def native_forward(twin, data, schedule):
    """PyTensor callable ``log_theta -> (log_pred (n_obs,), tia (n_organs,) MBq·h, ok)`` of the
    reduced linear model for a schedule of boluses (the contract of
    :func:`tdt.inference._bridge.forward_function`; observations organ-major as
    :meth:`PatientData.flat`). Exact eigen-solution, see module docstring."""
    import pytensor.tensor as pt

    forward = twin.forward
    if getattr(forward, "kind", None) != "reduced_linear":
        raise ValueError(f"native_forward: model kind {getattr(forward, 'kind', None)!r}; "
                         "expected the reduced linear model")
    infusion = np.asarray(schedule.infusion_h, dtype=float)
    if np.any(infusion > 0):
        raise ValueError("native_forward: infusions are not handled; expected boluses only")
    lam = float(forward.decay_constant_per_h)
    organs = tuple(forward.organs)
    flat = data.flat()
    rows = np.asarray([organs.index(o) + 1 for o in data.organ_names])  # +1: plasma is row 0
    obs_rows = rows[flat["organ_index"]]
    admin_t = np.asarray(schedule.time_h, dtype=float)
    admin_a = np.asarray(schedule.activity_mbq, dtype=float)
    tau = np.asarray(data.times_h, dtype=float)[None, :] - admin_t[:, None]  # (n_admin, n_t)
    after = (tau >= 0).astype(float)
    safe_tau = np.where(tau >= 0, tau, 0.0)
    time_idx = flat["time_index"]
    eigh = _eigh_op()

    def fn(log_theta):
        def log_rate(name):
            if name in twin.sampled:
                return log_theta[twin.sampled.index(name)]
            return pt.as_tensor_variable(np.log(float(twin.fixed[name])))

        log_in = pt.stack([log_rate(f"k_in_{o}") for o in organs])
        log_out = pt.stack([log_rate(f"k_out_{o}") for o in organs])
        diag = pt.concatenate([
            pt.stack([-(pt.sum(pt.exp(log_in)) + pt.exp(log_rate("k_urine")))]),
            -pt.exp(log_out)]) - lam
        link = pt.exp(0.5 * (log_in + log_out))  # √(k_in k_out)
        n = len(organs) + 1
        s = pt.zeros((n, n))
        s = pt.set_subtensor(s[0, 1:], link)
        s = pt.set_subtensor(s[1:, 0], link)
        s = s + pt.diag(diag)
        w, u = eigh(s)
        rates = -w  # 1/h, >= λ
        d = pt.concatenate([pt.ones(1), pt.exp(0.5 * (log_in - log_out))])
        amp = d[:, None] * u * u[0][None, :]  # (n, K) MBq per MBq
        # Σ_a A_a e^{−r_k (t − t_a)} for t >= t_a: (n_t, K)
        unit = pt.sum(admin_a[:, None, None] * after[:, :, None]
                      * pt.exp(-rates[None, None, :] * safe_tau[:, :, None]), axis=0)
        pred = pt.sum(amp[obs_rows] * unit[time_idx], axis=1)
        tia = float(admin_a.sum()) * pt.dot(amp[rows], 1.0 / rates)
        positive = pt.gt(pred, 0)
        finite = ~(pt.any(pt.isnan(pred)) | pt.any(pt.isinf(pred))
                   | pt.any(pt.isnan(tia)) | pt.any(pt.isinf(tia)))
        ok = pt.all(positive) & finite
        log_pred = pt.log(pt.switch(positive, pred, 1.0))
        return log_pred, tia, ok

    return fn


def native_model(twin, data, measurement=None, schedule=None):
    """tdt's PyMC patient model with :func:`native_forward` as the forward model."""
    from tdt.inference import MeasurementModel
    from tdt.inference._pymc_models import build_patient_model

    measurement = measurement or MeasurementModel()
    schedule = data.resolve_schedule() if schedule is None else schedule
    return build_patient_model(data, twin, measurement, schedule,
                               forward=native_forward(twin, data, schedule))


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 1)
    except OSError:
        return float("nan")


def _row(case: str, idata, wall_s: float, load, extra: str = "", compile_s=None) -> dict:
    from tdt.inference import compute_diagnostics

    d = compute_diagnostics(idata, ESS_VARIABLES, sampling_time_s=wall_s)
    steps = None
    stats = getattr(idata, "sample_stats", None)
    for name in ("n_steps", "n_steps_total"):
        if stats is not None and name in stats:
            steps = float(np.asarray(stats[name]).mean())
            break
    sampling_s = wall_s - compile_s if compile_s is not None else None
    return {"case": case, "wall_s": wall_s, "compile_s": compile_s,
            "min_ess_bulk": d.min_ess_bulk, "min_ess_per_s": d.min_ess_per_s,
            "sampling_ess_per_s": d.min_ess_bulk / sampling_s if sampling_s else None,
            "max_rhat": d.max_rhat, "divergences": d.divergences, "steps_per_draw": steps,
            "load_before_after": load, "diagnostics": str(d), "extra": extra}


class _JaxCompileTimer:
    """Wall time inside the block spent in JAX's tracing, lowering and XLA compilation: the
    union of the time spans of JAX's own compile events (``jax.monitoring``; a union, because
    the trace of an inner ``jit`` nests inside the trace of the outer one)."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
              "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        self.spans: list[tuple[float, float]] = []

    def _listen(self, event, start, end, **_kwargs):
        if event in self.EVENTS:
            self.spans.append((float(start), float(end)))

    @property
    def seconds(self) -> float:
        total, last_end = 0.0, -np.inf
        for start, end in sorted(self.spans):
            if end > last_end:
                total += end - max(start, last_end)
                last_end = end
        return total

    def __enter__(self):
        import jax.monitoring

        jax.monitoring.register_event_time_span_listener(self._listen)
        return self

    def __exit__(self, *exc):
        import jax.monitoring

        jax.monitoring.unregister_event_time_span_listener(self._listen)


def run_tdt(twin, data, draws, tune, chains, sampler=None, model=None) -> dict:
    """``fit_patient`` (default backend unless ``sampler``); wall = its sampling time
    (``run_sampler``: JAX tracing and compilation included, PyMC model building not, like
    bench_inference.py); compile = the JAX compile events inside it."""
    from tdt.inference import fit_patient

    load0 = _load()
    with _JaxCompileTimer() as timer:
        post = fit_patient(data, model=model or twin, draws=draws, tune=tune, chains=chains,
                           seed=0, sampler=sampler)
    label = sampler or "default (blackjax)"
    return _row(f"tdt fit_patient, {label}", post.idata, post.diagnostics.sampling_time_s,
                (load0, _load()), compile_s=timer.seconds)


def run_nutpie_native(twin, data, draws, tune, chains, low_rank: bool = False) -> dict:
    """nutpie (numba backend) on :func:`native_model`; wall = numba compile + sampling (the
    PyMC model is built before the clock starts, as in ``fit_patient``'s timing)."""
    import nutpie

    load0 = _load()
    model = native_model(twin, data)
    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    compile_s = time.perf_counter() - start
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=0,
                          progress_bar=False, low_rank_modified_mass_matrix=low_rank)
    wall = time.perf_counter() - start
    label = "low-rank mass matrix" if low_rank else "defaults (diag, grad-based)"
    return _row(f"nutpie numba, native PyMC model, {label}", idata, wall, (load0, _load()),
                compile_s=compile_s)


def _note(r: dict) -> str:
    compile_part = ""
    if r["compile_s"] is not None:
        compile_part = (f" (compile {r['compile_s']:.1f} s; sampling-only min ESS/s "
                        f"{r['sampling_ess_per_s']:.0f})")
    steps = f"; {r['steps_per_draw']:.1f} steps/draw" if r["steps_per_draw"] else ""
    return (f"wall {r['wall_s']:.1f} s{compile_part}; min ESS {r['min_ess_bulk']:.0f}; "
            f"R-hat {r['max_rhat']:.4f}; {r['divergences']} div{steps}; "
            f"load {r['load_before_after']}")


def _as_bench_rows(rows: list[dict], reference: dict) -> list[dict]:
    """Rows for the benchmarks runner: ``tdt`` = tdt's min ESS/s, ``baseline`` = the peer's
    (wall time, compilation included); ratio = tdt / peer (>= 1: tdt at least as fast)."""
    return [{"case": r["case"], "tdt": reference["min_ess_per_s"],
             "baseline": r["min_ess_per_s"], "unit": "ESS/s",
             "ratio": (reference["min_ess_per_s"] / r["min_ess_per_s"]
                       if r["min_ess_per_s"] else None),
             "target": ">= 1", "note": _note(r), "detail": r} for r in rows]


def _own_row(r: dict, target: str) -> dict:
    return {"case": r["case"], "tdt": r["min_ess_per_s"], "baseline": None, "unit": "ESS/s",
            "target": target, "note": _note(r), "detail": r}


def run(quick: bool = False) -> list[dict]:
    import shutil
    import tempfile

    import jax

    # A fresh JAX persistent compilation cache for this run (reset so that it applies even
    # after earlier compiles in this process): the first tdt fit compiles cold, the "warm
    # cache" row repeats it. Restored afterwards (other benchmarks in the process are
    # unaffected).
    from jax.experimental.compilation_cache.compilation_cache import reset_cache

    options = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
               "jax_persistent_cache_min_entry_size_bytes")
    saved = {o: getattr(jax.config, o) for o in options}
    cache = tempfile.mkdtemp(prefix="tdt-bench-nutpie-jax-")
    for option, value in zip(options, (cache, 0.0, -1), strict=True):
        jax.config.update(option, value)
    reset_cache()
    try:
        return _run(quick)
    finally:
        for option, value in saved.items():
            jax.config.update(option, value)
        reset_cache()
        shutil.rmtree(cache, ignore_errors=True)


def _run(quick: bool) -> list[dict]:
    from benchmarks.bench_inference import _standard

    twin, data = _standard()
    n = 200 if quick else 1000
    chains = 4
    reference = run_tdt(twin, data, n, n, chains)
    warm = run_tdt(twin, data, n, n, chains)
    warm["case"] = "tdt fit_patient, default, warm JAX compilation cache"
    peers = [run_nutpie_native(twin, data, n, n, chains),
             run_nutpie_native(twin, data, n, n, chains, low_rank=True)]
    try:
        peers.append(run_tdt(twin, data, n, n, chains, sampler="nutpie"))
        peers[-1]["case"] = "nutpie JAX backend on tdt's wrap_jax model"
    except Exception as exc:  # report, do not hide
        print(f"nutpie JAX backend failed: {type(exc).__name__}: {exc}")
    rows = [_own_row(reference, "reference (cold JAX compile)"),
            _own_row(warm, "same fit, compiled programs from the persistent cache"),
            *_as_bench_rows(peers, reference)]
    if os.environ.get("TDT_BENCH_NUTPIE_PBPK") == "1":
        from tdt.inference import pbpk_model

        lesions = tuple(o for o in data.organ_names if o.startswith("lesion"))
        organs = tuple(o for o in data.organ_names if not o.startswith("lesion"))
        m = 10 if quick else 1000
        pbpk = run_tdt(twin, data, m, m, chains,
                       model=pbpk_model(organs=organs, lesions=lesions))
        pbpk["case"] = "PBPK psma617, tdt fit_patient (default backend)"
        rows.append(_own_row(pbpk, "reported next to the reduced model"))
    return rows
