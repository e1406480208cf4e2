"""Administration schedules: when, how much activity, how much ligand, how fast.

A :class:`Schedule` is an ordered tuple of :class:`Administration` records. Models integrate
piecewise between the schedule's *events* — the start of each administration and the end of its
infusion (equal to the start for a bolus) — carrying the state across (DESIGN.md, "Numerics").

Units: time h (from an arbitrary origin, usually the first administration), activity MBq (at the
start of the administration), ligand amount nmol (labelled + unlabelled peptide), infusion
duration h (0 = bolus).

``Schedule`` is a JAX pytree whose leaves are the arrays ``time_h``, ``activity_mbq``,
``ligand_nmol`` and ``infusion_h``; the number of administrations is static. So a model can be
jitted with the schedule as an argument, and differentiated with respect to activities or ligand
amounts. Validation (order, signs, overlap) runs when a schedule is built from concrete numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError

__all__ = ["Administration", "Schedule"]


def _check_number(field: str, value, *, minimum: float = 0.0, strict: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{field}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{field}: expected a finite number, got {number!r}")
    if strict and number <= minimum:
        raise InputError(f"{field}: expected a value > {minimum:g}, got {number!r}")
    if number < minimum:
        raise InputError(f"{field}: expected a value >= {minimum:g}, got {number!r}")
    return number


@dataclass(frozen=True)
class Administration:
    """One administration of a radiopharmaceutical.

    Parameters
    ----------
    time_h: start of the administration (h).
    activity_mbq: administered activity at ``time_h`` (MBq), > 0.
    ligand_nmol: total amount of ligand (labelled + unlabelled peptide, nmol), >= 0. Linear models
        ignore it; nonlinear PBPK models use it for receptor saturation (sink effect).
    infusion_h: infusion duration (h); 0 (default) is a bolus. During an infusion the molecules
        enter plasma at a constant rate; the activity still in the syringe decays physically.
    """

    time_h: float
    activity_mbq: float
    ligand_nmol: float = 0.0
    infusion_h: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_h", _check_number("Administration.time_h", self.time_h,
                                                         minimum=-math.inf))
        object.__setattr__(self, "activity_mbq", _check_number(
            "Administration.activity_mbq", self.activity_mbq, strict=True))
        object.__setattr__(self, "ligand_nmol", _check_number(
            "Administration.ligand_nmol", self.ligand_nmol))
        object.__setattr__(self, "infusion_h", _check_number(
            "Administration.infusion_h", self.infusion_h))


@jax.tree_util.register_pytree_node_class
class Schedule:
    """An ordered sequence of administrations (see module docstring).

    ``Schedule([Administration(0, 7400, 150), Administration(1008, 7400, 150)])``. Administrations
    must be in time order and an infusion must end before the next administration starts.
    """

    def __init__(self, administrations: Iterable[Administration]):
        items = list(administrations)
        if not items:
            raise InputError("Schedule.administrations: expected at least one Administration, "
                             "got none")
        for i, item in enumerate(items):
            if not isinstance(item, Administration):
                raise InputError(f"Schedule.administrations[{i}]: expected an Administration, "
                                 f"got {type(item).__name__}")
        for i in range(1, len(items)):
            previous, current = items[i - 1], items[i]
            if current.time_h < previous.time_h:
                raise InputError(
                    f"Schedule.administrations[{i}].time_h: administrations must be in time order; "
                    f"got {current.time_h:g} h after {previous.time_h:g} h")
            if current.time_h < previous.time_h + previous.infusion_h:
                raise InputError(
                    f"Schedule.administrations[{i}].time_h: starts at {current.time_h:g} h, before "
                    f"the infusion of administration {i - 1} ends at "
                    f"{previous.time_h + previous.infusion_h:g} h (overlapping infusions are not "
                    "supported)")
        self.administrations: tuple[Administration, ...] = tuple(items)
        self.time_h = jnp.asarray([a.time_h for a in items], dtype=float)
        self.activity_mbq = jnp.asarray([a.activity_mbq for a in items], dtype=float)
        self.ligand_nmol = jnp.asarray([a.ligand_nmol for a in items], dtype=float)
        self.infusion_h = jnp.asarray([a.infusion_h for a in items], dtype=float)

    # -- construction helpers ------------------------------------------------------------------
    @classmethod
    def repeated(cls, activity_mbq: float | Sequence[float], n_cycles: int, interval_h: float,
                 ligand_nmol: float | Sequence[float] = 0.0, infusion_h: float = 0.0,
                 start_h: float = 0.0) -> Schedule:
        """``n_cycles`` administrations every ``interval_h`` hours starting at ``start_h``.

        ``activity_mbq`` and ``ligand_nmol`` may be a scalar (same every cycle) or one value per
        cycle. Example: ``Schedule.repeated(7400, 6, 6 * 7 * 24, ligand_nmol=150)`` (Pluvicto:
        6 cycles of 7.4 GBq every 6 weeks).
        """
        if isinstance(n_cycles, bool) or not isinstance(n_cycles, (int, np.integer)) or n_cycles < 1:
            raise InputError(f"Schedule.repeated.n_cycles: expected an integer >= 1, got "
                             f"{n_cycles!r}")
        interval = _check_number("Schedule.repeated.interval_h", interval_h,
                                 strict=n_cycles > 1)

        def per_cycle(name: str, value) -> list[float]:
            values = np.atleast_1d(np.asarray(value, dtype=float))
            if values.size == 1:
                return [float(values[0])] * n_cycles
            if values.shape != (n_cycles,):
                raise InputError(f"Schedule.repeated.{name}: expected a scalar or {n_cycles} "
                                 f"values, got shape {values.shape}")
            return [float(v) for v in values]

        activities = per_cycle("activity_mbq", activity_mbq)
        ligands = per_cycle("ligand_nmol", ligand_nmol)
        return cls(Administration(start_h + k * interval, activities[k], ligands[k], infusion_h)
                   for k in range(n_cycles))

    # -- properties ----------------------------------------------------------------------------
    @property
    def n_administrations(self) -> int:
        return int(self.time_h.shape[0])

    def __len__(self) -> int:
        return self.n_administrations

    @property
    def total_activity_mbq(self):
        """Sum of administered activities (MBq)."""
        return jnp.sum(self.activity_mbq)

    def event_times_h(self):
        """Event times (h), shape (2 n,): start_0, end_0, start_1, end_1, ... (end = start + T)."""
        return jnp.stack([self.time_h, self.time_h + self.infusion_h], axis=1).reshape(-1)

    def __repr__(self) -> str:
        return f"Schedule({list(self.administrations)!r})" if self.administrations else (
            f"Schedule(n={self.n_administrations}, traced)")

    # -- pytree --------------------------------------------------------------------------------
    def tree_flatten(self):
        return (self.time_h, self.activity_mbq, self.ligand_nmol, self.infusion_h), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        # Rebuilt by JAX transformations with traced (or batched) leaves: no validation here, the
        # concrete schedule was validated when it was built.
        obj = object.__new__(cls)
        obj.administrations = ()
        obj.time_h, obj.activity_mbq, obj.ligand_nmol, obj.infusion_h = children
        return obj
