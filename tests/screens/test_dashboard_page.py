"""The operators' dashboard page: served offline with a strict CSP, and driven in headless Chromium.

The browser test serves the session app over real HTTP, signs in with an operator token, loads a
far-future date range holding a hand-made fixture, and checks the page shows what POST /graphql
answers for that range. The screenshot lands in tests/artifacts/dashboard.png.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from bff.auth import Principal, Role, issue_token, verify_token
from bff.dashboard import CONTENT_SECURITY_POLICY, DOCUMENT_PATH, OPERATION, dashboard_document
from bff.models.analytics import TrackedEvent
from bff.models.catalog import Product, Sku
from bff.models.marketing import FlashSale, FlashSaleItem
from bff.models.order import PAID, Order, OrderLine
from bff.services.rollups import mark_dirty
from bff.services.shop_time import SHOP_TZ, shop_today
from tests.support.api import Api
from tests.support.factories import make_product
from tests.support.servers import serve_asgi

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # the dev extras were not installed: only the browser test skips
    async_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
STATIC = Path(__file__).resolve().parents[2] / "bff" / "static"
# The launch flags that work in a closed network: no sandbox (root in a container), no GPU, and none
# of the background connections Chromium makes on its own. Only loopback resolves, so a CDN reference
# left anywhere cannot load even where there is internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

# A range no other test writes to: everything in it is this module's fixture.
FROM = date(2036, 2, 4)
TO = date(2036, 2, 12)

_ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)\"""", re.IGNORECASE)


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if async_playwright is None:
        return "the playwright module is missing (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


# ---- the page over plain HTTP ------------------------------------------------------------------


async def test_the_page_is_served_with_a_self_only_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    sources = re.findall(r"(?:^|; )[a-z-]+ ([^;]+)", policy)
    assert sources and set(sources) <= {"'self'", "'none'"}, policy
    assert "<script>" not in response.text and "style=" not in response.text  # nothing inline


