"""The auditor workbench in headless Chromium (Debian's chromium and chromium-driver), against real gunicorn.

An auditor logs in through the development identity provider and answers, from the workbench
alone, "which agencies were late, and why was this document refused": the overview and its XLSX,
search with each filter, an entry with its proof, a document's page, both languages, a 420 px and a
1920 px window, the keyboard, and axe-core's scan of every page with no serious violation.  Each
page's screenshot is written to ``var/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from axe_selenium_python import Axe
from openpyxl import load_workbook
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from gateway.audit.bundle import verify_bundle
from gateway.audit.checkpoint import NoteVerifier
from gateway.audit.receipt import verify_receipt
from tests.support import ROOT, authorization_request, sample, status_message
from tests.test_server import _free_port, _token, server  # noqa: F401 - the real server fixture

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = ROOT / "var" / "screenshots"
HCM, Q4, Q11, TAX, PORTAL = "000.00.00.H29", "000.00.04.H29", "000.00.11.H29", "000.11.18.G12", "000.00.99.H29"
WIDE, NARROW = (1920, 1080), (420, 900)


def _browser() -> webdriver.Chrome:
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
        f"--window-size={WIDE[0]},{WIDE[1]}",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    return driver


def _click_and_wait_for(driver: webdriver.Chrome, element_id: str, url_part: str) -> None:
    """A click starts a navigation; Selenium does not wait for it, so wait for the new address."""
    driver.find_element(By.ID, element_id).click()
    _until_loaded(driver, lambda d: url_part in d.current_url)


def _log_in(driver: webdriver.Chrome, base: str, citizen: int) -> None:
    driver.get(base + "/audit/")
    _click_and_wait_for(driver, "login", "/dev-idp/")  # to the identity provider's page
    driver.find_element(By.CSS_SELECTOR, f"input[name=citizen][value='{citizen}']").click()
    _click_and_wait_for(driver, "login", "/audit/")


def _signed(keys: Path, code: str, data: bytes) -> bytes:
    from gateway.documents.signing import sign_edxml
    from gateway.trust import pki

    folder = keys / "agencies" / code
    return sign_edxml(data, pki.load_private_key(folder / "signing.key"), pki.load_certificates(folder / "signing.crt"))


def _post(base: str, token: str, body: bytes, path: str = "/v1/documents") -> requests.Response:
    return requests.post(
        base + path,
        data=body,
        timeout=30,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
    )


def _citizen_token(base: str) -> str:
    """Nguyễn Văn An at level 2, through the development identity provider's code flow with PKCE."""
    redirect = "http://127.0.0.1:9/cb"
    verifier, params = authorization_request("citizen-app", redirect)
    answer = requests.post(
        base + "/dev-idp/authorize", data={**params, "citizen": "0", "level": "2"}, allow_redirects=False, timeout=10
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        base + "/dev-idp/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": "citizen-app",
            "code_verifier": verifier,
        },
        timeout=10,
    ).json()
    return str(tokens["access_token"])


