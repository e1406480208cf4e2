"""Reduced linear compartment model: first-order exchange plasma <-> organs, renal excretion, decay.

For data that cannot identify the full PBPK model (a few SPECT time points per organ), each organ
exchanges with plasma by first-order rates and plasma is cleared to urine:

    dP/dt  = -(Σ_o k_in_o + k_urine) P + Σ_o k_out_o O_o + u(t) - λ P
    dO_o/dt = k_in_o P - k_out_o O_o - λ O_o
    dU/dt  = k_urine P - λ U

(P plasma, O_o organ o, U urine, all activities in MBq; λ the physical decay constant, 1/h;
u(t) the infusion input). This is linear, so it is solved *exactly* by the package's one linear
solver, :mod:`tdt.pbpk._linear_solve` (piecewise matrix exponential for any schedule; the
eigen-solution of the mammillary generator for boluses), including the TIA to infinity.

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

from tdt.errors import InputError
from tdt.pbpk._linear_solve import solve_piecewise_linear
from tdt.pbpk._organs import is_lesion_compartment, lesion_names, validate_organs
from tdt.pbpk._parameters import ParameterSpec, load_table
from tdt.pbpk._registry import ModelSpec, all_parameters, register_model
from tdt.pbpk._schedule import Schedule
from tdt.pbpk._simulation import Simulation
from tdt.pbpk._validation import check_params, check_times
from tdt.physics import nuclide as _nuclide

__all__ = ["LinearModel", "reduced_linear"]

DEFAULT_ORGANS = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow", "remainder")


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
        if name.startswith(prefix) and is_lesion_compartment(name[len(prefix):]):
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



SPEC = register_model(ModelSpec(
    key="reduced", radiopharmaceutical="177Lu-PSMA-617", nuclide="Lu-177", kind="reduced_linear",
    factory=reduced_linear, organs=DEFAULT_ORGANS, dataset="pbpk_reduced_linear_psma617",
    identifiable=all_parameters, source_organs=DEFAULT_ORGANS,
    linear_dataset="pbpk_reduced_linear_psma617", aliases=("reduced_linear",),
    citation="Delker A, et al. EJNMMI 2016;43:42; Kratochwil C, et al. J Nucl Med 2016;57:1170 "
             "(data_catalog/pbpk/reduced_linear_psma617.yaml)"))
