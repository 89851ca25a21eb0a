"""The in-process bus and the pipeline behind it: who hears what, commands by protocol, and
what an acknowledgement waits for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from hongshan import messages as m
from hongshan.bus.local import LocalBus, NoDialect
from hongshan.errors import StoreUnavailable
from hongshan.pipeline.uplink import Pipeline

LAMP = m.DeviceRef("a1Lamp", "lamp-1")
METER = m.DeviceRef("a1Meter", "meter-1")


def values(device: m.DeviceRef, key: bytes = b"") -> m.PropertyValues:
    return m.PropertyValues(device=device, received=1, key=key, values={"Power": 1}, ts=1)


def status(device: m.DeviceRef) -> m.StatusChanged:
    return m.StatusChanged(device=device, received=1, online=True)


class Kept:
    """A stage that keeps what it is given, and says what an acknowledgement waits for."""

    def __init__(
        self, wait: Awaitable[None] | None = None, kinds: tuple[type[m.Uplink], ...] = (m.Uplink,)
    ) -> None:
        self.uplinks: list[m.Uplink] = []
        self.wait = wait
        self.kinds = kinds

    def on_uplink(self, uplink: m.Uplink) -> Awaitable[None] | None:
        self.uplinks.append(uplink)
        return self.wait if uplink.key else None


class Broken:
    kinds = (m.Uplink,)

    def on_uplink(self, uplink: m.Uplink) -> Awaitable[None] | None:
        raise RuntimeError("a stage's bug")


class Said:
    """A stage that says its name in a shared list, for the kinds it takes."""

    def __init__(self, name: str, said: list[str], kinds: tuple[type[m.Uplink], ...]) -> None:
        self.name, self.said, self.kinds = name, said, kinds

    def on_uplink(self, uplink: m.Uplink) -> None:
        self.said.append(self.name)


def test_a_stage_is_given_only_the_kinds_it_takes_in_the_declared_order() -> None:
    said: list[str] = []
    statuses = Said("statuses", said, (m.StatusChanged,))
    pipeline = Pipeline([statuses, Said("everything", said, (m.Uplink,))])
    pipeline.process(values(LAMP))
    pipeline.process(status(LAMP))
    assert said == ["everything", "statuses", "everything"]


def test_listeners_hear_their_kinds_products_and_devices_after_the_pipeline() -> None:
    stage = Kept()
    bus = LocalBus(Pipeline([stage]), protocol_of=lambda _pk: None)
    heard: dict[str, list[m.Uplink]] = {"all": [], "status": [], "lamp": [], "meters": []}
    bus.subscribe(heard["all"].append)
    bus.subscribe(heard["status"].append, kinds=(m.StatusChanged,))
    bus.subscribe(heard["lamp"].append, device=LAMP)
    bus.subscribe(heard["meters"].append, kinds=(m.Uplink,), product="a1Meter")
    sent = [values(LAMP), status(LAMP), values(METER), status(METER)]
    for uplink in sent:
        assert bus.publish(uplink) is None
    assert stage.uplinks == sent
    assert heard == {
        "all": sent,
        "status": [sent[1], sent[3]],
        "lamp": sent[:2],
        "meters": sent[2:],
    }


def test_a_listener_that_leaves_while_one_is_handed_round_skips_nobody() -> None:
    bus = LocalBus(Pipeline([]), protocol_of=lambda _pk: None)
    second: list[m.Uplink] = []

    def once(uplink: m.Uplink) -> None:
        leave()

    leave = bus.subscribe(once)
    bus.subscribe(second.append)
    bus.publish(values(LAMP))
    bus.publish(values(METER))
    assert [uplink.device for uplink in second] == [LAMP, METER]


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = LocalBus(Pipeline([]), protocol_of=lambda _pk: None)
    heard: list[m.Uplink] = []

    def broken(_uplink: m.Uplink) -> None:
        raise ZeroDivisionError

    bus.subscribe(broken)
    bus.subscribe(heard.append)
    bus.publish(values(LAMP))
    assert len(heard) == 1 and "ZeroDivisionError" in caplog.text


def test_a_kind_that_is_no_uplink_is_refused() -> None:
    bus = LocalBus(Pipeline([]), protocol_of=lambda _pk: None)
    with pytest.raises(TypeError):
        bus.subscribe(print, kinds=(m.SetProperties,))  # type: ignore[arg-type]


async def test_commands_go_to_the_dialect_of_the_products_protocol() -> None:
    protocols = {"a1Lamp": "alink", "a1Meter": "thingsboard", "a1Bare": "mqtt-sn"}
    bus = LocalBus(Pipeline([]), protocol_of=protocols.get)
    asked: list[tuple[str, m.Downlink]] = []

    def dialect(name: str):  # type: ignore[no-untyped-def]
        async def serve(command: m.Downlink) -> m.CommandResult:
            asked.append((name, command))
            return m.CommandResult(call_id="1", outcome=m.Outcome.SENT, code=200)

        return serve

    bus.serve("alink", dialect("alink"))
    bus.serve("thingsboard", dialect("thingsboard"))
    with pytest.raises(ValueError, match="served already"):
        bus.serve("alink", dialect("again"))
    for device in (LAMP, METER):
        result = await bus.request(m.SetProperties(device=device, values={"Power": 1}))
        assert result.outcome is m.Outcome.SENT
    assert [name for name, _ in asked] == ["alink", "thingsboard"]
    for product in ("a1Bare", "a1Nobody"):
        with pytest.raises(NoDialect) as refused:
            await bus.request(m.SetProperties(device=m.DeviceRef(product, "x"), values={}))
        assert refused.value.http_status == 404


async def test_an_acknowledgement_waits_for_every_stage_that_says() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    second: asyncio.Future[None] = loop.create_future()
    bus = LocalBus(Pipeline([Kept(first), Kept(second)]), protocol_of=lambda _pk: None)
    waited = bus.publish(values(LAMP, key=b"k"))
    assert waited is not None
    task = asyncio.ensure_future(waited)
    first.set_result(None)
    await asyncio.sleep(0)
    assert not task.done()  # (the second stage's commit is not done yet)
    second.set_result(None)
    await asyncio.wait_for(task, 1)


async def test_a_stage_that_fails_withholds_the_acknowledgement() -> None:
    """A device whose message a stage could not take must not be told it was kept: its
    acknowledgement fails (the broker then withholds the PUBACK) and it sends the message
    again. A message without a key (QoS 0) has no acknowledgement to withhold."""
    stage = Kept()
    bus = LocalBus(Pipeline([Broken(), stage]), protocol_of=lambda _pk: None)
    waited = bus.publish(values(LAMP, key=b"k"))
    assert waited is not None and len(stage.uplinks) == 1  # (the others still ran)
    with pytest.raises(StoreUnavailable, match="Broken"):
        await waited
    assert bus.publish(values(LAMP)) is None
