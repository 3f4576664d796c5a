"""A learner's view: Debian's chromium (driven by Playwright) opens every lab in the real
JupyterLab that `./lab start` runs (on working copies, with the lab's settings), runs all
cells and waits for the lab's check cell. It fails on a cell error, a widget error, a
chart drawn blank, a dialog or news popup in the way, or a tracked file the run changed.
A screenshot of each whole notebook is left in $XDPLAB_ARTIFACTS (default
/tmp/xdplab-artifacts): ``labNN.png``, with ``times.txt`` (seconds per lab)."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from xdplab.ui import workspace

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(os.environ.get("XDPLAB_ARTIFACTS", "/tmp/xdplab-artifacts"))
REPO = Path(__file__).resolve().parent.parent
LABS = workspace.shipped()

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (./lab setup installs it)")]

# JupyterLab renders an error as stderr text: an error is stderr that names one (warnings
# and progress bars are stderr too). xdplab's own errors print "ClassName: message".
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|(^|\n)\s*[\w.]*(Error|Exception|NotSupported)\b[^\n]*:")
WIDGET_ERROR = re.compile(r"Error displaying widget|javascript error|Error rendering", re.I)

#: the stderr outputs naming an error, in cells other than those listed (by index)
UNEXPECTED_ERRORS = """
([expected, pattern, selector]) => {
  const re = new RegExp(pattern);
  const out = [];
  document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook').forEach(nb => {
    nb.querySelectorAll('.jp-Cell').forEach((cell, i) => {
      if (expected.includes(i)) return;
      cell.querySelectorAll(selector).forEach(o => { if (re.test(o.innerText)) out.push(o.innerText); });
    });
  });
  return out;
}
"""


def _expected_error_cells(lab: Path) -> list[int]:
    """Indices of the cells the notebook tags ``raises-exception``."""
    cells = json.loads(lab.read_text())["cells"]
    return [i for i, c in enumerate(cells) if "raises-exception" in c.get("metadata", {}).get("tags", [])]


#: how many pixels of a chart's canvas must be coloured (not white/grey/black) to be drawn
MIN_COLOURED = 200
CANVAS_PIXELS = """
(canvases) => canvases.map(canvas => {
  const ctx = canvas.width && canvas.height && canvas.getContext('2d');
  if (!ctx) return 0;
  const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let coloured = 0;
  for (let i = 0; i < d.length; i += 4) {
    const r = d[i], g = d[i + 1], b = d[i + 2], a = d[i + 3];
    if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
  }
  return coloured;
}).reduce((a, b) => a + b, 0)
"""


#: a checkout other people edit while the test runs (a shared development machine): only
#: the paths a lab run could touch are compared. CI leaves it unset: the whole checkout.
SHARED_TREE = bool(os.environ.get("XDPLAB_TEST_SHARED_TREE"))


def _status() -> str:
    """Tracked files changed, and files git does not ignore, in the checkout (on a shared
    tree: the shipped notebooks only)."""
    where = ["--untracked-files=no", "--", "labs"] if SHARED_TREE else ["--untracked-files=all"]
    return subprocess.run(["git", "status", "--porcelain", *where],
                          cwd=REPO, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def browser(jupyter):
    from playwright import sync_api
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def checkout_before(jupyter):
    """The checkout's state before any lab ran (a run must not change it)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "times.txt").write_text("")
    return _status()


