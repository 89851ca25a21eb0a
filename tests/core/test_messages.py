"""The neutral messages cross a process boundary as they are: every kind survives encoding."""

from __future__ import annotations

import pytest

from hongshan import messages as m

LAMP = m.DeviceRef("a1Lamp", "lamp-1")

SAMPLES: list[m.Uplink | m.Downlink] = [
    m.PropertyValues(
        device=LAMP, received=2, key=b"\x01" * 8, values={"Power": 1}, ts=1, device_time={"a": 1}
    ),
    m.EventRaised(device=LAMP, received=2, event="Fault", params={"code": 3}, ts=2),
    m.ServiceReplied(device=LAMP, received=2, call_id="7", service="set", code=200, output={}),
    m.StatusChanged(device=LAMP, received=2, online=False, reason="keep alive timeout"),
    m.StatusChanged(device=LAMP, received=2, online=True, gateway=m.DeviceRef("gw", "g1")),
    m.FirmwareReported(device=LAMP, received=2, versions={"default": "1.0.2"}),
    m.Registered(device=LAMP, received=2, how="register"),
    m.CommandSent(device=LAMP, received=2, call_id="8", service="Reboot", params={"delay": 1}),
    m.CommandGivenUp(device=LAMP, received=2, call_id="8", service="Reboot", why="shutting down"),
    m.SetProperties(device=LAMP, values={"Power": 0}, timeout=2.5),
    m.CallService(device=LAMP, call_id="9", service="Reboot", params={}),
    m.RawCall(device=LAMP, payload=b"\x00\xff", topic="/a1Lamp/lamp-1/user/rrpc"),
    m.PushDesired(device=LAMP, values={"Power": 1}),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_every_message_survives_encoding(message: m.Uplink | m.Downlink) -> None:
    data = m.encode(message)
    decode = m.decode_uplink if isinstance(message, m.Uplink) else m.decode_downlink
    assert decode(data) == message


def test_a_command_result_survives_encoding() -> None:
    result = m.CommandResult(
        call_id="9",
        outcome=m.Outcome.REFUSED,
        code=6306,
        problems=[
            m.Problem(
                kind=m.ProblemKind.INT_OUT_OF_RANGE, identifier="Brightness", message="out of range"
            )
        ],
    )
    assert m.decode_result(m.encode(result)) == result


def test_the_union_covers_every_kind() -> None:
    """A kind added to the package but not to its decoders would not cross a bus."""
    kinds = {type(message) for message in SAMPLES}
    assert kinds == set(m.UPLINKS) | set(m.DOWNLINKS)
