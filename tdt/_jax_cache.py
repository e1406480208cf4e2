"""JAX's persistent compilation cache, on by default for tdt (opt-out, never overriding a user's).

Most of a first fit's wall time is XLA compilation (the reduced-model NUTS fit of the standard
patient: 8.9 s of 9.8 s; benchmarks/bench_nutpie.py), and the same programs are compiled again in
every new process — every notebook kernel, every re-run of a study, every twin assimilation.
JAX can keep compiled executables on disk and reuse them when the program, the JAX/XLA version
and the machine match (https://docs.jax.dev/en/latest/persistent_compilation_cache.html); the
results are those of the same compiled program, bit for bit. tdt turns it on at import:

- ``TDT_JAX_CACHE_DIR=/path``: that directory; ``TDT_JAX_CACHE_DIR=off`` (or ``0``): no cache.
- Otherwise ``$XDG_CACHE_HOME/tdt/jax`` (default ``~/.cache/tdt/jax``).
- A cache directory the user already configured (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config.update("jax_compilation_cache_dir", ...)`` before importing tdt) is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

_OFF = {"off", "0", "false", "no", "none"}


def default_cache_dir() -> Path | None:
    """The directory tdt would use (None when switched off by ``TDT_JAX_CACHE_DIR``)."""
    chosen = os.environ.get("TDT_JAX_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in _OFF else Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tdt" / "jax"


def enable_persistent_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`default_cache_dir` unless the user set
    one or switched it off; returns the directory in use (None: no cache). A directory that
    cannot be created leaves the cache off (JAX then compiles as usual) — never an error."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    target = default_cache_dir()
    if target is None:
        return None
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(target))
    return target