def _api(base, token, path, method="GET"):
    req = urllib.request.Request(f"{base}/api/{path}?token={token}", method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return json.loads(body) if body else None


def _shutdown(base, token, name):
    """Stop the lab's kernel (its programs detach with the process)."""
    for s in _api(base, token, "sessions"):
        if s.get("path", "").endswith(name):
            _api(base, token, f"sessions/{s['id']}", "DELETE")


def _log_browser(page, name):
    """The page's console errors and failed requests, kept beside the screenshot."""
    log = open(ARTIFACTS / f"{name}-browser.log", "w")
    page.on("console", lambda m: log.write(f"console {m.type}: {m.text}\n") if m.type in ("error", "warning") else None)
    page.on("requestfailed", lambda r: log.write(f"request failed: {r.method} {r.url.split('?')[0]} {r.failure}\n"))
    return log


def _connection_errors(page) -> list:
    """Chromium aborts in-flight requests with ERR_NETWORK_CHANGED whenever interfaces come
    and go (every lab makes veths and namespaces), and JupyterLab then shows "Server
    Connection Error" while it reconnects: close that dialog (it is not the lab's) and
    count it. Any other dialog stays and fails the test."""
    seen = []
    conn = page.locator(".jp-Dialog", has_text="Server Connection Error")

    def close(dialog):
        seen.append(1)
        dialog.get_by_role("button", name="Close").click()
    page.add_locator_handler(conn, close)
    return seen


def _idle(page):
    """The notebook's kernel is connected and idle (the status bar says so)."""
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")).first.wait_for(timeout=90000)


def run_all(page, base, token, notebook):
    # ?reset: a fresh layout with only this notebook open (not the last test's tabs).
    # Interfaces coming and going (labs make veths) abort Chromium's in-flight requests
    # (ERR_NETWORK_CHANGED): a page that lost some while loading is loaded again.
    lost = []
    page.on("requestfailed", lambda r: lost.append(r.url) if "NETWORK_CHANGED" in str(r.failure) else None)
    for attempt in range(4):
        lost.clear()
        try:
            page.goto(f"{base}/lab/tree/labs/{notebook}?reset&token={token}")
            page.locator(".jp-Notebook:visible").first.wait_for(timeout=60000)
            _idle(page)
        except Exception:
            if not lost or attempt == 3:
                raise
            continue
        if not lost:
            break
    dialogs = page.locator(".jp-Dialog")
    try:                                # nothing may pop up in the learner's way
        dialogs.first.wait_for(timeout=3000)
    except Exception:
        pass
    if dialogs.count() and "Server Connection Error" in dialogs.first.inner_text():
        dialogs.first.get_by_role("button", name="Close").click()    # see _connection_errors
        page.wait_for_timeout(500)
    if dialogs.count():
        page.screenshot(path=str(ARTIFACTS / f"dialog-{notebook}.png"))
    assert dialogs.count() == 0, "a dialog is in the learner's way: " + " | ".join(dialogs.all_inner_texts())
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


def _screenshot(page, path):
    """The whole notebook: the viewport grows to its height (JupyterLab scrolls inside)."""
    h = page.evaluate("() => Math.max(1000, ...[...document.querySelectorAll("
                      "'.jp-NotebookPanel .jp-WindowedPanel-outer, .jp-NotebookPanel .jp-Notebook')]"
                      ".map(n => n.scrollHeight))")
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(h) + 200, 16000))})
    page.evaluate("() => document.querySelectorAll('.jp-NotebookPanel .jp-WindowedPanel-outer')"
                  ".forEach(n => n.scrollTop = 0)")
    page.wait_for_timeout(1500)               # charts re-layout to the new size
    page.screenshot(path=str(path))


