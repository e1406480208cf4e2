"""Where the grid points of a study execute: in this process, or on Dask (``dask.distributed``).

- :class:`LocalExecutor` runs the points one after the other.
- :class:`DaskExecutor` fans them out: on a private ``LocalCluster`` by default, or on an
  existing scheduler given by address
  (``tcp://...`` or ``tls://...``). TLS settings are passed through as a
  ``distributed.security.Security`` (CA file, client certificate and key); without them,
  Dask's own configuration (``DASK_DISTRIBUTED__COMM__TLS__...``) applies. Workers of a real
  cluster must see the repository and ``runs/`` at the same paths (a shared file system).

Every task function catches its own errors and returns a record, so one failing point does not
cancel the others. No home-made process pools (DESIGN.md).

The private LocalCluster accepts no foreign client: scheduler and workers listen on 127.0.0.1
only, over mutual TLS (``tls://``, ``require_encryption``) with a credential generated for this
run and held in memory (:func:`run_security`: ``Security.temporary()`` when the
``cryptography`` package is installed, else a self-signed key/certificate made by the
``openssl`` command). A client without that certificate fails the TLS handshake. No HTTP
server listens unless ``dashboard=True``: distributed starts the scheduler's HTTP server (and
its /info, /json, /metrics routes) on port 8787 even with ``dashboard_address=None``
(``Scheduler.start_http_server(..., default_port=8787)`` runs unconditionally), so tdt stops
it, and the workers' HTTP servers, once the cluster is up. ``processes=False`` uses the
in-process transport (``inproc://``): no socket at all.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from tdt.errors import StudyError


class LocalExecutor:
    """Run tasks sequentially in this process."""

    name = "local"

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], progress: bool = False) -> list:
        results = []
        bar = _progress_bar(len(items), progress and len(items) > 1)
        for item in items:
            results.append(fn(item))
            bar.update(1)
        bar.close()
        return results


class DaskExecutor:
    """Run tasks on a Dask cluster (a private LocalCluster on 127.0.0.1 unless ``scheduler``).

    ``dashboard=True`` opens the Dask dashboard on 127.0.0.1 (a random port, see
    ``client.dashboard_link``); it is off by default."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, n_workers: int | None = None,
                 processes: bool = True, security: Any = None,
                 connect_timeout_s: float = 30.0, dashboard: bool = False) -> None:
        self.scheduler = scheduler
        self.connect_timeout_s = connect_timeout_s
        self.n_workers = n_workers
        self.processes = processes
        self.security = security
        self.dashboard = dashboard
        self.cluster = None
        self.client = None

    def __enter__(self) -> DaskExecutor:
        # dask.distributed is heavy; only for the Dask executor
        from distributed import Client, LocalCluster

        try:
            if self.scheduler:
                self.client = Client(self.scheduler, security=self.security,
                                     timeout=f"{self.connect_timeout_s}s")
            else:
                # processes=False uses in-process transport (inproc://): no socket at all
                where = {}
                if self.processes:
                    self.security = self.security or run_security()
                    where = {"host": "127.0.0.1", "protocol": "tls://",
                             "security": self.security}
                self.cluster = LocalCluster(
                    **where,
                    n_workers=self.n_workers or min(2, os.cpu_count() or 1),
                    threads_per_worker=1,
                    processes=self.processes,
                    dashboard_address="127.0.0.1:0" if self.dashboard else None,
                    silence_logs=logging.ERROR,
                )
                self.client = Client(self.cluster, security=self.security)
                if not self.dashboard:
                    _stop_http_servers(self.cluster, self.client)
        except OSError as exc:
            self.__exit__()
            target = self.scheduler or "a LocalCluster on 127.0.0.1"
            raise StudyError(f"dask: cannot connect to {target} ({exc})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], progress: bool = False) -> list:
        # dask.distributed is heavy; only for the Dask executor
        from distributed import as_completed

        if self.client is None:
            raise StudyError("dask executor used outside its `with` block")
        futures = self.client.map(fn, list(items), pure=False)
        bar = _progress_bar(len(futures), progress)
        for _ in as_completed(futures):
            bar.update(1)
        bar.close()
        return self.client.gather(futures)


def run_security() -> Any:
    """A per-run mutual-TLS credential (in memory) for a private LocalCluster."""
    # dask.distributed is heavy; only for the Dask executor
    from distributed.security import Security

    if importlib.util.find_spec("cryptography") is not None:
        return Security.temporary()
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StudyError("executor dask: cannot make a TLS credential for the local cluster "
                         "(neither the 'cryptography' package nor the 'openssl' command is "
                         "available); install cryptography, or run with --executor local")
    with tempfile.TemporaryDirectory(prefix="tdt-dask-tls-") as tmp:
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        done = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", cert, "-days", "2", "-subj", "/CN=dask-internal",
             "-addext", "subjectAltName=DNS:dask-internal"],
            capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise StudyError(f"executor dask: openssl could not make a TLS credential "
                             f"({done.stderr.strip()[-200:]})")
        with open(key) as handle:
            key_pem = handle.read()
        with open(cert) as handle:
            cert_pem = handle.read()
    roles = {f"tls_{role}_{part}": pem for role in ("client", "scheduler", "worker")
             for part, pem in (("key", key_pem), ("cert", cert_pem))}
    return Security(require_encryption=True, tls_ca_file=cert_pem, **roles)


def _stop_http_servers(cluster, client) -> None:
    """Close the HTTP servers distributed opens even without a dashboard (see module doc)."""
    scheduler = getattr(cluster, "scheduler", None)
    if scheduler is not None and getattr(scheduler, "http_server", None) is not None:
        scheduler.http_server.stop()

    def stop_worker_http(dask_worker=None) -> None:
        if dask_worker is not None and getattr(dask_worker, "http_server", None) is not None:
            dask_worker.http_server.stop()

    client.run(stop_worker_http)


def tls_security(ca_file: str | None = None, cert: str | None = None,
                 key: str | None = None) -> Any:
    """A ``distributed.security.Security`` for a TLS scheduler, or ``None`` if nothing given."""
    if not (ca_file or cert or key):
        return None
    # dask.distributed is heavy; only for the Dask executor
    from distributed.security import Security

    for label, path in (("--tls-ca-file", ca_file), ("--tls-cert", cert), ("--tls-key", key)):
        if path and not os.path.isfile(path):
            raise StudyError(f"{label} {path}: file not found")
    return Security(tls_ca_file=ca_file, tls_client_cert=cert, tls_client_key=key,
                    require_encryption=True)


def make_executor(kind: str = "local", scheduler: str | None = None,
                  n_workers: int | None = None, processes: bool = True,
                  security: Any = None, dashboard: bool = False) -> LocalExecutor | DaskExecutor:
    """``"local"`` or ``"dask"`` (a scheduler address implies Dask)."""
    if scheduler and kind == "local":
        raise StudyError(f"--scheduler {scheduler}: needs --executor dask")
    if kind == "local":
        return LocalExecutor()
    if kind == "dask":
        return DaskExecutor(scheduler=scheduler, n_workers=n_workers, processes=processes,
                            security=security, dashboard=dashboard)
    raise StudyError(f"executor {kind!r}: expected 'local' or 'dask'")


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return _NullBar()
    # tqdm is optional; only for a progress bar
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="point", desc="grid points")
