"""A real, headless Debian chromium for tests (pytest plugin, loaded by tests/conftest.py).

How other tests use it:

* ``browser`` (fixture): a :class:`Browser` on a fresh chromium profile. ``browser.open(url)``,
  ``browser.driver`` (a selenium ``WebDriver``), ``browser.console()`` (every console message the
  pages logged so far, including CSP violations), ``browser.screenshot("name")`` (a PNG under the
  test's artifact folder). A test that fails leaves a ``failure.png`` of the last page there too.
* ``chromedriver`` (session fixture): the one ``/usr/bin/chromedriver`` process of the session.
* Artifacts go to ``$JOBSTS_TEST_ARTIFACTS`` or ``tests/artifacts`` (git-ignored), one folder per test.

Why selenium and not playwright: Debian ships ``chromium`` and ``chromium-driver`` from the same
source package, so the driver always speaks the browser's protocol version. Playwright pins its
own browser build and drives other builds on a best-effort basis. Nothing is ever downloaded:
this module starts ``/usr/bin/chromedriver`` itself (``--port=0``: the driver binds the port and
keeps it, and prints it) and talks to it as a remote end, so selenium's driver finder and
Selenium Manager never run. Test pages are served on loopback ports bound to 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = os.environ.get("JOBSTS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("JOBSTS_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("JOBSTS_TEST_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts")
# The flags every session gets. Why each: headless (no display on CI); no-sandbox (the suite runs
# as root in containers, where chromium's sandbox cannot start); the rest keep chromium from
# talking to anything but the test's own loopback server (no QUIC, no component or safe-browsing
# downloads, no sync, no first-run pages, no proxy from the environment).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--window-size=1280,800",
)
DRIVER_START_LIMIT_SECONDS = 60.0  # a readiness limit, never a timing assertion
_PORT_LINE = re.compile(r"started successfully on port (\d+)")


@dataclass(frozen=True)
class ConsoleMessage:
    """One console entry of the page: ``level`` is chromium's (INFO, WARNING, SEVERE, ...)."""

    level: str
    source: str
    text: str


@dataclass
class Chromedriver:
    """The running ``chromedriver``: its URL and process."""

    url: str
    process: subprocess.Popen[bytes]


def start_chromedriver(workdir: Path) -> Chromedriver:
    """Start ``/usr/bin/chromedriver --port=0`` and read the port it bound from its banner."""
    for binary in (CHROMEDRIVER, CHROMIUM):
        if not shutil.which(binary):
            raise RuntimeError(f"{binary} is missing: install Debian's chromium and chromium-driver (tests/run.sh)")
    banner = workdir / "chromedriver.out"
    with banner.open("wb") as out:
        process = subprocess.Popen(
            [CHROMEDRIVER, "--port=0", f"--log-path={workdir / 'chromedriver.log'}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + DRIVER_START_LIMIT_SECONDS
    while time.monotonic() < deadline:
        found = _PORT_LINE.search(banner.read_text(errors="replace"))
        if found:
            return Chromedriver(f"http://127.0.0.1:{found.group(1)}", process)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"chromedriver did not start: {banner.read_text(errors='replace')}")


def new_session(driver_url: str, profile: Path) -> WebDriver:
    """A new chromium session on a fresh profile directory, logging every console message."""
    from selenium import webdriver
    from selenium.webdriver.chromium.remote_connection import ChromiumRemoteConnection

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    connection = ChromiumRemoteConnection(driver_url, vendor_prefix="goog", browser_name="chrome", ignore_proxy=True)
    return webdriver.Remote(command_executor=connection, options=options)


SESSION_START_ATTEMPTS = 3


def _started_session(driver_url: str, tmp_path: Path) -> WebDriver:
    """A new session; a chromium that fails to start (seen once under heavy load) is started again
    on a fresh profile, because a browser that never came up says nothing about the page under test."""
    from selenium.common.exceptions import WebDriverException

    for attempt in range(1, SESSION_START_ATTEMPTS + 1):
        try:
            return new_session(driver_url, tmp_path / f"chromium-profile-{attempt}")
        except WebDriverException:
            if attempt == SESSION_START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


@dataclass
class Browser:
    """One chromium session of one test."""

    driver: WebDriver
    artifacts: Path
    _console: list[ConsoleMessage] = field(default_factory=list)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def console(self) -> list[ConsoleMessage]:
        """Every console message since the session began (chromium hands each one out once)."""
        entries: list[dict[str, Any]] = self.driver.execute("getLog", {"type": "browser"})["value"]
        self._console.extend(ConsoleMessage(e["level"], e.get("source", ""), e["message"]) for e in entries)
        return list(self._console)

    def screenshot(self, name: str) -> Path:
        """Save the viewport as ``<artifacts>/<test>/<name>.png`` and return the path."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        if not self.driver.save_screenshot(str(path)):
            raise RuntimeError(f"chromium saved no screenshot to {path}")
        return path


def artifact_dir(nodeid: str) -> Path:
    """The artifact folder of one test, named after its node id."""
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")


@pytest.fixture(scope="session")
def chromedriver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromedriver]:
    driver = start_chromedriver(tmp_path_factory.mktemp("chromedriver"))
    try:
        yield driver
    finally:
        driver.process.terminate()
        try:
            driver.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.process.kill()
            driver.process.wait()


@pytest.fixture
def browser(request: pytest.FixtureRequest, chromedriver: Chromedriver, tmp_path: Path) -> Iterator[Browser]:
    session = Browser(_started_session(chromedriver.url, tmp_path), artifact_dir(request.node.nodeid))
    try:
        yield session
    finally:
        try:
            report = getattr(request.node, "_browser_call_report", None)
            if report is not None and report.failed:
                session.screenshot("failure")
        finally:
            session.driver.quit()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep the call phase's report on the item, so ``browser`` can screenshot a failed test."""
    outcome = yield
    if call.when == "call":
        item._browser_call_report = outcome.get_result()  # type: ignore[attr-defined]
