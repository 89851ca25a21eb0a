"""The console's files (``hongshan/web``: plain ES modules, CSS, the vendored libraries and
the demo district) served at ``/``, ``index.html`` for ``/``. Routes of their own (``/api/…``,
``/auth/…``) are matched before these, so the console shadows none of them.

Every answer says ``Cache-Control: no-cache`` (kept, but asked again with its ETag: an
upgrade is seen at the next load without a build step's hashed names) and carries a
``Content-Security-Policy`` that lets the page load and connect to its own origin only (the
WebSocket included), plus the tile server's origin for images when the operator set one (and
for range requests, when it is a PMTiles archive)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from litestar import Response, Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

WEB = Path(__file__).resolve().parent.parent / "web"


def content_security_policy(tile_url: str) -> str:
    """Self only; ``data:`` images (Leaflet's CSS draws some); the tile server's origin for
    images, or for a PMTiles archive (read by range requests, its tiles made ``blob:`` images)
    for connections too."""
    images, connections = "'self' data:", "'self'"
    parts = urlsplit(tile_url)
    archive = parts.path.endswith(".pmtiles")
    origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else ""
    if archive:
        images += " blob:" + origin
        connections += origin
    else:
        images += origin
    return (
        "default-src 'self'; "
        f"img-src {images}; "
        "style-src 'self'; "
        "script-src 'self'; "
        f"connect-src {connections}; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )


def console_router(tile_url: str) -> Router:
    policy = content_security_policy(tile_url)

    def secured(response: Response[object]) -> Response[object]:
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    return create_static_files_router(
        path="/",
        directories=[WEB],
        html_mode=True,
        name="console",
        cache_control=CacheControlHeader(no_cache=True),
        after_request=secured,
    )