async def test_every_asset_comes_from_the_bff(client: httpx.AsyncClient) -> None:
    html = (await client.get("/dashboard")).text
    urls = _ASSET.findall(html)
    assert {"/static/vendor/echarts/echarts.min.js", "/static/dashboard/dashboard.js"} <= set(urls)
    for url in urls:
        assert url.startswith("/static/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content == (STATIC / url.removeprefix("/static/")).read_bytes(), url
    script = (STATIC / "dashboard" / "dashboard.js").read_text()
    assert "http://" not in script and "https://" not in script
    assert f'"{DOCUMENT_PATH}"' in script  # the page asks for the document instead of carrying one


async def test_the_page_gets_the_one_copy_of_the_document(client: httpx.AsyncClient) -> None:
    response = await client.get(DOCUMENT_PATH)
    assert response.status_code == 200
    assert response.text == dashboard_document()
    assert f"query {OPERATION}(" in response.text
    script = (STATIC / "dashboard" / "dashboard.js").read_text()
    assert "dashboard(" not in script and "topProducts" in script  # reads the answer, never defines it


# ---- the fixture ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    tag: str
    visitors: int
    product: Product
    sku: Sku
    keyword: str
    zero_keyword: str


def _moment(day: date, minute: int) -> datetime:
    return datetime.combine(day, time(10, minute), SHOP_TZ).astimezone(UTC)


async def _make_fixture(members: list[int]) -> Fixture:
    """Six visitors on the first day (the first ones signed in as `members`), some back on day 1 and
    day 7; product views, carts, checkouts and searches."""
    tag = uuid.uuid4().hex[:8]
    product, (sku,) = await make_product([(12_900, 50)])
    keyword, zero_keyword = f"看板{tag}", f"无结果{tag}"
    rows: list[TrackedEvent] = []

    def event(visitor: int, day: date, kind: str, **fields: Any) -> None:
        at = _moment(day, len(rows) % 60)
        rows.append(
            TrackedEvent(
                client_event_id=f"dash-{len(rows)}",
                anonymous_id=f"dash-{tag}-{visitor}",
                member_id=members[visitor] if visitor < len(members) else None,
                session_id=f"s-{tag}-{visitor}-{day.isoformat()}",
                type=kind,
                page=fields.pop("page", "pages/home/index"),
                occurred_at=at,
                received_at=at,
                day=day,
                **fields,
            )
        )

    first, visitors = FROM, 6
    for v in range(visitors):
        event(v, first, "page_view")
        if v < 5:
            event(v, first, "product_click", product_id=product.id)
            event(v, first, "page_view", page="pages/product/index", product_id=product.id)
        if v < 3:
            event(v, first, "add_to_cart", product_id=product.id)
        if v < 2:
            event(v, first, "checkout_start")
        if v < 4:
            event(v, first, "search", keyword=keyword, result_count=7)
        if v < 2:
            event(v, first, "search", keyword=zero_keyword, result_count=0)
    for v in range(3):  # back the next day
        event(v, first + timedelta(days=1), "page_view")
    for v in range(2):  # and a week later
        event(v, first + timedelta(days=7), "page_view")
    await TrackedEvent.bulk_create(rows)
    await mark_dirty({row.day for row in rows})
    return Fixture(tag, visitors, product, sku, keyword, zero_keyword)


async def _paid_order(fixture: Fixture, member_id: int, day: date, quantity: int, ref: int | None) -> None:
    """An order paid on `day` for `quantity` of the fixture's product, in a flash sale when `ref` is set."""
    at, total = _moment(day, 30), quantity * fixture.sku.price_fen
    order = await Order.create(
        order_no=f"D{fixture.tag}{uuid.uuid4().hex[:8]}",
        member_id=member_id,
        status=PAID,
        items_total_fen=total,
        payable_fen=total,
        campaign_kind="FLASH_SALE" if ref is not None else None,
        campaign_ref=ref,
        paid_at=at,
    )
    await Order.filter(id=order.id).update(created_at=at)  # created_at is set on insert; backdate it
    await OrderLine.create(
        order=order,
        sku_id=fixture.sku.id,
        product_id=fixture.product.id,
        product_title=fixture.product.title,
        quantity=quantity,
        unit_price_fen=fixture.sku.price_fen,
        line_total_fen=total,
        paid_fen=total,
    )


@pytest.fixture(scope="module")
async def fixture(app: Starlette, api: Api) -> Fixture:
    """The events, plus three paid orders by the two members among the visitors: one regular order
    and two in a flash sale."""
    secret = app.state.services.settings.jwt_secret
    first, second = [verify_token(await api.login(f"dash{uuid.uuid4().hex[:10]}"), secret) for _ in "ab"]
    assert first.member_id is not None and second.member_id is not None
    made = await _make_fixture([first.member_id, second.member_id])
    sale = await FlashSale.create(
        title=f"看板秒杀 {made.tag}", starts_at=_moment(FROM, 0), ends_at=_moment(TO, 0)
    )
    item = await FlashSaleItem.create(
        flash_sale=sale,
        sku_id=made.sku.id,
        product_id=made.product.id,
        flash_price_fen=made.sku.price_fen,
        stock_total=10,
    )
    await _paid_order(made, first.member_id, FROM, 1, None)
    await _paid_order(made, first.member_id, FROM + timedelta(days=1), 2, item.id)
    await _paid_order(made, second.member_id, FROM + timedelta(days=2), 1, item.id)
    return made


@pytest.fixture(scope="module")
def operator(app: Starlette) -> str:
    settings = app.state.services.settings
    return issue_token(Principal(role=Role.OPERATOR, name="ops-dashboard"), settings.jwt_secret, 3600).token


async def _overview(api: Api, token: str, granularity: str) -> dict[str, Any]:
    """What the API answers the page's own document for the fixture range."""
    variables = {
        "range": {"from": FROM.isoformat(), "to": TO.isoformat()},
        "granularity": granularity,
        "top": 10,
    }
    response = await api.post(dashboard_document(), variables, token=token, operation_name=OPERATION)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]["dashboard"]  # type: ignore[no-any-return]


# ---- what the page should show -----------------------------------------------------------------


