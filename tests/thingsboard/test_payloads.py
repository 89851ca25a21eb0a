"""ThingsBoard's payloads read and written (sans-IO): every shape the API names, and bad ones
refused as ``MalformedPayload`` — never another exception, whatever the bytes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hongshan.dialects.thingsboard import payloads
from hongshan.dialects.thingsboard.payloads import MalformedPayload


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"temperature": 21.5, "on": True}, [(None, {"temperature": 21.5, "on": True})]),
        ({"ts": 1451649600512, "values": {"t": 22}}, [(1451649600512, {"t": 22})]),
        ({"ts": "1451649600512", "values": {"t": 22}}, [(1451649600512, {"t": 22})]),
        (
            [{"ts": 1, "values": {"t": 1}}, {"ts": 2, "values": {"t": 2}}, {"h": 40}],
            [(1, {"t": 1}), (2, {"t": 2}), (None, {"h": 40})],
        ),
        ([], []),
        ({}, [(None, {})]),
        ({"t": 1, "gone": None}, [(None, {"t": 1})]),  # null: left out, as ThingsBoard does
        ({"ts": 5}, [(None, {"ts": 5})]),  # "ts" without "values" is a key like another
        ({"state": {"a": [1, 2]}}, [(None, {"state": {"a": [1, 2]}})]),  # a JSON value
    ],
)
def test_telemetry(payload: Any, expected: list[Any]) -> None:
    assert payloads.telemetry(j(payload)) == expected


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b'{"t": 1} trailing',
        b'{"t": 1',
        b"\xff\xfe",
        j(42),
        j("text"),
        j([1, 2]),
        j([{"t": 1}, "x"]),
        j({"ts": -1, "values": {"t": 1}}),
        j({"ts": 1.5, "values": {"t": 1}}),
        j({"ts": True, "values": {"t": 1}}),
        j({"ts": "soon", "values": {"t": 1}}),
        j({"ts": 1, "values": [1]}),
    ],
)
def test_bad_telemetry(payload: bytes) -> None:
    with pytest.raises(MalformedPayload):
        payloads.telemetry(payload)


def test_attributes() -> None:
    assert payloads.attributes(j({"firmware": "1.0.3", "x": None})) == {"firmware": "1.0.3"}
    for bad in (j([{"a": 1}]), j("a"), b"{"):
        with pytest.raises(MalformedPayload):
            payloads.attributes(bad)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (j({"clientKeys": "a,b", "sharedKeys": "c"}), (["a", "b"], ["c"])),
        (j({"clientKeys": " a , ,b "}), (["a", "b"], None)),
        (j({"sharedKeys": ["mode", "level"]}), (None, ["mode", "level"])),
        (j({}), (None, None)),
        (b"", (None, None)),
        (j({"sharedKeys": ""}), (None, [])),
    ],
)
def test_attribute_request(payload: bytes, expected: Any) -> None:
    assert payloads.attribute_request(payload) == expected


@pytest.mark.parametrize(
    "payload", [j({"clientKeys": 3}), j({"sharedKeys": [1]}), j(["a"]), b"clientKeys=a"]
)
def test_bad_attribute_request(payload: bytes) -> None:
    with pytest.raises(MalformedPayload):
        payloads.attribute_request(payload)


def test_rpc_request_and_response() -> None:
    assert payloads.rpc_request(j({"method": "getTime", "params": {"z": 1}})) == (
        "getTime",
        {"z": 1},
    )
    assert payloads.rpc_request(j({"method": "ping"})) == ("ping", None)
    for bad in (j({"params": {}}), j({"method": ""}), j({"method": 7}), j(["getTime"])):
        with pytest.raises(MalformedPayload):
            payloads.rpc_request(bad)
    assert payloads.rpc_response(j({"done": True})) == {"done": True}
    assert payloads.rpc_response(j(5)) == 5
    assert payloads.rpc_response(b"done") == "done"  # not JSON: kept as the text it is
    assert payloads.rpc_response(b"") is None
    with pytest.raises(MalformedPayload):
        payloads.rpc_response(b"\xff")


def test_gateway_payloads() -> None:
    assert payloads.gateway_connect(j({"device": "Lamp 7", "type": "streetlight"})) == (
        "Lamp 7",
        "streetlight",
    )
    assert payloads.gateway_connect(j({"device": "Lamp 7"})) == ("Lamp 7", None)
    assert payloads.gateway_connect(j({"device": "Lamp 7", "type": ""})) == ("Lamp 7", None)
    assert payloads.gateway_disconnect(j({"device": "Lamp 7"})) == "Lamp 7"
    assert payloads.gateway_telemetry(
        j({"A": [{"ts": 5, "values": {"t": 20}}], "B": {"h": 1}})
    ) == {"A": [(5, {"t": 20})], "B": [(None, {"h": 1})]}
    assert payloads.gateway_attributes(j({"A": {"fw": "2.0", "n": None}})) == {"A": {"fw": "2.0"}}
    assert payloads.gateway_attribute_request(
        j({"id": 1, "device": "A", "client": False, "keys": ["mode"]})
    ) == (1, "A", False, ["mode"])
    assert payloads.gateway_attribute_request(j({"id": 2, "device": "A", "key": "x"})) == (
        2,
        "A",
        False,
        ["x"],
    )
    assert payloads.gateway_rpc_reply(j({"device": "A", "id": 7, "data": {"ok": 1}})) == (
        "A",
        "7",
        {"ok": 1},
    )


@pytest.mark.parametrize(
    ("read", "payload"),
    [
        (payloads.gateway_connect, j({"type": "x"})),
        (payloads.gateway_connect, j({"device": ""})),
        (payloads.gateway_connect, j({"device": "x" * 256})),
        (payloads.gateway_connect, j({"device": "A", "type": 3})),
        (payloads.gateway_disconnect, j({"device": 5})),
        (payloads.gateway_telemetry, j([{"A": {"t": 1}}])),
        (payloads.gateway_telemetry, j({"A": 5})),
        (payloads.gateway_attributes, j({"A": [1]})),
        (payloads.gateway_attribute_request, j({"device": "A", "keys": ["x"]})),
        (payloads.gateway_attribute_request, j({"id": "1", "device": "A", "keys": ["x"]})),
        (payloads.gateway_attribute_request, j({"id": 1, "device": "A", "client": "yes"})),
        (payloads.gateway_attribute_request, j({"id": 1, "device": "A"})),
        (payloads.gateway_attribute_request, j({"id": 1, "device": "A", "keys": []})),
        (payloads.gateway_rpc_reply, j({"device": "A", "data": 1})),
        (payloads.gateway_rpc_reply, j({"device": "A", "id": ""})),
        (payloads.gateway_rpc_reply, j({"id": 1})),
    ],
)
def test_bad_gateway_payloads(read: Callable[[bytes], Any], payload: bytes) -> None:
    with pytest.raises(MalformedPayload):
        read(payload)


def test_what_the_platform_writes() -> None:
    assert json.loads(payloads.attribute_response({"fw": "1"}, {"mode": "auto"})) == {
        "client": {"fw": "1"},
        "shared": {"mode": "auto"},
    }
    # a scope with nothing in it is left out, as ThingsBoard does
    assert json.loads(payloads.attribute_response({}, {"mode": "auto"})) == {
        "shared": {"mode": "auto"}
    }
    assert json.loads(payloads.attribute_response({}, {})) == {}
    assert json.loads(payloads.gateway_attribute_response(1, "A", {"mode": "auto"})) == {
        "id": 1,
        "device": "A",
        "value": "auto",
    }
    assert json.loads(payloads.gateway_attribute_response(2, "A", {"a": 1, "b": 2})) == {
        "id": 2,
        "device": "A",
        "values": {"a": 1, "b": 2},
    }
    assert json.loads(payloads.gateway_attribute_response(3, "A", {})) == {"id": 3, "device": "A"}
    assert json.loads(payloads.gateway_attribute_update("A", {"m": 1})) == {
        "device": "A",
        "data": {"m": 1},
    }
    assert json.loads(payloads.rpc_call("setLight", {"on": 1})) == {
        "method": "setLight",
        "params": {"on": 1},
    }
    assert json.loads(payloads.gateway_rpc_call("A", 9, "setLight", {"on": 1})) == {
        "device": "A",
        "data": {"id": 9, "method": "setLight", "params": {"on": 1}},
    }
    assert json.loads(payloads.rpc_error("no")) == {"error": "no"}


def test_session_limits_have_the_shape_the_sdk_reads() -> None:
    device = json.loads(
        payloads.session_limits(max_payload_size=65536, max_inflight=100, gateway=False)
    )
    assert device == {
        "maxPayloadSize": 65536,
        "maxInflightMessages": 100,
        "rateLimits": {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""},
    }
    gateway = json.loads(payloads.session_limits(max_payload_size=1, max_inflight=2, gateway=True))
    assert gateway["gatewayRateLimits"] == gateway["rateLimits"]


READERS = (
    payloads.telemetry,
    payloads.attributes,
    payloads.attribute_request,
    payloads.rpc_request,
    payloads.rpc_response,
    payloads.gateway_connect,
    payloads.gateway_disconnect,
    payloads.gateway_telemetry,
    payloads.gateway_attributes,
    payloads.gateway_attribute_request,
    payloads.gateway_rpc_reply,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | json_values.map(j))
def test_any_bytes_are_read_or_refused(payload: bytes) -> None:
    for read in READERS:
        with contextlib.suppress(MalformedPayload):
            read(payload)
