"""Shadow arithmetic: merge, delta and update as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from hongshan.twin.shadow import (
    Shadow,
    ShadowError,
    delta,
    document,
    error_reply,
    merge,
    reply,
    update,
)

NOW = 1_764_374_400


@pytest.mark.parametrize(
    ("current", "change", "expected"),
    [
        ({}, {"color": "red"}, {"color": "red"}),
        ({"color": "red"}, {"color": "green"}, {"color": "green"}),
        ({"color": "red", "on": 1}, {"color": "null"}, {"on": 1}),
        ({"color": "red"}, {"missing": "null"}, {"color": "red"}),
        ({"color": "red", "on": 1}, "null", {}),
        ({"geo": {"lat": 1}}, {"geo": {"lon": 2}}, {"geo": {"lon": 2}}),  # attributes replaced
    ],
)
def test_merge(current: dict[str, Any], change: Any, expected: dict[str, Any]) -> None:
    merged, stamps = merge(current, dict.fromkeys(current, 1), change, NOW)
    assert merged == expected
    assert set(stamps) == set(expected)
    if isinstance(change, dict):
        for key in change:
            if key in expected:
                assert stamps[key] == NOW


@pytest.mark.parametrize(
    ("reported", "desired", "expected"),
    [
        ({}, {}, {}),
        ({"color": "red"}, {"color": "red"}, {}),
        ({"color": "red"}, {"color": "green"}, {"color": "green"}),
        ({}, {"on": 1}, {"on": 1}),
        ({"on": 1, "extra": 2}, {"on": 1}, {}),
        ({"on": 0}, {"on": False}, {"on": False}),  # JSON false is not 0
        ({"level": 50.0}, {"level": 50}, {}),  # but 50 is 50.0
        (
            {"geo": {"lat": 1, "on": True}},
            {"geo": {"lat": 1, "on": 1}},
            {"geo": {"lat": 1, "on": 1}},
        ),
        ({"list": [1, 2]}, {"list": [1, 2]}, {}),
    ],
)
def test_delta(reported: dict[str, Any], desired: dict[str, Any], expected: dict[str, Any]) -> None:
    assert delta(Shadow(reported=reported, desired=desired)) == expected


def request(state: Any, version: Any, method: str = "update") -> dict[str, Any]:
    return {"method": method, "state": state, "version": version}


def test_a_device_report_then_a_desired_change_then_the_device_clears_it() -> None:
    shadow = update(Shadow(), request({"reported": {"color": "red"}}, 1), NOW, by="reported")
    assert (shadow.reported, shadow.version) == ({"color": "red"}, 1)
    shadow = update(shadow, request({"desired": {"color": "green"}}, 2), NOW + 5, by="desired")
    assert delta(shadow) == {"color": "green"}
    assert shadow.metadata() == {
        "reported": {"color": {"timestamp": NOW}},
        "desired": {"color": {"timestamp": NOW + 5}},
    }
    done = request({"reported": {"color": "green"}, "desired": "null"}, 3)
    shadow = update(shadow, done, NOW + 9, by="reported")
    assert shadow.state() == {"reported": {"color": "green"}}
    assert delta(shadow) == {}


def test_values_nested_32_levels_are_kept() -> None:
    value: Any = 1
    for _ in range(32):
        value = [value]
    kept = update(Shadow(), request({"desired": {"a": value}}, 1), NOW, by="desired")
    assert kept.desired == {"a": value}


DEEPER_THAN_32: Any = 1
for _ in range(33):
    DEEPER_THAN_32 = {"a": DEEPER_THAN_32}


@pytest.mark.parametrize(
    ("message", "by", "code"),
    [
        ("not an object", "reported", 400),
        ({"state": {"reported": {"a": 1}}, "version": 1}, "reported", 401),
        ({"method": "update", "version": 1}, "reported", 402),
        (request({"reported": {"a": 1}}, "1"), "reported", 403),
        (request({"reported": {"a": 1}}, 1.5), "reported", 403),
        (request({"reported": {"a": 1}}, 2**63), "reported", 403),  # beyond a stored BIGINT
        (request({"desired": {"a": 1}}, 2**64 + 5), "desired", 403),
        (request({}, 1), "reported", 404),
        (request({"reported": {}}, 1), "reported", 405),
        (request({"reported": {"a": 1}}, 1, method="replace"), "reported", 406),
        (request({"reported": {f"a{i}": i for i in range(129)}}, 1), "reported", 408),
        (request({"reported": {"a": 1}}, 0), "reported", 409),  # not newer than version 0
        (request({"desired": {"a": 1}}, 1), "reported", 400),  # a device cannot desire
        (request({"reported": {"a": 1}}, 1), "desired", 400),  # the platform cannot report
        (request({"reported": [1, 2]}, 1), "reported", 400),
        (request({"reported": {"a": DEEPER_THAN_32}}, 1), "reported", 400),
        (request({"desired": {"a": [DEEPER_THAN_32]}}, 1), "desired", 400),
    ],
)
def test_bad_updates_get_alibabas_codes(message: Any, by: Any, code: int) -> None:
    with pytest.raises(ShadowError) as caught:
        update(Shadow(), message, NOW, by=by)
    assert caught.value.protocol_code == code
    answer = error_reply(caught.value, NOW)
    assert answer["payload"]["content"]["errorcode"] == str(code)


def test_an_older_version_is_refused_and_the_document_is_unchanged() -> None:
    shadow = update(Shadow(), request({"reported": {"a": 1}}, 5), NOW, by="reported")
    with pytest.raises(ShadowError) as caught:
        update(shadow, request({"reported": {"a": 2}}, 5), NOW, by="reported")
    assert caught.value.protocol_code == 409
    assert shadow.reported == {"a": 1}


def test_delete_removes_the_named_attributes() -> None:
    shadow = update(Shadow(), request({"reported": {"a": 1, "b": 2}}, 1), NOW, by="reported")
    shadow = update(shadow, request({"reported": {"a": 1}}, 2, "delete"), NOW, by="reported")
    assert shadow.reported == {"b": 2}
    shadow = update(shadow, request({"reported": "null"}, 3, "delete"), NOW, by="reported")
    assert shadow.reported == {}


def test_what_the_device_is_sent() -> None:
    shadow = Shadow(reported={"a": 1}, reported_times={"a": NOW}, version=4)
    assert reply(4, NOW) == {
        "method": "reply",
        "payload": {"status": "success", "version": 4},
        "timestamp": NOW,
    }
    assert document(shadow, NOW, method="control") == {
        "method": "control",
        "payload": {
            "status": "success",
            "state": {"reported": {"a": 1}},
            "metadata": {"reported": {"a": {"timestamp": NOW}}},
        },
        "version": 4,
        "timestamp": NOW,
    }
