"""Reduced linear compartment model: first-order exchange plasma <-> organs, renal excretion, decay.

For data that cannot identify the full PBPK model (a few SPECT time points per organ), each organ
exchanges with plasma by first-order rates and plasma is cleared to urine:

    dP/dt  = -(Σ_o k_in_o + k_urine) P + Σ_o k_out_o O_o + u(t) - λ P
    dO_o/dt = k_in_o P - k_out_o O_o - λ O_o
    dU/dt  = k_urine P - λ U

(P plasma, O_o organ o, U urine, all activities in MBq; λ the physical decay constant, 1/h;
u(t) the infusion input). This is linear, so it is solved *exactly*: on each interval between
schedule events x(t+τ) = expm(G τ) x(t), and the time integral of the state comes from the same
propagator, ∫_0^τ x = G⁻¹ (x(t+τ) − x(t)) — the closed form of the augmented-state integral
(Van Loan, IEEE Trans Autom Control 1978;23:395) with no quadrature error. After the last event
the TIA to infinity is exact too: ∫_t^∞ x = −G⁻¹ x(t), G being invertible because every
eigenvalue has real part <= −λ < 0.

Infusions: an infusion of activity A over T hours moves molecules into plasma at a constant rate;
the infusion line ("syringe", s) holds activity that decays. Two extra linear states make this
exact: the activity-rate r with dr/dt = -λ r, r(t0) = A/T, and ds/dt = -r - λ s, s(t0) = A, so that
s(t0 + T) = 0 exactly (s(t) = A e^{-λτ}(1 - τ/T)). At the end event both are reset to zero
(removing round-off only).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm

from tdt.errors import InputError
from tdt.pbpk.organs import is_lesion, validate_organs
from tdt.pbpk.parameters import ParameterSpec, load_table
from tdt.pbpk.schedule import Schedule
from tdt.pbpk.simulation import Simulation
from tdt.pbpk.validation import check_params, check_times
from tdt.physics import nuclide as _nuclide

__all__ = ["LinearModel", "reduced_linear", "solve_piecewise_linear"]

#: Scaling-and-squaring limit of expm: ||A τ||_1 up to 5.37 · 2^30 (τ up to 10^5 h at rates ~900/h).
_MAX_SQUARINGS = 24

DEFAULT_ORGANS = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow", "remainder")


def solve_piecewise_linear(generator, plasma_index: int, schedule: Schedule, times_h):
    """Exact solution of ``dx/dt = G x + inputs`` for a schedule of boluses / infusions.

    ``generator`` G is (n, n) with the last two states being the infusion line (s, index n-2) and
    the infusion activity rate (r, index n-1), already wired (G[plasma, r] = 1, G[s, r] = -1,
    G[r, r] = G[s, s] = -λ). G must be invertible (it is when every state decays).

    Between events x(t_e + τ) = expm(G τ) x(t_e) and the time integral of the state follows
    exactly from the same propagator: ∫_0^τ x(t_e + σ) dσ = G⁻¹ (x(t_e + τ) - x(t_e)) (integrate
    dx/dt = G x); after the last event ∫_0^∞ = -G⁻¹ x(t_e). This is the closed form of the
    augmented-state (Van Loan 1978) integral, at the cost of an n×n instead of a 2n×2n matrix
    exponential. One batched ``expm`` call serves every interval and every output time.

    Returns a dict with the state ``x`` (n_times, n), its running integral ``integral``
    (n_times, n), the integral at each administration start ``integral_at_admin`` (n_admin, n)
    and to infinity ``integral_inf`` (n,).
    """
    n = generator.shape[0]
    s_index, r_index = n - 2, n - 1
    n_admin = schedule.time_h.shape[0]
    starts = schedule.time_h
    ends = schedule.time_h + schedule.infusion_h
    previous_end = jnp.concatenate([starts[:1], ends[:-1]])
    event_times = jnp.stack([starts, ends], axis=1).reshape(-1)

    # output times: the last event at or before t (side="right": a bolus given at t is included)
    index = jnp.searchsorted(event_times, times_h, side="right") - 1
    safe_index = jnp.clip(index, 0, event_times.shape[0] - 1)
    tau_out = jnp.where(index >= 0, times_h - event_times[safe_index], 0.0)

    # interval lengths: previous event -> start k, start k -> end k; then the output offsets
    gaps = jnp.stack([starts - previous_end, schedule.infusion_h], axis=1).reshape(-1)
    taus = jnp.concatenate([gaps, tau_out])
    propagators = expm(generator[None] * taus[:, None, None], max_squarings=_MAX_SQUARINGS)
    phi_events = propagators[: 2 * n_admin].reshape(n_admin, 2, n, n)
    phi_out = propagators[2 * n_admin:]

    def integral(x_from, x_to):
        return jnp.linalg.solve(generator, x_to - x_from)

    is_bolus = schedule.infusion_h <= 0.0
    safe_duration = jnp.where(is_bolus, 1.0, schedule.infusion_h)

    def step(carry, inputs):
        x, running = carry
        phi, activity, bolus, duration = inputs
        x_new = phi[0] @ x
        running = running + integral(x, x_new)
        x_new = x_new.at[plasma_index].add(jnp.where(bolus, activity, 0.0))
        x_new = x_new.at[s_index].add(jnp.where(bolus, 0.0, activity))
        x_new = x_new.at[r_index].add(jnp.where(bolus, 0.0, activity / duration))
        start_state = (x_new, running)
        x_end = phi[1] @ x_new
        running = running + integral(x_new, x_end)
        x_end = x_end.at[s_index].set(0.0).at[r_index].set(0.0)
        return (x_end, running), (start_state, (x_end, running))

    zeros = jnp.zeros(n, dtype=generator.dtype)
    (x_last, running_last), (start_states, end_states) = jax.lax.scan(
        step, (zeros, zeros), (phi_events, schedule.activity_mbq, is_bolus, safe_duration))
    x_events = jnp.stack([start_states[0], end_states[0]], axis=1).reshape(-1, n)
    i_events = jnp.stack([start_states[1], end_states[1]], axis=1).reshape(-1, n)

    x_from = x_events[safe_index]
    x_t = jnp.einsum("tij,tj->ti", phi_out, x_from)
    i_t = i_events[safe_index] + jax.vmap(integral)(x_from, x_t)
    before = (index < 0)[:, None]
    return {
        "x": jnp.where(before, 0.0, x_t),
        "integral": jnp.where(before, 0.0, i_t),
        "integral_at_admin": start_states[1],
        "integral_inf": running_last - jnp.linalg.solve(generator, x_last),
    }


class LinearModel:
    """Reduced linear model (see module docstring). Build it with :func:`reduced_linear`.

    Attributes: ``organs`` (tuple), ``compartments`` (``("plasma", *organs, "urine")``),
    ``nuclide`` (name), ``decay_constant_per_h`` (λ, 1/h), ``parameter_names``.
    """

    kind = "reduced_linear"

    def __init__(self, organs: tuple[str, ...], nuclide: str, table: dict[str, ParameterSpec],
                 dataset: str):
        self.organs = organs
        self.compartments = ("plasma", *organs, "urine")
        self.nuclide = _nuclide(nuclide).name
        self.decay_constant_per_h = _nuclide(nuclide).decay_constant_per_h
        self.dataset = dataset
        names = ["k_urine"]
        for organ in organs:
            names += [f"k_in_{organ}", f"k_out_{organ}"]
        self.parameter_names: tuple[str, ...] = tuple(names)
        self._specs = {name: table[_template(name)] for name in names}
        self._jitted = jax.jit(self._solve)

    def __repr__(self) -> str:
        return f"LinearModel(organs={self.organs!r}, nuclide={self.nuclide!r})"

    # -- parameters as data --------------------------------------------------------------------
    def default_params(self) -> dict[str, float]:
        """Default rate constants (1/h) from the catalog table (sources: :meth:`sources`)."""
        return {name: self._specs[name].value for name in self.parameter_names}

    def parameter_bounds(self) -> dict[str, tuple[float, float]]:
        """Admissible range (lo, hi) of each parameter (1/h)."""
        return {name: self._specs[name].bounds for name in self.parameter_names}

    def priors(self) -> dict[str, tuple[float, float]]:
        """Lognormal population priors: name -> (median, sd of the natural log)."""
        return {name: (self._specs[name].value, self._specs[name].prior_sd_log)
                for name in self.parameter_names}

    def sources(self) -> dict[str, str]:
        """Citation / derivation of each default value."""
        return {name: self._specs[name].source for name in self.parameter_names}

    # -- the model -----------------------------------------------------------------------------
    def generator(self, params: dict) -> jax.Array:
        """Generator G (n, n), n = n_compartments + 2 (infusion line, infusion rate), 1/h."""
        n_c = len(self.compartments)
        n = n_c + 2
        lam = self.decay_constant_per_h
        g = jnp.zeros((n, n))
        for i, organ in enumerate(self.organs, start=1):
            k_in, k_out = params[f"k_in_{organ}"], params[f"k_out_{organ}"]
            g = g.at[i, 0].add(k_in).at[0, 0].add(-k_in)
            g = g.at[0, i].add(k_out).at[i, i].add(-k_out)
        urine = n_c - 1
        g = g.at[urine, 0].add(params["k_urine"]).at[0, 0].add(-params["k_urine"])
        g = g.at[0, n - 1].set(1.0).at[n - 2, n - 1].set(-1.0)
        return g - lam * jnp.eye(n)

    def _solve(self, params: dict, schedule: Schedule, times_h) -> Simulation:
        generator = self.generator(params)
        out = solve_piecewise_linear(generator, 0, schedule, times_h)
        n_c = len(self.compartments)
        x, integral = out["x"], out["integral"]
        at_admin = out["integral_at_admin"]
        windows = jnp.diff(jnp.concatenate([at_admin, out["integral_inf"][None]], axis=0), axis=0)
        lam = self.decay_constant_per_h
        decayed = lam * jnp.sum(integral[:, : n_c + 1], axis=1)  # compartments + infusion line
        administered = jnp.sum(
            jnp.where(times_h[:, None] >= schedule.time_h[None, :], schedule.activity_mbq, 0.0),
            axis=1)
        ok = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(out["integral_inf"]))
        return Simulation(
            times_h=times_h,
            activity_mbq={c: x[:, i] for i, c in enumerate(self.compartments)},
            tia_mbq_h={c: out["integral_inf"][i] for i, c in enumerate(self.compartments)},
            tia_by_administration_mbq_h={c: windows[:, i] for i, c in enumerate(self.compartments)},
            decayed_mbq=decayed,
            administered_mbq=administered,
            in_syringe_mbq=x[:, n_c],
            ok=ok,
            result_code=jnp.where(ok, 0, -1),
            compartments=self.compartments,
        )

    def simulate(self, params: dict, schedule: Schedule, times_h) -> Simulation:
        """Activities (MBq) at ``times_h`` (h) and TIAs (MBq·h, to infinity) for ``schedule``.

        ``params``: dict name -> rate (1/h), exactly :attr:`parameter_names`; values may be traced
        (jit/vmap/grad). Exact solution (matrix exponential), see the module docstring.
        """
        if not isinstance(schedule, Schedule):
            raise InputError(f"schedule: expected a tdt.pbpk.Schedule, got "
                             f"{type(schedule).__name__}")
        checked = check_params(params, self.parameter_names, model="reduced_linear")
        return self._jitted(checked, schedule, check_times(times_h))


def _template(name: str) -> str:
    """``k_in_lesion_3`` -> ``k_in_lesion`` (every lesion shares the table's lesion template)."""
    for prefix in ("k_in_", "k_out_"):
        if name.startswith(prefix) and is_lesion(name[len(prefix):]):
            return prefix + "lesion"
    return name


def reduced_linear(organs: Iterable[str] = DEFAULT_ORGANS, nuclide: str = "Lu-177",
                   lesions: int | Iterable[str] = 0,
                   dataset: str = "pbpk_reduced_linear_psma617") -> LinearModel:
    """Build the reduced linear model for ``organs`` (+ ``lesions``) and ``nuclide``.

    ``organs``: canonical names (kidneys, salivary_glands, liver, spleen, gi, red_marrow, muscle,
    remainder, lesion_<n>); ``plasma`` and ``urine`` are always present. ``lesions``: a count or
    names added after ``organs``. ``dataset``: catalog entry with the default rates and priors
    (177Lu-PSMA-617 by default).
    """
    from tdt.pbpk.organs import lesion_names

    names = validate_organs(tuple(organs) if not isinstance(organs, str) else (organs,))
    extra = tuple(n for n in lesion_names(lesions) if n not in names)
    return _cached_model(names + extra, _nuclide(nuclide).name, dataset)


@functools.lru_cache(maxsize=64)
def _cached_model(names: tuple[str, ...], nuclide: str, dataset: str) -> LinearModel:
    """One model object (and so one jit cache) per configuration."""
    table, _ = load_table(dataset)
    for name in names:
        for prefix in ("k_in_", "k_out_"):
            if _template(prefix + name) not in table:
                raise InputError(f"organs: {name!r} has no default parameters in dataset "
                                 f"{dataset!r}")
    return LinearModel(names, nuclide, table, dataset)

