"""The HTTP side: ``GET /api/health`` (open; 503 while starting or while a store cannot write:
the history, the registry or the broker's state), the REST API (bearer token), its OpenAPI
document at ``/api/schema/openapi.json``, and devices' dynamic registration
(``/auth/register/device``, signed with the product secret). Every error of the API is
``application/problem+json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Litestar, Router, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import Response

from hongshan import __version__
from hongshan.api import devices, groups, history, products, registration
from hongshan.api.problems import EXCEPTION_HANDLERS, PROBLEM_RESPONSES
from hongshan.api.request import APIRequest
from hongshan.api.token import token_matches

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
        if not ready:
            return Response(body, status_code=503)
        body["broker"] = platform.broker.sys_values()
        # each store's writes: a history that cannot write acknowledges no QoS 1 post until
        # it can again; the broker's state keeps sessions and retained messages, the registry
        # devices' presence, latest values and shadows. Each says why its last write failed
        # until one succeeds (a full disk fails them all; each recovers by itself)
        stores = {
            "history": platform.history.problem,
            "registry": platform.registry.problem,
            "broker_state": platform.broker_state.problem,
        }
        for name, problem in stores.items():
            body[name] = {"status": "ok" if problem is None else "failing", "problem": problem}
        failing = [name for name, problem in stores.items() if problem is not None]
        if failing:
            body["status"] = "degraded"
            body["failing"] = failing
        return Response(body, status_code=503 if failing else 200)

    def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not token_matches(platform.admin_token, connection.headers.get("authorization")):
            raise NotAuthorizedException(
                "send the admin token (DATA_DIR/admin.token) as 'Authorization: Bearer …'"
            )

    admin_routes = [
        *products.routes(platform),
        *devices.routes(platform),
        *groups.routes(platform),
        *history.routes(platform),
    ]
    for route in admin_routes:  # (a Router takes no responses of its own)
        route.responses = {**PROBLEM_RESPONSES, **(route.responses or {})}
    api = Router(
        path="/",
        route_handlers=admin_routes,
        guards=[admin_only],
        security=[{"bearer": []}],
    )
    openapi = OpenAPIConfig(
        title="Hongshan",
        version=__version__,
        path="/api/schema",
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
        ),
    )
    return Litestar(
        route_handlers=[health, api, *registration.routes(platform)],
        openapi_config=openapi,
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=APIRequest,
        logging_config=None,
    )
