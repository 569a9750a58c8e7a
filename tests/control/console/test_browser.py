"""The console in a real browser: Debian's headless Chromium driven through Debian's chromedriver by Selenium (no
browser download). Loads every page of the console process over the real world (``conftest.console_world``), checks
the charts drew from real data, signs in, uses Try it and "this is wrong", reads the browser's console log for
errors, and saves a screenshot of each page.

Screenshots go to ``KS_CONSOLE_SCREENSHOTS`` (default ``test-artifacts/console``; CI keeps that directory as an
artefact; ``KS_CONSOLE_SCREENSHOTS=docs/images/console`` refreshes the pictures of docs/console.md). Without
chromium and chromedriver (``apt-get install chromium chromium-driver``; scripts/test.sh installs them as root) the
test is skipped, loudly, with the reason.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.control.console.conftest import TOKEN, ConsoleProcess, ConsoleWorld
from tests.support import REPO, wait_until

# The session's console world (conftest) starts MLflow, a shipper, two predictors and two drift runs: minutes on a
# loaded machine, counted against the first test that asks for it.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

CHROMIUM = Path(os.environ.get("KS_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("KS_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1360,1100", "--force-device-scale-factor=1")
DEADLINE_S = 120.0


def _skip_loudly(reason: str) -> None:
    message = f"BROWSER TEST SKIPPED: {reason}"
    print(f"\n{'*' * 80}\n{message}\n{'*' * 80}", file=sys.stderr)
    pytest.skip(message)


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """Where the screenshots go."""
    path = Path(os.environ.get("KS_CONSOLE_SCREENSHOTS") or REPO / "test-artifacts" / "console")
    if not path.is_absolute():
        path = REPO / path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium with a fresh profile, its console log captured."""
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(binary, os.X_OK):
            _skip_loudly(f"{binary} is missing: install Debian's {package} (apt-get install chromium "
                         "chromium-driver; scripts/test.sh does it as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ks-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(DEADLINE_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any, allowed: tuple[str, ...] = ()) -> list[str]:
    """SEVERE entries of the browser's console log since the last call (``allowed`` substrings excepted)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]


def open_page(driver: Any, url: str, ready_selector: str, what: str) -> None:
    """Load ``url`` and wait until the page filled its content and ``ready_selector`` matches; reload until then
    (data such as scraped rates appear after the first scrapes)."""
    from selenium.webdriver.common.by import By

    def ready() -> bool:
        if driver.find_elements(By.CSS_SELECTOR, "#content[data-loading='false']"):
            if driver.find_elements(By.CSS_SELECTOR, ready_selector):
                return True
            driver.get(url)
        return False

    driver.get(url)
    wait_until(ready, DEADLINE_S, what, interval_s=0.5)
    status = driver.find_element(By.ID, "status").text
    assert not status, f"{url}: {status}"


def points(driver: Any, chart: str) -> list[int]:
    """The number of marks each chart of kind ``chart`` drew."""
    from selenium.webdriver.common.by import By

    return [int(e.get_attribute("data-points") or 0)
            for e in driver.find_elements(By.CSS_SELECTOR, f"svg[data-chart='{chart}']")]


class Traffic:
    """A steady trickle of V1 requests to every predictor while the overview is looked at (bounded in time)."""

    def __init__(self, urls: list[str], seconds: float = 180.0) -> None:
        self.urls, self.seconds = urls, seconds
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        texts = ["what a lovely flight", "my bag is lost again", "the flight leaves at noon", "worst delay ever"]
        give_up = time.monotonic() + self.seconds
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self.stop.is_set() and time.monotonic() < give_up:
                for url in self.urls:
                    client.post(f"{url}/v1/models/sentiment:predict", json={"instances": texts[i % 4:i % 4 + 2]})
                i += 1
                self.stop.wait(0.05)  # about 20 requests per second and predictor

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def save(driver: Any, path: Path) -> None:
    """A screenshot of the whole page, beyond the window (Chromium's DevTools ``Page.captureScreenshot``)."""
    import base64

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                             "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_every_page_in_a_real_browser(browser: Any, console_process: ConsoleProcess, console_world: ConsoleWorld,
                                      screenshots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver, url = browser, console_process.url
    v1, v2 = console_world.versions

    # Overview: traffic split, sparklines of every track, class mix over time (live traffic meanwhile).
    with Traffic([console_world.stable.http, console_world.canary.http]):
        open_page(driver, f"{url}/", "svg[data-chart='spark-latency']", "the overview with its sparklines")

        def measuring() -> bool:
            driver.get(f"{url}/")
            wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#content[data-loading='false']"), DEADLINE_S,
                       "the overview")
            values = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".kpi .value")]
            return len(points(driver, "spark-rps")) == 2 and min(points(driver, "spark-rps")) >= 5 and all(
                v not in ("0", "\u2013") for v in values[0::4] + values[2::4])

        wait_until(measuring, DEADLINE_S, "request rates and latencies of both tracks", interval_s=1.0)
        save(driver, screenshots / "overview.png")
    assert points(driver, "traffic-split") == [2]
    assert all(n > 0 for n in points(driver, "spark-rps")) and points(driver, "spark-latency")
    assert len(points(driver, "class-mix")) == 2 and all(n > 0 for n in points(driver, "class-mix"))
    cards = driver.find_elements(By.CSS_SELECTOR, "section[aria-label$='track']")
    assert [c.get_attribute("aria-label") for c in cards] == ["stable track", "canary track"]
    assert f"version {v1}" in cards[0].text and "90 % of traffic" in cards[0].text
    assert "hold" in driver.find_element(By.CSS_SELECTOR, "[aria-label='rollout']").text

    # Models: the registry's versions and the macro-F1 chart.
    open_page(driver, f"{url}/models", "svg[data-chart='macro-f1']", "the models page")
    rows = driver.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == [v2, v1]
    assert "production" in rows[1].text and "promoted" in rows[1].text
    assert points(driver, "macro-f1") == [2]
    save(driver, screenshots / "models.png")

    # Rollouts: the timeline and every decision with its checks.
    open_page(driver, f"{url}/rollouts", "svg[data-chart='rollout-timeline']", "the rollouts page")
    assert points(driver, "rollout-timeline") == [4]
    assert "class_shares_psi: 0.02 (threshold 0.1, p 0.4)" in driver.find_element(By.TAG_NAME, "table").text
    save(driver, screenshots / "rollouts.png")

    # Drift: a trend chart per signal, the reports, and one report opened.
    open_page(driver, f"{url}/drift", "svg[data-chart='drift-signal']", "the drift page")
    trends = points(driver, "drift-signal")
    assert len(trends) >= 6 and max(trends) >= 2
    save(driver, screenshots / "drift.png")
    assert not console_errors(driver)
    driver.find_element(By.CSS_SELECTOR, "table a[href^='/drift/reports/']").click()
    wait_until(lambda: driver.title.startswith("Drift report"), DEADLINE_S, "the drift report page")

    # Sign in (the token is typed, never shown), then Try it and "this is wrong".
    driver.get(f"{url}/login?next=/try")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_until(lambda: driver.current_url.endswith("/try"), DEADLINE_S, "the redirect to Try it")
    open_page(driver, f"{url}/try", "#try-form", "the Try it form")
    assert TOKEN not in driver.page_source
    Select(driver.find_element(By.ID, "track")).select_by_value("canary")
    driver.find_element(By.ID, "text").send_keys("The crew were wonderful and the seats were comfy!")
    driver.find_element(By.CSS_SELECTOR, "#try-form button[type='submit']").click()
    wait_until(lambda: driver.find_elements(By.ID, "label"), DEADLINE_S, "the prediction")
    assert driver.find_element(By.ID, "label").text in console_world.classes
    assert f"version {v2}" in driver.find_element(By.ID, "result").text
    assert points(driver, "probabilities") == [len(console_world.classes)]
    prediction_id = driver.find_element(By.ID, "prediction-id").text
    assert prediction_id.startswith("console-") and prediction_id.endswith(":0")
    assert not console_errors(driver)
    save(driver, screenshots / "try.png")
    driver.find_element(By.ID, "send-feedback").click()
    wait_until(lambda: driver.find_element(By.ID, "feedback-status").text, DEADLINE_S, "the feedback answer")
    answer = driver.find_element(By.ID, "feedback-status").text
    assert answer.startswith("Thanks:") and prediction_id in answer
    assert not console_errors(driver)
    save(driver, screenshots / "try-feedback.png")
