"""Plain MQTT users of a tenant (issue 15): a users-file user given a tenant — a town's
integration account — is delivered only its tenant's devices' messages and its free prefix
``tenants/{tenant}/…``, whatever its ACL lets it subscribe to, and may publish only there (a
downlink to its own devices); a user without a tenant (the platform's) hears every town.
Real clients: paho-mqtt for the users, the towns' lamps logged in with Alibaba's signature."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alibaba_device import make_device, make_product, signed
from broker_peers import V5, V311, Paho
from hongshan.identity.passwords import set_password
from hongshan.things.tsl import ThingModel
from server_thread import ServerThread
from server_thread import test_settings as settings_in

STREETLIGHT = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"
NOT_AUTHORIZED = 0x87

ACL = """\
user north-app
topic readwrite #

user operator
topic readwrite #
"""


@dataclass
class Lamp:
    pk: str
    dn: str
    secret: str

    @property
    def post(self) -> str:
        return f"/sys/{self.pk}/{self.dn}/thing/event/property/post"

    @property
    def set(self) -> str:
        return f"/sys/{self.pk}/{self.dn}/thing/service/property/set"


@pytest.fixture(scope="module")
def towns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Lamp, Lamp]]:
    """A server with two tenants, ``north`` and ``south``, a lamp each, and the users
    ``north-app`` (tenant north) and ``operator`` (no tenant), both with ``#`` in the ACL."""
    directory = tmp_path_factory.mktemp("mqtt-users")
    users, acl = directory / "users", directory / "acl"
    set_password(users, "north-app", "north-pw", tenant="north")
    set_password(users, "operator", "operator-pw")
    acl.write_text(ACL)
    settings = settings_in(
        directory, password_file=str(users), acl_file=str(acl), allow_anonymous=False
    )
    server = ServerThread(settings).start()
    model = ThingModel.from_json(STREETLIGHT.read_text())
    lamps = []
    for tenant in ("north", "south"):
        server.run(server.platform.registry.tenants.create(tenant, tenant.title()))
        pk = make_product(server, "Lamp", thing_model=model, tenant=tenant).product_key
        secret = make_device(server, pk, f"{tenant}-lamp").device_secret
        assert secret is not None
        lamps.append(Lamp(pk, f"{tenant}-lamp", secret))
    yield server, lamps[0], lamps[1]
    server.stop()


def lamp_online(paho_client: Callable[..., Paho], server: Any, lamp: Lamp) -> Paho:
    device = paho_client(server.port, **signed(lamp.pk, lamp.dn, lamp.secret)).connect()
    assert device.subscribe(lamp.set, 1) == [1]
    return device


def user(paho_client: Callable[..., Paho], server: Any, name: str, version: int = V5) -> Paho:
    password = {"north-app": "north-pw", "operator": "operator-pw"}[name]
    return paho_client(server.port, version=version, username=name, password=password).connect()


def post(device: Paho, lamp: Lamp, brightness: int) -> None:
    body = {"id": str(brightness), "version": "1.0", "params": {"Brightness": brightness}}
    assert device.publish(lamp.post, json.dumps(body), 1) == 0


def test_a_tenant_user_hears_its_towns_devices_only(
    towns: tuple[Any, Lamp, Lamp], paho_client: Callable[..., Paho]
) -> None:
    server, north, south = towns
    north_lamp = lamp_online(paho_client, server, north)
    south_lamp = lamp_online(paho_client, server, south)
    app = user(paho_client, server, "north-app")
    operator = user(paho_client, server, "operator")
    assert app.subscribe([("#", 1), ("/sys/#", 1)]) == [1, 1]  # as the ACL allows
    assert operator.subscribe("#", 1) == [1]

    post(south_lamp, south, 11)
    post(north_lamp, north, 12)
    operator.publish("tenants/south/report", b"south's", 1)
    operator.publish("platform/news", b"everyone's?", 1)
    # the platform's user hears both towns (and what it sent itself): once it has heard the
    # last, every delivery to the tenant user was decided before the tenant user's sentinel
    seen_by_operator = {m.topic for m in operator.until("platform/news")}
    assert {north.post, south.post, "tenants/south/report"} <= seen_by_operator
    assert app.publish("tenants/north/done", b"sentinel", 1) == 0  # its free prefix
    heard = [m.topic for m in app.until("tenants/north/done")]
    assert north.post in heard
    assert north.post + "_reply" in heard  # the platform's answer to its device, too
    strangers = [t for t in heard if south.pk in t or not (north.pk in t or "north" in t)]
    assert strangers == [], "a tenant user heard another town's or the platform's topics"
    assert operator.until("tenants/north/done")  # the platform's user hears the free prefix


