"""The registry's products and devices as the message path reads them: in memory, no query.

A CONNECT asks whether a device exists, whether it may log in and with which secret; each
device message asks its product's thing model and whether the device is online; a registration
asks whether a device was ever online. ``Directory`` answers each with one dict lookup, and
applies the registry's domain rules to what it holds: which state a device goes to on which
event (``lifecycle``), whether a disabled device may log in (no), what a product's view is.

It is filled and kept current by the registry's store (``store.registry.SQLRegistry``), which
loads it at open and tells it every change once committed; it knows nothing of the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import msgspec

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.identity.secret_box import SecretBox, SecretUnreadable
from hongshan.things.lifecycle import Event, next_state
from hongshan.things.model import (
    DataFormat,
    DeviceCredentials,
    DeviceState,
    Location,
    NodeType,
    Protocol,
    RegistryError,
    TopicClass,
)
from hongshan.things.tsl import ThingModel

log = logging.getLogger("hongshan.registry")

DeviceKey = tuple[str, str]  # (product key, device name)


def device_context(product_key: str, device_name: str) -> str:
    """What a device's secret is sealed with (``SecretBox``): another device's row will not
    open it."""
    return f"device/{product_key}/{device_name}"


def product_context(product_key: str) -> str:
    """What a product's secret is sealed with."""
    return f"product/{product_key}"


class ProductView(msgspec.Struct, frozen=True, kw_only=True):
    """What the message path needs of a product, kept in memory."""

    node_type: NodeType
    data_format: DataFormat
    topic_classes: tuple[TopicClass, ...]
    thing_model: ThingModel | None
    dynamic_registration: bool
    sealed_secret: str
    protocol: Protocol = Protocol.ALINK
    schemaless: bool = False
    tenant: str = DEFAULT_TENANT


NO_FIRMWARE: Mapping[str, str] = {}


class DeviceRecord(msgspec.Struct, kw_only=True):
    """What is kept in memory of each device: for CONNECTs and messages, and the rest of what
    the API shows of it (its tags are the ``TagDirectory``'s), so that a list of devices is
    answered without a query (``things.device_query``). Changed only by ``Directory``; the
    store's tables read its ``id`` (and presence its ``state``)."""

    id: int  # the store's id of the device, which its writes name it by
    sealed: str  # its secret, sealed
    state: DeviceState
    ever_online: bool
    secret: str | None = None  # opened on first use
    place: tuple[float | None, float | None, str] = (None, None, "")  # lat, lon, district
    nickname: str = ""
    created_at: int = 0
    first_online_at: int | None = None
    last_online_at: int | None = None
    last_ip: str = ""
    gateway: DeviceKey | None = None
    firmware: Mapping[str, str] = NO_FIRMWARE  # (replaced on a change, never changed)


