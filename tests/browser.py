"""Open the static report in headless Chromium (Selenium + Debian's chromium/chromedriver).

Test tooling (selenium is a dev-only dependency). Used by tests/test_browser.py and by hand,
with the site folder and, optionally, where the screenshots go (default: SITE/screenshots)::

    python tests/browser.py results/report results/report/screenshots

For every page it collects the browser console's errors and warnings and saves a full-page
screenshot. Only file:// URLs are opened; Chromium runs with networking features off.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1366,900")


def find_chromium() -> tuple[str | None, str | None]:
    """Paths of the chromium binary and of chromedriver (None when not installed)."""
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                  "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    return browser, driver


@dataclass
class PageResult:
    page: str
    title: str
    console: list[dict[str, Any]] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.console if m.get("level") == "SEVERE"]


class Browser:
    """A headless Chromium session with a fresh profile; use as a context manager."""

    def __init__(self, width: int = 1366, height: int = 900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        browser, driver = find_chromium()
        if not browser or not driver:
            raise RuntimeError("headless Chromium not found: install Debian's packages with "
                               "`apt-get install -y chromium chromium-driver`")
        self._profile = tempfile.mkdtemp(prefix="reid-bench-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={self._profile}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(driver), options=opts)
        self.driver.set_window_size(width, height)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def open(self, path: Path, screenshot: Path | None = None) -> PageResult:
        """Load ``path`` (a file on disk), return its title, console messages and (optionally)
        a full-page screenshot."""
        d = self.driver
        d.get(Path(path).resolve().as_uri())
        res = PageResult(page=Path(path).name, title=d.title)
        res.console = list(d.get_log("browser"))
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            h = d.execute_script("return document.documentElement.scrollHeight")
            w = d.get_window_size()["width"]
            d.set_window_size(w, min(int(h) + 100, 6000))
            d.save_screenshot(str(screenshot))
            d.set_window_size(w, 900)
            res.screenshot = screenshot
        return res


def main(argv: list[str]) -> int:
    site = Path(argv[0]) if argv else Path("results/report")
    shots = Path(argv[1]) if len(argv) > 1 else site / "screenshots"
    bad = 0
    with Browser() as b:
        for page in sorted(site.glob("*.html")):
            r = b.open(page, shots / (page.stem + ".png"))
            bad += len(r.errors)
            print(f"{page.name}: {len(r.errors)} console error(s) → {r.screenshot}")
            for m in r.errors:
                print("   ", m.get("message"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
