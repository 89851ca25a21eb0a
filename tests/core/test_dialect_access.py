"""Who a client is and what it may do, asked of each dialect in turn and then of people: the
Alink dialect on a real registry, a second dialect beside it, the users file and the ACL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alibaba_device import signed_login
from hongshan.broker.auth import Access, Client, Credentials, Verdict
from hongshan.bus.local import LocalBus
from hongshan.dialects.access import DialectAccess, DialectLogins
from hongshan.dialects.alink.device_topics import DeviceTopics
from hongshan.dialects.alink.plugin import Alink
from hongshan.identity.acl import AclFile, ClientRules
from hongshan.identity.password_hash import hash_password
from hongshan.identity.passwords import PasswordFileAuthenticator
from hongshan.identity.secret_box import SecretBox
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.pipeline.uplink import Pipeline
from hongshan.services.presence import DeviceSessions
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import Protocol

TOKEN = "tk-7f3a"  # the second dialect's one device logs in with this as its username


class TokenDialect:
    """A second dialect: its one device logs in with a token as its username, and its
    uplinks are ``tokens/<token>/up``."""

    name = "token"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def authenticate(self, credentials: Credentials) -> Verdict | None:
        self.asked.append(credentials.client_id)
        if credentials.username != TOKEN:
            return None
        return Verdict(username=f"token:{TOKEN}")

    def access(self, client: Client) -> Access | None:
        if client.username != f"token:{TOKEN}":
            return None
        return ClientRules([("write", f"tokens/{TOKEN}/up")])

    def refuses_others(self, topic: str) -> bool:
        return topic.startswith("tokens/") and topic.endswith("/up")


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SQLRegistry]:
    opened = await SQLRegistry.open(
        f"sqlite:///{tmp_path / 'registry.db'}", SecretBox(secrets.token_bytes(32))
    )
    yield opened
    await opened.close()


def alink_of(registry: SQLRegistry) -> Alink:
    bus = LocalBus(Pipeline(()), protocol_of=lambda _pk: "alink")
    return Alink(
        registry,
        bus,
        DeviceSessions(registry, bus),
        shadow_documents={},
        desired_documents={},
    )


def credentials(client_id: str, username: str | None, password: str | None) -> Credentials:
    return Credentials(
        client_id=client_id,
        username=username,
        password=None if password is None else password.encode(),
        address="127.0.0.1:5000",
    )


async def test_each_dialect_in_turn_then_people(registry: SQLRegistry) -> None:
    pk = (await registry.create_product("Streetlight")).product_key
    lamp = await registry.create_device(pk, "lamp-0001")
    assert lamp.device_secret is not None
    second = TokenDialect()
    people = PasswordFileAuthenticator({"operator": hash_password("s3cret")})
    logins = DialectLogins([alink_of(registry), second], people)

    # Alink's device: Alink decides, the next dialect is not asked
    verdict = await logins.authenticate(
        credentials(*signed_login(pk, "lamp-0001", lamp.device_secret))
    )
    assert (verdict.reason_code, verdict.username) == (0, f"lamp-0001&{pk}")
    assert second.asked == []
    # none of Alink's: the second dialect decides
    verdict = await logins.authenticate(credentials("meter-9", TOKEN, None))
    assert (verdict.reason_code, verdict.username) == (0, f"token:{TOKEN}")
    assert second.asked == ["meter-9"]
    # none of a dialect's: people
    operator = await logins.authenticate(credentials("console", "operator", "s3cret"))
    assert (operator.reason_code, operator.username) == (0, "operator")
    wrong = await logins.authenticate(credentials("console", "operator", "guess"))
    assert wrong.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    # a client id with '&' (a device's session) that no dialect claims is refused, whatever
    # the users file would have said
    taken = await logins.authenticate(credentials(f"{pk}&lamp-0001", "operator", "s3cret"))
    assert taken.reason_code == ReasonCode.CLIENT_IDENTIFIER_NOT_VALID
    assert second.asked == ["meter-9", "console", "console", f"{pk}&lamp-0001"]


async def test_each_dialect_gives_its_own_rights_and_keeps_its_uplinks(
    registry: SQLRegistry,
) -> None:
    pk = (await registry.create_product("Streetlight")).product_key
    rights = DialectAccess(
        [alink_of(registry), TokenDialect()], AclFile.parse("user operator\ntopic readwrite #")
    )

    device = rights.access(Client(client_id=f"{pk}&lamp-0001", username=f"lamp-0001&{pk}"))
    assert isinstance(device, DeviceTopics)
    assert device.may_publish(f"/sys/{pk}/lamp-0001/thing/event/property/post")
    token = rights.access(Client(client_id="meter-9", username=f"token:{TOKEN}"))
    assert token.may_publish(f"tokens/{TOKEN}/up") and not token.may_publish("town/news")

    anyone = rights.access(Client(client_id="console", username="operator"))
    assert anyone.may_publish("town/news")  # the ACL's answer ...
    assert anyone.may_publish(f"/sys/{pk}/lamp-0001/thing/service/property/set")  # (downlink)
    # ... but no dialect's device uplink, whatever the ACL grants
    assert not anyone.may_publish(f"/sys/{pk}/lamp-0001/thing/event/property/post")
    assert not anyone.may_publish(f"tokens/{TOKEN}/up")
    assert anyone.may_subscribe("#")


async def test_a_device_of_another_protocol_is_none_of_alinks(registry: SQLRegistry) -> None:
    pk = (await registry.create_product("Meter", protocol=Protocol.THINGSBOARD)).product_key
    meter = await registry.create_device(pk, "meter-0001")
    assert meter.device_secret is not None  # (every device has one, sealed)
    login = credentials(*signed_login(pk, "meter-0001", meter.device_secret))
    verdict = await alink_of(registry).authenticate(login)
    assert verdict is not None and verdict.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
