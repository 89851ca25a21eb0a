"""A tenant's topics (``identity.tenant_topics``): which product a topic names, and what a
users-file user of a tenant may publish and be delivered, with its ACL's answer kept."""

from __future__ import annotations

import logging

import pytest

from hongshan.broker.auth import FULL_ACCESS, AllowAll, Client
from hongshan.identity.acl import AclFile
from hongshan.identity.people import warn_of_unknown_tenants
from hongshan.identity.tenant_topics import TenantAccess, TenantUsers, product_named

TENANTS = {"pkN": "north", "pkS": "south"}


@pytest.mark.parametrize(
    ("topic", "product"),
    [
        ("/sys/pkN/lamp/thing/event/property/post", "pkN"),
        ("/sys/pkN/lamp/thing/service/property/set", "pkN"),
        ("/pkN/lamp/user/update", "pkN"),
        ("/pkN/lamp/user/a/b", "pkN"),
        ("/shadow/update/pkN/lamp", "pkN"),
        ("/shadow/get/pkN/lamp", "pkN"),
        ("/ota/device/inform/pkN/lamp", "pkN"),
        ("/ota/device/upgrade/pkN/lamp", "pkN"),
        ("/ext/ntp/pkN/lamp/request", "pkN"),
        ("/ext/session/pkN/lamp/combine/login", "pkN"),
        ("/as/mqtt/status/pkN/lamp", "pkN"),
        ("/ext/rrpc/123/sys/pkN/lamp/thing/service/Blink", "pkN"),
        ("/ext/rrpc/123/pkN/lamp/user/get", "pkN"),
        # no device's
        ("/sys/pkN", None),
        ("/sys//lamp/x", None),
        ("/shadow/update/pkN", None),
        ("/pkN/lamp/other/x", None),
        ("/pkN/lamp/user", None),
        ("/ext/rrpc/123", None),
        ("/ext/rrpc/123/town/lamps", None),
        ("sys/pkN/lamp/thing/event/property/post", None),
        ("town/lamps/17", None),
        ("tenants/north/x", None),
        ("$SYS/broker/clients/connected", None),
        ("v1/devices/me/telemetry", None),  # ThingsBoard's: the token names the device
        ("v1/gateway/telemetry", None),
    ],
)
def test_the_product_a_topic_names(topic: str, product: str | None) -> None:
    assert product_named(topic) == product
    assert product_named(topic) == product  # (remembered: the same answer)


def north(granted: object = FULL_ACCESS) -> TenantAccess:
    return TenantAccess(granted, "north", TENANTS.get)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic", "owned"),
    [
        ("/sys/pkN/lamp/thing/event/property/post", True),
        ("/sys/pkN/lamp/thing/service/property/set", True),
        ("tenants/north/reports", True),
        ("tenants/north", False),  # (the prefix is tenants/north/: its topics under it)
        ("/sys/pkS/lamp/thing/event/property/post", False),
        ("/sys/unknown/lamp/thing/event/property/post", False),
        ("tenants/south/reports", False),
        ("tenants/northern/reports", False),
        ("town/lamps/17", False),
        ("$SYS/broker/clients/connected", False),
    ],
)
def test_a_tenant_user_is_delivered_and_publishes_only_its_tenants_topics(
    topic: str, owned: bool
) -> None:
    access = north()
    assert access.receive_filter is not None
    assert access.receive_filter(topic) is owned
    assert access.may_publish(topic) is owned
    assert access.may_subscribe("#")  # the ACL's answer (everything here)


def test_the_acl_still_decides_within_the_tenant() -> None:
    acl = AclFile.parse(
        "user app\n"
        "topic read /sys/#\n"
        "topic write /sys/+/+/thing/service/#\n"
        "topic deny /sys/pkN/secret/#\n"
    )
    access = north(acl.access(Client(client_id="c", username="app")))
    assert access.may_subscribe("/sys/#")
    assert not access.may_subscribe("tenants/north/#")  # not granted by the ACL
    assert access.may_publish("/sys/pkN/lamp/thing/service/property/set")
    assert not access.may_publish("/sys/pkS/lamp/thing/service/property/set")
    assert not access.may_publish("tenants/north/x")  # the tenant's, but not granted
    receive = access.receive_filter
    assert receive is not None
    assert receive("/sys/pkN/lamp/thing/event/property/post")
    assert not receive("/sys/pkN/secret/thing/event/property/post")  # the ACL's deny
    assert not receive("/sys/pkS/lamp/thing/event/property/post")


def test_only_users_with_a_tenant_are_held_to_it() -> None:
    users = TenantUsers(AllowAll(), {"north-app": "north"}, TENANTS.get)
    assert users.access(Client(client_id="a", username="operator")) is FULL_ACCESS
    assert users.access(Client(client_id="b", username=None)) is FULL_ACCESS
    held = users.access(Client(client_id="c", username="north-app"))
    assert isinstance(held, TenantAccess)
    assert not held.may_publish("/sys/pkS/lamp/thing/service/property/set")


def test_a_user_of_a_tenant_that_does_not_exist_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    users = TenantUsers(AllowAll(), {"north-app": "north", "typo-app": "nrth"}, TENANTS.get)
    with caplog.at_level(logging.WARNING, logger="hongshan"):
        assert warn_of_unknown_tenants(users, {"default", "north", "south"}) == ["typo-app"]
    assert "'nrth', which does not exist" in caplog.text
    assert warn_of_unknown_tenants(AllowAll(), set()) == []  # no tenant users: nothing to say