def count(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def rate(r: float | None) -> str:
    # JavaScript's toFixed rounds the double's exact value half up; Decimal(float) is that exact value.
    return "–" if r is None else f"{Decimal(r * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


def money(m: dict[str, Any] | None) -> str:
    return "–" if m is None else str(m["formatted"])


def kpi_texts(summary: dict[str, Any]) -> dict[str, str]:
    counts = [
        "visitors",
        "pageViews",
        "orders",
        "paidOrders",
        "payingMembers",
        "newMembers",
        "returningMembers",
    ]
    texts = {k: count(summary[k]) for k in counts}
    texts |= {k: money(summary[k]) for k in ("gmv", "averageOrderValue", "refunds")}
    texts |= {k: rate(summary[k]) for k in ("conversionRate", "repurchaseRate")}
    return texts


def table_rows(d: dict[str, Any]) -> dict[str, list[list[str]]]:
    return {
        "top-products": [
            [p["title"], count(p["views"]), count(p["addToCarts"]), count(p["unitsSold"]), money(p["sales"])]
            for p in d["topProducts"]
        ],
        "sales-by-campaign": [
            [
                c["kind"],
                c["name"] or ("No campaign" if c["kind"] == "NONE" else "–"),
                count(c["orders"]),
                money(c["gmv"]),
            ]
            for c in d["salesByCampaign"]
        ],
        "top-keywords": [
            [k["keyword"], count(k["searches"]), count(k["zeroResults"])] for k in d["topKeywords"]
        ],
        "zero-result-keywords": [[k["keyword"], count(k["searches"])] for k in d["zeroResultKeywords"]],
        "funnel-table": [
            [s["step"], count(s["visitors"]), rate(s["rateFromPrevious"]), rate(s["rateFromFirst"])]
            for s in d["funnel"]
        ],
    }


# ---- the browser ---------------------------------------------------------------------------------

_CHART_STATE = """
(testid) => {
  const node = document.querySelector(`[data-testid="${testid}"]`);
  const canvas = node.querySelector("canvas");
  if (!canvas) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
  const option = echarts.getInstanceByDom(node).getOption();
  return {painted, total: pixels.length / 4, series: option.series, xAxis: option.xAxis};
}
"""


async def _sign_in(page: Page, token: str) -> None:
    await page.get_by_test_id("token-input").fill(token)
    await page.get_by_test_id("sign-in-button").click()


async def _load(page: Page, granularity: str) -> None:
    await page.get_by_test_id("from").fill(FROM.isoformat())
    await page.get_by_test_id("to").fill(TO.isoformat())
    await page.get_by_test_id("granularity").select_option(granularity)
    await page.get_by_test_id("load").click()
    status = page.get_by_test_id("status")
    await expect(status).to_have_attribute("data-loaded", f"{FROM}/{TO}/{granularity}", timeout=20_000)


async def _rows(page: Page, testid: str) -> list[list[str]]:
    rows: list[list[str]] = (
        await page.get_by_test_id(testid)
        .locator("tbody tr[data-row]")
        .evaluate_all("rows => rows.map(r => Array.from(r.cells, c => c.textContent))")
    )
    return rows


async def _expect_error(page: Page, code: str) -> None:
    await expect(page.get_by_test_id("error")).to_be_visible(timeout=20_000)
    await expect(page.get_by_test_id("error-code")).to_have_text(code)


@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
async def test_an_operator_sees_the_api_numbers_in_headless_chromium(
    app: Starlette, api: Api, fixture: Fixture, operator: str, shopper: str
) -> None:
    week = await _overview(api, operator, "WEEK")
    day = await _overview(api, operator, "DAY")
    # The fixture reached the API, so the page has real numbers to show (not a board of zeros).
    assert day["summary"]["visitors"] == fixture.visitors
    searches = {k["keyword"]: k["searches"] for k in day["topKeywords"]}
    assert searches.get(fixture.keyword) == 4
    assert fixture.zero_keyword in [k["keyword"] for k in day["zeroResultKeywords"]]
    assert fixture.product.title in [p["title"] for p in day["topProducts"]]
    assert any(c["day1"] for c in day["retention"])
    assert [s["visitors"] for s in day["funnel"]][1:] == [3, 2, 2]  # carts, checkouts, payers
    assert (day["summary"]["paidOrders"], day["summary"]["gmv"]["amount"]) == (3, 4 * fixture.sku.price_fen)
    sales = {c["name"]: c["orders"] for c in day["salesByCampaign"]}
    assert sales[f"看板秒杀 {fixture.tag}"] == 2

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with serve_asgi(app, lifespan="off") as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1360, "height": 900})
            page = await context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            crashes: list[str] = []
            page.on("pageerror", lambda error: crashes.append(str(error)))
            await page.add_init_script(
                "window.__csp = []; document.addEventListener('securitypolicyviolation',"
                " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            await _walk_through(page, url, operator, shopper, week, day)
            violations = await page.evaluate("window.__csp")
        finally:
            await browser.close()

    assert violations == [], violations
    assert crashes == [], crashes
    origin = urlsplit(url).netloc
    assert requested and all(urlsplit(u).netloc == origin for u in requested), [
        u for u in requested if urlsplit(u).netloc != origin
    ]
    assert f"{url}{DOCUMENT_PATH}" in requested
    assert f"{url}/static/vendor/echarts/echarts.min.js" in requested


async def _walk_through(
    page: Page, url: str, operator: str, member: str, week: dict[str, Any], day: dict[str, Any]
) -> None:
    await page.goto(f"{url}/dashboard")
    await expect(page.get_by_test_id("sign-in")).to_be_visible()
    await expect(page.get_by_test_id("board")).to_be_hidden()

    # A forged token and a member's token: the API's error, shown as it said it.
    for token, code in (("not-a-token", "UNAUTHENTICATED"), (member, "FORBIDDEN")):
        await _sign_in(page, token)
        await _expect_error(page, code)
        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0

    await _sign_in(page, operator)
    await expect(page.get_by_test_id("operator-name")).to_have_text("ops-dashboard")
    # Signed in, it loads the last 30 shop days at once.
    today = shop_today()
    await expect(page.get_by_test_id("status")).to_have_attribute(
        "data-loaded", f"{today - timedelta(days=29)}/{today}/DAY", timeout=20_000
    )
    await expect(page.get_by_test_id("error")).to_be_hidden()
    # The token outlives a reload of the tab.
    await page.reload()
    await expect(page.get_by_test_id("board")).to_be_visible()
    await expect(page.get_by_test_id("status")).to_have_attribute("data-loaded", re.compile("DAY$"))

    await _load(page, "WEEK")
    trend = await page.evaluate(_CHART_STATE, "chart-trend")
    assert trend["xAxis"][0]["data"] == [b["bucket"] for b in week["trend"]]

    await _load(page, "DAY")
    for name, text in kpi_texts(day["summary"]).items():
        await expect(page.get_by_test_id(f"kpi-{name}")).to_have_text(text)
    for testid, rows in table_rows(day).items():
        assert await _rows(page, testid) == rows, testid
    await _expect_charts(page, day)
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("sign-in")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def _expect_charts(page: Page, day: dict[str, Any]) -> None:
    """Each chart drew on its canvas, from the API's numbers."""
    states = {}
    for testid in ("chart-trend", "chart-funnel", "chart-retention"):
        await expect(page.get_by_test_id(testid)).to_have_attribute("data-rendered", "true")
        state = await page.evaluate(_CHART_STATE, testid)
        assert state is not None, f"{testid} has no canvas"
        assert state["painted"] > state["total"] // 50, f"{testid} is blank"
        states[testid] = state
    trend = states["chart-trend"]
    assert trend["xAxis"][0]["data"] == [b["bucket"] for b in day["trend"]]
    assert trend["series"][0]["data"] == [b["visitors"] for b in day["trend"]]
    assert trend["series"][1]["data"] == [b["gmv"]["amount"] / 100 for b in day["trend"]]
    funnel = states["chart-funnel"]["series"][0]["data"]
    assert [(s["name"], s["value"]) for s in funnel] == [(s["step"], s["visitors"]) for s in day["funnel"]]
    cells = states["chart-retention"]["series"][0]["data"]
    known = [v for c in day["retention"] for v in (c["day1"], c["day7"], c["day30"]) if v is not None]
    assert len(cells) == len(known)
