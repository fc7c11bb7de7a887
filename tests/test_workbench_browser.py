"""The auditor workbench in headless Chromium (Debian's chromium and chromium-driver), against real gunicorn.

Log in through the development identity provider as an auditor, search, open a document's
timeline with its proof status, see the checkpoint and statistics, switch language, export and
verify the bundle; a citizen without the auditor role is turned away.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from gateway.audit.bundle import verify_bundle
from gateway.audit.checkpoint import NoteVerifier
from tests.support import sample
from tests.test_server import _free_port, _token, server  # noqa: F401 - the real server fixture

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("browser tests need Debian's chromium and chromium-driver (./test.sh installs them)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _click_and_wait_for(driver: webdriver.Chrome, element_id: str, url_part: str) -> None:
    """A click starts a navigation; Selenium does not wait for it, so wait for the new address."""
    driver.find_element(By.ID, element_id).click()
    WebDriverWait(driver, 10).until(lambda d: url_part in d.current_url)


def _log_in(driver: webdriver.Chrome, base: str, citizen: int) -> None:
    driver.get(base + "/audit/")
    _click_and_wait_for(driver, "login", "/dev-idp/")  # to the identity provider's page
    driver.find_element(By.CSS_SELECTOR, f"input[name=citizen][value='{citizen}']").click()
    _click_and_wait_for(driver, "login", "/audit/")


def _send_a_document(base: str, keys: Path) -> str:
    from gateway.documents.signing import sign_edxml
    from gateway.trust import pki

    folder = keys / "agencies" / "000.00.00.H29"
    data = sample("cong-van.edxml").replace(b"1024/UBND-VX</edXML:DocumentId>", b"4242/UBND-VX</edXML:DocumentId>")
    signed = sign_edxml(
        data, pki.load_private_key(folder / "signing.key"), pki.load_certificates(folder / "signing.crt")
    )
    token = _token(base, keys, "000.00.00.H29")
    response = requests.post(
        base + "/v1/documents",
        data=signed,
        timeout=10,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
    )
    assert response.status_code in (200, 202), response.text
    return str(response.json()["id"])


def test_auditor_searches_opens_a_timeline_reads_statistics_and_exports(server, browser, tmp_path):  # noqa: F811
    base, keys = server
    doc_id = _send_a_document(base, keys)
    _log_in(browser, base, citizen=2)  # Lê Minh Châu, the demo auditor
    assert "Bàn làm việc kiểm toán" in browser.title and browser.find_element(By.ID, "results")

    agency = browser.find_element(By.NAME, "agency")
    agency.send_keys("000.00.04.H29")
    _click_and_wait_for(browser, "find", "agency=")
    assert "document.routed" in browser.find_element(By.ID, "results").text

    browser.get(f"{base}/audit/documents/{doc_id}")
    timeline = browser.find_element(By.ID, "timeline").text
    time.sleep(1.2)  # let a checkpoint cover the newest entries, then look again
    browser.refresh()
    timeline = browser.find_element(By.ID, "timeline").text
    assert "document.accepted" in timeline and "✓" in timeline
    browser.save_screenshot(str(tmp_path / "timeline.png"))

    browser.get(base + "/audit/checkpoint")
    assert "ok" in browser.find_element(By.ID, "log-status").get_attribute("class")
    browser.get(base + "/audit/statistics")
    assert browser.find_element(By.ID, "chart") and "000.00.04.H29" in browser.find_element(By.ID, "figures").text
    browser.find_element(By.ID, "lang").click()  # a POST form with the CSRF token; back to the same page
    WebDriverWait(browser, 10).until(lambda d: "Auditor workbench" in d.title)
    assert "Processing statistics" in browser.page_source and "/audit/statistics" in browser.current_url

    session_cookie = next(c for c in browser.get_cookies() if c["name"] == "gateway_workbench")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict" and session_cookie["path"] == "/audit"
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    browser.get(base + "/audit/export")
    csrf = browser.find_element(By.CSS_SELECTOR, "#export-form input[name=csrf]").get_attribute("value")
    bundle = requests.post(
        base + "/audit/export.zip",
        data={"from": "2000-01-01", "csrf": csrf},
        cookies=cookies,
        headers={"Origin": base},
        timeout=30,
    )
    assert bundle.status_code == 200 and bundle.headers["Content-Type"] == "application/zip"
    (tmp_path / "audit.zip").write_bytes(bundle.content)
    assert zipfile.is_zipfile(tmp_path / "audit.zip")
    vkey = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "vkey"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GATEWAY_KEYS_DIR": str(keys), "GATEWAY_PUBLIC_URL": base},
    ).stdout.strip()
    assert verify_bundle(tmp_path / "audit.zip", NoteVerifier.parse(vkey)).valid

    audit = requests.get(base + "/audit/", cookies=cookies, params={"event": "auditor.export"}, timeout=10)
    assert "auditor.export" in audit.text  # the auditor's own reads are in the log

    browser.find_element(By.ID, "logout").click()
    WebDriverWait(browser, 10).until(lambda d: "/audit/welcome" in d.current_url)
    after = requests.get(base + "/audit/", cookies=cookies, timeout=10, allow_redirects=False)
    assert after.status_code == 302  # the copied cookie died with the logout, on the server


def test_a_citizen_without_the_auditor_role_is_turned_away(server, browser):  # noqa: F811
    base, _keys = server
    _log_in(browser, base, citizen=0)  # Nguyễn Văn An: a citizen, not an auditor
    assert browser.find_element(By.ID, "refused")
    browser.get(base + "/audit/statistics")
    assert "/audit/welcome" in browser.current_url
    assert _free_port  # imported with the server fixture
