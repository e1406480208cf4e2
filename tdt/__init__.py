"""tdt — theranostic digital twins.

Patient-specific, mechanistic, differentiable models of radiopharmaceutical therapy, fitted to
quantitative SPECT/CT with Bayesian inference, used to predict absorbed dose, BED, tumour control
and toxicity with credible intervals, and to plan the next cycles.

Importing tdt turns on JAX 64-bit floats (``jax_enable_x64``): ODE gradients in float32 are not
trustworthy. It also turns on JAX's persistent compilation cache (``~/.cache/tdt/jax``; set
``TDT_JAX_CACHE_DIR`` to move it or ``TDT_JAX_CACHE_DIR=off`` to switch it off; a directory the
user configured is kept): compiled samplers are reused across processes (see
:mod:`tdt._jax_cache`). On jaxlib 0.10.0–0.11.0 it adds an XLA CPU scheduler flag to
``XLA_FLAGS`` that avoids a deadlock of batched LAPACK calls on small machines
(:mod:`tdt._xla_workarounds`). Units everywhere: h, MBq, MBq·h, Gy, Gy/h, g, mL, nmol, 1/h (see :mod:`tdt.units`).

Heavy layers (inference with PyMC, imaging with pydicom, pipeline, widgets, twin) are imported
lazily on first attribute access so that ``import tdt`` stays fast.
"""

from __future__ import annotations

import importlib

from tdt._xla_workarounds import apply_lapack_deadlock_workaround

apply_lapack_deadlock_workaround()  # before the CPU backend starts: XLA reads XLA_FLAGS once

import jax as _jax  # noqa: E402

_jax.config.update("jax_enable_x64", True)

from tdt._jax_cache import enable_persistent_compilation_cache  # noqa: E402

enable_persistent_compilation_cache()

from tdt import errors, units  # noqa: E402
from tdt.errors import (  # noqa: E402
    CatalogError,
    ConvergenceError,
    DicomError,
    InputError,
    PlausibilityWarning,
    SolverError,
    StudyError,
    TdtError,
    UnitError,
)
from tdt.physics import Nuclide, available_nuclides, nuclide  # noqa: E402

__version__ = "0.1.0"

_LAZY_SUBMODULES = {
    "catalog", "physics", "kinetics", "dosimetry", "radiobiology", "pbpk", "inference",
    "imaging", "pipeline", "twin", "widgets", "cli", "plotting",
}
_LAZY_ATTRIBUTES = {"Twin": "tdt.twin"}


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"tdt.{name}")
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'tdt' has no attribute {name!r}")


__all__ = [
    "CatalogError", "ConvergenceError", "DicomError", "InputError", "Nuclide", "PlausibilityWarning",
    "SolverError",
    "StudyError", "TdtError", "UnitError", "available_nuclides", "errors", "nuclide", "units",
    "__version__",
]
