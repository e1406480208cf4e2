"""Per-draw ligand-amount curves of the explorer: dose scale and effective half-life at any L.

The explorer's inputs may tabulate, per posterior draw and region, how the dose per MBq (a
factor on ``dose_per_mbq_gy``) and the equivalent effective half-life change with the injected
ligand amount L, on a grid of amounts. A slider move evaluates them at one L:

* ``"linear"`` — linear in L of the tabulated factors (clipped to the grid ends); the form of a
  small, hand-made sensitivity table;
* ``"pchip-log"`` — the PBPK emulator's form (:func:`tdt.widgets.inputs_from_ligand_response`):
  monotone piecewise-cubic Hermite interpolation (PCHIP: Fritsch & Carlson, SIAM J Numer Anal
  1980;17:238, :class:`scipy.interpolate.PchipInterpolator`) of the *logarithms* of the factors
  in log L (clipped to the grid ends). Receptor saturation makes the dose per MBq a smooth,
  monotone, roughly power-law function of L; PCHIP preserves monotonicity between grid points
  and does not overshoot, and in log–log coordinates a power law is reproduced exactly.

The interpolants are built once (NumPy/SciPy); one evaluation of 1,000 draws × 7 regions costs
well under a millisecond, so a ligand move costs no more than an activity move.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from tdt.errors import InputError
from tdt.widgets._inputs import LIGAND_INTERPOLATIONS

__all__ = ("LIGAND_INTERPOLATIONS", "LigandCurves")


class LigandCurves:
    """``curves(ligand_nmol) -> (scale, half_life_h or None)``, each (n_draws, n_regions).

    ``grid_nmol``: (n_grid,) strictly increasing amounts (nmol); ``scale``: (n_draws, n_regions,
    n_grid) dose factors > 0; ``half_life_h``: optional (n_draws, n_regions, n_grid) effective
    half-lives (h); ``method``: one of :data:`LIGAND_INTERPOLATIONS` (module docstring).
    """

    def __init__(self, grid_nmol, scale, half_life_h=None, method: str = "linear"):
        if method not in LIGAND_INTERPOLATIONS:
            raise InputError(f"ligand_interpolation: {method!r}; expected one of "
                             f"{LIGAND_INTERPOLATIONS}")
        self.grid = np.asarray(grid_nmol, dtype=float)
        self.method = method
        tables = [np.asarray(scale, dtype=float)]
        if half_life_h is not None:
            tables.append(np.asarray(half_life_h, dtype=float))
        self._n_tables = len(tables)
        stacked = np.stack(tables)  # (n_tables, n_draws, n_regions, n_grid)
        if method == "pchip-log":
            self._x = np.log(self.grid)
            self._pchip = PchipInterpolator(self._x, np.log(stacked), axis=-1, extrapolate=False)
        else:
            self._x = self.grid
            self._table = stacked

    def __call__(self, ligand_nmol: float):
        value = float(ligand_nmol)
        if not (np.isfinite(value) and value > 0):
            raise InputError(f"ligand_nmol: {ligand_nmol!r}; expected a finite amount > 0 nmol")
        x = float(np.clip(np.log(value) if self.method == "pchip-log" else value,
                          self._x[0], self._x[-1]))
        if self.method == "pchip-log":
            out = np.exp(self._pchip(x))
        else:
            j = int(np.clip(np.searchsorted(self._x, x, side="right") - 1, 0, self._x.size - 2))
            w = (x - self._x[j]) / (self._x[j + 1] - self._x[j])
            out = (1.0 - w) * self._table[..., j] + w * self._table[..., j + 1]
        return out[0], (out[1] if self._n_tables > 1 else None)
