"""GraphiQL served by the BFF itself: strawberry's page with its unpkg.com assets swapped for local copies.

The files under bff/static/graphiql/ are the exact npm-published bytes of the versions strawberry's template
pins (see the README there), mounted by the app at /static. Each tag's `integrity` is recomputed from the
local file, so the page stays consistent if a file is refreshed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

ASSET_DIR = Path(__file__).parent / "static" / "graphiql"
URL_PREFIX = "/static/graphiql"

# What strawberry's graphiql.html loads from unpkg.com → the vendored file serving it.
ASSETS: dict[str, str] = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js": "react.production.min.js",
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js": "react-dom.production.min.js",
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css": "plugin-explorer.css",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": "plugin-explorer.umd.js",
}

# A <script> or <link> start tag; quoted values may hold ">" (the favicon's inline SVG does).
_TAG = re.compile(r"""<(?:script|link)\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_REMOTE = re.compile(r"""\b(src|href)\s*=\s*["'](https?://[^"']*)["']""", re.IGNORECASE)
_INTEGRITY = re.compile(r"""\s+integrity\s*=\s*["'][^"']*["']""", re.IGNORECASE)


class UnknownGraphiQLAsset(RuntimeError):
    """Strawberry's template loads a remote file that is not vendored (strawberry was upgraded?)."""


def subresource_integrity(name: str) -> str:
    """The SRI value (sha384) of a vendored file."""
    digest = hashlib.sha384((ASSET_DIR / name).read_bytes()).digest()
    return "sha384-" + base64.b64encode(digest).decode("ascii")


def _localise(tag: re.Match[str]) -> str:
    text = tag.group(0)
    remote = _REMOTE.search(text)
    if remote is None:
        return text
    attribute, url = remote.groups()
    name = ASSETS.get(url)
    if name is None:
        raise UnknownGraphiQLAsset(
            f"GraphiQL page loads {url}, which is not vendored: add it to bff/static/graphiql/ "
            "(see the README there) and to bff.graphiql.ASSETS"
        )
    text = _INTEGRITY.sub("", text)  # the upstream hash, wherever it sits; recomputed next to the URL
    local = f'{attribute}="{URL_PREFIX}/{name}" integrity="{subresource_integrity(name)}"'
    return _REMOTE.sub(local, text, count=1)


@functools.cache
def graphiql_html() -> str:
    """Strawberry's GraphiQL page, loading every script and stylesheet from /static/graphiql/."""
    html = _TAG.sub(_localise, get_graphql_ide_html("graphiql"))
    if "unpkg.com" in html:
        raise UnknownGraphiQLAsset("the GraphiQL page still references unpkg.com")
    return html
