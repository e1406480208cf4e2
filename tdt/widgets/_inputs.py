"""The small, explicit input of the scenario explorer.

Per posterior draw and per organ or lesion the explorer needs two numbers:

* ``dose_per_mbq_gy`` — absorbed dose per administered activity of one cycle (Gy/MBq);
* ``effective_half_life_h`` — the effective half-life of the (mono-exponential) dose rate (h).

That is exactly what a reduced linear model gives for each posterior draw: the absorbed dose is
linear in the administered activity, and the dose-rate tail is dominated by one effective rate.
Optionally, a per-draw *ligand sensitivity* (``ligand_uptake_scale``: the factor by which the dose
per MBq changes with the injected ligand amount, tabulated on a small grid, e.g. from the
nonlinear PBPK model) makes the ligand-amount control live; without it the control is disabled
in the UI and the reduced model's independence of the ligand amount is stated there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from tdt.errors import InputError
from tdt.physics import nuclide
from tdt.units import gbq_to_mbq, rate_to_half_life

#: interpolation methods of the ligand curves (tdt.widgets._ligand_curves)
LIGAND_INTERPOLATIONS = ("linear", "pchip-log")

#: prefix of lesion names (docs/architecture.md: ``lesion_1``, ``lesion_2``, ...)
LESION_PREFIX = "lesion"


def is_lesion(region: str) -> bool:
    """True for tumour VOIs (``lesion_1``, ``lesion_2``, ...)."""
    return region.lower().startswith(LESION_PREFIX)


def _as_2d(name: str, value, n_regions: int) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim == 1:
        array = array[:, None] if n_regions == 1 else array[None, :]
    if array.ndim != 2 or array.shape[1] != n_regions:
        raise InputError(
            f"{name}: shape {np.shape(value)} does not match (n_draws, n_regions={n_regions}); "
            "expected one column per region, one row per posterior draw"
        )
    if array.shape[0] < 1:
        raise InputError(f"{name}: no draws (shape {array.shape}); expected at least one row")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name}: contains non-finite values; expected finite numbers")
    if np.any(array <= 0):
        raise InputError(
            f"{name}: minimum {array.min():.4g} is not positive; expected values > 0"
        )
    return array


@dataclass(frozen=True)
class ScenarioInputs:
    """Per-draw dosimetric inputs of :class:`~tdt.widgets.ScenarioExplorer`.

    Attributes
    ----------
    regions: organ / lesion names (canonical snake_case, docs/architecture.md).
    dose_per_mbq_gy: (n_draws, n_regions) absorbed dose per administered MBq of one cycle, Gy/MBq.
    effective_half_life_h: (n_draws, n_regions) effective half-life of the dose rate, h.
    ligand_grid_nmol: optional (n_grid,) increasing ligand amounts, nmol.
    ligand_uptake_scale: optional (n_draws, n_regions, n_grid) dimensionless factor multiplying
        ``dose_per_mbq_gy`` at each ligand amount (interpolated, clipped to the grid).
    ligand_half_life_h: optional (n_draws, n_regions, n_grid) effective half-life at each ligand
        amount (h), replacing ``effective_half_life_h`` when the ligand control is live.
    ligand_interpolation: ``"linear"`` (in L) or ``"pchip-log"`` (monotone cubic in log L of
        the logs; the PBPK emulator's), :mod:`tdt.widgets._ligand_curves`.
    ligand_emulator: optional description of a PBPK emulator (grid, method, reference amount,
        its measured interpolation error), set by :func:`tdt.widgets.inputs_from_ligand_response`.
    source: a short description of where the draws come from (shown in the UI).
    converged: sampler diagnostics flag of the posterior (``None`` when not from a sampler).
    notes: lines shown under the explorer's outputs.
    delivered_dose_gy, delivered_bed_gy: optional (n_draws, n_regions) absorbed dose and BED
        already delivered by past cycles (Gy); added to every cumulative quantity.
    """

    regions: tuple[str, ...]
    dose_per_mbq_gy: np.ndarray
    effective_half_life_h: np.ndarray
    ligand_grid_nmol: np.ndarray | None = None
    ligand_uptake_scale: np.ndarray | None = None
    source: str = "arrays"
    converged: bool | None = None
    notes: tuple[str, ...] = field(default=())
    delivered_dose_gy: np.ndarray | None = None
    delivered_bed_gy: np.ndarray | None = None
    ligand_half_life_h: np.ndarray | None = None
    ligand_interpolation: str = "linear"
    ligand_emulator: Mapping | None = None

    @property
    def synthetic(self) -> bool:
        """True for illustrative synthetic draws (not any patient's posterior)."""
        return self.source.startswith("synthetic")

    def __post_init__(self):
        regions = tuple(str(r) for r in self.regions)
        if not regions:
            raise InputError("regions: empty; expected at least one organ or lesion name")
        if len(set(regions)) != len(regions):
            raise InputError(f"regions: duplicate names in {regions}; expected unique names")
        object.__setattr__(self, "regions", regions)
        n = len(regions)
        dose = _as_2d("dose_per_mbq_gy", self.dose_per_mbq_gy, n)
        teff = _as_2d("effective_half_life_h", self.effective_half_life_h, n)
        if dose.shape != teff.shape:
            raise InputError(
                f"effective_half_life_h: shape {teff.shape} differs from dose_per_mbq_gy "
                f"{dose.shape}; expected the same (n_draws, n_regions)"
            )
        object.__setattr__(self, "dose_per_mbq_gy", dose)
        object.__setattr__(self, "effective_half_life_h", teff)
        for name in ("delivered_dose_gy", "delivered_bed_gy"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=float)
                if value.shape != dose.shape or not np.all(np.isfinite(value)) \
                        or np.any(value < 0):
                    raise InputError(
                        f"{name}: expected finite values >= 0 of shape {dose.shape}, got shape "
                        f"{value.shape}"
                    )
                object.__setattr__(self, name, value)
        if (self.delivered_dose_gy is None) != (self.delivered_bed_gy is None):
            raise InputError("delivered_dose_gy / delivered_bed_gy: give both or neither")
        grid, scale = self.ligand_grid_nmol, self.ligand_uptake_scale
        if (grid is None) != (scale is None):
            raise InputError(
                "ligand_grid_nmol / ligand_uptake_scale: give both or neither "
                f"(got grid={'set' if grid is not None else None}, "
                f"scale={'set' if scale is not None else None})"
            )
        if grid is not None:
            grid = np.asarray(grid, dtype=float)
            scale = np.asarray(scale, dtype=float)
            if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
                raise InputError(
                    f"ligand_grid_nmol: {grid!r}; expected >= 2 strictly increasing amounts (nmol)"
                )
            if scale.shape != dose.shape + (grid.size,):
                raise InputError(
                    f"ligand_uptake_scale: shape {scale.shape}; expected "
                    f"{dose.shape + (grid.size,)} (n_draws, n_regions, n_grid)"
                )
            if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                raise InputError("ligand_uptake_scale: expected finite positive factors")
            object.__setattr__(self, "ligand_grid_nmol", grid)
            object.__setattr__(self, "ligand_uptake_scale", scale)
        self._check_ligand_extras(dose.shape)

    def _check_ligand_extras(self, shape) -> None:
        if self.ligand_interpolation not in LIGAND_INTERPOLATIONS:
            raise InputError(f"ligand_interpolation: {self.ligand_interpolation!r}; expected one "
                             f"of {LIGAND_INTERPOLATIONS}")
        teff = self.ligand_half_life_h
        if teff is None:
            return
        if self.ligand_grid_nmol is None:
            raise InputError("ligand_half_life_h: given without ligand_grid_nmol; expected both")
        teff = np.asarray(teff, dtype=float)
        expected = tuple(shape) + (self.ligand_grid_nmol.size,)
        if teff.shape != expected or not np.all(np.isfinite(teff)) or np.any(teff <= 0):
            raise InputError(f"ligand_half_life_h: expected finite half-lives > 0 h of shape "
                             f"{expected} (n_draws, n_regions, n_grid), got shape {teff.shape}")
        object.__setattr__(self, "ligand_half_life_h", teff)

    @property
    def n_draws(self) -> int:
        return int(self.dose_per_mbq_gy.shape[0])

    @property
    def has_delivered(self) -> bool:
        """Whether past cycles' dose / BED are included."""
        return self.delivered_dose_gy is not None

    @property
    def has_ligand_sensitivity(self) -> bool:
        """Whether the ligand-amount control changes anything (a sensitivity grid is given)."""
        return self.ligand_grid_nmol is not None

    @property
    def lesions(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions if is_lesion(r))

    @property
    def organs(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions if not is_lesion(r))

    def subsample(self, n_draws: int, seed: int = 0) -> ScenarioInputs:
        """A random subset of ``n_draws`` draws (without replacement when possible)."""
        if n_draws < 1:
            raise InputError(f"n_draws: {n_draws}; expected >= 1")
        rng = np.random.default_rng(seed)
        index = rng.choice(self.n_draws, size=n_draws, replace=n_draws > self.n_draws)
        per_draw = ("dose_per_mbq_gy", "effective_half_life_h", "ligand_uptake_scale",
                    "ligand_half_life_h", "delivered_dose_gy", "delivered_bed_gy")
        return replace(self, **{name: getattr(self, name)[index] for name in per_draw
                                if getattr(self, name) is not None})

    # --- files ---------------------------------------------------------------------------------

    _ARRAYS = ("dose_per_mbq_gy", "effective_half_life_h", "ligand_grid_nmol",
               "ligand_uptake_scale", "ligand_half_life_h", "delivered_dose_gy",
               "delivered_bed_gy")

    def save(self, path) -> None:
        """Write to ``path`` (NumPy ``.npz``: the arrays, and the rest as JSON) — how a notebook
        hands a twin's explorer inputs to the next one. :meth:`load` reads it back."""
        meta = {"regions": list(self.regions), "source": self.source,
                "converged": self.converged, "notes": list(self.notes),
                "ligand_interpolation": self.ligand_interpolation,
                "ligand_emulator": (None if self.ligand_emulator is None
                                    else dict(self.ligand_emulator))}
        arrays = {name: getattr(self, name) for name in self._ARRAYS
                  if getattr(self, name) is not None}
        with open(path, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path) -> ScenarioInputs:
        """Read what :meth:`save` wrote (no pickles: arrays and JSON only)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {name: np.asarray(data[name]) for name in cls._ARRAYS if name in data}
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"path: {str(path)!r} is not a saved ScenarioInputs ({exc}); "
                             "expected a file written by ScenarioInputs.save") from None
        emulator = meta.pop("ligand_emulator")
        if emulator is not None:  # JSON turned tuples into lists
            emulator = {k: tuple(v) if isinstance(v, list) else v for k, v in emulator.items()}
        return cls(regions=tuple(meta.pop("regions")), notes=tuple(meta.pop("notes")),
                   ligand_emulator=emulator, **meta, **arrays)

    # --- constructors ------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        dose_per_mbq_gy: Mapping[str, Sequence[float]],
        effective_half_life_h: Mapping[str, Sequence[float]],
        **kwargs,
    ) -> ScenarioInputs:
        """Build from dicts ``{region: draws}`` (Gy/MBq and h), the regions in dict order."""
        regions = tuple(dose_per_mbq_gy)
        missing = [r for r in regions if r not in effective_half_life_h]
        if missing:
            raise InputError(
                f"effective_half_life_h: no entry for {missing}; expected the same regions as "
                f"dose_per_mbq_gy ({list(regions)})"
            )
        dose = np.stack([np.atleast_1d(np.asarray(dose_per_mbq_gy[r], float)) for r in regions], 1)
        teff = np.stack(
            [np.broadcast_to(np.asarray(effective_half_life_h[r], float), dose.shape[:1])
             for r in regions], 1,
        )
        return cls(regions=regions, dose_per_mbq_gy=dose, effective_half_life_h=teff, **kwargs)

    @classmethod
    def example(cls, n_draws: int = 1000, seed: int = 0, n_lesions: int = 2) -> ScenarioInputs:
        """Synthetic, *illustrative* draws for demos, tests and benchmarks — not patient data.

        Lognormal draws around absorbed doses per activity inside the published ranges for
        177Lu-PSMA-617 (shared/reference/README.md: kidneys 0.4–0.8 Gy/GBq, parotid/salivary
        0.7–1.9 Gy/GBq, red marrow 0.03–0.11 Gy/GBq (the low end here); tumours a few
        Gy/GBq), with illustrative effective half-lives (kidneys ~40 h, salivary ~35 h,
        marrow ~30 h, lesions ~60 h), capped at the physical half-life of 177Lu (~159.5 h).
        """
        if n_draws < 1:
            raise InputError(f"n_draws: {n_draws}; expected >= 1")
        # an effective half-life cannot exceed the physical one (Lu-177 from tdt.physics)
        physical_half_life_h = nuclide("Lu-177").half_life_h
        rng = np.random.default_rng(seed)
        # region: (median Gy/GBq, log-sd, median T_eff h, log-sd)
        spec = {
            "kidneys": (0.6, 0.25, 40.0, 0.15),
            "salivary_glands": (1.2, 0.3, 35.0, 0.15),
            "red_marrow": (0.03, 0.3, 30.0, 0.2),
        }
        for i in range(n_lesions):
            spec[f"lesion_{i + 1}"] = (3.0 / (1 + i), 0.4, 60.0, 0.2)
        # correlated kidney/salivary uptake (shared receptor expression): one latent factor
        latent = rng.standard_normal(n_draws)
        dose, teff = {}, {}
        for region, (gy_per_gbq, sd, t_half, sd_t) in spec.items():
            z = 0.6 * latent + 0.8 * rng.standard_normal(n_draws)
            dose[region] = gy_per_gbq / gbq_to_mbq(1.0) * np.exp(sd * z)  # Gy/GBq -> Gy/MBq
            teff[region] = np.minimum(t_half * np.exp(sd_t * rng.standard_normal(n_draws)),
                                      physical_half_life_h)
        return cls.from_arrays(
            dose, teff, source=f"synthetic example ({n_draws} draws, seed {seed})",
            notes=("Illustrative synthetic draws, not a patient's posterior.",),
        )


def effective_half_life_from_tia(tia_mbq_h, initial_activity_mbq):
    """T_eff = ln 2 · TIA / A0 for a mono-exponential TAC with instant uptake (h).

    From TIA = ∫ A0 exp(-λ t) dt = A0 / λ and T_eff = ln 2 / λ.
    """
    tia = np.asarray(tia_mbq_h, dtype=float)
    a0 = np.asarray(initial_activity_mbq, dtype=float)
    return rate_to_half_life(a0 / tia)
