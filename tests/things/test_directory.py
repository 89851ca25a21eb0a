"""The registry's directory in memory, without a database: what the message path reads of
products and devices, and the lifecycle rules it applies."""

from __future__ import annotations

import logging
import secrets

import pytest

from hongshan.identity.secret_box import SecretBox, SecretUnreadable
from hongshan.things import device_query
from hongshan.things.device_query import place_of
from hongshan.things.directory import (
    DeviceRecord,
    Directory,
    ProductView,
    device_context,
    product_context,
)
from hongshan.things.lifecycle import Event
from hongshan.things.model import (
    DataFormat,
    DeviceFilter,
    DevicePlace,
    DeviceState,
    Location,
    NodeType,
    RegistryError,
)
from hongshan.things.tag_directory import TagDirectory
from hongshan.things.tsl import Profile, ThingModel

BOX = SecretBox(secrets.token_bytes(32))
LAMP = ("a1Lamp00001", "lamp-0001")
MODEL = ThingModel(profile=Profile(product_key=LAMP[0]))


def view(*, dynamic_registration: bool = False, secret: str = "p" * 16) -> ProductView:
    return ProductView(
        node_type=NodeType.GATEWAY,
        data_format=DataFormat.ALINK,
        topic_classes=(),
        thing_model=MODEL,
        dynamic_registration=dynamic_registration,
        sealed_secret=BOX.seal(secret, product_context(LAMP[0])),
    )


def record(
    key: tuple[str, str] = LAMP,
    *,
    secret: str = "d" * 32,
    state: DeviceState = DeviceState.INACTIVE,
    ever_online: bool = False,
    box: SecretBox = BOX,
) -> DeviceRecord:
    return DeviceRecord(
        id=7, sealed=box.seal(secret, device_context(*key)), state=state, ever_online=ever_online
    )


def lamps(product: ProductView | None = None) -> Directory:
    directory = Directory(BOX)
    directory.put_product(LAMP[0], product or view())
    directory.add_device(LAMP, record())
    return directory


async def test_what_the_message_path_asks_is_answered_from_memory() -> None:
    product = view()
    directory = lamps(product)
    assert directory.product_view(LAMP[0]) is product
    assert directory.thing_model_of(LAMP[0]) is MODEL
    assert directory.node_type(LAMP[0]) is NodeType.GATEWAY
    assert directory.device_known(*LAMP) and not directory.device_known(LAMP[0], "lamp-0002")
    assert not directory.is_online(*LAMP)
    assert directory.activated(*LAMP) is False
    for ask in (directory.product_view, directory.thing_model_of, directory.node_type):
        assert ask("a1NoSuchPrd") is None
    assert directory.activated("a1NoSuchPrd", "lamp-0001") is None
    assert not directory.is_online("a1NoSuchPrd", "lamp-0001")
    assert await directory.credentials("a1NoSuchPrd", "lamp-0001") is None


async def test_a_device_connects_disconnects_and_stays_activated() -> None:
    directory = lamps()
    assert directory.apply(LAMP, Event.CONNECTED)
    assert directory.is_online(*LAMP) and directory.activated(*LAMP) is True
    assert directory.online_devices() == [LAMP]
    assert directory.apply(LAMP, Event.DISCONNECTED)
    assert not directory.is_online(*LAMP) and directory.activated(*LAMP) is True
    assert directory.devices[LAMP].state is DeviceState.OFFLINE
    assert directory.online_devices() == []
    assert not directory.apply(("a1NoSuchPrd", "lamp-0001"), Event.CONNECTED)


async def test_an_event_the_state_does_not_allow_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = lamps()
    directory.set_state(LAMP, directory.state_after(LAMP, Event.DISABLED))
    with caplog.at_level(logging.WARNING, "hongshan.registry"):
        assert not directory.apply(LAMP, Event.CONNECTED)
    assert "connected while disabled" in caplog.text
    assert directory.devices[LAMP].state is DeviceState.DISABLED
    assert directory.activated(*LAMP) is False


