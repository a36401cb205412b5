"""Browser end-to-end tests: a headless Chromium driven through Selenium against pytest-django's live server.

Debian's packages are used (`apt-get install chromium chromium-driver`, as .ci/run does); without them, or
without selenium, the tests are skipped with the reason. Screenshots go to <repo>/test-output/e2e/ (git-ignored):
the ones a test takes on purpose, and FAILED-<test>.png when a test fails.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "e2e"
WINDOW = (1280, 900)

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
]


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.exists(path) and os.access(path, os.X_OK)):
            return f"{path} is missing: apt-get install chromium chromium-driver ({package})"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Remember each phase's outcome on the test item, so the browser fixture knows whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def browser(request, tmp_path):
    """A fresh headless Chromium with its own profile; a screenshot is saved when the test fails."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(argument)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(f"The page when the test failed: {save_screenshot(driver, f'FAILED-{request.node.name}')}")
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def save_screenshot(driver, name: str, full_page: bool = True) -> Path:
    """Write test-output/e2e/<name>.png: the whole page, or only what the window shows.

    For the whole page the viewport is made as tall as the page for a moment (DevTools protocol), so that sticky
    and fixed elements sit where a user scrolling to them would see them.
    """
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    if not full_page:
        driver.save_screenshot(str(path))
        return path
    page_height = "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);"
    width = driver.execute_script("return window.innerWidth;")
    try:
        # Twice: without a vertical scrollbar the page is a little wider, so its height can change.
        for _ in range(2):
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": min(driver.execute_script(page_height), 10000),
                "deviceScaleFactor": 1, "mobile": False})
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


@pytest.fixture
def screenshot(browser):
    """screenshot("name") saves the current page as test-output/e2e/name.png and returns the path."""
    return lambda name, full_page=True: save_screenshot(browser, name, full_page)


@pytest.fixture
def verification_queue(monkeypatch):
    """The verification tasks the application queues, kept here instead of being sent to a broker."""
    from repository.tasks import run_verification_task

    queued = []
    monkeypatch.setattr(run_verification_task, "apply_async", lambda *args, **kwargs: queued.append((args, kwargs)))
    return queued


@pytest.fixture
def upload_checks(monkeypatch):
    """The check of a completed upload (upload_check_task) runs at once, in the live server's thread that queues
    it, as a worker would run it; only this task, so a test can still play the verification worker itself."""
    from repository.tasks import upload_check_task

    monkeypatch.setattr(upload_check_task, "delay", lambda *args: upload_check_task.apply(args=args))
