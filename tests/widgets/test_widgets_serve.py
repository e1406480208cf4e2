"""Voilà as tdt launches it: 127.0.0.1 only, and a token is required."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from tdt.errors import InputError
from tdt.widgets._serve import voila_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_voila_command_binds_localhost_and_sets_a_fresh_token(tmp_path, monkeypatch):
    monkeypatch.delenv("TDT_VOILA_TOKEN", raising=False)
    notebook = tmp_path / "app.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    (a, token_a), (_, token_b) = voila_command(notebook), voila_command(notebook)
    assert "--Voila.ip=127.0.0.1" in a and f"--token={token_a}" in a
    assert len(token_a) == 32 and token_a != token_b
    with pytest.raises(InputError, match="token"):
        voila_command(notebook, token="short")
    with pytest.raises(InputError, match="notebook"):
        voila_command(tmp_path / "missing.ipynb")


@pytest.mark.slow
def test_voila_refuses_requests_without_the_token(tmp_path):
    """~20 s on 2 cores: starts a real Voilà server on a one-cell notebook."""
    pytest.importorskip("voila")
    notebook = tmp_path / "app.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("hi")]),
                   notebook)
    port = _free_port()
    command, token = voila_command(notebook, port=port)
    log = (tmp_path / "voila.log").open("w")
    server = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              env={"JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
                                   "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status is None:
            try:
                with opener.open(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.3)
        assert status in (302, 403), (status, (tmp_path / "voila.log").read_text()[-2000:])
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