@pytest.mark.parametrize("version", [V5, V311], ids=["5.0", "3.1.1"])
def test_a_tenant_user_commands_its_towns_devices_only(
    towns: tuple[Any, Lamp, Lamp], paho_client: Callable[..., Paho], version: int
) -> None:
    server, north, south = towns
    north_lamp = lamp_online(paho_client, server, north)
    south_lamp = lamp_online(paho_client, server, south)
    app = user(paho_client, server, "north-app", version)
    operator = user(paho_client, server, "operator")
    command = json.dumps({"id": "7", "version": "1.0", "params": {"Brightness": 70}})
    refused = NOT_AUTHORIZED if version == V5 else 0  # 3.1.1: acknowledged, not delivered
    assert app.publish(south.set, command, 1) == refused
    assert app.publish("tenants/south/report", b"x", 1) == refused
    assert app.publish("platform/news", b"x", 1) == refused
    assert app.publish(north.set, command, 1) == 0
    assert north_lamp.get().topic == north.set
    # the platform's user may still command the south (its message comes after any refused)
    assert operator.publish(south.set, b'{"id": "8", "params": {}}', 1) == 0
    (only,) = south_lamp.until(south.set)
    assert json.loads(only.payload)["id"] == "8"


def test_a_shared_group_loses_nothing_to_a_tenant_member(
    towns: tuple[Any, Lamp, Lamp], paho_client: Callable[..., Paho]
) -> None:
    """A shared subscription's message goes to one member; one that is a tenant user and may
    not receive it is passed over, not handed a message it then drops."""
    server, _, south = towns
    south_lamp = lamp_online(paho_client, server, south)
    app = user(paho_client, server, "north-app")
    operator = user(paho_client, server, "operator")
    for member in (app, operator):
        assert member.subscribe([("$share/g//sys/+/+/thing/event/property/post", 1)]) == [1]
    assert operator.subscribe("platform/sentinel", 1) == [1]
    for brightness in range(6):
        post(south_lamp, south, brightness)
    assert operator.publish("platform/sentinel", b"", 1) == 0
    posts = [m for m in operator.until("platform/sentinel") if m.topic == south.post]
    assert len(posts) == 6, "south's posts lost to a member that may not receive them"


def test_retained_messages_and_wills_keep_to_the_tenant(
    towns: tuple[Any, Lamp, Lamp], paho_client: Callable[..., Paho]
) -> None:
    """A retained message is sent on subscribe only if it is the tenant's; a tenant user's
    will is published only on its tenant's topics (as its publishes)."""
    server, _, south = towns
    operator = user(paho_client, server, "operator")
    kept = ("tenants/north/r", "tenants/south/r", "platform/r")
    for topic in kept:
        assert operator.publish(topic, b"kept", 1, retain=True) == 0
    try:
        app = user(paho_client, server, "north-app")
        assert app.subscribe([("tenants/#", 1), ("platform/#", 1)]) == [1, 1]
        assert app.publish("tenants/north/sentinel", b"", 1) == 0
        heard = [m.topic for m in app.until("tenants/north/sentinel")]
        assert heard == ["tenants/north/r", "tenants/north/sentinel"]
    finally:
        for topic in kept:
            operator.publish(topic, b"", 1, retain=True)

    wanted = [(south.set, 1), ("tenants/north/gone", 1), ("platform/sentinel", 1)]
    assert operator.subscribe(wanted) == [1, 1, 1]
    for topic in (south.set, "tenants/north/gone"):
        leaving = paho_client(
            server.port,
            username="north-app",
            password="north-pw",
            will=(topic, b'{"id": "9", "params": {}}', 1, False),
        ).connect()
        leaving.disconnect(reason=0x04)  # 5.0 3.14.2.1: Disconnect with Will Message
    assert operator.publish("platform/sentinel", b"", 1) == 0
    heard = [m.topic for m in operator.until("platform/sentinel")]
    assert "tenants/north/gone" in heard
    assert south.set not in heard, "a tenant user's will reached another town's device"