def _city(base: str, keys: Path) -> dict[str, Any]:
    """Twelve letters (Quận 4 finishes the first one late), one refused, one dossier finished and rated."""
    t_hcm, t_q4 = _token(base, keys, HCM), _token(base, keys, Q4)
    ids = []
    for n in range(12):
        data = sample("cong-van.edxml").replace(b"1024/UBND-VX<", f"{4200 + n}/UBND-VX<".encode())
        sent = _post(base, t_hcm, _signed(keys, HCM, data))
        assert sent.status_code == 202, sent.text
        ids.append(sent.json()["id"])
    refused = _post(base, t_hcm, sample("cong-van.edxml"))  # not signed
    assert refused.status_code == 422 and refused.json()["code"] == "signature-missing"
    number = requests.get(f"{base}/v1/documents/{ids[0]}", headers={"Authorization": f"Bearer {t_q4}"}, timeout=10)
    done = _signed(keys, Q4, status_message(number.json()["document_id"], HCM, Q4, "06"))
    assert _post(base, t_q4, done, "/v1/status").status_code == 202
    citizen = {"Authorization": f"Bearer {_citizen_token(base)}"}
    household = {
        "procedure": "1.001612",
        "fields": {
            "ten_ho_kinh_doanh": "Tạp hóa An Phát",
            "dia_chi": "12 Nguyễn Trãi",
            "nganh_nghe": "Bán lẻ",
            "von_kinh_doanh": "1",
        },
    }
    dossier = requests.post(base + "/v1/dossiers", json=household, headers=citizen, timeout=30)
    assert dossier.status_code == 202, dossier.text
    for code in (Q11, TAX):
        finished = _signed(keys, code, status_message(dossier.json()["document_id"], PORTAL, code, "06"))
        assert _post(base, _token(base, keys, code), finished, "/v1/status").status_code == 202
    rated = requests.post(
        f"{base}/v1/dossiers/{dossier.json()['id']}/rating", json={"score": 4}, headers=citizen, timeout=10
    )
    assert rated.status_code == 201, rated.text
    time.sleep(1.2)  # a checkpoint covers the newest entries
    return {"ids": ids, "dossier": dossier.json()}


@pytest.fixture(scope="module")
def city(server: tuple[str, Path]) -> dict[str, Any]:  # noqa: F811
    return _city(*server)


@pytest.fixture(scope="module")
def auditor(server: tuple[str, Path], city: dict[str, Any]) -> Iterator[webdriver.Chrome]:  # noqa: F811
    driver = _browser()
    _log_in(driver, server[0], citizen=2)  # Lê Minh Châu, the demo auditor
    yield driver
    driver.quit()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    driver = _browser()
    yield driver
    driver.quit()


def _shot(driver: webdriver.Chrome, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(int(height) + 140, 600), 6000))  # the whole page in one picture
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.set_window_size(width, NARROW[1] if width == NARROW[0] else WIDE[1])


def _until_loaded(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], bool]) -> None:
    """Wait for a page a click opened: while it loads, the old page's elements go stale under us."""
    WebDriverWait(
        driver, 10, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException, JavascriptException)
    ).until(lambda d: condition(d) and d.execute_script("return document.readyState") == "complete")


def _language(driver: webdriver.Chrome, lang: str) -> None:
    if driver.find_element(By.TAG_NAME, "html").get_attribute("lang") != lang:
        before = driver.current_url
        driver.find_element(By.ID, "lang").click()
        _until_loaded(driver, lambda d: d.execute_script("return document.documentElement.lang") == lang)
        assert urlsplit(driver.current_url).path == urlsplit(before).path


