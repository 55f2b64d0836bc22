"""The page in a real browser: headless Debian Chromium driven by Playwright, against a real uvicorn server."""

from __future__ import annotations

import os
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from app.settings import DEFAULT_STORE
from model_store import resolve_version
from tests.conftest import DEFAULT_MODEL
from tests.servers import ROOT, running_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
README_PICTURE = ROOT / "docs" / "page.png"  # rewritten when WAVE_UPDATE_SCREENSHOT=1
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def server_url():
    """A real uvicorn server on the default model, shared by this module's tests (batching is not under test)."""
    with running_server(env={"WAVE_MAX_BATCH_SIZE": "1"}) as (url, _process):
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, server_url):
    """Open the page in a fresh context; afterwards check nothing was fetched from elsewhere and no script failed."""
    contexts, requests, problems = [], [], []

    def open_(**context_options):
        context = browser.new_context(**context_options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.goto(f"{server_url}/")
        page.wait_for_selector("#sample-select:not([disabled])")
        page.wait_for_selector("#model-info[data-state='ready']")
        return page

    yield open_
    for context in contexts:
        context.close()
    outside = [url for url in requests if not url.startswith((server_url, "blob:", "data:"))]
    assert not outside, f"the page fetched from elsewhere: {outside}"
    # a 4xx answer the page shows in words is logged by Chromium as a failed resource: that one is expected
    unexpected = [p for p in problems if "status of 422" not in p]
    assert not unexpected, unexpected


def test_sample_is_completed_and_drawn(open_page):
    page = open_page(viewport={"width": 1366, "height": 900})
    chart = page.locator("#chart")
    assert chart.get_attribute("data-state") == "preview"  # the first sample is shown with its truth at once

    page.select_option("#sample-select", index=2)
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='ready']")

    assert chart.get_attribute("data-predicted-series") == "5"
    assert chart.get_attribute("data-predicted-points") == "150"
    assert chart.get_attribute("data-truth-series") == "5"
    assert page.locator("#chart .panel").count() == 5
    assert page.locator("#chart path.series.predicted[data-points='150']").count() == 5
    assert page.locator("#chart path.series.truth").count() == 5
    assert page.locator("#model-name").inner_text() == DEFAULT_MODEL
    assert page.locator("#model-version").inner_text() == str(resolve_version(DEFAULT_STORE, DEFAULT_MODEL))
    assert re.fullmatch(r"\d+ ms", page.locator("#latency").inner_text())
    assert float(page.locator("#latency").get_attribute("data-ms")) > 0
    assert page.locator("#error").is_hidden()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    if os.environ.get("WAVE_UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=str(README_PICTURE), full_page=True)


def test_interval_picker_is_off_by_default_and_shades_the_bands(open_page):
    page = open_page(viewport={"width": 1366, "height": 900})
    chart = page.locator("#chart")
    assert page.locator("#interval-level").input_value() == ""
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='ready']")
    assert chart.get_attribute("data-bands") == "" and page.locator("#chart path.band").count() == 0

    page.select_option("#interval-level", "80,95")
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='ready']")
    assert chart.get_attribute("data-bands") == "95,80"  # widest first, the narrower drawn over it
    assert page.locator("#chart path.band[data-level='95']").count() == 5
    assert page.locator("#chart path.band.inner[data-level='80']").count() == 5
    assert page.locator("#error").is_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-intervals.png"), full_page=True)


def test_csv_with_a_header_and_a_shorter_horizon(open_page):
    page = open_page(viewport={"width": 1280, "height": 800})
    rows = [",".join(f"{((i * (f + 3)) % 17) / 4 + f:.3f}" for f in range(5)) for i in range(90)]
    page.fill("#csv-input", "a,b,c,d,e\n" + "\n".join(rows))
    page.fill("#horizon", "40")
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='ready']")
    chart = page.locator("#chart")
    assert chart.get_attribute("data-predicted-series") == "5"
    assert chart.get_attribute("data-predicted-points") == "40"
    assert chart.get_attribute("data-observed-points") == "90"
    assert chart.get_attribute("data-truth-series") == "0"
    assert page.locator("#chart .panel .title").first.text_content() == "a"


def test_spreadsheet_csv_with_gaps(open_page):
    """A decimal-comma export (BOM, ';', CRLF) with empty cells and NA, read by the service (POST /csv): the gaps
    go to /predict as null."""
    page = open_page(viewport={"width": 1280, "height": 800})
    posted = []
    page.on("request", lambda request: posted.append((request.method, request.url.rsplit("/", 1)[-1])))
    rows = [";".join(f"{((i * (f + 3)) % 17) / 4 + f:.3f}".replace(".", ",") for f in range(5)) for i in range(90)]
    rows[10] = ";" + rows[10].split(";", 1)[1]  # an empty first cell
    rows[50] = rows[50].rsplit(";", 1)[0] + ";NA"
    page.fill("#csv-input", "\ufeffa;b;c;d;e\r\n" + "\r\n".join(rows))
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='ready']")
    assert page.locator("#chart").get_attribute("data-observed-points") == "90"
    assert page.locator("#chart").get_attribute("data-predicted-series") == "5"
    assert "(2 missing values filled)" in page.locator("#status").inner_text()
    assert page.locator("#error").is_hidden()
    assert page.locator("#chart .panel .title").first.text_content() == "a"  # the header, as the service read it
    assert posted == [("POST", "csv"), ("POST", "predict")]


