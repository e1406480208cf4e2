"""Real-browser test: the explorer notebook served as a standalone Voilà app (issue 9).

Starts Voilà (token auth on, 127.0.0.1, a free port) on a temporary, *unmodified* copy of
notebooks/04_treatment_planning.ipynb: its default parameters (``source="auto"`` with no
``output_dir``) fall back to the example posterior draws, so notebook 03 is not needed. Headless
Chromium (Playwright, Debian's chromium) opens the app, waits for the scenario explorer, moves
the activity slider with the keyboard and checks that the kidney BED shown by the widget changes
(and increases), that the code cells are hidden (Voilà strips sources) and that no error or
traceback is shown. Screenshots are saved (tmp dir and .cache/browser/). Every wait is bounded;
the server is stopped (its process group) at the end.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "04_treatment_planning.ipynb"
EXPLORER = ".tdt-scenario-explorer"
KIDNEY_BED = f'{EXPLORER} [data-region="kidneys"][data-quantity="bed_total_gy"]'
# what Voilà shows when a cell raises (with and without --show_tracebacks)
ERROR_MARKERS = ("Traceback (most recent call last)", "There was an error when executing cell")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_app(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make browser installs it)")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("voila")
    voila = Path(sys.executable).with_name("voila")
    if not voila.exists():
        pytest.skip("the voila executable is not installed next to the test interpreter")
    root = tmp_path / "app"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JAX_PLATFORMS="cpu")
    env.pop("MPLBACKEND", None)  # as a user serves it: the kernel's inline backend shows figures
    log_path = tmp_path / "voila.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(voila), NOTEBOOK, "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
         "--Voila.port_retries=0", f"--token={token}", "--show_tracebacks=True",
         "--VoilaExecutor.timeout=300"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # the server is up once its static files are served
            try:
                with urllib.request.urlopen(f"{base}/voila/static/favicon.ico", timeout=5):
                    break
            except urllib.error.HTTPError:
                break  # it answers: it is up
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("Voilà did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.5)
        yield base, token, tmp_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def _kidney_bed(page) -> str:
    return page.locator(KIDNEY_BED).first.inner_text(timeout=5_000).strip()


def test_explorer_renders_as_voila_app_and_slider_changes_kidney_bed(voila_app):
    from playwright.sync_api import sync_playwright

    base, token, tmp_path = voila_app
    # token auth is on: without it the app is not served (redirect to the login page)
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().status in (302, 401, 403)
    finally:
        conn.close()
    shots = [tmp_path / "voila_before.png", tmp_path / "voila_after.png",
             tmp_path / "voila_plan.png"]
    page_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            # Voilà executes the whole notebook before (streaming) the page: allow for it
            page.goto(f"{base}/?token={token}", wait_until="commit", timeout=60_000)
            page.wait_for_selector(KIDNEY_BED, timeout=300_000)
            # the last cell's output is there once the whole notebook has run
            page.get_by_text("Optimised plan").first.wait_for(timeout=300_000)
            page.wait_for_load_state("load", timeout=300_000)
            before = _kidney_bed(page)
            explorer = page.locator(EXPLORER).first
            explorer.scroll_into_view_if_needed()
            page.screenshot(path=str(shots[0]), full_page=True)
            handle = explorer.locator(".noUi-handle").first
            handle.focus()
            for _ in range(10):  # activity per cycle: +10 × 0.1 GBq
                handle.press("ArrowRight")
            page.wait_for_function(
                "([selector, old]) => { const e = document.querySelector(selector);"
                " return e && e.textContent.trim() !== old; }",
                arg=[KIDNEY_BED, before], timeout=60_000)
            after = _kidney_bed(page)
            explorer.scroll_into_view_if_needed()
            page.screenshot(path=str(shots[1]), full_page=True)
            # the rest of the app: fan chart and optimised plan below the explorer
            page.get_by_text("Optimised plan").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shots[2]))
            figures = page.locator(".jp-OutputArea-output img").count()
            widget_errors = explorer.locator(".tdt-error").count()
            body = page.locator("body").inner_text()
            sources_shown = page.locator(".jp-InputArea-editor").count()
        finally:
            browser.close()
    keep = REPO / ".cache" / "browser"
    keep.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy(shot, keep / shot.name)
    assert widget_errors == 0, "the explorer showed an error"
    shown = [m for m in ERROR_MARKERS if m in body]
    assert not shown, f"the app shows a cell error: {shown}"
    assert not page_errors, f"uncaught JavaScript errors: {page_errors}"
    assert sources_shown == 0, "Voilà should hide the code cells"
    assert float(after) > float(before), (before, after)
    # explorer plots + the record figure + the fan chart (matplotlib PNG outputs)
    assert figures >= 3, f"only {figures} figures rendered"