def _vkey(base: str, keys: Path) -> str:
    """The log's verifier key as an auditor gets it: `gateway audit vkey`."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "vkey"],
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "GATEWAY_KEYS_DIR": str(keys),
            "GATEWAY_PUBLIC_URL": base,
            "GATEWAY_DATABASE_URL": f"sqlite:///{keys.parent / 'gw.db'}",
        },
    ).stdout.strip()


def _cookies(driver: webdriver.Chrome) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def _serious_violations(driver: webdriver.Chrome) -> list[str]:
    axe = Axe(driver)
    axe.inject()
    results = axe.run(options='{"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]}}')
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_overview_answers_which_agencies_were_late_and_exports_the_same_figures(server, auditor, city):  # noqa: F811
    base = server[0]
    auditor.set_window_size(*WIDE)
    auditor.get(base + "/audit/")
    _language(auditor, "vi")
    assert "Tổng quan" in auditor.title
    assert auditor.find_element(By.ID, "preset-month").get_attribute("aria-current") == "true"
    received = auditor.find_element(By.ID, "city-received").text
    assert int(received) == 12 * 2 + 2  # each letter to two agencies, the dossier to two
    assert auditor.find_element(By.ID, "city-late").text == "1"
    assert auditor.find_element(By.ID, "city-satisfaction").text == "100.0 %"
    figures = auditor.find_element(By.ID, "figures").text
    assert "Quận 4" in figures and Q4 in figures
    assert len(auditor.find_elements(By.CSS_SELECTOR, "#chart rect.bar")) >= 3
    assert "Đã nhận" in auditor.find_element(By.ID, "legend").text
    overdue = [li.text for li in auditor.find_elements(By.CSS_SELECTOR, "#most-overdue li")]
    assert overdue and not [o for o in overdue if "4200/UBND-VX" in o and Q4 in o]  # Quận 4 finished it, late
    assert "signature-missing" in auditor.find_element(By.ID, "refusals").text
    _shot(auditor, "overview-vi-1920")
    _click_and_wait_for(auditor, "preset-quarter", "period=quarter")
    assert auditor.find_element(By.ID, "preset-quarter").get_attribute("aria-current") == "true"
    href = auditor.find_element(By.ID, "xlsx").get_attribute("href")
    book = requests.get(href, cookies=_cookies(auditor), timeout=30)
    assert book.status_code == 200 and "spreadsheetml" in book.headers["Content-Type"]
    sheet = load_workbook(io.BytesIO(book.content)).worksheets[0]
    summary = {row[0]: row[1] for row in sheet.iter_rows(values_only=True) if row and row[0]}
    assert summary["Đã nhận"] == int(auditor.find_element(By.ID, "city-received").text)
    assert summary["Trễ hạn"] == int(auditor.find_element(By.ID, "city-late").text)


def test_search_with_each_filter_highlights_refusals_and_pages_newest_first(server, auditor, city):  # noqa: F811
    base = server[0]
    auditor.set_window_size(*WIDE)
    auditor.get(base + "/audit/search")
    _language(auditor, "vi")
    auditor.find_element(By.ID, "agency").send_keys("Quận 4")
    Select(auditor.find_element(By.ID, "category")).select_by_value("documents")
    _click_and_wait_for(auditor, "find", "agency=")
    results = auditor.find_element(By.ID, "results").text
    assert "Văn bản được chuyển tới nơi nhận" in results and "Quận 4" in results

    auditor.get(base + "/audit/search")
    auditor.find_element(By.ID, "document").send_keys("4205/UBND")
    _click_and_wait_for(auditor, "find", "document=")
    assert "4205/UBND-VX" in auditor.find_element(By.ID, "results").text
    assert "4206/UBND-VX" not in auditor.find_element(By.ID, "results").text

    auditor.get(base + "/audit/search")
    Select(auditor.find_element(By.ID, "category")).select_by_value("refusals")
    _click_and_wait_for(auditor, "find", "category=refusals")
    refused = auditor.find_element(By.CSS_SELECTOR, "#results tr.refused")
    assert "signature-missing" in refused.text and "Văn bản chưa ký số" in refused.text
    colour = refused.find_element(By.TAG_NAME, "td").value_of_css_property("background-color")
    assert colour != "rgba(0, 0, 0, 0)"  # highlighted
    _shot(auditor, "search-refusals-vi-1920")

    auditor.get(base + "/audit/search")
    Select(auditor.find_element(By.ID, "outcome")).select_by_value("accepted")
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 7 * 3600))
    for field in ("from", "to"):  # the date pickers, as a person sets them
        auditor.execute_script("arguments[0].value = arguments[1]", auditor.find_element(By.ID, field), today)
    _click_and_wait_for(auditor, "find", "outcome=accepted")
    assert "Tiếp nhận" in auditor.find_element(By.ID, "results").text
    assert "Từ chối" not in auditor.find_element(By.ID, "results").text

    auditor.get(base + "/audit/search")
    indices = [int(a.text) for a in auditor.find_elements(By.CSS_SELECTOR, "#results a.entry")]
    assert indices == sorted(indices, reverse=True) and len(indices) == 50
    total = auditor.find_element(By.ID, "total").text.split(" — ")[0]
    _click_and_wait_for(auditor, "last", "page=")
    last = [int(a.text) for a in auditor.find_elements(By.CSS_SELECTOR, "#results a.entry")]
    assert last and max(last) < min(indices) and total == auditor.find_element(By.ID, "total").text.split(" — ")[0]
    _click_and_wait_for(auditor, "first", "page=1")
    assert "auditor.search" not in auditor.find_element(By.ID, "results").text  # own reads hidden
    auditor.find_element(By.ID, "reads").click()
    _click_and_wait_for(auditor, "find", "reads=1")
    assert "Kiểm toán viên tra cứu" in auditor.find_element(By.ID, "results").text


def test_a_refused_entry_opens_with_its_reason_and_proof_which_verifies_offline(server, auditor, city):  # noqa: F811
    base, keys = server
    auditor.get(base + "/audit/search?category=refusals")
    _language(auditor, "vi")
    _click_and_wait_for_css(auditor, "#results tr.refused a.entry", "/audit/entries/")
    assert "signature-missing" in auditor.find_element(By.ID, "refusal").text
    assert "✓" in auditor.find_element(By.ID, "proof-status").text
    assert len(auditor.find_element(By.ID, "leaf").text) == 64
    _shot(auditor, "entry-vi-1920")
    receipt = requests.get(
        auditor.find_element(By.ID, "download-entry").get_attribute("href"), cookies=_cookies(auditor), timeout=10
    ).json()
    vkey = _vkey(base, keys)
    assert verify_receipt(receipt, NoteVerifier.parse(vkey))["verdict"] == "valid"


def _click_and_wait_for_css(driver: webdriver.Chrome, selector: str, url_part: str) -> None:
    driver.find_element(By.CSS_SELECTOR, selector).click()
    _until_loaded(driver, lambda d: url_part in d.current_url)


def test_a_documents_page_in_both_languages_and_an_unknown_one(server, auditor, city):  # noqa: F811
    base = server[0]
    auditor.get(f"{base}/audit/documents/{city['ids'][0]}")
    _language(auditor, "vi")
    facts = auditor.find_element(By.ID, "document-facts").text
    assert "4200/UBND-VX" in facts and "Quận 4" in facts and "2020-03-31" in facts
    recipients = auditor.find_element(By.ID, "recipients").text
    assert "Trễ hạn" in recipients and "ngày làm việc" in recipients and "Quá hạn" in recipients
    assert "06 Hoàn thành" in auditor.find_element(By.ID, "statuses").text
    assert "✓" in auditor.find_element(By.ID, "timeline").text
    _shot(auditor, "document-vi-1920")
    _language(auditor, "en")
    assert "06 Done" in auditor.find_element(By.ID, "statuses").text
    assert "Late" in auditor.find_element(By.ID, "recipients").text
    assert "Document accepted" in auditor.find_element(By.ID, "timeline").text
    _shot(auditor, "document-en-1920")
    auditor.get(f"{base}/audit/documents/00000000-no-such-document")
    assert "not-found" not in auditor.current_url and auditor.find_element(By.ID, "not-found")
    _shot(auditor, "not-found-en-1920")
    _language(auditor, "vi")


def test_pages_fit_a_420_pixel_window_and_a_1920_pixel_one(server, auditor, city):  # noqa: F811
    base = server[0]
    pages = {
        "overview": "/audit/",
        "search": "/audit/search",
        "document": f"/audit/documents/{city['ids'][0]}",
        "checkpoint": "/audit/checkpoint",
        "export": "/audit/export",
    }
    for size in (NARROW, WIDE):
        auditor.set_window_size(*size)
        for name, path in pages.items():
            auditor.get(base + path)
            overflow = auditor.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if size == NARROW:
                _shot(auditor, f"{name}-vi-420")
            assert overflow <= 1, f"{path} scrolls sideways by {overflow} px at {size[0]} px"
    auditor.set_window_size(*WIDE)


def test_every_page_passes_axe_core_with_no_serious_violation_in_both_languages(server, auditor, city):  # noqa: F811
    base = server[0]
    entry = (
        requests.get(base + "/audit/search", params={"category": "refusals"}, cookies=_cookies(auditor), timeout=10)
        .text.split('href="/audit/entries/')[1]
        .split('"')[0]
    )
    paths = [
        "/audit/",
        "/audit/search?category=refusals",
        f"/audit/documents/{city['ids'][0]}",
        f"/audit/entries/{entry}",
        "/audit/checkpoint",
        "/audit/export",
        "/audit/search?from=yesterday",  # the error page
        "/",
    ]
    found = []
    for lang in ("vi", "en"):
        auditor.get(base + "/audit/")
        _language(auditor, lang)
        for path in paths:
            auditor.get(base + path)
            found += [f"{lang} {path}: {v}" for v in _serious_violations(auditor)]
    _language(auditor, "vi")
    assert not found, "\n".join(found)


def test_the_keyboard_reaches_the_content_first_with_a_visible_focus(server, auditor, city):  # noqa: F811
    base = server[0]
    auditor.get(base + "/audit/")
    body = auditor.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = auditor.switch_to.active_element
    assert focused.get_attribute("class") == "skip" and focused.get_attribute("href").endswith("#main")
    assert focused.value_of_css_property("outline-style") != "none"
    for _ in range(4):
        auditor.switch_to.active_element.send_keys(Keys.TAB)
    assert auditor.switch_to.active_element.value_of_css_property("outline-style") != "none"
    for field in ("from", "to"):
        label = auditor.find_element(By.CSS_SELECTOR, f"label[for={field}]")
        assert label.text.strip()  # every form field has a visible label


def test_a_wrong_date_is_the_workbenchs_own_page_with_a_way_back(server, auditor, city):  # noqa: F811
    base = server[0]
    auditor.get(base + "/audit/search?category=documents")
    auditor.execute_script("location.href = '/audit/search?from=23/11/2026'")  # followed from a page: a Referer
    _until_loaded(auditor, lambda d: "from=23" in d.current_url)
    assert auditor.find_element(By.ID, "problem-code").text == "invalid-request"
    assert "2026-11-23" in auditor.find_element(By.ID, "problem-detail").text
    _shot(auditor, "error-vi-1920")
    _click_and_wait_for(auditor, "back", "category=documents")


def test_the_export_verifies_the_session_cookie_is_strict_and_logout_ends_it(server, city, browser, tmp_path):  # noqa: F811
    base, keys = server
    _log_in(browser, base, citizen=2)
    session_cookie = next(c for c in browser.get_cookies() if c["name"] == "gateway_workbench")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict" and session_cookie["path"] == "/audit"
    cookies = _cookies(browser)
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
    vkey = _vkey(base, keys)
    assert verify_bundle(tmp_path / "audit.zip", NoteVerifier.parse(vkey)).valid
    reads = requests.get(base + "/audit/search", cookies=cookies, params={"event": "auditor.export"}, timeout=10)
    assert "auditor.export" in reads.text  # the auditor's own reads are in the log
    browser.find_element(By.ID, "logout").click()
    _until_loaded(browser, lambda d: "/audit/welcome" in d.current_url)
    _shot(browser, "welcome-vi-1920")
    after = requests.get(base + "/audit/", cookies=cookies, timeout=10, allow_redirects=False)
    assert after.status_code == 302  # the copied cookie died with the logout, on the server


def test_a_citizen_without_the_auditor_role_is_turned_away(server, browser):  # noqa: F811
    base, _keys = server
    _log_in(browser, base, citizen=0)  # Nguyễn Văn An: a citizen, not an auditor
    assert browser.find_element(By.ID, "refused")
    browser.get(base + "/audit/")
    assert "/audit/welcome" in browser.current_url
    assert _free_port and json  # imported with the server fixture


def test_the_accessibility_scan_finds_a_violation_when_there_is_one(browser):
    """The scan above is not trivially empty: an unlabelled field and low contrast are caught."""
    browser.get("data:text/html,<html lang=en><title>t</title><main><input><p style='color:%23ccc'>faint</p></main>")
    found = _serious_violations(browser)
    assert any(v.startswith("label") for v in found) and any(v.startswith("color-contrast") for v in found), found
