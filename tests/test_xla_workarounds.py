"""The jaxlib 0.10–0.11.0 batched-LAPACK deadlock workaround (tdt._xla_workarounds).

Independent reference: a minimal reproducer of the deadlock (vmap over 400 draws of two
independent scans of ``lu_factor``/``lu_solve``, n = 40) that, on the project's 2-core machine
with an affected jaxlib and without the workaround, hung in 8 of 8 runs within 20 iterations
(measured; module docstring). The probe imports tdt first, with no XLA_FLAGS of its own, and
must finish."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tdt._xla_workarounds import SCHEDULER_FLAG, is_affected, xla_flags_with_workaround

REPO_ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import tdt  # applies the workaround before the CPU backend starts
import jax, jax.numpy as jnp, numpy as np
from jax.scipy.linalg import lu_factor, lu_solve
n, draws = 40, 400
def chain(a, y):
    def step(y, h):
        return lu_solve(lu_factor(jnp.eye(n) - h * a), y), None
    return jax.lax.scan(step, y, jnp.full(50, 0.1))[0]
f = jax.jit(jax.vmap(lambda a1, a2, y: chain(a1, y) + chain(a2, 2 * y)))
rng = np.random.default_rng(0)
a1, a2 = (jnp.asarray(rng.normal(size=(draws, n, n)) * 0.1) for _ in range(2))
y = jnp.asarray(rng.normal(size=(draws, n)))
for k in range(60):
    out = np.asarray(f(a1, a2 + k * 1e-3, y))
print("FINISHED", bool(np.all(np.isfinite(out))))
"""


def test_batched_lapack_scans_finish_after_importing_tdt(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update({"PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu",
                "TDT_JAX_CACHE_DIR": "off"})
    # a hang is the failure: the timeout turns it into one (a run takes ~10 s)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, timeout=240, check=True)
    assert "FINISHED True" in out.stdout


def test_flag_only_for_affected_jaxlib_and_never_over_the_users():
    assert is_affected("0.10.0") and is_affected("0.10.2") and is_affected("0.11.0")
    assert not is_affected("0.9.2") and not is_affected("0.11.1") and not is_affected("1.0.0")
    assert xla_flags_with_workaround(None, "0.10.2") == f"{SCHEDULER_FLAG}=false"
    assert (xla_flags_with_workaround("--xla_cpu_multi_thread_eigen=false", "0.10.2")
            == f"--xla_cpu_multi_thread_eigen=false {SCHEDULER_FLAG}=false")
    mine = f"{SCHEDULER_FLAG}=true"
    assert xla_flags_with_workaround(mine, "0.10.2") == mine
    assert xla_flags_with_workaround("--foo=1", "0.9.2") == "--foo=1"
    assert xla_flags_with_workaround(None, "0.11.1") is None


def test_importing_tdt_sets_the_flag_in_this_process():
    import jaxlib.version

    import tdt  # noqa: F401

    if is_affected(jaxlib.version.__version__):
        assert f"{SCHEDULER_FLAG}=" in os.environ.get("XLA_FLAGS", "")
