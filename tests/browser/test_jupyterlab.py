"""The notebooks as a user meets them: JupyterLab in chromium, Run All, then the widgets by hand.

Each test opens a fresh copy of a notebook (see conftest.py), runs every cell from the Run menu as
a user would, and checks what the page shows: no traceback, no "Error displaying widget", the
controls rendered; then it presses the buttons of the sweep panel and the live dashboard and waits
for what a user would wait for. Nothing here judges how long anything took; the timeouts only stop
a hung test.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

RUN_ALL_TIMEOUT_MS = 300_000
KERNEL_TIMEOUT_MS = 120_000

# True when every code cell has run ([n] prompts), or as soon as one shows a traceback (Run All
# stops there, and the rest would never run).
ALL_RAN_OR_FAILED = """() => {
  const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
  if (outputs.some(o => o.textContent.includes('Traceback (most recent call last)'))) return true;
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


STARTED = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
  .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""


def open_and_run_all(page, lab, notebook: str) -> None:
    page.goto(lab.url(notebook))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=KERNEL_TIMEOUT_MS)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=KERNEL_TIMEOUT_MS)
    # A Run All pressed while the kernel is still connecting can be lost (the cells stay
    # "[ ]"), so a user would press it again; so does the test, up to three times.
    for _ in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(STARTED, timeout=30_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    page.wait_for_function(ALL_RAN_OR_FAILED, timeout=RUN_ALL_TIMEOUT_MS)


def assert_clean(page) -> None:
    """No cell failed and every widget rendered."""
    texts = [o.inner_text() for o in page.query_selector_all(".jp-OutputArea-output")]
    failed = [t for t in texts if "Traceback (most recent call last)" in t]
    assert not failed, failed[0][-2000:]
    broken = [t for t in texts if "Error displaying widget" in t]
    assert not broken, broken[0]


def numbers(text: str) -> list[int]:
    return [int(n.replace(",", "").replace(" ", "")) for n in re.findall(r"\d[\d,]*", text)]


@pytest.mark.parametrize("notebook", ["01_tour.ipynb", "03_sweep_batch_gc.ipynb"])
def test_notebook_runs_and_widgets_render(page, lab, notebook):
    open_and_run_all(page, lab, notebook)
    assert_clean(page)
    assert page.locator(".jupyter-widgets").count() > 0, "no widget on the page"
    assert page.locator(".jp-OutputArea-output img").count() > 0, "no figure on the page"


def shoot(page, css: str, path, max_height: float = 1_100) -> None:
    """A picture of one widget, cut at ``max_height`` pixels (the README shows these)."""
    box = page.locator(css).bounding_box()
    page.set_viewport_size({"width": 1400, "height": int(box["y"] + max_height) + 50})
    box = page.locator(css).bounding_box()
    clip = {**box, "height": min(box["height"], max_height)}
    page.screenshot(path=str(path), clip=clip, full_page=True)


def status_field(page, css: str, name: str) -> int:
    """The integer after ``name`` in a status line (e.g. "tick 1,234")."""
    text = page.locator(css).inner_text()
    found = re.search(rf"{name} ([\d,]+)", text)
    assert found, f"no {name!r} in status {text!r}"
    return int(found.group(1).replace(",", ""))


def wait_status(page, css: str, pattern: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(
        "([css, pattern]) => new RegExp(pattern).test(document.querySelector(css).textContent)",
        arg=[css, pattern],
        timeout=timeout_ms,
    )


def test_sweep_panel_runs_shows_progress_then_figures(page, lab, screenshots):
    open_and_run_all(page, lab, "03_sweep_batch_gc.ipynb")
    assert_clean(page)
    run = page.locator("button.lifelab-sweep-run")
    assert run.is_enabled()
    assert page.locator(".lifelab-sweep-output img").count() == 0, "figures before Run"
    run.click()
    # The run is on: Run is disabled, Cancel enabled, the label counts trials.
    wait_status(page, ".lifelab-sweep-status", "running")
    assert page.locator("button.lifelab-sweep-cancel").is_enabled()
    assert not run.is_enabled()
    wait_status(page, ".lifelab-sweep-status", "^done: ", timeout_ms=RUN_ALL_TIMEOUT_MS)
    label = page.locator(".lifelab-sweep-progress-label").inner_text()
    done, total = map(int, re.search(r"trial (\d+)/(\d+)", label).groups())
    assert done == total >= 1, label
    page.locator(".lifelab-sweep-output img").first.wait_for(timeout=60_000)
    assert page.locator(".lifelab-sweep-output img").count() >= 3  # throughput, latency, stages
    assert ".parquet" in page.locator(".lifelab-sweep-output").inner_text()
    assert run.is_enabled()
    shoot(page, ".lifelab-sweep-panel", screenshots / "sweep_panel.png")


def test_dashboard_start_push_plot_changes_stop(page, lab, screenshots):
    status = ".lifelab-dash-status"
    open_and_run_all(page, lab, "01_tour.ipynb")
    assert_clean(page)
    plot = page.locator("img.lifelab-dash-plot")
    page.locator("button.lifelab-dash-start").click()
    wait_status(page, status, "running")
    start_tick = status_field(page, status, "tick")
    page.wait_for_function(
        "([css, t]) => +/tick ([\\d,]+)/.exec(document.querySelector(css).textContent)[1]"
        ".replaceAll(',', '') > t",
        arg=[status, start_tick],
        timeout=60_000,
    )
    before_src = plot.get_attribute("src")
    pushed = status_field(page, status, "pushed")
    page.locator("button.lifelab-dash-push").click()
    wait_status(page, status, f"pushed {pushed + 1:,}")
    page.wait_for_function(
        "([css, src]) => document.querySelector(css).getAttribute('src') !== src",
        arg=["img.lifelab-dash-plot", before_src],
        timeout=60_000,
    )
    shoot(page, ".lifelab-dash", screenshots / "dashboard.png")
    page.locator("button.lifelab-dash-stop").click()
    wait_status(page, status, "stopped")
    stopped_at = status_field(page, status, "tick")
    assert stopped_at > start_tick
    page.wait_for_timeout(1_000)  # a living organism would tick on (100 ticks/s)
    assert status_field(page, status, "tick") == stopped_at
