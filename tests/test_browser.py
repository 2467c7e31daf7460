"""The report in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven
by Selenium) opens every page of a site built from clearly synthetic fixture results of three
real paper tables, checks there is no console error, that the numbers in the DOM equal the
results CSV, and saves screenshots under results/report/screenshots/.

Run with ``nox -s browser`` or ``pytest -m browser``. Under that selection a missing Chromium
is an error, and so it is whenever ``$CI`` is set (.ci/run installs Chromium); only in a plain
local ``pytest`` run without Chromium is the test skipped, with the install command.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
from browser import Browser, find_chromium
from test_report import write_synthetic_results

from reid_bench.report.build import build_report
from reid_bench.spec import load_spec
from reid_bench.store.results import read_results, table_csv

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["papers/verif_identif/table2.yaml", "papers/fmn/table5.yaml", "papers/ledf/table4.yaml"]
SHOTS = ROOT / "results" / "report" / "screenshots"


@pytest.fixture(scope="module")
def browser(request):
    chromium, driver = find_chromium()
    try:
        import selenium  # noqa: F401
        have_selenium = True
    except ImportError:
        have_selenium = False
    if not (chromium and driver and have_selenium):
        msg = ("the browser test needs headless Chromium and Selenium: "
               "`apt-get install -y chromium chromium-driver` and `pip install -e .[dev]` "
               f"(found chromium={chromium}, chromedriver={driver}, selenium={have_selenium})")
        if "browser" in (request.config.getoption("markexpr") or "") or os.environ.get("CI"):
            pytest.fail(msg)  # selected explicitly (nox -s browser) or in CI: never a silent pass
        pytest.skip(msg)
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    res = tmp / "results"
    for i, path in enumerate(SPECS):
        write_synthetic_results(load_spec(ROOT / path), res, seeds=2, seed=i)
    out = tmp / "site"
    build_report(res, out, [str(ROOT / p) for p in SPECS])
    return res, out


def _expected_means(res: Path, spec) -> dict[tuple[str, str, str], float]:
    df = read_results(table_csv(res, spec.paper.id, spec.table.id))
    df = df[df["status"] == "ok"]
    out = {}
    for ds in spec.datasets:
        for m in spec.column_metrics(ds):
            if "@" in m:
                continue
            sub = df[df["dataset"] == ds]
            for row, vals in sub.groupby("row")[m]:
                out[(row, ds, m)] = float(pd.to_numeric(vals).mean())
    return out


def test_every_page_loads_without_console_errors(browser, site):
    _, out = site
    pages = sorted(out.glob("*.html"))
    assert len(pages) == 1 + len(SPECS)
    for page in pages:
        r = browser.open(page, SHOTS / f"{page.stem}.png")
        assert r.errors == [], f"{page.name}: console errors {r.errors}"
        assert r.title, page.name
        assert r.screenshot.is_file() and r.screenshot.stat().st_size > 10_000


def test_dom_numbers_equal_the_csv(browser, site):
    from selenium.webdriver.common.by import By

    res, out = site
    for path in SPECS:
        spec = load_spec(ROOT / path)
        expected = _expected_means(res, spec)
        assert expected, path
        browser.open(out / f"{spec.paper.id}-{spec.table.id}.html")
        d = browser.driver
        seen = 0
        for el in d.find_elements(By.CSS_SELECTOR, "td.ours"):
            key = (el.get_attribute("data-row"), el.get_attribute("data-dataset"),
                   el.get_attribute("data-metric"))
            if key not in expected:
                assert el.get_attribute("data-value") == "", key
                continue
            want = expected[key]
            assert math.isclose(float(el.get_attribute("data-value")), want, abs_tol=1e-9), key
            assert el.text.split()[0] == f"{want:.2f}", (key, el.text)  # what a reader sees
            seen += 1
        assert seen == len(expected), path
        # Published numbers in the DOM are the spec's.
        for el in d.find_elements(By.CSS_SELECTOR, "td.pub"):
            r = spec.row(el.get_attribute("data-row"))
            pub = r.published.get(el.get_attribute("data-dataset"), {}).get(
                el.get_attribute("data-metric"))
            assert el.text == ("–" if pub is None else f"{pub:.2f}")
        # Synthetic fixture numbers are labelled as such, never as paper verdicts.
        assert d.find_element(By.ID, "synthetic-banner").is_displayed()
        verdicts = {e.get_attribute("data-verdict") for e in
                    d.find_elements(By.CSS_SELECTOR, "[data-verdict]")}
        assert verdicts.isdisjoint({"reproduced", "better", "worse"}), verdicts
        assert d.find_elements(By.CSS_SELECTOR, "figure.plot svg"), "no figure on the page"
        claims = d.find_elements(By.CSS_SELECTOR, "[data-claim-status]")
        assert len(claims) == len(spec.claims) > 0
