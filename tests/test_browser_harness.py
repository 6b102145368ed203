"""The browser harness (tests/browser.py) against tiny pages on a loopback port bound to 0.

The harness is what the console's script-injection tests stand on, so it proves here that it
sees what a page logs, that a CSP-blocked inline script leaves no trace in the console, and that
screenshots land as artifacts.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, Browser, Chromedriver, new_session

LOGGED = "harness-logged-7f3a"
INJECTED = "harness-injected-c91e"
STRICT_CSP = "default-src 'none'; script-src 'self'; img-src 'self'; frame-ancestors 'none'"
PAGES: dict[str, tuple[str | None, str]] = {  # path -> (Content-Security-Policy, body)
    "/logs": (None, f'<title>logs</title><script>console.log("{LOGGED}")</script><p>hello</p>'),
    "/blocked": (
        STRICT_CSP,
        f'<title>blocked</title><script>console.log("{INJECTED}"); document.title = "{INJECTED}"</script>'
        '<p id="text">untrusted text was here</p>',
    ),
}


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        csp, body = PAGES.get(self.path, (None, "<title>not found</title>"))
        data = f"<!doctype html><html><body>{body}</body></html>".encode()
        self.send_response(200 if self.path in PAGES else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if csp:
            self.send_header("Content-Security-Policy", csp)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[str]:
    """The test pages on 127.0.0.1, on a port the server bound to 0 and holds."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_page_that_logs_is_captured(browser: Browser, pages: str) -> None:
    browser.open(f"{pages}/logs")
    logged = [m for m in browser.console() if LOGGED in m.text]
    assert [(m.level, m.source) for m in logged] == [("INFO", "console-api")]


def test_an_inline_script_blocked_by_the_csp_has_no_console_side_effect(browser: Browser, pages: str) -> None:
    browser.open(f"{pages}/blocked")
    console = browser.console()
    assert [m for m in console if INJECTED in m.text and m.source == "console-api"] == []
    assert browser.driver.title == "blocked"
    # The script was on the page and the browser refused it: the harness sees the violation.
    assert any(m.level == "SEVERE" and "Content Security Policy" in m.text for m in console)


def test_console_messages_accumulate_across_pages(browser: Browser, pages: str) -> None:
    browser.open(f"{pages}/logs")
    browser.open(f"{pages}/blocked")
    browser.open(f"{pages}/logs")
    assert sum(LOGGED in m.text for m in browser.console()) == 2


def test_a_screenshot_is_saved_as_a_test_artifact(browser: Browser, pages: str) -> None:
    browser.open(f"{pages}/logs")
    path = browser.screenshot("logs")
    assert path.is_relative_to(ARTIFACTS)
    assert "test_a_screenshot_is_saved_as_a_test_artifact" in str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_test_gets_a_fresh_profile(
    chromedriver: Chromedriver, pages: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """State one session leaves behind (localStorage) is not seen by the next."""
    first = new_session(chromedriver.url, tmp_path_factory.mktemp("profile"))
    try:
        first.get(f"{pages}/logs")
        first.execute_script("localStorage.setItem('left', 'behind')")
    finally:
        first.quit()
    second = new_session(chromedriver.url, tmp_path_factory.mktemp("profile"))
    try:
        second.get(f"{pages}/logs")
        assert second.execute_script("return localStorage.getItem('left')") is None
    finally:
        second.quit()


def test_the_session_drives_debians_chromium_and_fetches_nothing(
    chromedriver: Chromedriver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The browser is the system one; Selenium Manager (which downloads drivers) never runs."""
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def refuse(*args: object) -> None:
        raise AssertionError("Selenium Manager ran")

    monkeypatch.setattr(SeleniumManager, "binary_paths", refuse)
    driver = new_session(chromedriver.url, tmp_path / "profile")
    try:
        version = driver.capabilities["browserVersion"]
    finally:
        driver.quit()
    installed = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True).stdout
    assert version in installed
