"""``GET /metrics``: the platform's figures (``services.metrics``) for Prometheus, in
OpenMetrics when the scraper asks for it (``Accept: application/openmetrics-text``), else in
Prometheus' text format. Served by the API behind its guard to the admin token alone (the
figures span every tenant: rules by name, alarms, devices), or, with ``metrics_port`` set, on a
listener of its own with no guard, bound to ``metrics_host`` (127.0.0.1 unless told otherwise:
whoever reaches it reads it)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import HTTPRouteHandler
from litestar.response import Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from hongshan.api.auth import principal_in
from hongshan.identity.principals import Role


def metrics_route(registry: CollectorRegistry) -> HTTPRouteHandler:
    """The route that exposes ``registry`` (a handler of its own per app: the API's and the
    metrics listener's)."""

    @get(
        "/metrics",
        opt={"role": Role.VIEWER},
        sync_to_thread=False,
        summary="The platform's metrics (Prometheus text format or OpenMetrics)",
    )
    def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        principal = principal_in(request.scope)  # (None: the metrics listener, no guard)
        if principal is not None and principal.tenant is not None:
            raise PermissionDeniedException(
                "the platform's metrics span every tenant: scrape them with the admin token "
                "(DATA_DIR/admin.token), or on the metrics listener (metrics_port)"
            )
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), media_type=content_type)

    return metrics
