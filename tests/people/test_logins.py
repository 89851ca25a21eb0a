"""Users' logins over real HTTP: tokens and cookies, refresh rotation and reuse, logout, the
CSRF header, expiry, and a disabled user or a changed password ending sessions at once."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from people_api import ADMIN_PASSWORD, add_user, base_url, log_in, token_client

from hongshan.identity.password_hash import hash_password


@pytest.fixture
def server(make_server: Any) -> Any:
    """A server whose first admin's password is known (HONGSHAN_ADMIN_PASSWORD)."""
    return make_server(admin_password=ADMIN_PASSWORD)


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail: str = response.json()["detail"]
    return detail


def test_the_first_admin_logs_in_with_the_password_from_the_environment(server: Any) -> None:
    tokens = log_in(server, "admin", ADMIN_PASSWORD)
    assert tokens["user"] == {
        "name": "admin",
        "role": "admin",
        "tenant": "default",
        "groups": None,
        "kind": "user",
    }
    assert tokens["expiresIn"] == 15 * 60
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    me = httpx.get(base_url(server) + "/api/auth/me", headers=headers)
    assert me.json()["name"] == "admin"
    # an admin user may do what the admin token may
    made = httpx.post(base_url(server) + "/api/products", json={"name": "Lamp"}, headers=headers)
    assert made.status_code == 201, made.text
    claims = jwt.decode(tokens["accessToken"], options={"verify_signature": False})
    assert set(claims) == {"sub", "sid", "iat", "exp"}  # no role: read per request


def test_a_wrong_password_and_an_unknown_name_are_refused_alike(server: Any) -> None:
    url = base_url(server) + "/api/auth/login"
    wrong = httpx.post(url, json={"username": "admin", "password": "not the password"})
    unknown = httpx.post(url, json={"username": "nobody", "password": "not the password"})
    assert problem(wrong, 401) == problem(unknown, 401)


def test_a_refresh_rotates_and_a_spent_refresh_token_ends_the_session(server: Any) -> None:
    first = log_in(server, "admin", ADMIN_PASSWORD)
    url = base_url(server) + "/api/auth/refresh"
    second = httpx.post(url, json={"refreshToken": first["refreshToken"]})
    assert second.status_code == 200, second.text
    renewed = second.json()
    assert renewed["refreshToken"] != first["refreshToken"]
    me = base_url(server) + "/api/auth/me"
    ok = httpx.get(me, headers={"Authorization": f"Bearer {renewed['accessToken']}"})
    assert ok.status_code == 200
    # the first refresh token again: someone else holds a copy; the session ends for both
    assert "used already" in problem(
        httpx.post(url, json={"refreshToken": first["refreshToken"]}), 401
    )
    problem(httpx.post(url, json={"refreshToken": renewed["refreshToken"]}), 401)
    problem(httpx.get(me, headers={"Authorization": f"Bearer {renewed['accessToken']}"}), 401)


def test_logout_ends_the_session(server: Any) -> None:
    tokens = log_in(server, "admin", ADMIN_PASSWORD)
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    out = httpx.post(base_url(server) + "/api/auth/logout", headers=headers)
    assert out.status_code == 204, out.text
    problem(httpx.get(base_url(server) + "/api/auth/me", headers=headers), 401)
    again = httpx.post(
        base_url(server) + "/api/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
    )
    problem(again, 401)


