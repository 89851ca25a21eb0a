"""The HTTP side: ``GET /api/health`` (open; 503 while starting or while a store cannot write:
the history, the registry or the broker's state), the REST API (bearer token), its OpenAPI
document at ``/api/schema/openapi.json``, and devices' dynamic registration
(``/auth/register/device``, signed with the product secret), and the console's files at ``/``
(``api.console_files``). Every error of the API is ``application/problem+json``.

Built from ``Services``: each handler is given the services it names (``api.dependencies``)
and nothing else; this module knows nothing of the platform that built them."""

from __future__ import annotations

from copy import copy

from litestar import Litestar, Router
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from hongshan import __version__
from hongshan.api import (
    alarm_condition_backtest,
    alarm_conditions,
    alarms,
    commands,
    console,
    devices,
    groups,
    history,
    products,
    registration,
    rule_backtest,
    rules,
    scene_backtest,
    scenes,
)
from hongshan.api.auth import RequestAuth, note_principal, require_role
from hongshan.api.console_files import console_router
from hongshan.api.dependencies import Services, providers
from hongshan.api.health import health
from hongshan.api.problems import EXCEPTION_HANDLERS, PROBLEM_RESPONSES
from hongshan.api.request import APIRequest

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
    *console.ROUTES,
)


def build_http_app(services: Services) -> Litestar:
    auth = RequestAuth(services.admin_token)
    scene_triggers = Router(
        path="/",
        route_handlers=[_with_problems(route) for route in scenes.OPEN_ROUTES],
        guards=[note_principal(auth)],
        security=[{"bearer": []}, {}],
    )
    api = Router(
        path="/",
        route_handlers=[_with_problems(route) for route in ADMIN_ROUTES],
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
    )
    return Litestar(
        route_handlers=[
            health,
            api,
            scene_triggers,
            *registration.ROUTES,
            console_router(services.console_map.tile_url),
        ],
        dependencies=providers(services),
        openapi_config=openapi,
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=APIRequest,
        logging_config=None,
    )


def _with_problems(route: HTTPRouteHandler) -> HTTPRouteHandler:
    """An admin route that also documents the problems any admin route may answer (a Router
    takes no responses of its own). A copy: the module's handler serves every app built."""
    documented = copy(route)
    documented.responses = {**PROBLEM_RESPONSES, **(route.responses or {})}
    return documented
