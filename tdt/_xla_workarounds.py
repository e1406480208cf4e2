"""A workaround for a deadlock of jaxlib 0.10.0–0.11.0 on CPU, applied when tdt is imported.

The bug. jaxlib 0.10.0 began to split a *batched* LAPACK call (LU ``getrf``, triangular solve
``trsm``, ...: what ``jax.vmap`` makes of ``lu_factor``/``lu_solve``/``jnp.linalg.solve``/``expm``)
into chunks run on XLA's intra-op thread pool, the calling pool thread waiting for them
(``ParallelBatchMap`` with a blocking counter, jaxlib/cpu/lapack_kernels.cc). XLA's CPU runtime runs
independent operations concurrently on that same pool. When as many batched LAPACK calls run at
once as the pool has threads — two on a 2-core machine: two draws' independent Rosenbrock
scans — every thread waits for chunks that no free thread can run: the process sleeps forever at
0 % CPU in ``BlockUntilReady`` (measured on this project's 2-core CI machine: the PBPK twin's
``predict`` over 400 draws hung in 2 of 2 runs; native stacks (gdb) show both ``tf_XLAEigen``
threads in ``lapack_dtrsm_ffi`` → ``ParallelBatchMap`` → ``BlockingCounter::Wait``). Upstream
turned the parallel split off in open-source builds on 2026-07-21 (jax commit 859992407d,
https://github.com/jax-ml/jax/issues/36927), after jaxlib 0.11.0; the newest jaxlib on the package
index when this was written is 0.10.2.

The workaround. ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` makes XLA schedule a
program's operations for memory, not for concurrency, so independent batched LAPACK calls no
longer run side by side. Measured with a minimal reproducer (vmap over 300–2,000 draws of two
independent scans of ``lu_factor``/``lu_solve``, n = 20–60, 2 cores): without it 8 of 8 runs hung
within 20 iterations; with it 7 of 7 runs finished 100–300 iterations; ~20 % slower on that
micro-benchmark (the pool runs fewer things at once). ``--xla_cpu_multi_thread_eigen=false``
(the usual advice for XLA CPU hangs) does *not* help here: it still hung.

It is applied only for the affected jaxlib versions, only through ``XLA_FLAGS`` before the CPU
backend starts (XLA reads its flags once), and never over a value the user set for that flag.
Remove it when the lock moves past jaxlib 0.11.0.
"""

from __future__ import annotations

import os

from jaxlib import version as _jaxlib_version  # the version only: starts no backend

#: the XLA flag of the workaround (module docstring)
SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
#: jaxlib versions (major, minor, patch) with the parallel LAPACK batch split
AFFECTED_JAXLIB = ((0, 10, 0), (0, 11, 0))


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def is_affected(jaxlib_version: str) -> bool:
    """True for the jaxlib versions whose batched LAPACK calls can deadlock (module docstring)."""
    low, high = AFFECTED_JAXLIB
    return low <= _version_tuple(jaxlib_version) <= high


def xla_flags_with_workaround(current: str | None, jaxlib_version: str) -> str | None:
    """``XLA_FLAGS`` with the scheduler flag added (affected jaxlib only; a user's own setting
    of that flag is kept as it is); ``current`` unchanged otherwise."""
    if not is_affected(jaxlib_version) or (current and SCHEDULER_FLAG in current):
        return current
    return f"{current} {SCHEDULER_FLAG}=false".strip() if current else f"{SCHEDULER_FLAG}=false"


def apply_lapack_deadlock_workaround() -> None:
    """Set ``XLA_FLAGS`` for this process and its children (call before the CPU backend starts)."""
    flags = xla_flags_with_workaround(os.environ.get("XLA_FLAGS"), _jaxlib_version.__version__)
    if flags is not None:
        os.environ["XLA_FLAGS"] = flags
