"""Real-browser test: JupyterLab on localhost + headless Chromium (Playwright, Debian's chromium).

Starts JupyterLab (token auth on, 127.0.0.1, a free port) on a temporary copy of the explorer
notebook, opens it, runs all cells, moves the activity slider with the keyboard and checks that
the kidney BED shown by the widget changes (and increases), with no error shown in the widget.
A screenshot is saved (tmp dir and .cache/browser/). Every wait is bounded; the server is
stopped (its process group) at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "04_treatment_planning.ipynb"
KIDNEY_BED = '.tdt-scenario-explorer [data-region="kidneys"][data-quantity="bed_total_gy"]'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_notebook(directory: Path) -> None:
    """Copy the explorer notebook with small parameters (example draws: no MCMC needed)."""
    nb = json.loads((REPO / "notebooks" / NOTEBOOK).read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = source + '\nsource = "example"\nn_draws = 300\n'
    (directory / NOTEBOOK).write_text(json.dumps(nb))


@pytest.fixture
def jupyter_lab(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make browser installs it)")
    pytest.importorskip("playwright.sync_api")
    root = tmp_path / "lab"
    root.mkdir()
    _prepare_notebook(root)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    jupyter = Path(sys.executable).with_name("jupyter")
    log = (tmp_path / "jupyter.log").open("w")
    process = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--ServerApp.port_retries=0"] + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n"
                            + (tmp_path / "jupyter.log").read_text()[-3000:])
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


def test_explorer_slider_changes_kidney_bed_in_jupyterlab(jupyter_lab):
    from playwright.sync_api import sync_playwright

    base, token, tmp_path = jupyter_lab
    shots = [tmp_path / "explorer_before.png", tmp_path / "explorer_after.png",
             tmp_path / "explorer_explain.png"]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                timeout=120_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(KIDNEY_BED, timeout=240_000)
            before = _kidney_bed(page)
            explorer = page.locator(".tdt-scenario-explorer").first
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
            page.screenshot(path=str(shots[1]), full_page=True)
            # the patient-facing view: plain words and one picture
            explorer.get_by_text("explain (patient)").click()
            explorer.get_by_text("people like you").first.wait_for(timeout=60_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.tdt-scenario-explorer img')]"
                ".some(i => i.offsetParent !== null && i.naturalWidth > 0"
                " && i.naturalWidth < 400)", timeout=60_000)  # the icon-array picture
            page.screenshot(path=str(shots[2]), full_page=True)
            errors = explorer.locator(".tdt-error").count()
        finally:
            browser.close()
    keep = REPO / ".cache" / "browser"
    keep.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy(shot, keep / shot.name)
    assert errors == 0, "the explorer showed an error"
    assert float(after) > float(before), (before, after)
