"""The README's pictures of the web page: each view of ``wordgpt serve RUNS`` in headless
Chromium (Debian's ``chromium`` and ``chromium-driver``), saved into ``docs/``.

    python docs/screenshots.py runs            # after make demo (and a second run to compare)

Generate: a seeded sample from the first run, its copied spans highlighted. Runs: the first
run's curve, and every run ticked side by side. Words: the first run's own embeddings, the
map with "knight" and its neighbours marked.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from wordgpt.use.serve.app import ServeConfig, create_app

DOCS = Path(__file__).resolve().parent


def serve(runs: Path) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeConfig(runs))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/"


def browser(width: int, height: int):
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--window-size={width},{height}"):  # fmt: skip
        opts.add_argument(flag)
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=opts)


def generate(d, wait, prompt: str, seed: int) -> None:
    Select(d.find_element(By.ID, "run")).select_by_index(0)
    d.find_element(By.ID, "prompt").send_keys(prompt)
    for field, value in (("max_new_tokens", "120"), ("seed", str(seed))):
        box = d.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    d.find_element(By.ID, "generate").click()
    wait.until(lambda d: "pieces in" in d.find_element(By.ID, "status").text)
    time.sleep(0.5)  # the copies arrive after the text
    d.save_screenshot(str(DOCS / "serve-generate.png"))


def runs_view(d, wait) -> None:
    d.find_element(By.ID, "tab-runs").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr"))
    d.find_element(By.CSS_SELECTOR, "#runs-table tbody tr").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#loss-chart path.curve.val"))
    for tick in d.find_elements(By.CSS_SELECTOR, "#runs-table .tick"):
        tick.click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#compare-chart path.curve"))
    time.sleep(0.5)
    size = d.get_window_size()
    d.set_window_size(size["width"], 1400)  # the table and the chart side by side, both whole
    time.sleep(0.5)
    d.save_screenshot(str(DOCS / "serve-runs.png"))
    d.set_window_size(size["width"], size["height"])


def words_view(d, wait, word: str, run: str) -> None:
    d.find_element(By.ID, "tab-words").click()
    Select(d.find_element(By.ID, "words-run")).select_by_value(run)
    d.find_element(By.ID, "query").send_keys(word)
    d.find_element(By.ID, "neighbors").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#neighbors-list li"))
    d.find_element(By.ID, "tsne").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#map circle.query"))
    time.sleep(0.5)
    d.save_screenshot(str(DOCS / "serve-words.png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--prompt", default="the knight")
    ap.add_argument("--word", default="knight")
    ap.add_argument("--run", default="don-quixote-demo", help="the run of the Words view")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    url = serve(args.runs)
    d = browser(1100, 820)
    wait = WebDriverWait(d, 180)
    try:
        d.get(url)
        wait.until(lambda d: Select(d.find_element(By.ID, "run")).options)
        generate(d, wait, args.prompt, args.seed)
        runs_view(d, wait)
        words_view(d, wait, args.word, args.run)
    finally:
        d.quit()
    for name in ("serve-generate", "serve-runs", "serve-words"):
        print(DOCS / f"{name}.png")


if __name__ == "__main__":
    main()
