"""tdt turns on JAX's persistent compilation cache at import, opt-out, never overriding a user's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import jax
import jax.numpy as jnp
import tdt
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
print("DIR=" + str(jax.config.jax_compilation_cache_dir))
print(float(jax.jit(lambda x: jnp.sin(x) ** 2 + jnp.cos(x) ** 2)(0.3)))
"""


def _run(env_updates: dict[str, str], tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TDT_JAX_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu", "HOME": str(tmp_path)})
    env.update(env_updates)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    return out.stdout


def test_default_cache_dir_is_used_and_filled(tmp_path):
    out = _run({"XDG_CACHE_HOME": str(tmp_path / "xdg")}, tmp_path)
    cache = tmp_path / "xdg" / "tdt" / "jax"
    assert f"DIR={cache}" in out
    assert any(cache.iterdir()), "the compiled program was not written to the cache"


def test_cache_can_be_moved_or_switched_off(tmp_path):
    moved = tmp_path / "elsewhere"
    assert f"DIR={moved}" in _run({"TDT_JAX_CACHE_DIR": str(moved)}, tmp_path)
    out = _run({"TDT_JAX_CACHE_DIR": "off"}, tmp_path)
    assert "DIR=None" in out
    assert not (tmp_path / ".cache" / "tdt").exists()


def test_a_users_own_cache_dir_is_kept(tmp_path):
    own = tmp_path / "mine"
    assert f"DIR={own}" in _run({"JAX_COMPILATION_CACHE_DIR": str(own)}, tmp_path)
