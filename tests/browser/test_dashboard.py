"""The dashboard and every widget in a real browser: charts draw with data, drill-downs
work, a refused embed link shows a page a person can read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import Served

TIMEOUT = 30_000


def open_widget(page: Any, served: Served, widget: str, **params: str) -> Any:
    token = served.token(widget, **params)
    page.goto(f"{served.url}/widgets/{widget}?token={quote(token)}")
    page.wait_for_selector("[data-widget][data-state='ready']", timeout=TIMEOUT)
    return page.locator("[data-widget]")


def test_the_sankey_draws_and_a_node_click_lists_its_customers(page: Any, served: Served) -> None:
    widget = open_widget(page, served, "sankey", anchor=served.anchor)
    nodes = widget.locator("g.sankey-node")
    assert nodes.count() >= 5, "steps of the journeys are drawn"
    assert widget.locator("path.sankey-link").count() >= 4
    nodes.first.locator("rect.node-rect").click()
    customers = widget.locator("[data-role='customers'] li")
    customers.first.wait_for(timeout=TIMEOUT)
    heading = widget.locator(".drill h3").inner_text()
    assert "customers — step 1: bill shock" in heading
    assert customers.count() >= 1 and customers.first.inner_text().startswith("cust:")


def test_the_journey_table_drills_down_to_customers(page: Any, served: Served) -> None:
    widget = open_widget(page, served, "journey-table", anchor=served.anchor, top="5")
    rows = widget.locator("table.journeys tbody tr")
    assert rows.count() == 6, "five journeys and the rest"
    assert rows.first.locator("td").nth(1).inner_text().startswith("bill shock →")
    rows.first.click()
    widget.locator("[data-role='customers'] li").first.wait_for(timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("widget", "params", "drawn"),
    [
        ("kpi-tile", {"kpi": "repeat_contacts"}, ".kpi-value"),
        ("funnel", {"steps": "first_bill_shock,first_care_contact,churned"}, ".funnellayer .point"),
        ("cell-heatmap", {}, "g.treemap"),
    ],
)
def test_each_chart_widget_draws_with_data(
    page: Any, served: Served, widget: str, params: dict[str, str], drawn: str
) -> None:
    shown = open_widget(page, served, widget, **params)
    assert shown.locator(drawn).count() >= 1
    assert "Could not load" not in shown.inner_text()


def test_the_customer_timeline_shows_the_360(page: Any, served: Served) -> None:
    widget = open_widget(page, served, "customer-timeline", customer_id=served.customer)
    assert widget.locator("h3").first.inner_text().startswith(served.customer)
    assert widget.locator(".scatterlayer .point").count() >= 2, "touchpoints are plotted"
    identifiers = widget.locator("section").first.locator("tbody tr")
    assert identifiers.count() >= 1
    assert identifiers.first.locator("td").nth(2).inner_text() in ("det", "prob")


def test_a_locked_parameter_cannot_be_changed_in_the_url(page: Any, served: Served) -> None:
    token = served.token("customer-timeline", customer_id=served.customer)
    page.goto(f"{served.url}/widgets/customer-timeline?token={quote(token)}&customer_id=cust:other")
    page.wait_for_selector("[data-widget][data-state='error']", timeout=TIMEOUT)
    text = page.locator("[data-widget]").inner_text()
    assert "fixes customer_id" in text and "HTTP 403" in text


@pytest.mark.parametrize(
    ("case", "status", "heading"),
    [
        ("expired", 401, "This embedded view has expired"),
        ("tampered", 401, "This embedded view's link is not valid"),
        ("other widget", 403, "This embedded view is not allowed"),
    ],
)
def test_a_refused_embed_link_shows_a_clear_error_page(
    page: Any, served: Served, case: str, status: int, heading: str
) -> None:
    if case == "expired":
        token = served.token("sankey", ttl=timedelta(seconds=1), anchor="bill_shock")
        page.wait_for_timeout(2100)
    elif case == "tampered":
        token = served.token("sankey", anchor="bill_shock")
        token = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    else:
        token = served.token("funnel", steps="a,b")
    response = page.goto(f"{served.url}/widgets/sankey?token={quote(token)}")
    assert response.status == status
    assert page.locator("h1").inner_text() == heading
    assert page.locator("[role='alert'] p").count() == 2


def test_the_dashboard_signs_in_and_shows_every_view(page: Any, served: Served) -> None:
    page.goto(f"{served.url}/dashboard")
    page.fill("form.login input[name='key']", "jg_000000000000_" + "x" * 43)
    page.click("form.login button")
    page.wait_for_selector("form.login .error:has-text('refused')", timeout=TIMEOUT)
    page.fill("form.login input[name='key']", served.key)
    page.click("form.login button")
    page.wait_for_selector("[data-widget-slot='sankey'][data-state='ready']", timeout=TIMEOUT)
    page.wait_for_selector("[data-widget-slot='journey-table'][data-state='ready']")
    assert page.locator("[data-widget-slot='sankey'] g.sankey-node").count() >= 5

    page.locator("[data-widget-slot='journey-table'] table.journeys tbody tr").first.click()
    first = page.locator("[data-widget-slot='journey-table'] [data-role='customers'] button")
    first.first.wait_for(timeout=TIMEOUT)
    chosen = first.first.inner_text()
    first.first.click()
    page.wait_for_selector(
        "[data-widget-slot='customer-timeline'][data-state='ready']", timeout=TIMEOUT
    )
    assert (
        page.locator("[data-widget-slot='customer-timeline'] h3")
        .first.inner_text()
        .startswith(chosen)
    )

    page.click("[data-tab='kpis']")
    page.wait_for_selector(".tiles .tile[data-state='ready'] .kpi-value", timeout=TIMEOUT)
    assert page.locator(".tiles .tile").count() >= 3

    page.click("[data-tab='funnel']")
    page.wait_for_selector("[data-widget-slot='funnel'][data-state='ready'] .funnellayer .point")

    page.click("[data-tab='cells']")
    page.wait_for_selector("[data-widget-slot='cell-heatmap'][data-state='ready'] g.treemap")
    page.click("[data-tab='journeys']")
