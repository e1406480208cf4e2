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
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser_servers import (
    EXPLORER,
    KIDNEY_BED,
    REPO,
    free_port,
    kidney_bed_text,
    launch_chromium,
    local_server,
    require_browser,
)

pytestmark = pytest.mark.slow

NOTEBOOK = "04_treatment_planning.ipynb"
# what Voilà shows when a cell raises (with and without --show_tracebacks)
ERROR_MARKERS = ("Traceback (most recent call last)", "There was an error when executing cell")


@pytest.fixture
def voila_app(tmp_path):
    require_browser()
    pytest.importorskip("voila")
    voila = Path(sys.executable).with_name("voila")
    if not voila.exists():
        pytest.skip("the voila executable is not installed next to the test interpreter")
    root = tmp_path / "app"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JAX_PLATFORMS="cpu")
    env.pop("MPLBACKEND", None)  # as a user serves it: the kernel's inline backend shows figures
    base = f"http://127.0.0.1:{port}"

    def is_ready() -> bool:  # the server is up once it answers for its static files
        try:
            with urllib.request.urlopen(f"{base}/voila/static/favicon.ico", timeout=5):
                return True
        except urllib.error.HTTPError:
            return True  # it answers: it is up
        except OSError:
            return False

    command = [str(voila), NOTEBOOK, "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
               "--Voila.port_retries=0", f"--token={token}", "--show_tracebacks=True",
               "--VoilaExecutor.timeout=300"]
    with local_server(command, cwd=root, env=env, log_path=tmp_path / "voila.log",
                      name="Voilà", is_ready=is_ready, timeout_s=60):
        yield base, token, tmp_path


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
        browser = launch_chromium(p)
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
            before = kidney_bed_text(page)
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
            after = kidney_bed_text(page)
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
