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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free the XLA executables each test module compiled once the module is done.

    Every compiled CPU executable holds ~3 memory mappings until its jit cache entry dies, and
    jit caches keyed on long-lived functions never die: the whole suite in one process grew past
    the kernel's default ``vm.max_map_count`` (65530), where XLA's next compilation segfaults
    (CI, 2026-12-05; jax-ml/jax#27201). ``jax.clear_caches()`` drops those entries; the next
    module reads what it shares from the persistent compilation cache."""
    yield
    import gc

    jax.clear_caches()
    gc.collect()


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded NumPy generator (the same stream in every test)."""
    return np.random.default_rng(20261121)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
