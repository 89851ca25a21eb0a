"""``/api/auth``: log in (a user's name and password for an access token and a refresh
token, also set as HttpOnly cookies for the console), refresh, log out, and who am I;
``/api/users``: the users of the admin's tenant (create, list, show, change, delete) and
their passwords (a user may change their own, giving the old one).

Login and refresh are open routes (their caller has no token yet); after a login the new
principal is put in the scope, where the audit log finds who it was. A wrong name or password
is 401 and a locked-out name or address 429 with Retry-After, in the same words whether the
name is a user's or not. Users outside the admin's tenant are not there for them (404);
``SYSTEM`` (the admin token) sees every tenant.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.datastructures import Cookie
from litestar.exceptions import PermissionDeniedException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from hongshan.api.auth import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    RequestAuth,
    cookie_forgery_checked,
)
from hongshan.api.dependencies import Provided
from hongshan.api.paging import PAGED, Page, Paged
from hongshan.api.problems import Problem
from hongshan.errors import LoginRefused
from hongshan.identity.principals import DEFAULT_TENANT, Principal, Role
from hongshan.services.people.users import UNCHANGED, Login, People
from hongshan.store.registry.users import UserRecord
from hongshan.things.model import RegistryError

USER = "/api/users/{name:str}"
LOCKED = {
    429: ResponseSpec(
        Problem,
        description="too many failed logins for the name or from the address (Retry-After)",
        media_type="application/problem+json",
        generate_examples=False,
    )
}
REFRESH_PATH = "/api/auth"  # where the browser sends the refresh cookie: these routes only
RoleName = Literal["viewer", "operator", "admin"]


class LoginForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: str
    password: str


class RefreshForm(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    refresh_token: str | None = None  # else the hongshan_refresh cookie


class Me(msgspec.Struct, kw_only=True):
    """Who the caller is: ``tenant`` None for the admin token (every tenant); ``groups`` None:
    not limited to groups."""

    name: str
    role: str
    tenant: str | None
    groups: list[str] | None
    kind: str = "user"


class Tokens(msgspec.Struct, kw_only=True, rename="camel"):
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token is valid
    user: Me


class UserView(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    tenant: str
    role: str
    groups: list[str] | None
    disabled: bool
    created_at: int
    updated_at: int
    password_changed_at: int


class NewUser(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``groups``: the device groups the user is limited to (left out: not limited);
    ``tenant``: the admin's own unless the admin token gives another (default ``default``)."""

    name: str
    password: str
    role: RoleName = "viewer"
    groups: list[str] | None = None
    tenant: str | None = None


class UserChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What is given changes; ``groups: null`` lifts the limit to groups."""

    role: RoleName | None = None
    groups: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    disabled: bool | None = None


class NewPassword(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    password: str
    old_password: str | None = None  # required to change one's own


def _me(principal: Principal) -> Me:
    groups = None if principal.groups is None else sorted(principal.groups)
    return Me(
        name=principal.name,
        role=principal.role.label,
        tenant=principal.tenant,
        groups=groups,
        kind=principal.kind,
    )


def _view(user: UserRecord) -> UserView:
    return UserView(
        name=user.name,
        tenant=user.tenant,
        role=user.role.label,
        groups=None if user.groups is None else sorted(user.groups),
        disabled=user.disabled,
        created_at=user.created_at,
        updated_at=user.updated_at,
        password_changed_at=user.password_changed_at,
    )


def _groups(groups: list[str] | None) -> frozenset[str] | None:
    return None if groups is None else frozenset(groups)


def _cookie(request: Request[Any, Any, Any], key: str, value: str, path: str, age: int) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        path=path,
        max_age=age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _handed_out(request: Request[Any, Any, Any], people: People, login: Login) -> Response[Tokens]:
    principal = people.principal(login.access_token)
    assert principal is not None  # (just made)
    request.scope["user"] = principal
    cookies = [
        _cookie(request, ACCESS_COOKIE, login.access_token, "/", login.expires_in),
        _cookie(request, REFRESH_COOKIE, login.refresh_token, REFRESH_PATH, people.refresh_seconds),
    ]
    tokens = Tokens(
        access_token=login.access_token,
        refresh_token=login.refresh_token,
        expires_in=login.expires_in,
        user=_me(principal),
    )
    return Response(tokens, status_code=200, cookies=cookies)


def _seen(principal: Principal, people: People, name: str) -> UserRecord:
    """The user, if the principal's tenant holds them (else as if there were none: 404)."""
    user = people.get(name)
    if not principal.in_tenant(user.tenant):
        raise RegistryError(f"no user {name}", "not_found")
    return user


# -- /api/auth ------------------------------------------------------------------------------


