"""End to end: `reslab serve` in a subprocess, the page driven by headless Chromium through selenium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(index: Path):
    """`reslab serve INDEX` on a free port; yields its URL, stops it afterwards."""
    port = _free_port()
    cmd = [sys.executable, "-m", "reslab", "serve", str(index), "--port", str(port), "--max-upload-mb", "5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/info", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"`reslab serve` did not start:\n{proc.stdout.read()}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(hist_index):
    yield from _serve(hist_index)


@pytest.fixture(scope="module")
def cnn_server(cnn_index):
    yield from _serve(cnn_index)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(f"needs Debian's chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER}); apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                 "--window-size=1280,1000"]:  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _search_with_upload(browser, url: str, query: Path, k: int):
    """Open the page, pick k, upload `query`; returns the result cards."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(url)
    _wait(browser, lambda d: "12 images" in d.find_element(By.ID, "info").text)
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .card")) == 12)  # the browse grid
    Select(browser.find_element(By.ID, "k-select")).select_by_visible_text(str(k))
    browser.find_element(By.ID, "file-input").send_keys(str(query))
    _wait(browser, lambda d: f"most similar to {query.name}" in d.find_element(By.ID, "results-title").text)
    _wait(browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"))  # fmt: skip
    return browser.find_elements(By.CSS_SELECTOR, "#results .card")


def _cat_photo(tmp_path: Path) -> Path:
    from PIL import Image
    from skimage import data

    query = tmp_path / "my chelsea.jpg"
    Image.fromarray(data.chelsea()).resize((300, 200)).save(query, quality=85)
    return query


def test_upload_shows_k_results_with_scores(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    cards = _search_with_upload(browser, server, _cat_photo(tmp_path), k=6)
    assert len(cards) == 6
    scores = [float(c.find_element(By.CSS_SELECTOR, ".score").text) for c in cards]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1.0005 for s in scores)
    labels = [c.find_element(By.CSS_SELECTOR, ".label").text for c in cards]
    assert labels[:3] == ["chelsea"] * 3
    assert not browser.find_element(By.ID, "classes-panel").is_displayed()  # colour histograms cannot classify
    assert not browser.find_element(By.ID, "pager").is_displayed()
    browser.save_screenshot(str(tmp_path / "search-hist.png"))

    # clicking a result searches with that indexed image
    name = cards[3].get_attribute("title").split(" (id")[0]
    cards[3].click()
    _wait(browser, lambda d: f"most similar to {name}" in d.find_element(By.ID, "results-title").text)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .card .score")) == 6


@pytest.mark.slow
def test_cnn_index_page_also_classifies_the_upload(cnn_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    cards = _search_with_upload(browser, cnn_server, _cat_photo(tmp_path), k=6)
    assert [c.find_element(By.CSS_SELECTOR, ".label").text for c in cards[:3]] == ["chelsea"] * 3
    classes = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#classes li"))
    assert len(classes) == 5
    # EfficientNet-Lite0's ImageNet head names the cat
    assert any(word in classes[0].text.lower() for word in ("cat", "tabby", "lynx"))
    shot = Path(os.environ.get("RESLAB_SCREENSHOT_DIR", tmp_path)) / "search-cnn.png"
    browser.save_screenshot(str(shot))


def test_a_non_image_shows_the_servers_message(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    browser.get(server)
    browser.find_element(By.ID, "file-input").send_keys(str(notes))
    status = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#status.error"))
    assert "415" in status.text and "notes.jpg" in status.text


def test_the_offline_api_reference_lists_every_endpoint(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/docs")
    sections = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "section.endpoint"))
    titles = " ".join(s.find_element(By.TAG_NAME, "h2").text for s in sections)
    for endpoint in ["POST /api/search", "GET /api/items/{item_id}/similar", "GET /api/image/{item_id}", "GET /api/info"]:
        assert endpoint in titles
    browser.save_screenshot(str(Path(os.environ.get("RESLAB_SCREENSHOT_DIR", tmp_path)) / "api-docs.png"))