async def test_disabled_may_not_log_in_and_enabling_goes_back_by_its_past() -> None:
    directory = lamps()
    directory.add_device((LAMP[0], "lamp-0002"), record((LAMP[0], "lamp-0002")))
    directory.apply(LAMP, Event.CONNECTED)
    state = directory.state_after(LAMP, Event.DISABLED)
    assert state is DeviceState.DISABLED
    assert directory.is_online(*LAMP)  # said, not done: the store writes it first
    directory.set_state(LAMP, state)
    credentials = await directory.credentials(*LAMP)
    assert credentials is not None and not credentials.enabled
    assert credentials.device_secret == "d" * 32
    directory.set_state(LAMP, directory.state_after(LAMP, Event.ENABLED))
    assert directory.devices[LAMP].state is DeviceState.OFFLINE  # it was online once
    never = (LAMP[0], "lamp-0002")
    directory.set_state(never, directory.state_after(never, Event.DISABLED))
    directory.set_state(never, directory.state_after(never, Event.ENABLED))
    assert directory.devices[never].state is DeviceState.INACTIVE
    enabled = await directory.credentials(*never)
    assert enabled is not None and enabled.enabled
    with pytest.raises(RegistryError) as missing:
        directory.state_after(("a1NoSuchPrd", "lamp-0001"), Event.DISABLED)
    assert missing.value.kind == "not_found"


async def test_secrets_open_at_load_or_on_first_use_and_only_with_the_key() -> None:
    directory = lamps()
    other = SecretBox(secrets.token_bytes(32))
    stranger = ("a1Lamp00001", "lamp-0003")
    directory.add_device(stranger, record(stranger, box=other))
    # a secret sealed for another device does not open as this one's
    moved = ("a1Lamp00001", "lamp-0004")
    directory.add_device(moved, record(LAMP))
    assert sorted(directory.open_secrets()) == [stranger, moved]
    assert directory.devices[LAMP].secret == "d" * 32
    assert directory.devices[stranger].secret is None
    with pytest.raises(SecretUnreadable):
        await directory.credentials(*stranger)
    later = ("a1Lamp00001", "lamp-0005")
    directory.add_device(later, record(later, secret="e" * 32))
    assert directory.devices[later].secret is None
    credentials = await directory.credentials(*later)
    assert credentials is not None and credentials.device_secret == "e" * 32


async def test_a_registration_secret_only_for_a_product_that_allows_it() -> None:
    directory = lamps()
    assert await directory.registration_secret(LAMP[0]) is None
    directory.put_product(LAMP[0], view(dynamic_registration=True, secret="s" * 16))
    assert await directory.registration_secret(LAMP[0]) == "s" * 16
    assert await directory.registration_secret("a1NoSuchPrd") is None
    directory.drop_product(LAMP[0])
    assert directory.product_view(LAMP[0]) is None
    assert await directory.registration_secret(LAMP[0]) is None


def places(directory: Directory, product_key: str | None, prefix: str) -> list[DevicePlace]:
    where = DeviceFilter(product_key=product_key, name_prefix=prefix)
    return [place_of(*item) for item in device_query.select(directory, TagDirectory(), where)[0]]


def test_places_by_product_and_name_and_a_device_moved_or_dropped() -> None:
    directory = lamps()
    meter = ("a1Meter0001", "meter-01")
    directory.add_device(meter, record(meter))
    directory.move(LAMP, Location(lat=31.2, lon=121.5, district="east"))
    assert places(directory, None, "") == [
        DevicePlace(*LAMP, 31.2, 121.5, "east"),
        DevicePlace(*meter, None, None, ""),
    ]
    assert places(directory, meter[0], "") == [DevicePlace(*meter, None, None, "")]
    assert places(directory, None, "meter") == [DevicePlace(*meter, None, None, "")]
    directory.drop_device(meter)
    assert not directory.device_known(*meter) and places(directory, None, "meter") == []
    directory.move(meter, Location(lat=0, lon=0))  # gone meanwhile: nothing to move
    directory.set_state(meter, DeviceState.ONLINE)
    assert not directory.device_known(*meter)
