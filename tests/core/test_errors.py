"""The one error tree (``hongshan.errors``): every error Hongshan defines derives from
``HongshanError`` and says its HTTP status and protocol code; the tree drawn in the module's
docstring names every class."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Literal

import pytest

import hongshan
from hongshan import errors
from hongshan.dialects.alink.messages import MalformedMessage
from hongshan.errors import HongshanError, RemoteProtocolError
from hongshan.messages import Problem, ProblemKind
from hongshan.services.commands import InvalidCall
from hongshan.things.model import RegistryError
from hongshan.twin.desired import VersionConflict
from hongshan.twin.shadow import ShadowError

Kind = Literal["not_found", "conflict", "invalid"]

# exceptions that are no error of Hongshan's, each with the reason it stays outside the tree
OUTSIDE = {
    # private control flow: the writer's note that its connection went mid-batch, with the
    # transaction id it may have to ask about; caught by the writer, never answered to anyone
    "hongshan.store.postgres.writer._Lost",
}


def _defined() -> list[type[BaseException]]:
    """Every exception class defined at the top of a module of Hongshan's (a class made inside
    a function, as the registry's ``_Taken``, is never seen)."""
    for module in pkgutil.walk_packages(hongshan.__path__, "hongshan."):
        importlib.import_module(module.name)
    found: list[type[BaseException]] = []
    waiting: list[type[BaseException]] = [BaseException]
    while waiting:
        cls = waiting.pop()
        for sub in cls.__subclasses__():
            waiting.append(sub)
            if sub.__module__.startswith("hongshan") and sub not in found:
                found.append(sub)
    return sorted(found, key=_name)


def _name(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


DEFINED = _defined()


def test_every_error_derives_from_the_root() -> None:
    outside = {_name(cls) for cls in DEFINED if not issubclass(cls, HongshanError)}
    assert outside == OUTSIDE


@pytest.mark.parametrize(
    "cls", [cls for cls in DEFINED if issubclass(cls, HongshanError)], ids=_name
)
def test_every_error_says_its_answers_and_is_in_the_tree(cls: type[HongshanError]) -> None:
    assert type(cls.http_status) is int and 400 <= cls.http_status <= 599
    code = getattr(cls, "protocol_code", None)  # (declared only, where each instance sets it)
    assert code is None or type(code) is int
    assert errors.__doc__ is not None and cls.__name__ in errors.__doc__


@pytest.mark.parametrize(
    ("kind", "status"), [("not_found", 404), ("conflict", 409), ("invalid", 400)]
)
def test_a_registry_errors_kind_is_its_status(kind: Kind, status: int) -> None:
    exc = RegistryError("no device lamp-0001 in product a1b2c3d4e5f", kind)
    assert exc.http_status == status
    assert exc.detail == "no device lamp-0001 in product a1b2c3d4e5f" and exc.extensions == {}


@pytest.mark.parametrize("code", range(400, 410))
def test_a_shadow_error_answers_alibabas_code_and_conflict_or_bad_request(code: int) -> None:
    exc = ShadowError(code)
    assert exc.protocol_code == code
    assert exc.http_status == (409 if code == 409 else 400)
    # the API's detail says it is the shadow's, with Alibaba's code; the device is told the words
    assert exc.detail == f"shadow: {exc} ({code})"


def test_the_apis_detail_of_a_shadow_error_and_a_version_conflict() -> None:
    assert ShadowError(409).detail == "shadow: shadow version conflict (409)"
    stale = VersionConflict("Brightness", 1, 2)
    assert stale.http_status == 409
    assert stale.detail == "desired Brightness: version 1 is not the current one (2)"


def test_an_invalid_call_carries_its_problems_in_the_body() -> None:
    kind = ProblemKind.INT_OUT_OF_RANGE
    problem = Problem(kind=kind, identifier="Brightness", message="Brightness: out of range")
    exc = InvalidCall([problem])
    assert exc.http_status == 400
    assert exc.detail == "Brightness: out of range (int_out_of_range)"
    assert exc.extensions == {
        "problems": [
            {
                "kind": "int_out_of_range",
                "identifier": "Brightness",
                "message": "Brightness: out of range",
            }
        ]
    }


def test_protocol_codes_of_the_device_protocols() -> None:
    assert RemoteProtocolError("too large", 0x95).reason_code == 0x95
    assert RemoteProtocolError("bad").protocol_code == 0x81  # Malformed Packet
    malformed = MalformedMessage("not JSON: ...", 6207, "1")
    assert malformed.protocol_code == 6207 and malformed.http_status == 500  # never the API's


def test_a_lockout_says_when_to_try_again_in_whole_seconds() -> None:
    locked = errors.LoginLocked(899.2)
    assert locked.http_status == 429 and locked.headers == {"Retry-After": "900"}
    assert "900 seconds" in locked.detail
    assert errors.LoginLocked(0.1).headers == {"Retry-After": "1"}
    assert (
        errors.LoginRefused("wrong").http_status == 401 and errors.LoginRefused("x").headers == {}
    )
