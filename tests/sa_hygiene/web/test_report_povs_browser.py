"""The Proofs of Value section and the region pages as a reader's browser loads them (headless
Chromium): self-contained, a number opens its POVs, each linked to Salesforce; a screenshot of
each is kept for a person to look at (``SA_HYGIENE_SCREENSHOTS``, default the test's folder)."""

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("SA_HYGIENE_SCREENSHOTS") or tmp_path)


def test_the_pov_section_opens_the_records_behind_its_numbers(report, browser, tmp_path):
    url = (report / "index.html").as_uri()
    load = browser.load(url)
    assert load.failed == [] and load.errors == []
    assert [u for u in load.requests if not u.startswith("data:")] == [url]
    assert browser.evaluate("document.querySelectorAll('#povs table.povs-by-region tbody tr').length") >= 2
    assert browser.evaluate("document.querySelectorAll('#povs table.povs-per-sa tr.over').length") >= 1
    href, count = browser.evaluate(
        "(() => { const a = document.querySelector('#povs table.povs-guideline a.n'); a.click(); return [a.getAttribute('href'), a.textContent]; })()"
    )
    assert browser.evaluate(f"document.getElementById('{href[1:]}').open") is True
    assert browser.evaluate(f"document.querySelectorAll('#{href[1:]} li').length") == int(count)
    first = browser.evaluate(f"document.querySelector('#{href[1:]} li a').href")
    assert first.startswith("https://gitlab.my.salesforce.com/lightning/r/Proof_of_Value__c/")
    browser.evaluate("document.getElementById('povs').scrollIntoView()")
    assert browser.screenshot(shots(tmp_path) / "report-povs.png", full_page=True).stat().st_size > 10_000


def test_a_region_page_from_the_regions_table(report, browser, tmp_path):
    browser.load((report / "index.html").as_uri())
    page = browser.evaluate("document.querySelector('#regions tbody a').getAttribute('href')")
    assert page.startswith("region-") and (report / page).exists()
    load = browser.load((report / page).as_uri())
    assert load.failed == [] and load.errors == []
    assert browser.evaluate("document.querySelector('h1, header').innerText").count("·") >= 1
    assert browser.evaluate("document.querySelectorAll('#povs details.drill').length") > 3
    assert browser.screenshot(shots(tmp_path) / f"{page}.png", full_page=True).stat().st_size > 10_000
