"""Executor selection and TLS pass-through (no cluster started here)."""

from __future__ import annotations

import pytest

from tdt.errors import StudyError
from tdt.pipeline._executors import DaskExecutor, LocalExecutor, make_executor, tls_security


def test_make_executor_choices():
    assert isinstance(make_executor("local"), LocalExecutor)
    dask = make_executor("dask", scheduler="tls://10.0.0.1:8786", n_workers=3)
    assert isinstance(dask, DaskExecutor) and dask.scheduler == "tls://10.0.0.1:8786"
    with pytest.raises(StudyError, match="needs --executor dask"):
        make_executor("local", scheduler="tcp://10.0.0.1:8786")
    with pytest.raises(StudyError, match="executor 'slurm'"):
        make_executor("slurm")
    with LocalExecutor() as pool:
        assert pool.map(lambda v: v * 2, [1, 2, 3]) == [2, 4, 6]


def test_tls_settings_are_passed_through(tmp_path):
    assert tls_security() is None
    files = {}
    for name in ("ca.pem", "cert.pem", "key.pem"):
        files[name] = tmp_path / name
        files[name].write_text("dummy")
    security = tls_security(str(files["ca.pem"]), str(files["cert.pem"]), str(files["key.pem"]))
    assert security.require_encryption
    assert security.tls_ca_file == str(files["ca.pem"])
    assert security.tls_client_cert == str(files["cert.pem"])
    assert security.tls_client_key == str(files["key.pem"])
    with pytest.raises(StudyError, match="--tls-key .*missing.pem: file not found"):
        tls_security(str(files["ca.pem"]), str(files["cert.pem"]), str(tmp_path / "missing.pem"))


def test_unreachable_scheduler_is_one_clear_error():
    # port 9 on localhost: nothing listens there in the test environment
    with pytest.raises(StudyError, match="dask: cannot connect to tcp://127.0.0.1:9"):
        with DaskExecutor(scheduler="tcp://127.0.0.1:9", connect_timeout_s=1.0):
            pass
