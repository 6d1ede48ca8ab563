"""The operators' dashboard page at /dashboard and the one GraphQL document it sends.

The page (bff/static/dashboard/) and its vendored ECharts (bff/static/vendor/echarts/) are static files
under /static; the data comes from POST /graphql with an operator token, like any other client.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from bff.documents import operations

PAGE = Path(__file__).parent / "static" / "dashboard" / "index.html"
OPERATION = "DashboardOverview"
DOCUMENT_PATH = "/dashboard/queries.graphql"

# Everything from this origin and nothing inline: a stray CDN reference or injected markup cannot run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The token lives in sessionStorage, but the page itself should not linger in shared caches.
    "Cache-Control": "no-store",
}


def dashboard_document() -> str:
    """The text of the document that defines DashboardOverview (the project's one copy)."""
    return operations()[OPERATION]


async def dashboard_page(_: Request) -> Response:
    """The dashboard's HTML shell; dashboard.js signs in and loads the data."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers=_HEADERS)


async def dashboard_queries(_: Request) -> Response:
    """The GraphQL document the page sends, so the page never carries a second copy of it."""
    try:
        text = dashboard_document()
    except KeyError:
        return PlainTextResponse(f"{OPERATION} is not among bff/documents", status_code=404)
    return PlainTextResponse(text, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


routes = [
    Route("/dashboard", dashboard_page, methods=["GET"]),
    Route(DOCUMENT_PATH, dashboard_queries, methods=["GET"]),
]
