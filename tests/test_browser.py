"""The report page in a real browser: headless Chromium, driven by selenium, with the
network unreachable. Skips, saying what is missing, where Chromium, chromedriver or
selenium is not installed (`apt-get install chromium chromium-driver`; the test extra)."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nnrun.cli import app

WIDTH = 1280  # the page must read at this width with no sideways scrolling
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
CHROMEDRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if CHROMIUM is None:
        return "chromium is not installed (apt-get install chromium)"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A one-axis sweep's page: an overview figure, two cells, every kind of table."""
    out = tmp_path_factory.mktemp("browser") / "sweep"
    args = ["sweep", "--set", "seeds=5", "--set", "training.epochs=300", "--workers", "1", "--quiet", "--grid", "model.init.scale=0.5,2", "--out", str(out), "--report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium that cannot reach any network: every request goes to a proxy on a
    closed port, and every host name resolves to nothing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--disable-dev-shm-usage", "--disable-gpu", "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={WIDTH},1000", "--hide-scrollbars"):
        options.add_argument(arg)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run its sandbox as root
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_renders_offline_with_every_figure_and_table(page, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title.startswith("nnrun report")
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in requested if not u.startswith(("file:", "data:"))] == []
    figures = browser.find_elements(By.CSS_SELECTOR, "img, main svg:not(svg svg)")
    assert len(figures) >= 1 + 2 * 4  # the overview, then four figures per cell
    for f in figures:
        assert f.size["width"] > 100 and f.size["height"] > 100, f.get_attribute("outerHTML")[:200]
    verdict = browser.find_element(By.CSS_SELECTOR, ".verdict").text
    assert "Across the 2 sweep cells" in verdict and "no clear difference" in verdict  # 5 seeds cannot reach p < 0.05
    for kind in ("overview", "summary", "comparison", "tuned"):
        table = browser.find_elements(By.CSS_SELECTOR, f"table.{kind}")
        assert table and table[0].is_displayed() and len(table[0].find_elements(By.TAG_NAME, "tr")) >= 2, kind
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WIDTH
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_the_page_prints(page, browser, tmp_path):
    browser.get(page.as_uri())
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert browser.execute_script("return getComputedStyle(document.querySelector('nav.toc')).display") == "none"
    pdf = base64.b64decode(browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})["data"])
    assert pdf[:5] == b"%PDF-" and pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 2