def test_csv_with_a_date_column_gets_its_dates_continued(open_page):
    """A pasted CSV whose first column is a date: the service's reader keeps it out of the features, /predict
    continues it, and the page labels the x axis and the status with the dates."""
    page = open_page(viewport={"width": 1280, "height": 800})
    posted = []
    page.on("request", lambda request: posted.append(request))
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(90 + 40)]
    rows = [f"{days[i]}," + ",".join(f"{((i * (f + 3)) % 17) / 4 + f:.3f}" for f in range(3)) for i in range(90)]
    page.fill("#csv-input", "date,a,b,c\n" + "\n".join(rows))
    page.fill("#horizon", "40")
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='ready']")
    chart = page.locator("#chart")
    assert chart.get_attribute("data-features") == "3" and chart.get_attribute("data-predicted-points") == "40"
    assert page.locator("#chart .panel .title").first.text_content() == "a"  # the date is no feature
    assert chart.get_attribute("data-stamps") == f"{days[90]}/{days[129]}"  # 2026-04-01/2026-05-10
    assert f"40 predicted ({days[90]} to {days[129]}, daily)" in page.locator("#status").inner_text()
    labels = page.locator("#chart .panel").first.locator("text.tick").all_text_contents()
    assert any(label.startswith("2026-0") for label in labels), labels
    [predict] = [r for r in posted if r.method == "POST" and r.url.endswith("/predict")]
    assert predict.post_data_json["ds"][:2] == ["2026-01-01", "2026-01-02"]
    assert page.locator("#error").is_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-dates.png"), full_page=True)


def test_csv_with_a_repeated_date_is_refused_naming_the_row(open_page):
    page = open_page(viewport={"width": 1280, "height": 800})
    rows = [f"{date(2026, 1, 1) + timedelta(days=i - (i == 7))},1,2" for i in range(90)]
    page.fill("#csv-input", "date,a,b\n" + "\n".join(rows))
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='error']", state="attached")
    assert "CSV line 9 (row 7), column 0: time stamp '2026-01-07' repeats row 6" in page.locator("#error").inner_text()


def test_api_error_is_shown_in_words(open_page):
    page = open_page(viewport={"width": 1280, "height": 800})
    page.fill("#csv-input", "f1,f2,f3,f4,f5\n" + "\n".join("1,2,3,4,5" for _ in range(12)))
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='error']", state="attached")
    error = page.locator("#error")
    assert error.is_visible()
    assert "wave has 12 steps, at least 60 are needed" in error.inner_text()
    assert page.locator("#chart").get_attribute("data-predicted-series") == "0"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-error.png"))


def test_csv_that_is_not_numbers_is_refused_in_words(open_page):
    page = open_page(viewport={"width": 1280, "height": 800})
    page.fill("#csv-input", "1,2,3,4,5\n1,2,x,4,5\n")
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='error']", state="attached")
    # the service's reader's words (POST /csv): the line in the text, the row and column in the wave from 0
    assert "CSV line 2 (row 1), column 2: 'x' is not a number" in page.locator("#error").inner_text()


def test_phone_layout_fits_the_screen(open_page):
    page = open_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    page.click("#complete-button")
    page.wait_for_selector("#chart[data-state='ready']")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    panel = page.locator("#chart .panel").first.bounding_box()
    assert panel and panel["width"] >= 300  # one full-width panel per feature
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-phone.png"), full_page=True)


@pytest.fixture(scope="module")
def two_model_url(two_model_store):
    """A real server on `wave` (the default) and `tiny`."""
    with running_server(env={"WAVE_STORE": str(two_model_store), "WAVE_MAX_BATCH_SIZE": "1"}) as (url, _process):
        yield url


def test_model_picker_chooses_the_model_that_answers(browser, two_model_url):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        requests = []
        page.on("request", lambda request: requests.append(request))
        page.goto(f"{two_model_url}/")
        page.wait_for_selector("#model-info[data-state='ready']")
        page.wait_for_selector("#sample-select:not([disabled])")
        version = resolve_version(DEFAULT_STORE, DEFAULT_MODEL)
        assert page.locator("#model-select option").all_inner_texts() == [
            f"{DEFAULT_MODEL} v{version} (default)",
            "tiny v1",
        ]
        assert page.locator("#model-select").input_value() == DEFAULT_MODEL
        assert "60 to 5000 observed steps" in page.locator("#model-limits").inner_text()

        page.select_option("#model-select", "tiny")
        assert page.locator("#model-name").inner_text() == "tiny"
        page.click("#complete-button")
        page.wait_for_selector("#chart[data-state='ready']")
        assert page.locator("#model-name").inner_text() == "tiny"
        assert page.locator("#model-version").inner_text() == "1"
        assert "predicted by tiny v1" in page.locator("#status").inner_text()
        posted = [r for r in requests if r.method == "POST" and r.url.endswith("/predict")]
        assert posted and posted[-1].post_data_json["model"] == "tiny"
        assert any("model=tiny" in r.url for r in requests if "/samples" in r.url)
    finally:
        context.close()
