"""Array shapes of tdt's numerical core, named once (like diffrax's ``_custom_types.py``).

jaxtyping annotations for the public functions of :mod:`tdt.kinetics`, :mod:`tdt.dosimetry`
and :mod:`tdt.radiobiology`. They document shapes; they are not checked at run time.

Dimension names:

- ``*draws``: any number of leading axes of posterior draws or virtual patients (none for one
  patient). Every quantity may carry them (DESIGN.md: written for one patient, vmapped).
- ``n_times``: sample / acquisition times (h) of one time–activity or dose-rate curve.
- ``n_exp``: terms of a sum of exponentials (amplitudes and rates).
- ``n_voxels``: voxels (or DVH bins) of one volume of interest.
- ``n_levels``: dose or volume levels at which a DVH is read.
- ``nz ny nx``: an image volume ``[k, j, i]``; ``kz ky kx``: a voxel S-value kernel.

Inputs are ``ArrayLike`` (Python floats, lists, NumPy or JAX arrays); outputs are JAX or NumPy
arrays (``Real``).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

#: a JAX or NumPy array (what the core returns)
Real = Array | np.ndarray

# --- inputs -----------------------------------------------------------------------------------
#: one value per draw (Gy, h, 1/h, MBq·h ...); a plain float for one patient
ScalarLike = Float[ArrayLike, "*draws"]
#: sample times (h), strictly increasing
TimesLike = Float[ArrayLike, "n_times"]
#: a curve sampled at ``TimesLike`` (MBq, Gy/h), optionally per draw or per VOI
CurveLike = Float[ArrayLike, "*draws n_times"]
#: amplitudes or rates of a sum of exponentials
ExponentialsLike = Float[ArrayLike, "*draws n_exp"]
#: voxel (or DVH bin) values of one VOI, optionally per draw
VoxelsLike = Float[ArrayLike, "*draws n_voxels"]
#: relative volumes (or masses) of the voxels / bins
VoxelWeightsLike = Float[ArrayLike, "n_voxels"]
#: levels (Gy or %) at which a DVH is read
LevelsLike = Float[ArrayLike, "n_levels"]
#: an image volume [k, j, i] (MBq·h, Gy, HU, g/mL)
VolumeLike = Float[ArrayLike, "nz ny nx"]
#: a time series of image volumes (MBq), times first
VolumeSeriesLike = Float[ArrayLike, "n_times nz ny nx"]
#: a boolean mask on the image grid
MaskLike = Bool[ArrayLike, "nz ny nx"]
#: voxel size (x, y, z) in mm
VoxelSizeLike = Float[ArrayLike, "3"]
#: a voxel S-value kernel [k, j, i]
KernelLike = Float[ArrayLike, "kz ky kx"]

# --- outputs ----------------------------------------------------------------------------------
#: one value per draw
Scalar = Float[Real, "*draws"]
#: one value per sample time
Curve = Float[Real, "*draws n_times"]
#: one value per DVH level
Levels = Float[Real, "*draws n_levels"]
#: an image volume
Volume = Float[Real, "nz ny nx"]

__all__ = [
    "Curve", "CurveLike", "ExponentialsLike", "KernelLike", "Levels", "LevelsLike", "MaskLike",
    "Real", "Scalar", "ScalarLike", "TimesLike", "Volume", "VolumeLike", "VolumeSeriesLike",
    "VoxelSizeLike", "VoxelWeightsLike", "VoxelsLike",
]
