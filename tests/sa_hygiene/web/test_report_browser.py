"""The report as a reader's browser loads it: headless Chromium over the DevTools protocol.

The pages must be self-contained (nothing requested but the page itself), show their charts,
fail to load nothing, log no error, and open the records behind a number when it is followed.
The same holds for the Great Expectations Data Docs the report links to.
"""
import pytest

pytestmark = pytest.mark.e2e


def self_contained(load, page_url: str) -> None:
    assert load.failed == [], load.failed
    assert load.errors == [], load.errors
    assert [u for u in load.requests if not u.startswith("data:")] == [page_url]


@pytest.mark.parametrize("page, charts", [("index.html", 3), ("activity.html", 1)])
def test_pages_are_self_contained_and_show_their_charts(report, browser, page, charts):
    url = (report / page).as_uri()
    self_contained(browser.load(url), url)
    assert browser.evaluate("document.querySelectorAll('svg.chart').length") == charts
    assert browser.evaluate("Math.min(...[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().height))") > 100
    assert browser.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length") == 0
    assert browser.evaluate("document.querySelectorAll('details.drill').length") > 10


def test_following_a_number_opens_its_records(report, browser):
    url = (report / "index.html").as_uri()
    browser.load(url)
    href, count = browser.evaluate(
        "(() => { const a = document.querySelector('#alerts td.heat a.n'); a.click(); return [a.getAttribute('href'), a.textContent]; })()"
    )
    assert browser.evaluate(f"document.getElementById('{href[1:]}').open") is True
    assert browser.evaluate(f"document.getElementById('{href[1:]}').closest('details.group').open") is True
    assert browser.evaluate(f"document.querySelectorAll('#{href[1:]} li').length") == int(count)
    first = browser.evaluate(f"document.querySelector('#{href[1:]} li a').href")
    assert first.startswith("https://gitlab.my.salesforce.com/lightning/r/") and first.endswith("/view")
    # Loaded with the number's address, the page opens the same records.
    browser.load("about:blank")
    browser.load(url + href)
    assert browser.evaluate(f"document.getElementById('{href[1:]}').open") is True


def test_data_docs_load_nothing_from_elsewhere(report, browser):
    index = (report / "data_docs" / "index.html").as_uri()
    self_contained(browser.load(index), index)
    rows = browser.evaluate("document.querySelectorAll('table.sa-index tbody tr').length")
    assert rows > 10
    page = browser.evaluate("document.querySelector('table.sa-index a[href^=\"validations/\"]').href")
    load = browser.load(page)
    self_contained(load, page)
    assert browser.evaluate("document.body.innerText").count("unexpected") >= 1