class Directory:
    """Every product's view and every device's record, in memory, and the rules they change
    by: the lifecycle table on connect, disconnect, enable and disable; a device that was
    ever online is activated; a disabled one may not log in. Owns those two dicts (the
    store's tables read the devices' through ``devices``) and the opening of sealed secrets.
    Never reads or writes a database — the registry (``SQLRegistry``) loads it at open and
    tells it what it committed — and never speaks a protocol."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._products: dict[str, ProductView] = {}
        self._devices: dict[DeviceKey, DeviceRecord] = {}
        # whether ``devices`` iterates in the order of their ids (of creation), as it does
        # unless a device was added out of that order (then a list in that order sorts)
        self.in_id_order = True
        self._last_id = 0
        self.products: Mapping[str, ProductView] = self._products
        self.devices: Mapping[DeviceKey, DeviceRecord] = self._devices

    # -- what the message path asks (one dict lookup each) ----------------------------------

    def product_view(self, product_key: str) -> ProductView | None:
        return self._products.get(product_key)

    def tenant_of(self, product_key: str) -> str | None:
        """The product's tenant (its devices', and everything of theirs); None when there is
        no such product: no tenant's."""
        view = self._products.get(product_key)
        return view.tenant if view is not None else None

    def products_of(self, tenant: str) -> list[str]:
        """The keys of the tenant's products."""
        return [key for key, view in self._products.items() if view.tenant == tenant]

    def thing_model_of(self, product_key: str) -> ThingModel | None:
        view = self._products.get(product_key)
        return view.thing_model if view is not None else None

    def node_type(self, product_key: str) -> NodeType | None:
        view = self._products.get(product_key)
        return view.node_type if view is not None else None

    def device_known(self, product_key: str, device_name: str) -> bool:
        return (product_key, device_name) in self._devices

    def is_online(self, product_key: str, device_name: str) -> bool:
        record = self._devices.get((product_key, device_name))
        return record is not None and record.state is DeviceState.ONLINE

    def state_of(self, product_key: str, device_name: str) -> DeviceState | None:
        """The device's state as recorded now; None when there is no such device."""
        record = self._devices.get((product_key, device_name))
        return None if record is None else record.state

    def activated(self, product_key: str, device_name: str) -> bool | None:
        """Whether the device was ever online; None when there is no such device."""
        record = self._devices.get((product_key, device_name))
        return None if record is None else record.ever_online

    async def credentials(self, product_key: str, device_name: str) -> DeviceCredentials | None:
        """What a device's login is checked against: its secret (opened on first use) and
        whether it may log in (not while disabled). None when there is no such device."""
        record = self._devices.get((product_key, device_name))
        if record is None:
            return None
        if record.secret is None:
            record.secret = self._box.open(record.sealed, device_context(product_key, device_name))
        return DeviceCredentials(
            product_key=product_key,
            device_name=device_name,
            device_secret=record.secret,
            enabled=record.state != DeviceState.DISABLED,
        )

    async def registration_secret(self, product_key: str) -> str | None:
        """The product secret a dynamic registration is signed with; None when there is no
        such product or it does not allow dynamic registration."""
        view = self._products.get(product_key)
        if view is None or not view.dynamic_registration:
            return None
        return self._box.open(view.sealed_secret, product_context(product_key))

    def online_devices(self) -> list[DeviceKey]:
        """The devices recorded online (at start: those the last server did not see go)."""
        return [key for key, record in self._devices.items() if record.state is DeviceState.ONLINE]

    # -- the lifecycle ----------------------------------------------------------------------

    def apply(self, key: DeviceKey, event: Event, *, ip: str = "", at: int | None = None) -> bool:
        """A device connected (from ``ip``, at ``at`` ms) or disconnected: its state follows
        the lifecycle table at once, and one that connected is activated for good, its last
        address and time kept. Whether it changed anything to write:
        False for a device there is none of (deleted meanwhile), or an event its state does
        not allow (said in the log)."""
        record = self._devices.get(key)
        if record is None:
            return False
        try:
            record.state = next_state(record.state, event, ever_online=record.ever_online)
        except RegistryError:
            log.warning("%s&%s: %s while %s", key[1], key[0], event.value, record.state.value)
            return False
        if event is Event.CONNECTED:
            record.ever_online = True
            if ip:
                record.last_ip = ip
            if at is not None:
                record.last_online_at = at
                if record.first_online_at is None:
                    record.first_online_at = at
        return True

    def state_after(self, key: DeviceKey, event: Event) -> DeviceState:
        """The state ``event`` takes the device to, without taking it there: an operator's
        enable or disable is written first, then ``set_state``. ``RegistryError`` (not_found)
        when there is no such device, (conflict) when its state does not allow ``event``."""
        record = self._devices.get(key)
        if record is None:
            raise RegistryError(f"no device {key[1]} in product {key[0]}", "not_found")
        return next_state(record.state, event, ever_online=record.ever_online)

    def set_state(self, key: DeviceKey, state: DeviceState) -> None:
        """The state ``state_after`` said, now written."""
        record = self._devices.get(key)
        if record is not None:
            record.state = state

    # -- what the store committed -----------------------------------------------------------

    def put_product(self, product_key: str, view: ProductView) -> None:
        """A product made or changed."""
        self._products[product_key] = view

    def drop_product(self, product_key: str) -> None:
        self._products.pop(product_key, None)

    def add_device(self, key: DeviceKey, record: DeviceRecord) -> None:
        self._devices[key] = record
        if record.id < self._last_id:
            self.in_id_order = False
        self._last_id = max(self._last_id, record.id)

    def drop_device(self, key: DeviceKey) -> None:
        """A device deleted: its sub-devices have no gateway any more."""
        if self._devices.pop(key, None) is None:
            return
        for record in self._devices.values():
            if record.gateway == key:
                record.gateway = None

    def rename(self, key: DeviceKey, nickname: str) -> None:
        record = self._devices.get(key)
        if record is not None:
            record.nickname = nickname

    def set_gateway(self, keys: Iterable[DeviceKey], gateway: DeviceKey | None) -> None:
        """Sub-devices put under ``gateway`` (None: taken out of theirs)."""
        for key in keys:
            record = self._devices.get(key)
            if record is not None:
                record.gateway = gateway

    def report_firmware(self, key: DeviceKey, versions: Mapping[str, str]) -> None:
        """The device's firmware versions, by module, set (others kept)."""
        record = self._devices.get(key)
        if record is not None:
            record.firmware = {**record.firmware, **versions}

    def move(self, key: DeviceKey, location: Location) -> None:
        """A device given another place."""
        record = self._devices.get(key)
        if record is not None:
            record.place = (location.lat, location.lon, location.district)

    def open_secrets(self) -> list[DeviceKey]:
        """Open every device's sealed secret now, as the registry opens (before the broker
        listens: a town's devices all connecting after a restart should not each wait for a
        decryption on the event loop). Returns the devices whose secret does not open with
        this key: they cannot log in."""
        unreadable = []
        for key, record in self._devices.items():
            if record.secret is not None:
                continue
            try:
                record.secret = self._box.open(record.sealed, device_context(*key))
            except SecretUnreadable:
                unreadable.append(key)
        return unreadable
