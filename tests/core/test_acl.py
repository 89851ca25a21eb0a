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
    assert acl.access(gw).may_publish("town/lamps/17/state")
    assert not acl.access(gw).may_publish("town/lamps/secret")
    assert acl.access(gw).may_publish("town/alarms")
    assert not acl.access(gw).may_publish("town/meters/1")
    assert acl.access(gw).may_publish("devices/c1/telemetry")
    assert not acl.access(gw).may_publish("devices/c2/telemetry")
    assert not acl.access(client(username=None)).may_publish("public/news")


def test_subscribe_rules(acl: AclFile) -> None:
    gw = client()
    assert acl.access(gw).may_subscribe("town/lamps/+/state")
    assert acl.access(gw).may_subscribe("town/lamps/#")  # the denied topic is held back at delivery
    assert not acl.access(gw).may_subscribe("town/lamps/secret")  # wholly denied
    assert not acl.access(gw).may_subscribe("town/#")
    assert not acl.access(gw).may_subscribe("town/alarms")  # write only
    assert acl.access(gw).may_subscribe("devices/lamp-gateway/commands/#")
    assert acl.access(client(username=None)).may_subscribe("public/+/x")
    assert not acl.access(client(username="stranger")).may_subscribe("public/x")


def test_patterns_refuse_wildcard_identities(acl: AclFile) -> None:
    assert not acl.access(client(client_id="#")).may_publish("devices/#/telemetry")
    assert not acl.access(client(username="+")).may_subscribe("devices/+/commands/x")


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
    may_receive = acl.access(client()).receive_filter
    assert may_receive is not None
    assert may_receive("town/lamps/17/state")
    assert not may_receive("town/lamps/secret")
    # without deny rules there is nothing to check per message
    assert acl.access(client(username=None)).receive_filter is None
