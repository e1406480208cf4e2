"""Where the grid points of a study execute: in this process, or on Dask (``dask.distributed``).

- :class:`LocalExecutor` runs the points one after the other.
- :class:`DaskExecutor` fans them out: on a ``LocalCluster`` bound to 127.0.0.1 (no dashboard,
  one thread per worker) by default, or on an existing scheduler given by address
  (``tcp://...`` or ``tls://...``). TLS settings are passed through as a
  ``distributed.security.Security`` (CA file, client certificate and key); without them,
  Dask's own configuration (``DASK_DISTRIBUTED__COMM__TLS__...``) applies. Workers of a real
  cluster must see the repository and ``runs/`` at the same paths (a shared file system).

Every task function catches its own errors and returns a record, so one failing point does not
cancel the others. No home-made process pools (DESIGN.md).
"""

from __future__ import annotations

import logging
import os
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
    """Run tasks on a Dask cluster (a private LocalCluster on 127.0.0.1 unless ``scheduler``)."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, n_workers: int | None = None,
                 processes: bool = True, security: Any = None,
                 connect_timeout_s: float = 30.0) -> None:
        self.scheduler = scheduler
        self.connect_timeout_s = connect_timeout_s
        self.n_workers = n_workers
        self.processes = processes
        self.security = security
        self.cluster = None
        self.client = None

    def __enter__(self) -> DaskExecutor:
        from distributed import Client, LocalCluster

        try:
            if self.scheduler:
                self.client = Client(self.scheduler, security=self.security,
                                     timeout=f"{self.connect_timeout_s}s")
            else:
                # processes=False uses in-process transport (inproc://): no socket at all
                where = {"host": "127.0.0.1"} if self.processes else {}
                self.cluster = LocalCluster(
                    **where,
                    n_workers=self.n_workers or min(2, os.cpu_count() or 1),
                    threads_per_worker=1,
                    processes=self.processes,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self.client = Client(self.cluster)
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
        from distributed import as_completed

        if self.client is None:
            raise StudyError("dask executor used outside its `with` block")
        futures = self.client.map(fn, list(items), pure=False)
        bar = _progress_bar(len(futures), progress)
        for _ in as_completed(futures):
            bar.update(1)
        bar.close()
        return self.client.gather(futures)


def tls_security(ca_file: str | None = None, cert: str | None = None,
                 key: str | None = None) -> Any:
    """A ``distributed.security.Security`` for a TLS scheduler, or ``None`` if nothing given."""
    if not (ca_file or cert or key):
        return None
    from distributed.security import Security

    for label, path in (("--tls-ca-file", ca_file), ("--tls-cert", cert), ("--tls-key", key)):
        if path and not os.path.isfile(path):
            raise StudyError(f"{label} {path}: file not found")
    return Security(tls_ca_file=ca_file, tls_client_cert=cert, tls_client_key=key,
                    require_encryption=True)


def make_executor(kind: str = "local", scheduler: str | None = None,
                  n_workers: int | None = None, processes: bool = True,
                  security: Any = None) -> LocalExecutor | DaskExecutor:
    """``"local"`` or ``"dask"`` (a scheduler address implies Dask)."""
    if scheduler and kind == "local":
        raise StudyError(f"--scheduler {scheduler}: needs --executor dask")
    if kind == "local":
        return LocalExecutor()
    if kind == "dask":
        return DaskExecutor(scheduler=scheduler, n_workers=n_workers, processes=processes,
                            security=security)
    raise StudyError(f"executor {kind!r}: expected 'local' or 'dask'")


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="point", desc="grid points")
