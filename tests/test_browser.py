"""A person's view: Debian's chromium (driven by Playwright) opens a lab in the real
JupyterLab that `./lab start` runs, runs all cells, and sees the check pass and the live
bokeh chart drawn. A screenshot is left in $XDPLAB_ARTIFACTS (default /tmp/xdplab-artifacts)."""
import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(os.environ.get("XDPLAB_ARTIFACTS", "/tmp/xdplab-artifacts"))

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (./lab setup installs it)")]


@pytest.fixture
def page(jupyter):
    from playwright import sync_api
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


def run_all(page, base, token, notebook):
    page.goto(f"{base}/lab/tree/labs/{notebook}?token={token}")
    page.wait_for_selector(".jp-Notebook", timeout=60000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60000)
    started = page.locator(".jp-InputArea-prompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for _ in range(3):                  # a click can land before the kernel is connected
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            started.first.wait_for(timeout=20000)
            return
        except Exception:
            page.keyboard.press("Escape")
    raise AssertionError("Run All Cells did not start the notebook")


def test_lab01_runs_in_jupyterlab_and_draws_the_live_chart(page, jupyter):
    base, token = jupyter
    run_all(page, base, token, "01-hello-xdp.ipynb")
    done = page.locator(".jp-OutputArea-output", has_text="✔ lab 01 done")
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                         ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        done.or_(error).first.wait_for(timeout=240000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "lab01-full.png"), full_page=True)
        (ARTIFACTS / "lab01.html").write_text(page.content())
    assert done.count() == 1, "a cell failed in JupyterLab: " + " | ".join(error.all_inner_texts())[-2000:]
    page.locator(".jp-Cell").nth(3).scroll_into_view_if_needed()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "lab01-plotcell.png"))
    (ARTIFACTS / "lab01.html").write_text(page.content())
    charts = page.locator(".jp-OutputArea-output .bk-Canvas, .jp-OutputArea-output canvas")
    assert charts.count() >= 1, "the bokeh live chart should be drawn in the notebook"
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0 \
        or page.locator("text=Traceback").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".jp-OutputArea-output .bk-Canvas, .jp-OutputArea-output canvas").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "lab01.png"))
