"""The HTTP side: for now ``GET /api/health`` (the REST API and the console come later)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Litestar, get
from litestar.response import Response

if TYPE_CHECKING:
    from hongshan.app import Platform


def build_http_app(platform: Platform) -> Litestar:
    @get("/api/health", sync_to_thread=False)
    def health() -> Response[dict[str, Any]]:
        ready = platform.ready
        body: dict[str, Any] = {
            "status": "ok" if ready else "starting",
            "listeners": platform.ports,
        }
        if ready:
            body["broker"] = platform.broker.sys_values()
        return Response(body, status_code=200 if ready else 503)

    return Litestar(route_handlers=[health], openapi_config=None, logging_config=None)