@pytest.mark.timeout(900)              # lab 10 measures for minutes on a loaded machine
@pytest.mark.parametrize("lab", LABS, ids=[p.stem[:2] for p in LABS])
def test_lab_runs_in_jupyterlab_to_its_check(lab, browser, jupyter, checkout_before):
    base, token = jupyter
    num = lab.stem[:2]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log = _log_browser(page, f"lab{num}")
    _connection_errors(page)
    t0 = time.monotonic()
    try:
        try:
            run_all(page, base, token, lab.name)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"lab{num}-start.png"))
            raise
        done = page.locator(".jp-OutputArea-output", has_text=f"✔ lab {num} done")
        # a cell the lab tags raises-exception shows its error on purpose (lab 03's verifier
        # error): only errors in the other cells count
        expected = _expected_error_cells(lab)
        try:
            deadline = time.monotonic() + 420
            while time.monotonic() < deadline:
                errors = page.evaluate(UNEXPECTED_ERRORS, [expected, ERROR_TEXT.pattern, STDERR])
                if errors or done.count():
                    break
                page.wait_for_timeout(1000)
        finally:
            secs = time.monotonic() - t0
            with open(ARTIFACTS / "times.txt", "a") as f:
                f.write(f"{lab.stem} {secs:.1f}\n")
            _screenshot(page, ARTIFACTS / f"lab{num}.png")
        assert not errors, f"a cell failed in JupyterLab: {' | '.join(errors)[-3000:]}"
        assert done.count() == 1
        outputs = page.locator(".jp-OutputArea-output")
        bad = [t for t in outputs.all_inner_texts() if WIDGET_ERROR.search(t)]
        assert not bad, f"a widget failed to render: {bad[:3]}"
        # every chart drawn: an output with bokeh canvases (its layers, in shadow roots)
        # has coloured pixels
        charts = outputs.filter(has=page.locator("canvas"))
        blank = []
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            if chart.locator("canvas").evaluate_all(CANVAS_PIXELS) < MIN_COLOURED:
                blank.append(chart.inner_text()[:80] or f"chart {i}")
        assert not blank, f"charts drawn blank: {blank}"
        others = [t for t in page.locator(".jp-Dialog").all_inner_texts() if "Server Connection Error" not in t]
        assert not others, f"a dialog is in the learner's way: {others}"
        toasts = page.locator(".Toastify__toast")
        news = [t for t in toasts.all_inner_texts() if "news" in t.lower()]
        assert not news, f"a news popup covers the lab: {news}"
    finally:
        try:
            _shutdown(base, token, lab.name)
        finally:
            page.close()
            log.close()
    changed = set(_status().splitlines()) - set(checkout_before.splitlines())
    assert not changed, f"running lab {num} changed the checkout: {sorted(changed)}"


def test_xdp_cells_are_highlighted_and_indented_as_c(browser, jupyter):
    """The xdplab-c-cells extension: below a %%xdp line the cell is C (a C keyword such as
    `struct` is styled; Enter after `{` indents, a typed `}` dedents), above it and in
    other cells Python."""
    base, token = jupyter
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                     "source": "%%xdp --no-attach\nint f(struct xdp_md *ctx)\n{\n    return XDP_PASS;\n}"},
                    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                     "source": "struct = 1"}],
          "metadata": {"kernelspec": {"name": workspace.KERNEL_NAME, "display_name": workspace.KERNEL_DISPLAY,
                                      "language": "python"}, "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    name = "xdplab-c-cells-check.ipynb"
    req = urllib.request.Request(f"{base}/api/contents/{name}?token={token}", method="PUT",
                                 data=json.dumps({"type": "notebook", "content": nb}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
        page.locator(".jp-Notebook:visible").first.wait_for(timeout=60000)
        cells = page.locator(".jp-CodeCell")
        cells.first.locator(".cm-line", has_text="struct").wait_for(timeout=30000)
        c_struct = cells.nth(0).locator(".cm-line span", has_text=re.compile(r"^struct$"))
        py_struct = cells.nth(1).locator(".cm-line span", has_text=re.compile(r"^struct$"))
        try:                               # the languages load lazily, then re-highlight
            c_struct.first.wait_for(timeout=30000)
        except Exception:
            pass
        assert c_struct.count() == 1, "struct is not highlighted as a C keyword in the %%xdp cell"
        assert py_struct.count() == 0, "the Python cell highlights struct: the whole notebook became C"
        cells.nth(0).locator(".cm-line", has_text="{").first.click()
        page.keyboard.press("End")
        for key in ("Enter", "if (a) {", "Enter", "x;", "Enter", "}"):
            page.keyboard.press(key) if key == "Enter" else page.keyboard.type(key)
        lines = cells.nth(0).locator(".cm-line").all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "c-cells.png"))
        assert lines[3:6] == ["    if (a) {", "        x;", "    }"], lines
    finally:
        page.close()
        _shutdown(base, token, name)
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/contents/{name}?token={token}",
                                                      method="DELETE"), timeout=30)
