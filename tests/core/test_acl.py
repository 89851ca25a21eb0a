"""The ACL file: Mosquitto's syntax, deny by default, subscribe checked by filter coverage."""

from __future__ import annotations

import pytest

from hongshan.broker.auth import Client
from hongshan.errors import AccessFileError
from hongshan.identity.acl import AclFile, filter_covers

ACL = """
# anonymous clients
topic read public/#

user lamp-gateway
topic readwrite town/lamps/#
topic deny town/lamps/secret
topic write town/alarms

pattern write devices/%c/telemetry
pattern read devices/%u/commands/#
"""


def client(client_id: str = "c1", username: str | None = "lamp-gateway") -> Client:
    return Client(client_id=client_id, username=username)


@pytest.fixture
def acl() -> AclFile:
    return AclFile.parse(ACL)


def test_publish_rules(acl: AclFile) -> None:
    gw = client()
    assert acl.may_publish(gw, "town/lamps/17/state")
    assert not acl.may_publish(gw, "town/lamps/secret")
    assert acl.may_publish(gw, "town/alarms")
    assert not acl.may_publish(gw, "town/meters/1")
    assert acl.may_publish(gw, "devices/c1/telemetry")
    assert not acl.may_publish(gw, "devices/c2/telemetry")
    assert not acl.may_publish(client(username=None), "public/news")


def test_subscribe_rules(acl: AclFile) -> None:
    gw = client()
    assert acl.may_subscribe(gw, "town/lamps/+/state")
    assert acl.may_subscribe(gw, "town/lamps/#")  # the denied topic is held back at delivery
    assert not acl.may_subscribe(gw, "town/lamps/secret")  # wholly denied
    assert not acl.may_subscribe(gw, "town/#")
    assert not acl.may_subscribe(gw, "town/alarms")  # write only
    assert acl.may_subscribe(gw, "devices/lamp-gateway/commands/#")
    assert acl.may_subscribe(client(username=None), "public/+/x")
    assert not acl.may_subscribe(client(username="stranger"), "public/x")


def test_patterns_refuse_wildcard_identities(acl: AclFile) -> None:
    assert not acl.may_publish(client(client_id="#"), "devices/#/telemetry")
    assert not acl.may_subscribe(client(username="+"), "devices/+/commands/x")


@pytest.mark.parametrize(
    ("rule", "topic_filter", "covers"),
    [
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("a/#", "a", True),
        ("a/#", "a/+/c/#", True),
        ("a/+", "a/b", True),
        ("a/+", "a/+", True),
        ("a/+", "a/#", False),
        ("a/b", "a/+", False),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_filter_covers(rule: str, topic_filter: str, covers: bool) -> None:
    assert filter_covers(rule, topic_filter) is covers


@pytest.mark.parametrize("text", ["bogus line", "user", "topic read", "topic read a/#/b"])
def test_bad_files_name_the_line(text: str) -> None:
    with pytest.raises(AccessFileError, match="<acl>:1"):
        AclFile.parse(text)


def test_receive_filter_holds_back_denied_topics(acl: AclFile) -> None:
    may_receive = acl.receive_filter(client())
    assert may_receive is not None
    assert may_receive("town/lamps/17/state")
    assert not may_receive("town/lamps/secret")
    # without deny rules there is nothing to check per message
    assert acl.receive_filter(client(username=None)) is None
