"""The page of ``wordgpt serve`` in a real headless Chromium: it streams and stops a
generation, shows and reuses its seed, puts runs side by side, and maps words; screenshots of
each go to build/artifacts."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from .helpers import need, skip_unless
from .serving import health_after_a_generation

pytestmark = pytest.mark.slow  # end to end: not in make test-fast

need("fastapi")

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "artifacts"
OVERLAPS = """
const boxes = [...document.querySelectorAll(arguments[0])].map((e) => {
  const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom, e.textContent];
});
const out = [];
boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
  if (a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]) out.push([a[4], b[4]]);
}));
return out;
"""


CHROMIUM, DRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)


@skip_unless(
    os.path.exists(CHROMIUM) and os.path.exists(DRIVER),
    "no Chromium: apt-get install chromium chromium-driver (.ci/run does)",
)
def test_the_page_streams_stops_shows_seeds_runs_side_by_side_and_maps_words(
    server, runs_dir, tmp_path
):
    need("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = server(token_delay_s=0.04)
    driver = chrome(tmp_path / "profile")
    wait = WebDriverWait(driver, 60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(url)
        generate_stop_and_reuse_the_seed(driver, wait, url)
        runs_side_by_side(driver, wait)
        words_and_their_map(driver, wait)
        driver.get((runs_dir / "demo" / "report.html").as_uri())  # the report opens from disk
        assert driver.find_element(By.TAG_NAME, "h1").text.endswith("demo")
        assert driver.find_elements(By.TAG_NAME, "svg")
        assert not (cut := text_outside_its_svg(driver)), cut
        assert "<unk>" in driver.find_element(By.TAG_NAME, "body").text  # its val row's label
    finally:
        driver.quit()


def chrome(profile: Path):
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / name))
    assert (ARTIFACTS / name).read_bytes()[:4] == b"\x89PNG"


def generate_stop_and_reuse_the_seed(driver, wait, url) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    wait.until(lambda d: len(Select(d.find_element(By.ID, "run")).options) == 2)
    driver.find_element(By.ID, "prompt").send_keys("the knight")
    mx = driver.find_element(By.ID, "max_new_tokens")
    mx.clear()
    mx.send_keys("400")
    driver.find_element(By.ID, "generate").click()
    lengths = []
    for _ in range(40):  # watch the text grow, token by token
        lengths.append(len(driver.find_element(By.ID, "out-text").text))
        if len(set(lengths)) >= 4:
            break
        time.sleep(0.05)
    assert len(set(lengths)) >= 4 and lengths == sorted(lengths), lengths
    driver.find_element(By.ID, "stop").click()
    wait.until(lambda d: "stopped" in d.find_element(By.ID, "status").text)
    h = health_after_a_generation(url)
    assert h["finished"][-1]["stopped"] == "client" and h["finished"][-1]["pieces"] < 400
    assert "seed" in driver.find_element(By.ID, "status").text  # the seed is shown...
    driver.find_element(By.ID, "reuse-seed").click()  # ...and can be used again
    assert driver.find_element(By.ID, "seed").get_attribute("value").isdigit()
    shot(driver, "serve-generate.png")
    mx.clear()
    mx.send_keys("100000")  # above the input's bound: refused in the page, in words
    driver.find_element(By.ID, "generate").click()
    wait.until(lambda d: d.find_element(By.ID, "form-error").is_displayed())
    assert "Max new tokens" in driver.find_element(By.ID, "form-error").text


def runs_side_by_side(driver, wait) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "tab-runs").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr"))
    driver.find_element(By.CSS_SELECTOR, "#runs-table tbody tr").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#loss-chart path.curve.val"))
    d = driver.find_element(By.CSS_SELECTOR, "#loss-chart path.curve.val").get_attribute("d")
    assert d.count("L") == 3  # four evaluations: steps 0, 20, 40, 60
    assert driver.find_element(By.ID, "run-report").is_displayed()
    wait.until(lambda d: "generating" not in d.find_element(By.ID, "samples").text)
    for tick in driver.find_elements(By.CSS_SELECTOR, "#runs-table .tick"):
        tick.click()  # both runs, side by side
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#compare-chart path.curve")) == 2)
    for chart in ("#loss-chart", "#compare-chart"):  # the axis title clear of the top value
        assert not (pairs := overlapping_text(driver, f"{chart} text")), pairs
    cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#runs-table tbody td")]
    assert not [c for c in cells if re.fullmatch(r"\d{4,}", c)], cells  # 1,234 not 1234
    shot(driver, "serve-runs.png")


def overlapping_text(driver, selector: str) -> list:
    """Pairs of texts matched by ``selector`` whose boxes overlap on the page."""
    return driver.execute_script(OVERLAPS, selector)


def text_outside_its_svg(driver) -> list:
    """Texts drawn past the right edge of their svg (a legend cut off)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('svg text')].filter((t) => "
        "t.getBoundingClientRect().right > t.ownerSVGElement.getBoundingClientRect().right + 1)"
        ".map((t) => t.textContent);"
    )


def words_and_their_map(driver, wait) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "tab-words").click()
    driver.find_element(By.ID, "query").send_keys("the")
    driver.find_element(By.ID, "tsne").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map circle.dot")) > 10)
    assert driver.find_elements(By.CSS_SELECTOR, "#map circle.query")  # the word asked for
    driver.find_element(By.ID, "neighbors").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#neighbors-list li"))
    assert driver.find_elements(By.CSS_SELECTOR, "#map text.query-label")
    assert not (pairs := overlapping_text(driver, "#map text")), pairs
    shot(driver, "serve-words.png")
