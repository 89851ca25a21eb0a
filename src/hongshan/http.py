"""The HTTP side: the health probes ``GET /api/health``, ``/api/health/live`` and
``/api/health/ready`` (open; ``api.health``), the REST API (the admin token, a user's access
token as a bearer token or a cookie; logging in is open: ``api.people``) with ``/metrics``
(``api.metrics``), the live API (``/api/ws``, a WebSocket guarded like the REST API:
``api.live``), its OpenAPI document at ``/api/schema/openapi.json`` and Swagger UI at
``/api/schema`` (its scripts vendored, served at ``/vendor``), and devices' dynamic registration
(``/auth/register/device``, signed with the product secret), and the console's files at ``/``
(``api.console_files``). Every error of the API is ``application/problem+json``. Every request
that would change something is recorded in the audit log (``api.audit_trail``).

Built from ``Services``: each handler is given the services it names (``api.dependencies``)
and nothing else; this module knows nothing of the platform that built them."""

from __future__ import annotations

from copy import copy
from importlib.resources import files
from pathlib import Path

from litestar import Litestar, Router
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from prometheus_client import CollectorRegistry

from hongshan import __version__
from hongshan.api import (
    alarm_condition_backtest,
    alarm_conditions,
    alarms,
    audit,
    commands,
    console,
    devices,
    groups,
    health,
    history,
    keys,
    live,
    people,
    products,
    registration,
    rule_backtest,
    rules,
    scene_backtest,
    scenes,
    tenants,
)
from hongshan.api.audit_trail import AuditTrail, TrustedProxies
from hongshan.api.auth import RequestAuth, note_principal, require_role
from hongshan.api.console_files import console_router
from hongshan.api.dependencies import Services, providers
from hongshan.api.dependency_batches import resolve_in_turn
from hongshan.api.metrics import metrics_route
from hongshan.api.problems import EXCEPTION_HANDLERS, PROBLEM_RESPONSES
from hongshan.api.request import APIRequest
from hongshan.api.request_ids import RequestIds

# third parties' files the pages use, shipped in the package (web/vendor/README.md says
# which, their versions and licences)
VENDOR_DIR = Path(str(files("hongshan") / "web" / "vendor"))
VENDOR_PATH = "/vendor"

ADMIN_ROUTES = (
    *products.ROUTES,
    *devices.ROUTES,
    *groups.ROUTES,
    *history.ROUTES,
    *rules.ROUTES,
    *alarms.ROUTES,
    *alarm_condition_backtest.ROUTES,
    *alarm_conditions.ROUTES,
    *rule_backtest.ROUTES,
    *commands.ROUTES,
    *scenes.ROUTES,
    *scene_backtest.ROUTES,
    *people.ROUTES,
    *keys.ROUTES,
    *audit.ROUTES,
    *console.ROUTES,
    *tenants.ROUTES,
)


def build_http_app(services: Services) -> Litestar:
    resolve_in_turn()
    auth = RequestAuth(services.admin_token, services.people, keys=services.api_keys)
    logins = Router(
        path="/",
        route_handlers=[_with_problems(route) for route in people.OPEN_ROUTES],
        security=[{}],
    )
    scene_triggers = Router(
        path="/",
        route_handlers=[_with_problems(route) for route in scenes.OPEN_ROUTES],
        guards=[note_principal(auth)],
        security=[{"bearer": []}, {}],
    )
    guarded = [_with_problems(route) for route in ADMIN_ROUTES]
    if services.metrics is not None:
        guarded.append(_with_problems(metrics_route(services.metrics)))
    api = Router(
        path="/",
        route_handlers=[*guarded, *live.ROUTES],
        guards=[require_role(auth)],
        security=[{"bearer": []}],
    )
    openapi = OpenAPIConfig(
        title="Hongshan",
        version=__version__,
        path="/api/schema",
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
        ),
        render_plugins=[_swagger_ui(), JsonRenderPlugin(), YamlRenderPlugin()],
    )
    vendored = create_static_files_router(
        path=VENDOR_PATH, directories=[VENDOR_DIR], include_in_schema=False
    )
    return Litestar(
        route_handlers=[
            *health.ROUTES,
            api,
            scene_triggers,
            logins,
            *registration.ROUTES,
            vendored,
            console_router(services.console_map.tile_url),
        ],
        dependencies=providers(services),
        openapi_config=openapi,
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=APIRequest,
        middleware=[
            RequestIds,
            AuditTrail(services.audit, TrustedProxies(services.trusted_proxies)),
        ],
        logging_config=None,
    )


def _swagger_ui() -> SwaggerRenderPlugin:
    """Swagger UI at ``/api/schema`` and ``/api/schema/swagger``, from the files vendored in
    the package (``web/vendor/swagger-ui``, served at ``/vendor``): the documentation works
    where the servers reach no CDN, and loads nothing from a third party. Litestar's other
    pages (ReDoc, RapiDoc, Stoplight Elements) would load theirs from a CDN: not served."""
    swagger = f"{VENDOR_PATH}/swagger-ui"
    return SwaggerRenderPlugin(
        js_url=f"{swagger}/swagger-ui-bundle.js",
        css_url=f"{swagger}/swagger-ui.css",
        standalone_preset_js_url=f"{swagger}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{swagger}/favicon-32x32.png'>",
        path=["/", "/swagger"],
    )


def build_metrics_app(registry: CollectorRegistry) -> Litestar:
    """The metrics listener's app (``metrics_port``): ``GET /metrics`` with no guard and
    nothing else, no OpenAPI document."""
    return Litestar(
        route_handlers=[metrics_route(registry)],
        openapi_config=None,
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
    )


def _with_problems(route: HTTPRouteHandler) -> HTTPRouteHandler:
    """An admin route that also documents the problems any admin route may answer (a Router
    takes no responses of its own). A copy: the module's handler serves every app built."""
    documented = copy(route)
    documented.responses = {**PROBLEM_RESPONSES, **(route.responses or {})}
    return documented
