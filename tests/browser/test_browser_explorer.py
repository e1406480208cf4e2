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
import sys
import urllib.request
from pathlib import Path

import pytest
from browser_servers import (
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
    require_browser()
    root = tmp_path / "lab"
    root.mkdir()
    _prepare_notebook(root)
    port, token = free_port(), secrets.token_hex(16)
    # JupyterLab 4 renders long notebooks "windowed" (off-screen cells detached): turn that off
    # so the explorer's table stays in the DOM wherever "run all" leaves the scroll position
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    jupyter = Path(sys.executable).with_name("jupyter")
    base = f"http://127.0.0.1:{port}"

    def is_ready() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    command = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--ServerApp.port_retries=0"] + (["--allow-root"] if os.geteuid() == 0 else [])
    with local_server(command, cwd=root, env=env, log_path=tmp_path / "jupyter.log",
                      name="JupyterLab", is_ready=is_ready, timeout_s=90):
        yield base, token, tmp_path


def test_explorer_slider_changes_kidney_bed_in_jupyterlab(jupyter_lab):
    from playwright.sync_api import sync_playwright

    base, token, tmp_path = jupyter_lab
    shots = [tmp_path / "explorer_before.png", tmp_path / "explorer_after.png",
             tmp_path / "explorer_explain.png"]
    with sync_playwright() as p:
        browser = launch_chromium(p)
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
            explorer = page.locator(".tdt-scenario-explorer").first
            explorer.scroll_into_view_if_needed()
            page.wait_for_function(
                "(selector) => { const e = document.querySelector(selector);"
                " return e && e.textContent.trim() !== ''; }", arg=KIDNEY_BED, timeout=60_000)
            before = kidney_bed_text(page)
            page.screenshot(path=str(shots[0]), full_page=True)
            handle = explorer.locator(".noUi-handle").first
            handle.focus()
            for _ in range(10):  # activity per cycle: +10 × 0.1 GBq
                handle.press("ArrowRight")
            page.wait_for_function(
                "([selector, old]) => { const e = document.querySelector(selector);"
                " return e && e.textContent.trim() !== old && e.textContent.trim() !== ''; }",
                arg=[KIDNEY_BED, before], timeout=60_000)
            after = kidney_bed_text(page)
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