def test_the_cookies_work_and_a_change_by_cookie_needs_the_csrf_header(server: Any) -> None:
    with httpx.Client(base_url=base_url(server)) as browser:
        logged = browser.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert logged.status_code == 200
        cookies = logged.headers.get_list("set-cookie")
        access = next(c for c in cookies if c.startswith("hongshan_access="))
        refresh = next(c for c in cookies if c.startswith("hongshan_refresh="))
        for cookie in (access, refresh):
            assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert "Path=/;" in access + ";" and "Path=/api/auth" in refresh
        assert browser.get("/api/auth/me").json()["name"] == "admin"  # a read: no header
        forged = browser.post("/api/products", json={"name": "Lamp"})
        assert "X-Requested-With" in problem(forged, 403)
        ours = browser.post(
            "/api/products", json={"name": "Lamp"}, headers={"X-Requested-With": "hongshan"}
        )
        assert ours.status_code == 201, ours.text
        # the refresh cookie, with the header, renews both cookies
        problem(browser.post("/api/auth/refresh"), 403)
        renewed = browser.post("/api/auth/refresh", headers={"X-Requested-With": "hongshan"})
        assert renewed.status_code == 200, renewed.text
        assert browser.get("/api/auth/me").status_code == 200


def test_an_expired_access_token_is_refused(server: Any) -> None:
    tokens = log_in(server, "admin", ADMIN_PASSWORD)
    claims = jwt.decode(tokens["accessToken"], options={"verify_signature": False})
    key = bytes.fromhex((Path(server.settings.data_dir) / "session.key").read_text().strip())
    now = time.time()
    expired = jwt.encode({**claims, "iat": int(now) - 60, "exp": now - 1}, key, "HS256")
    fresh = jwt.encode({**claims, "exp": now + 60}, key, "HS256")
    me = base_url(server) + "/api/auth/me"
    problem(httpx.get(me, headers={"Authorization": f"Bearer {expired}"}), 401)
    assert httpx.get(me, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    forged = jwt.encode({**claims, "exp": now + 60}, bytes(32), "HS256")
    problem(httpx.get(me, headers={"Authorization": f"Bearer {forged}"}), 401)


def test_a_disabled_user_and_a_changed_password_end_sessions_at_once(server: Any) -> None:
    add_user(server, "lin", "operator", "lin's first password")
    me = base_url(server) + "/api/auth/me"
    tokens = log_in(server, "lin", "lin's first password")
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    assert httpx.get(me, headers=headers).json()["role"] == "operator"
    with token_client(server) as api:
        # a role change applies to the token in hand
        assert api.patch("/api/users/lin", json={"role": "viewer"}).status_code == 200
        assert httpx.get(me, headers=headers).json()["role"] == "viewer"
        assert api.patch("/api/users/lin", json={"disabled": True}).json()["disabled"] is True
        problem(httpx.get(me, headers=headers), 401)
        problem(
            httpx.post(base_url(server) + "/api/auth/login",
                       json={"username": "lin", "password": "lin's first password"}),
            401,
        )  # fmt: skip
        api.patch("/api/users/lin", json={"disabled": False})
    tokens = log_in(server, "lin", "lin's first password")
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    own = httpx.put(
        base_url(server) + "/api/users/lin/password",
        json={"password": "lin's second password"},
        headers=headers,
    )
    assert "oldPassword" in problem(own, 400)
    changed = httpx.put(
        base_url(server) + "/api/users/lin/password",
        json={"password": "lin's second password", "oldPassword": "lin's first password"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    problem(httpx.get(me, headers=headers), 401)  # every session ended
    log_in(server, "lin", "lin's second password")


def test_sessions_and_users_outlive_a_restart(make_server: Any, tmp_path: Path) -> None:
    server = make_server(admin_password=ADMIN_PASSWORD)
    tokens = log_in(server, "admin", ADMIN_PASSWORD)
    server.stop()
    again = make_server()  # no password now: the admin exists, nothing is generated
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    assert httpx.get(base_url(again) + "/api/auth/me", headers=headers).status_code == 200
    renewed = httpx.post(
        base_url(again) + "/api/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
    )
    assert renewed.status_code == 200, renewed.text


def test_a_first_admin_made_from_a_hash_logs_in_with_its_password(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hongshan"):
        server = make_server(admin_password_hash=hash_password(ADMIN_PASSWORD))
    assert log_in(server, "admin", ADMIN_PASSWORD)["user"]["role"] == "admin"
    assert not [r for r in caplog.records if "FIRST START" in r.getMessage()]  # (none made)