@post("/api/auth/login", status_code=200, responses=LOCKED)
async def log_in(
    people: Provided[People], request: Request[Any, Any, Any], data: JSONBody[LoginForm]
) -> Response[Tokens]:
    """A session: an access token (``expiresIn`` seconds) and a refresh token, in the body
    and as cookies (``hongshan_access``, ``hongshan_refresh``: HttpOnly, SameSite=Strict)."""
    address = request.client.host if request.client else ""
    login = await people.login(
        data.username,
        data.password,
        address=address,
        agent=request.headers.get("user-agent", ""),
    )
    return _handed_out(request, people, login)


@post("/api/auth/refresh", status_code=200)
async def refresh(
    people: Provided[People],
    request: Request[Any, Any, Any],
    data: JSONBody[RefreshForm | None] = None,
) -> Response[Tokens]:
    """A new pair for the refresh token (``refreshToken``, else the cookie); the one given
    is spent: given again, it ends the session."""
    token = data.refresh_token if data is not None else None
    if not token:
        token = request.cookies.get(REFRESH_COOKIE)
        if token:
            cookie_forgery_checked(request, REFRESH_COOKIE)
    if not token:
        raise LoginRefused(
            f"give the refresh token: {{refreshToken}}, or the {REFRESH_COOKIE} cookie"
        )
    return _handed_out(request, people, await people.refresh(token))


@post("/api/auth/logout", status_code=204, opt={"role": Role.VIEWER})
async def log_out(
    people: Provided[People], principal: Provided[Principal], request: Request[Any, Any, Any]
) -> Response[None]:
    """End the session of the access token used (and forget the cookies)."""
    token = RequestAuth.access_token(request)
    if principal.kind == "user" and token is not None:
        await people.logout(token)
    response: Response[None] = Response(None, status_code=204)
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH)
    return response


@get("/api/auth/me")
async def who_am_i(principal: Provided[Principal]) -> Me:
    return _me(principal)


# -- /api/users -----------------------------------------------------------------------------


@get("/api/users", opt={"role": Role.ADMIN}, dependencies=PAGED)
async def list_users(
    people: Provided[People], principal: Provided[Principal], paging: Paged
) -> Page[UserView]:
    """The users of the admin's tenant (the admin token: of every tenant), by ``name`` (or
    ``role``, ``createdAt``); ``q`` in the name."""
    return paging.in_memory(
        [_view(user) for user in people.list_users(principal.tenant)],
        {"name": lambda u: u.name, "role": lambda u: u.role, "createdAt": lambda u: u.created_at},
        default="name",
        text=lambda user: user.name,
    )


@post("/api/users", status_code=201)
async def create_user(
    people: Provided[People], principal: Provided[Principal], data: JSONBody[NewUser]
) -> UserView:
    tenant = data.tenant or principal.tenant or DEFAULT_TENANT
    if not principal.in_tenant(tenant):
        raise PermissionDeniedException(
            f"an admin of tenant {principal.tenant} makes users of that tenant only"
        )
    user = await people.add(
        tenant, data.name, data.password, Role.named(data.role), _groups(data.groups)
    )
    return _view(user)


@get(USER, opt={"role": Role.ADMIN})
async def show_user(
    people: Provided[People], principal: Provided[Principal], name: FromPath[str]
) -> UserView:
    return _view(_seen(principal, people, name))


@patch(USER)
async def change_user(
    people: Provided[People],
    principal: Provided[Principal],
    name: FromPath[str],
    data: JSONBody[UserChange],
) -> UserView:
    """Role, groups, disabled; a user disabled is logged out at once. 409 for demoting or
    disabling the tenant's last enabled admin."""
    _seen(principal, people, name)
    user = await people.change(
        name,
        role=None if data.role is None else Role.named(data.role),
        groups=UNCHANGED if data.groups is msgspec.UNSET else _groups(data.groups),
        disabled=data.disabled,
    )
    return _view(user)


@delete(USER, status_code=204)
async def delete_user(
    people: Provided[People], principal: Provided[Principal], name: FromPath[str]
) -> None:
    """409 for the tenant's last enabled admin while the tenant has other users."""
    _seen(principal, people, name)
    await people.delete(name)


@put(USER + "/password", opt={"role": Role.VIEWER})
async def change_password(
    people: Provided[People],
    principal: Provided[Principal],
    name: FromPath[str],
    data: JSONBody[NewPassword],
) -> UserView:
    """One's own (the old password required), or, by an admin, any user's of the tenant.
    Every session of the user ends."""
    own = principal.kind == "user" and principal.name == name
    if own:
        if data.old_password is None:
            raise RegistryError("oldPassword: give the current password to change it", "invalid")
        return _view(await people.passwd(name, data.password, old=data.old_password))
    if not principal.may(Role.ADMIN):
        raise PermissionDeniedException(
            f"only an admin changes another's password; {principal.name} is {principal.role.label}"
        )
    _seen(principal, people, name)
    return _view(await people.passwd(name, data.password))


OPEN_ROUTES = (log_in, refresh)
ROUTES = (
    log_out,
    who_am_i,
    list_users,
    create_user,
    show_user,
    change_user,
    delete_user,
    change_password,
)
