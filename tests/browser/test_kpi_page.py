"""The DX plan's KPI page as a visitor's browser shows it: reached from the header, every figure equal
to what ``GET /api/v1/kpis`` answers (Japanese and English), the charts drawn as images with a name
and the numbers in tables, nothing fetched from outside 127.0.0.1, and axe-core finding no serious or
critical WCAG A/AA violation. A department signed in through the login form opens its own figures;
anyone else gets the page of a department that does not exist. Each page leaves a screenshot."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.axe import assert_no_serious
from tests.support.browser import DEPARTMENT, Portal, screenshot, sign_in

STATUS = {True: "on", False: "behind", None: "unknown"}
WORDS = {
    "ja": {"nav": "DX推進計画の KPI", "title": "DX推進計画の KPI", "own": "自部局の KPI を見る"},
    "en": {"nav": "DX plan KPIs", "title": "DX plan KPIs", "own": "Your department's KPIs"},
}


def _number(text: str | None) -> float | None:
    return float(text) if text else None


def shown_figures(page: Page) -> dict[str, dict[str, Any]]:
    """Per KPI what the page shows, read from the rendered document."""
    read = """() => [...document.querySelectorAll('section[data-kpi]')].map(section => ({
      id: section.dataset.kpi,
      status: section.querySelector('[data-status]').dataset.status,
      facts: Object.fromEntries([...section.querySelectorAll('dd[data-field][data-value]')]
        .map(dd => [dd.dataset.field, dd.dataset.value])),
      latestPeriod: section.querySelector('dd[data-field="latest"]').dataset.period,
      series: Object.fromEntries([...section.querySelectorAll('table[data-series]')].map(table =>
        [table.dataset.series, [...table.querySelectorAll('tbody tr')].map(row =>
          [row.dataset.period, row.querySelector('td[data-value]').dataset.value,
           row.querySelector('td[data-trajectory]').dataset.trajectory])])),
    }))"""
    figures: dict[str, dict[str, Any]] = {}
    for section in page.evaluate(read):
        facts = section["facts"]
        figures[section["id"]] = {
            "baseline": _number(facts["baseline"]),
            "target": _number(facts["target"]),
            "latest": _number(facts["latest"]),
            "latest_period": section["latestPeriod"] or None,
            "progress": _number(facts["progress"]),
            "status": section["status"],
            "series": {
                name: [(period, _number(value), _number(line)) for period, value, line in rows]
                for name, rows in section["series"].items()
            },
        }
    return figures


def api_figures(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def points(series: list[dict[str, Any]]) -> list[tuple[str, float | None, float | None]]:
        return [(p["period"], p["value"], p["trajectory"]) for p in series]

    figures = {}
    for kpi in report["kpis"]:
        has_data = any(p["value"] is not None for p in kpi["monthly"])
        figures[kpi["id"]] = {
            "baseline": kpi["baseline"]["value"],
            "target": kpi["target"]["value"],
            "latest": kpi["latest"]["value"] if kpi["latest"] else None,
            "latest_period": kpi["latest"]["period"] if kpi["latest"] else None,
            "progress": kpi["progress"],
            "status": STATUS[kpi["on_track"]],
            # A KPI without data shows no table at all.
            "series": {"fiscal_years": points(kpi["fiscal_years"]), "monthly": points(kpi["monthly"])}
            if has_data
            else {},
        }
    return figures


def _report(portal: Portal, **params: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {portal.department_key}"} if params else {}
    answer = httpx.get(portal.url("/api/v1/kpis"), params=params, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_kpi_page_shows_the_apis_figures(
    portal: Portal,
    new_page: Callable[..., Page],
    blocked_requests: list[str],
    page_errors: list[str],
    lang: str,
) -> None:
    page = new_page(locale="ja-JP" if lang == "ja" else "en-US")
    page.goto(portal.url("/" if lang == "ja" else "/en/"))
    page.get_by_role("navigation").get_by_role("link", name=WORDS[lang]["nav"]).click()
    page.wait_for_url(portal.url("/kpi" if lang == "ja" else "/en/kpi"))
    expect(page.locator("h1")).to_have_text(WORDS[lang]["title"])
    assert page.locator("html").get_attribute("lang") == lang

    report = _report(portal)
    assert report["kpis"]
    assert shown_figures(page) == api_figures(report)
    # Each KPI with data has its two charts, as images named in the page's language.
    for kpi in report["kpis"]:
        section = page.locator(f"section[data-kpi='{kpi['id']}']")
        name = kpi["name"][lang]
        expect(section.locator("h2")).to_contain_text(name)
        if any(p["value"] is not None for p in kpi["monthly"]):
            # The accessible name comes from the chart's own title (aria-labelledby), not from an image file.
            expect(section.get_by_role("img", name=re.compile(re.escape(name)))).to_have_count(2)
    # The monthly table opens from its summary without any script.
    first = page.locator("details.kpi-monthly").first
    first.locator("summary").click()
    expect(first.locator("table")).to_be_visible()
    # The KPI dataset's CSV downloads from this origin.
    csv = page.locator("a[data-kpi-csv]")
    answer = httpx.get(portal.url(str(csv.get_attribute("href"))), timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")

    screenshot(page, f"kpi-{lang}")
    assert_no_serious(page, f"kpi-{lang}")
    assert blocked_requests == [] and page_errors == []


def test_kpi_page_reads_without_javascript(new_page: Callable[..., Page], portal: Portal) -> None:
    page = new_page(java_script_enabled=False)
    page.goto(portal.url("/kpi"))
    report = _report(portal)
    assert shown_figures(page) == api_figures(report)
    expect(page.locator("svg.kpi-chart").first).to_be_visible()
    expect(page.locator("table.kpi-summary tbody tr")).to_have_count(len(report["kpis"]))


def test_a_department_signed_in_sees_its_own_figures(
    portal: Portal,
    page: Page,
    new_page: Callable[..., Page],
    blocked_requests: list[str],
    page_errors: list[str],
) -> None:
    own_path = f"/kpi/departments/{DEPARTMENT}"
    # Before signing in, the department's page is a page that does not exist.
    answer = page.goto(portal.url(own_path))
    assert answer is not None and answer.status == 404
    refused = page.content()
    answer = page.goto(portal.url("/kpi/departments/no-such-department"))
    assert answer is not None and answer.status == 404
    assert refused.replace(DEPARTMENT, "?") == page.content().replace("no-such-department", "?")

    sign_in(page, portal)
    page.goto(portal.url("/kpi"))
    page.get_by_role("link", name=WORDS["ja"]["own"]).click()
    page.wait_for_url(portal.url(own_path))
    assert page.locator(".kpi-page").get_attribute("data-department") == DEPARTMENT
    assert shown_figures(page) == api_figures(_report(portal, department=DEPARTMENT))
    screenshot(page, "kpi-department-ja")
    assert_no_serious(page, "kpi-department-ja")

    # Signed in as this department, another department's page does not exist either.
    answer = page.goto(portal.url("/kpi/departments/planning"))
    assert answer is not None and answer.status == 404

    english = page.goto(portal.url(f"/en{own_path}"))
    assert english is not None and english.status == 200
    assert shown_figures(page) == api_figures(_report(portal, department=DEPARTMENT))
    assert_no_serious(page, "kpi-department-en")
    assert blocked_requests == [] and page_errors == []
