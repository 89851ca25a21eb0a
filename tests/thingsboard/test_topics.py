"""The ThingsBoard API's topic table, and the rights of a device's and a gateway's connections
(sans-IO)."""

from __future__ import annotations

import pytest

from hongshan.dialects.thingsboard import topics
from hongshan.dialects.thingsboard.topics import DEVICE_RIGHTS, GATEWAY_RIGHTS, Kind, classify


@pytest.mark.parametrize(
    ("topic", "kind", "request_id"),
    [
        ("v1/devices/me/telemetry", Kind.TELEMETRY, ""),
        ("v1/devices/me/attributes", Kind.ATTRIBUTES, ""),
        ("v1/devices/me/attributes/request/7", Kind.ATTRIBUTE_REQUEST, "7"),
        ("v1/devices/me/rpc/request/1", Kind.RPC_REQUEST, "1"),
        ("v1/devices/me/rpc/response/42", Kind.RPC_RESPONSE, "42"),
        ("v1/gateway/connect", Kind.GATEWAY_CONNECT, ""),
        ("v1/gateway/attributes/request", Kind.GATEWAY_ATTRIBUTE_REQUEST, ""),
        ("v1/gateway/rpc", Kind.GATEWAY_RPC, ""),
    ],
)
def test_classify(topic: str, kind: Kind, request_id: str) -> None:
    found = classify(topic)
    assert found is not None
    assert (found[0].kind, found[1]) == (kind, request_id)


@pytest.mark.parametrize(
    "topic",
    [
        "v1/devices/me",
        "v1/devices/me/telemetry/x",
        "v1/devices/me/rpc/request/",
        "v1/devices/me/rpc/request/1/2",
        "v1/devices/me/claim",
        "v1/devices/other/telemetry",
        "v1/gateway/rpc/response",
        "v2/fw/request/1/chunk/0",
    ],
)
def test_not_the_apis(topic: str) -> None:
    assert classify(topic) is None


def test_a_device_is_kept_inside_its_own_topics() -> None:
    for topic in (
        "v1/devices/me/telemetry",
        "v1/devices/me/attributes",
        "v1/devices/me/attributes/request/1",
        "v1/devices/me/rpc/request/1",
        "v1/devices/me/rpc/response/1",
    ):
        assert DEVICE_RIGHTS.may_publish(topic) and GATEWAY_RIGHTS.may_publish(topic)
    # what only the platform says, and anything else
    for topic in ("v1/devices/me/attributes/response/1", "v1/devices/me/claim", "town/x", "#"):
        assert not DEVICE_RIGHTS.may_publish(topic)
    for topic in ("v1/gateway/connect", "v1/gateway/telemetry", "v1/gateway/rpc"):
        assert not DEVICE_RIGHTS.may_publish(topic) and GATEWAY_RIGHTS.may_publish(topic)
    assert not GATEWAY_RIGHTS.may_publish("v1/gateway/attributes/response")
    # the SDK's four subscriptions (seven for a gateway), and nothing wider
    sdk = {
        "v1/devices/me/attributes",
        "v1/devices/me/attributes/response/+",
        "v1/devices/me/rpc/request/+",
        "v1/devices/me/rpc/response/+",
    }
    gateway = {"v1/gateway/attributes", "v1/gateway/attributes/response", "v1/gateway/rpc"}
    assert all(DEVICE_RIGHTS.may_subscribe(f) for f in sdk)
    assert all(GATEWAY_RIGHTS.may_subscribe(f) for f in sdk | gateway)
    assert not any(DEVICE_RIGHTS.may_subscribe(f) for f in gateway)
    assert DEVICE_RIGHTS.may_subscribe("v1/devices/me/rpc/request/5")
    for wide in (
        "#",
        "v1/#",
        "v1/devices/me/#",
        "v1/devices/+/telemetry",
        "v1/devices/me/telemetry",
    ):
        assert not GATEWAY_RIGHTS.may_subscribe(wide)
    assert topics.TAPS == ("v1/devices/me/#", "v1/gateway/#")
