"""Shared plumbing of the real-browser tests: a local server's lifecycle and Chromium's launch.

A server (JupyterLab, Voilà) is started in its own process group on 127.0.0.1 and a free port,
waited for with a bounded readiness probe, and always stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
EXPLORER = ".tdt-scenario-explorer"
KIDNEY_BED = f'{EXPLORER} [data-region="kidneys"][data-quantity="bed_total_gy"]'
#: Chromium flags for this closed network (no background connections) and root (no sandbox)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_browser() -> None:
    """Skip unless Debian's chromium and the playwright package are there."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make browser installs it)")
    pytest.importorskip("playwright.sync_api")


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def kidney_bed_text(page) -> str:
    return page.locator(KIDNEY_BED).first.inner_text(timeout=5_000).strip()


@contextlib.contextmanager
def local_server(command: list[str], *, cwd: Path, env: dict, log_path: Path, name: str,
                 is_ready: Callable[[], bool], timeout_s: float) -> Iterator[subprocess.Popen]:
    """Run ``command`` until the block ends; fail the test if ``is_ready`` is not true in time."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while not is_ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"{name} did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.5)
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
