"""Test configuration: x64 on, seeded randomness, JAX persistent compilation cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
_CACHE = REPO_ROOT / ".cache" / "jax"
_CACHE.mkdir(parents=True, exist_ok=True)
# tests sign twins/posteriors with a key of their own, never the user's ~/.config/tdt/hmac.key
os.environ.setdefault("TDT_HMAC_KEY_FILE", str(REPO_ROOT / ".cache" / "test-hmac.key"))
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded NumPy generator (the same stream in every test)."""
    return np.random.default_rng(20261121)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
