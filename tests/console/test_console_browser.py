"""The console in a real headless chromium (tests/browser.py): sign in through the realm's login
page, read a succeeded and a refused job, follow the filters, cancel a queued job; and prove
that a job whose output and spec hold HTML and script runs nothing in the page.

``JOBSTS_UPDATE_SCREENSHOTS=1`` also writes the screenshot of the refused job to
docs/console.png (the README's picture).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from sts.console.error_docs import error_docs, plain
from tests.browser import Browser
from tests.console.conftest import HOSTILE, XSS_MARKER, Console, queued_job, refused_job, succeeded_job

WAIT_SECONDS = 60.0  # a readiness limit under load, never a timing assertion
README_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "console.png"


def _wait_for(browser: Browser, element_id: str) -> str:
    found = WebDriverWait(browser.driver, WAIT_SECONDS).until(
        expected_conditions.presence_of_element_located((By.ID, element_id))
    )
    return str(found.text)


def _sign_in(browser: Browser, console: Console, username: str) -> None:
    browser.open(f"{console.url}/console/jobs")
    browser.driver.find_element(By.ID, "realm-jobmgr").click()  # the console's sign-in page
    _wait_for(browser, "username")  # the realm's real login page
    browser.driver.find_element(By.ID, "username").send_keys(username)
    browser.driver.find_element(By.ID, "password").send_keys(f"{username}-password")
    browser.driver.find_element(By.ID, "submit").click()
    assert username in _wait_for(browser, "who")


def _open_job(browser: Browser, console: Console, job_id: str) -> None:
    browser.open(f"{console.url}/console/jobs/{job_id}")
    assert _wait_for(browser, "job-id") == job_id


def test_sign_in_read_filter_and_cancel(browser: Browser, console: Console) -> None:
    refused = refused_job(console.world)
    succeeded = succeeded_job(console.world)
    queued = queued_job(console.world)
    _sign_in(browser, console, "john")
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "tr.job-row")
    assert {r.get_attribute("data-state") for r in rows} == {"refused", "succeeded", "queued"}
    browser.screenshot("jobs")

    _open_job(browser, console, succeeded)
    assert _wait_for(browser, "job-state") == "succeeded"
    assert browser.driver.find_element(By.ID, "exit-code").text == "0"
    assert browser.driver.find_element(By.ID, "account").text == "batch"
    assert "account batch" in browser.driver.find_element(By.ID, "mapping").text
    assert "hello from node1" in browser.driver.find_element(By.ID, "stdout").text

    _open_job(browser, console, refused)
    doc = error_docs()["authz.denied"]
    assert browser.driver.find_element(By.ID, "refusal-code").text == "authz.denied"
    assert browser.driver.find_element(By.ID, "refusal-cause").text == plain(doc.cause)
    assert browser.driver.find_element(By.ID, "refusal-fix").text == plain(doc.fix)
    steps = browser.driver.find_elements(By.CSS_SELECTOR, "#trace tbody tr")
    verdicts = [
        (s.find_elements(By.TAG_NAME, "td")[0].text, s.find_element(By.CLASS_NAME, "verdict").text) for s in steps
    ]
    assert verdicts == [
        ("(a)", "pass"),
        ("(b)", "pass"),
        ("(c)", "pass"),
        ("(d)", "pass"),
        ("(e)", "fail"),
        ("(f)", "skip"),
    ]
    browser.screenshot("refused-job")

    browser.driver.find_element(By.LINK_TEXT, "Jobs").click()
    Select(_element(browser, "filter-state")).select_by_value("refused")
    browser.driver.find_element(By.ID, "apply-filters").click()
    WebDriverWait(browser.driver, WAIT_SECONDS).until(lambda d: "state=refused" in d.current_url)
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "tr.job-row")
    assert [r.get_attribute("data-state") for r in rows] == ["refused"]
    rows[0].find_element(By.CLASS_NAME, "job-link").click()
    assert _wait_for(browser, "job-id") == refused

    _open_job(browser, console, queued)
    browser.driver.find_element(By.ID, "cancel").click()
    WebDriverWait(browser.driver, WAIT_SECONDS).until(lambda d: d.find_element(By.ID, "job-state").text == "cancelled")
    assert browser.driver.find_elements(By.ID, "cancel") == []
    browser.screenshot("cancelled-job")

    browser.driver.find_element(By.ID, "logout").click()
    _wait_for(browser, "signed-out")
    browser.open(f"{console.url}/console/jobs")
    _wait_for(browser, "realm-jobmgr")  # signed out: back on the sign-in page
    # Nothing the policy refused, no failed load (chromium's own favicon probe aside).
    assert not [m for m in browser.console() if m.level == "SEVERE" and "favicon.ico" not in m.text]


def _element(browser: Browser, element_id: str) -> WebElement:
    return browser.driver.find_element(By.ID, element_id)


def test_html_and_script_in_a_job_run_nothing(browser: Browser, console: Console) -> None:
    job = succeeded_job(console.world, stdout=HOSTILE, spec={"argv": ["/bin/echo", HOSTILE]})
    _sign_in(browser, console, "john")
    _open_job(browser, console, job)
    assert HOSTILE in browser.driver.find_element(By.ID, "stdout").text  # shown as text
    assert XSS_MARKER in browser.driver.find_element(By.ID, "spec").text
    assert browser.driver.find_elements(By.ID, "injected-bold") == []  # no element was created
    assert browser.driver.find_elements(By.CSS_SELECTOR, "main script, main img") == []
    assert XSS_MARKER not in browser.driver.title
    assert [m for m in browser.console() if XSS_MARKER in m.text] == []


def test_the_readme_picture(browser: Browser, console: Console) -> None:
    """A monitor's view of a refused job; written to docs/console.png on request."""
    for _ in range(3):
        succeeded_job(console.world)
    refused = refused_job(console.world)
    queued_job(console.world)
    _sign_in(browser, console, "carol")
    _open_job(browser, console, refused)
    browser.driver.set_window_size(1280, 1000)
    picture = browser.screenshot("console")
    browser.open(f"{console.url}/console/activity")
    _wait_for(browser, "states-chart")
    browser.screenshot("activity")
    if os.environ.get("JOBSTS_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(picture, README_PICTURE)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
