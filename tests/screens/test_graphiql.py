"""GraphiQL works offline: every script and stylesheet comes from the BFF's /static/graphiql/, not a CDN."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http.ides import get_graphql_ide_html

from bff.graphiql import ASSET_DIR, URL_PREFIX, graphiql_html, subresource_integrity
from tests.support.servers import serve_asgi

CHROMIUM = Path("/usr/bin/chromium")
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}

_TAG = re.compile(r"""<(?:script|link)\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_ATTR = re.compile(r"""\b([a-z-]+)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def _assets(html: str) -> list[dict[str, str]]:
    """The attributes of every <script src> and <link href> in the page."""
    tags = (dict((k.lower(), v) for k, v in _ATTR.findall(tag)) for tag in _TAG.findall(html))
    return [attrs for attrs in tags if "src" in attrs or "href" in attrs]


def _url(attrs: dict[str, str]) -> str:
    return attrs.get("src") or attrs["href"]


def _local_files(html: str) -> set[str]:
    return {_url(a).removeprefix(f"{URL_PREFIX}/") for a in _assets(html) if _url(a).startswith(URL_PREFIX)}


def test_the_page_loads_nothing_from_the_network() -> None:
    html = graphiql_html()
    assert "unpkg.com" not in html
    urls = [_url(a) for a in _assets(html)]
    assert len(urls) == 8  # the inline favicon + 7 scripts and stylesheets
    for url in urls:
        assert url.startswith((f"{URL_PREFIX}/", "data:")), url
    for css in ASSET_DIR.glob("*.css"):  # fonts and images are inlined, nothing fetched from elsewhere
        for ref in re.findall(r"url\(\s*['\"]?([^'\")]*)", css.read_text()):
            assert ref.startswith(("data:", "#")), f"{css.name} loads {ref[:60]}"


def test_every_referenced_asset_is_vendored_with_a_matching_integrity() -> None:
    html = graphiql_html()
    for attrs in _assets(html):
        url = _url(attrs)
        if url.startswith("data:"):
            continue
        name = url.removeprefix(f"{URL_PREFIX}/")
        assert (ASSET_DIR / name).is_file(), f"{url} is not in {ASSET_DIR}"
        assert attrs.get("integrity") == subresource_integrity(name), url
    on_disk = {p.name for p in ASSET_DIR.iterdir()} - {"README.md"}
    assert _local_files(html) == on_disk, "unused or missing files in bff/static/graphiql/"


def test_the_vendored_files_are_the_bytes_strawberry_pins() -> None:
    upstream = _assets(get_graphql_ide_html("graphiql"))
    pinned = {_url(a): a["integrity"] for a in upstream if "integrity" in a}
    local = [a for a in _assets(graphiql_html()) if "integrity" in a]
    assert len(pinned) == len(local) == 7
    # Same order in both pages: the i-th remote asset became the i-th local one, with the same hash.
    assert list(pinned.values()) == [a["integrity"] for a in local]


def _has_static_mount(app: Starlette) -> bool:
    return any(isinstance(route, Mount) and route.path == "/static" for route in app.routes)


class _Recorder:
    """ASGI middleware noting (method, path, status) of every HTTP request it passes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, recording_send)
        self.seen.append((scope["method"], scope["path"], status))


@pytest.fixture(scope="module")
def site(app: Starlette) -> _Recorder:
    """The session app, with /static mounted around it if the app does not mount it (yet)."""
    if _has_static_mount(app):
        return _Recorder(app)
    static = StaticFiles(directory=ASSET_DIR.parent)
    return _Recorder(Starlette(routes=[Mount("/static", app=static), Mount("", app=app)]))


@pytest.fixture(scope="module")
async def site_client(site: _Recorder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site), base_url="http://bff.test") as http:
        yield http


async def test_browsers_get_the_offline_page_and_its_assets(site_client: httpx.AsyncClient) -> None:
    response = await site_client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.text == graphiql_html(), "GET /graphql does not serve bff.graphiql.graphiql_html()"
    for name in sorted(_local_files(response.text)):
        asset = await site_client.get(f"{URL_PREFIX}/{name}")
        assert asset.status_code == 200, name
        assert asset.content == (ASSET_DIR / name).read_bytes(), name
        expected = "text/css" if name.endswith(".css") else "javascript"
        assert expected in asset.headers["content-type"], (name, asset.headers["content-type"])


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)")
async def test_graphiql_renders_in_headless_chromium(site: _Recorder, tmp_path: Path) -> None:
    async with serve_asgi(site, lifespan="off") as url:  # the session app's lifespan is already running
        chromium = await asyncio.create_subprocess_exec(
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            # Nothing but loopback resolves: a CDN reference left anywhere cannot load, even with internet.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{url}/graphql",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(chromium.communicate(), timeout=90)
        finally:
            if chromium.returncode is None:
                chromium.kill()
                await chromium.wait()
    dom = out.decode()
    assert chromium.returncode == 0, err.decode()[-2000:]
    # React replaced the placeholder with GraphiQL's editor, sessions bar and the example query.
    assert "Loading..." not in dom, dom[-2000:]
    for marker in ("graphiql-sessions", "graphiql-editors", "graphiql-query-editor", "CodeMirror-line"):
        assert marker in dom, f"{marker} not rendered; DOM tail: {dom[-2000:]}"
    assert "Welcome to GraphiQL" in dom
    # The browser fetched every asset from us, and the schema (introspection) over POST /graphql.
    served = {(method, path) for method, path, status in site.seen if status == 200}
    for name in _local_files(graphiql_html()):
        assert ("GET", f"{URL_PREFIX}/{name}") in served, name
    assert ("POST", "/graphql") in served, site.seen
