"""The registry on SQLAlchemy Core: products, devices, groups, tags, presence.

Every statement runs on one worker thread (the event loop never waits on the database); for
SQLite that thread is also the only writer, as in Datasette. What the broker needs on every
CONNECT and every message — a device's sealed secret and state, a product's topic classes and
thing model — is kept in memory, loaded at start and updated by this class's own writes, so a
CONNECT costs no query. (In a cluster, where several processes write one PostgreSQL registry,
those copies will be refreshed by registry events on the bus; until then each process sees
only its own writes.)

Presence (connected, disconnected, last IP) arrives at the rate devices connect; it is
coalesced per device and written in one transaction per batch, and any read flushes it first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import msgspec
import sqlalchemy as sa

from hongshan.identity.device_auth import DeviceCredentials
from hongshan.identity.device_topics import TopicClass
from hongshan.identity.secret_box import SecretBox
from hongshan.store.registry import schema as t
from hongshan.store.registry.engine import create_engine, migrate
from hongshan.things import naming
from hongshan.things.lifecycle import Event, next_state
from hongshan.things.model import (
    DataFormat,
    Device,
    DeviceFilter,
    DeviceState,
    Group,
    Location,
    NodeType,
    Product,
    RegistryError,
)
from hongshan.things.tsl import ThingModel
from hongshan.twin.shadow import Shadow

log = logging.getLogger("hongshan.registry")

T = TypeVar("T")
DeviceKey = tuple[str, str]  # (product key, device name)
ALL_DEVICES = DeviceFilter(limit=1_000_000)
PRESENCE_FLUSH_DELAY = 0.2  # seconds a presence change may wait to be batched with others


def now_ms() -> int:
    return int(time.time() * 1000)


class ProductView(msgspec.Struct, frozen=True, kw_only=True):
    """What the message path needs of a product, kept in memory."""

    node_type: NodeType
    data_format: DataFormat
    topic_classes: tuple[TopicClass, ...]
    thing_model: ThingModel | None
    dynamic_registration: bool
    sealed_secret: str


class _DeviceAuth(msgspec.Struct, kw_only=True):
    id: int
    sealed: str
    state: DeviceState
    ever_online: bool
    secret: str | None = None  # opened on first use


def _device_context(pk: str, dn: str) -> str:
    return f"device/{pk}/{dn}"


def _product_context(pk: str) -> str:
    return f"product/{pk}"


class SQLRegistry:
    def __init__(self, engine: sa.Engine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="registry")
        self._products: dict[str, ProductView] = {}
        self._devices: dict[DeviceKey, _DeviceAuth] = {}
        self._presence: dict[DeviceKey, tuple[Event, str, int]] = {}
        self._presence_lock = threading.Lock()  # noted on the loop, written on the thread
        self._presence_timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Future[Any]] = set()  # fire-and-forget writes in flight
        self._closed = False
        self.on_device_disabled: list[Callable[[str, str], None]] = []

    @classmethod
    async def open(cls, url: str, box: SecretBox, *, schema: str | None = None) -> SQLRegistry:
        registry = cls(create_engine(url, schema=schema), box)
        await registry._run(registry._start)
        return registry

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.flush_presence()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        await self._run(self._engine.dispose)
        self._thread.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args))

    def _start(self) -> None:
        migrate(self._engine)
        with self._engine.connect() as db:
            for row in db.execute(sa.select(t.products)):
                self._products[row.product_key] = self._product_view(row)
            query = sa.select(
                t.devices.c.id,
                t.devices.c.product_key,
                t.devices.c.device_name,
                t.devices.c.device_secret,
                t.devices.c.state,
                t.devices.c.first_online_at,
            )
            for row in db.execute(query):
                self._devices[row.product_key, row.device_name] = _DeviceAuth(
                    id=row.id,
                    sealed=row.device_secret,
                    state=DeviceState(row.state),
                    ever_online=row.first_online_at is not None,
                )
        log.info("registry: %d products, %d devices", len(self._products), len(self._devices))

    # -- what the message path asks (in memory, no query) -----------------------------------

    async def credentials(self, product_key: str, device_name: str) -> DeviceCredentials | None:
        """``DeviceDirectory`` for the signed-CONNECT authenticator."""
        auth = self._devices.get((product_key, device_name))
        if auth is None:
            return None
        if auth.secret is None:
            auth.secret = self._box.open(auth.sealed, _device_context(product_key, device_name))
        return DeviceCredentials(
            product_key=product_key,
            device_name=device_name,
            device_secret=auth.secret,
            enabled=auth.state != DeviceState.DISABLED,
        )

    async def registration_secret(self, product_key: str) -> str | None:
        view = self._products.get(product_key)
        if view is None or not view.dynamic_registration:
            return None
        return self._box.open(view.sealed_secret, _product_context(product_key))

    def activated(self, product_key: str, device_name: str) -> bool | None:
        auth = self._devices.get((product_key, device_name))
        return None if auth is None else auth.ever_online

    def product_view(self, product_key: str) -> ProductView | None:
        return self._products.get(product_key)

    def device_known(self, product_key: str, device_name: str) -> bool:
        return (product_key, device_name) in self._devices

    def node_type(self, product_key: str) -> NodeType | None:
        view = self._products.get(product_key)
        return view.node_type if view is not None else None

    def is_online(self, product_key: str, device_name: str) -> bool:
        auth = self._devices.get((product_key, device_name))
        return auth is not None and auth.state is DeviceState.ONLINE

    def thing_model_of(self, product_key: str) -> ThingModel | None:
        view = self._products.get(product_key)
        return view.thing_model if view is not None else None

    # -- products ---------------------------------------------------------------------------

    @staticmethod
    def _product_view(row: Any) -> ProductView:
        model = ThingModel.from_json(row.thing_model) if row.thing_model else None
        return ProductView(
            node_type=NodeType(row.node_type),
            data_format=DataFormat(row.data_format),
            topic_classes=tuple(msgspec.convert(row.topic_classes, list[TopicClass])),
            thing_model=model,
            dynamic_registration=row.dynamic_registration,
            sealed_secret=row.product_secret,
        )

    def _product(self, row: Any, *, with_secret: bool = False) -> Product:
        secret = None
        if with_secret:
            secret = self._box.open(row.product_secret, _product_context(row.product_key))
        return Product(
            product_key=row.product_key,
            name=row.name,
            description=row.description,
            node_type=NodeType(row.node_type),
            data_format=DataFormat(row.data_format),
            dynamic_registration=row.dynamic_registration,
            topic_classes=tuple(msgspec.convert(row.topic_classes, list[TopicClass])),
            created_at=row.created_at,
            product_secret=secret,
        )

    async def create_product(
        self,
        name: str,
        *,
        description: str = "",
        node_type: NodeType = NodeType.DEVICE,
        data_format: DataFormat = DataFormat.ALINK,
        dynamic_registration: bool = False,
        topic_classes: Iterable[TopicClass] = (),
        thing_model: ThingModel | None = None,
        product_key: str | None = None,
        product_secret: str | None = None,
    ) -> Product:
        """A new product; ``product_key``/``product_secret`` keep an existing one's (a product
        moved from Alibaba Cloud, whose devices' firmware holds its key)."""
        if not name.strip():
            raise RegistryError("a product needs a name", "invalid")
        pk = product_key or naming.new_product_key()
        secret = product_secret or naming.new_product_secret()
        values = {
            "product_key": pk,
            "name": name,
            "description": description,
            "node_type": NodeType(node_type).value,
            "data_format": DataFormat(data_format).value,
            "dynamic_registration": dynamic_registration,
            "product_secret": self._box.seal(secret, _product_context(pk)),
            "topic_classes": msgspec.to_builtins(list(topic_classes)),
            "thing_model": msgspec.json.encode(thing_model.to_json()).decode()
            if thing_model
            else None,
            "created_at": now_ms(),
        }

        def insert() -> Any:
            with self._engine.begin() as db:
                try:
                    db.execute(t.products.insert().values(values))
                except sa.exc.IntegrityError:
                    raise RegistryError(f"product {pk} exists", "conflict") from None
                return db.execute(sa.select(t.products).where(t.products.c.product_key == pk)).one()

        row = await self._run(insert)
        self._products[pk] = self._product_view(row)
        return self._product(row, with_secret=True)

    async def get_product(self, product_key: str, *, with_secret: bool = False) -> Product:
        row = await self._run(self._product_row, product_key)
        return self._product(row, with_secret=with_secret)

    def _product_row(self, product_key: str) -> Any:
        with self._engine.connect() as db:
            row = db.execute(
                sa.select(t.products).where(t.products.c.product_key == product_key)
            ).one_or_none()
        if row is None:
            raise RegistryError(f"no product {product_key}", "not_found")
        return row

    async def list_products(self) -> list[Product]:
        def query() -> list[Any]:
            with self._engine.connect() as db:
                return list(db.execute(sa.select(t.products).order_by(t.products.c.created_at)))

        return [self._product(row) for row in await self._run(query)]

    async def update_product(self, product_key: str, **changes: Any) -> Product:
        """Change a product's name, description, dynamic registration, topic classes or thing
        model (``thing_model=None`` removes it)."""
        allowed = {"name", "description", "dynamic_registration", "topic_classes", "thing_model"}
        unknown = set(changes) - allowed
        if unknown:
            raise RegistryError(f"cannot change {', '.join(sorted(unknown))}", "invalid")
        values = dict(changes)
        if "topic_classes" in values:
            values["topic_classes"] = msgspec.to_builtins(list(values["topic_classes"]))
        if "thing_model" in values:
            model = values["thing_model"]
            values["thing_model"] = msgspec.json.encode(model.to_json()).decode() if model else None

        def update() -> Any:
            with self._engine.begin() as db:
                db.execute(
                    t.products.update()
                    .where(t.products.c.product_key == product_key)
                    .values(values)
                )
            return self._product_row(product_key)

        row = await self._run(update)
        self._products[product_key] = self._product_view(row)
        return self._product(row)

    async def thing_model(self, product_key: str) -> ThingModel | None:
        row = await self._run(self._product_row, product_key)
        return ThingModel.from_json(row.thing_model) if row.thing_model else None

    async def delete_product(self, product_key: str) -> None:
        def delete() -> None:
            with self._engine.begin() as db:
                count = db.execute(
                    sa.select(sa.func.count()).where(t.devices.c.product_key == product_key)
                ).scalar_one()
                if count:
                    raise RegistryError(
                        f"product {product_key} still has {count} devices", "conflict"
                    )
                result = db.execute(
                    t.products.delete().where(t.products.c.product_key == product_key)
                )
                if result.rowcount == 0:
                    raise RegistryError(f"no product {product_key}", "not_found")

        await self._run(delete)
        self._products.pop(product_key, None)

    # -- devices ----------------------------------------------------------------------------

    def _device_id(self, db: sa.Connection, key: DeviceKey) -> int:
        found = db.execute(
            sa.select(t.devices.c.id).where(
                t.devices.c.product_key == key[0], t.devices.c.device_name == key[1]
            )
        ).scalar_one_or_none()
        if found is None:
            raise RegistryError(f"no device {key[1]} in product {key[0]}", "not_found")
        return int(found)

    async def create_device(
        self,
        product_key: str,
        device_name: str | None = None,
        *,
        nickname: str = "",
        tags: Mapping[str, str] | None = None,
        location: Location | None = None,
        gateway: DeviceKey | None = None,
        device_secret: str | None = None,
    ) -> Device:
        """A new device with a fresh secret (returned once, in ``Device.device_secret``); a name is
        generated when none is given, as Alibaba's batch creation does."""
        if product_key not in self._products:
            raise RegistryError(f"no product {product_key}", "not_found")
        dn = naming.check_device_name(device_name) if device_name else naming.new_device_name()
        if nickname:
            naming.check_nickname(nickname)
        secret = device_secret or naming.new_device_secret()
        sealed = self._box.seal(secret, _device_context(product_key, dn))

        def insert() -> int:
            with self._engine.begin() as db:
                gateway_id = self._device_id(db, gateway) if gateway else None
                try:
                    device_id = db.execute(
                        t.devices.insert()
                        .values(
                            product_key=product_key,
                            device_name=dn,
                            device_secret=sealed,
                            nickname=nickname,
                            state=DeviceState.INACTIVE.value,
                            created_at=now_ms(),
                            gateway_id=gateway_id,
                            lat=location.lat if location else None,
                            lon=location.lon if location else None,
                            district=location.district if location else "",
                        )
                        .returning(t.devices.c.id)
                    ).scalar_one()
                except sa.exc.IntegrityError:
                    raise RegistryError(
                        f"device {dn} exists in product {product_key}", "conflict"
                    ) from None
                if tags:
                    self._write_tags(db, device_id, tags)
                return int(device_id)

        device_id = await self._run(insert)
        self._devices[product_key, dn] = _DeviceAuth(
            id=device_id, sealed=sealed, state=DeviceState.INACTIVE, ever_online=False
        )
        device = await self.get_device(product_key, dn)
        return msgspec.structs.replace(device, device_secret=secret)

    async def create_devices(
        self, product_key: str, names: Iterable[str], *, secrets: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Many devices in one transaction (Alibaba's batch registration); returns each name's
        secret. ``secrets`` keeps given ones (devices moved from Alibaba Cloud). All or none."""
        if product_key not in self._products:
            raise RegistryError(f"no product {product_key}", "not_found")
        given = secrets or {}
        created = {
            naming.check_device_name(name): given.get(name) or naming.new_device_secret()
            for name in names
        }
        sealed = {
            name: self._box.seal(secret, _device_context(product_key, name))
            for name, secret in created.items()
        }
        at = now_ms()

        def insert() -> dict[str, int]:
            rows = [
                {
                    "product_key": product_key,
                    "device_name": name,
                    "device_secret": sealed[name],
                    "state": DeviceState.INACTIVE.value,
                    "created_at": at,
                }
                for name in created
            ]
            with self._engine.begin() as db:
                try:
                    db.execute(t.devices.insert(), rows)
                except sa.exc.IntegrityError:
                    raise RegistryError(
                        f"a device of that list exists in product {product_key}", "conflict"
                    ) from None
                ids: dict[str, int] = {}
                names = list(created)
                for start in range(0, len(names), 500):  # within any SQL variable limit
                    found = db.execute(
                        sa.select(t.devices.c.id, t.devices.c.device_name).where(
                            t.devices.c.product_key == product_key,
                            t.devices.c.device_name.in_(names[start : start + 500]),
                        )
                    )
                    ids.update({row.device_name: row.id for row in found})
                return ids

        ids = await self._run(insert)
        for name, device_id in ids.items():
            self._devices[product_key, name] = _DeviceAuth(
                id=device_id, sealed=sealed[name], state=DeviceState.INACTIVE, ever_online=False
            )
        return created

    async def get_device(
        self, product_key: str, device_name: str, *, with_secret: bool = False
    ) -> Device:
        key = (product_key, device_name)
        if key not in self._devices:
            raise RegistryError(f"no device {device_name} in product {product_key}", "not_found")
        devices = await self._query_devices(
            DeviceFilter(product_key=product_key), only=key, limit=1
        )
        if not devices:
            raise RegistryError(f"no device {device_name} in product {product_key}", "not_found")
        device = devices[0]
        if with_secret:
            credentials = await self.credentials(product_key, device_name)
            assert credentials is not None
            device = msgspec.structs.replace(device, device_secret=credentials.device_secret)
        return device

    async def list_devices(self, where: DeviceFilter = ALL_DEVICES) -> list[Device]:
        return await self._query_devices(where)

    async def count_devices(self, where: DeviceFilter = ALL_DEVICES) -> int:
        def count() -> int:
            self._flush_presence()
            query = self._filtered(sa.select(sa.func.count()).select_from(t.devices), where)
            with self._engine.connect() as db:
                return int(db.execute(query).scalar_one())

        return await self._run(count)

    def _filtered(self, query: Any, where: DeviceFilter) -> Any:
        d = t.devices
        if where.product_key is not None:
            query = query.where(d.c.product_key == where.product_key)
        if where.state is not None:
            query = query.where(d.c.state == DeviceState(where.state).value)
        if where.name_prefix:
            escaped = where.name_prefix.replace("\\", "\\\\").replace("%", "\\%")
            escaped = escaped.replace("_", "\\_")
            query = query.where(d.c.device_name.like(escaped + "%", escape="\\"))
        if where.group is not None:
            members = (
                sa.select(t.group_members.c.device_id)
                .join(t.device_groups, t.device_groups.c.id == t.group_members.c.group_id)
                .where(t.device_groups.c.name == where.group)
            )
            query = query.where(d.c.id.in_(members))
        for key, value in (where.tags or {}).items():
            tagged = sa.select(t.device_tags.c.device_id).where(
                t.device_tags.c.key == key, t.device_tags.c.value == value
            )
            query = query.where(d.c.id.in_(tagged))
        if where.gateway is not None:
            parent = (
                sa.select(d.c.id)
                .where(d.c.product_key == where.gateway[0], d.c.device_name == where.gateway[1])
                .scalar_subquery()
            )
            query = query.where(d.c.gateway_id == parent)
        return query

    async def _query_devices(
        self, where: DeviceFilter, *, only: DeviceKey | None = None, limit: int | None = None
    ) -> list[Device]:
        def query() -> list[Device]:
            self._flush_presence()
            d = t.devices
            parent = d.alias("parent")
            select = sa.select(
                d, parent.c.product_key.label("gw_pk"), parent.c.device_name.label("gw_dn")
            ).select_from(d.outerjoin(parent, parent.c.id == d.c.gateway_id))
            select = self._filtered(select, where)
            if only is not None:
                select = select.where(d.c.product_key == only[0], d.c.device_name == only[1])
            select = select.order_by(d.c.id).limit(limit or where.limit).offset(where.offset)
            with self._engine.connect() as db:
                rows = list(db.execute(select))
                ids = [row.id for row in rows]
                tags: dict[int, dict[str, str]] = {i: {} for i in ids}
                firmware: dict[int, dict[str, str]] = {i: {} for i in ids}
                if ids:
                    for tag in db.execute(
                        sa.select(t.device_tags).where(t.device_tags.c.device_id.in_(ids))
                    ):
                        tags[tag.device_id][tag.key] = tag.value
                    for fw in db.execute(
                        sa.select(t.device_firmware).where(t.device_firmware.c.device_id.in_(ids))
                    ):
                        firmware[fw.device_id][fw.module] = fw.version
            return [_device(row, tags[row.id], firmware[row.id]) for row in rows]

        return await self._run(query)

    async def set_enabled(self, product_key: str, device_name: str, enabled: bool) -> Device:
        """Disable (refused at CONNECT from now on; an online device is disconnected by the
        ``on_device_disabled`` callbacks) or enable again."""
        key = (product_key, device_name)
        auth = self._devices.get(key)
        if auth is None:
            raise RegistryError(f"no device {device_name} in product {product_key}", "not_found")
        event = Event.ENABLED if enabled else Event.DISABLED
        state = next_state(auth.state, event, ever_online=auth.ever_online)

        def update() -> None:
            self._flush_presence()
            with self._engine.begin() as db:
                db.execute(t.devices.update().where(t.devices.c.id == auth.id).values(state=state))

        await self._run(update)
        auth.state = state
        if not enabled:
            for callback in self.on_device_disabled:
                callback(product_key, device_name)
        return await self.get_device(product_key, device_name)

    async def delete_device(self, product_key: str, device_name: str) -> None:
        """Delete a device (its tags, firmware and group memberships go with it; its
        sub-devices lose their gateway). An online device is disconnected first."""
        key = (product_key, device_name)
        auth = self._devices.get(key)
        if auth is None:
            raise RegistryError(f"no device {device_name} in product {product_key}", "not_found")

        def delete() -> None:
            self._flush_presence()
            with self._engine.begin() as db:
                db.execute(t.devices.delete().where(t.devices.c.id == auth.id))

        await self._run(delete)
        del self._devices[key]
        for callback in self.on_device_disabled:
            callback(product_key, device_name)

    async def update_device(
        self,
        product_key: str,
        device_name: str,
        *,
        nickname: str | None = None,
        location: Location | None = None,
        tags: Mapping[str, str] | None = None,
        remove_tags: Iterable[str] = (),
        firmware: Mapping[str, str] | None = None,
    ) -> Device:
        """Change a device's nickname, location, tags (added or replaced by key, or removed)
        or reported firmware versions."""
        if nickname:
            naming.check_nickname(nickname)
        key = (product_key, device_name)

        def update() -> None:
            with self._engine.begin() as db:
                device_id = self._device_id(db, key)
                values: dict[str, Any] = {}
                if nickname is not None:
                    values["nickname"] = nickname
                if location is not None:
                    values.update(lat=location.lat, lon=location.lon, district=location.district)
                if values:
                    db.execute(t.devices.update().where(t.devices.c.id == device_id).values(values))
                if tags:
                    self._write_tags(db, device_id, tags)
                gone = list(remove_tags)
                if gone:
                    db.execute(
                        t.device_tags.delete().where(
                            t.device_tags.c.device_id == device_id, t.device_tags.c.key.in_(gone)
                        )
                    )
                for module, version in (firmware or {}).items():
                    db.execute(
                        t.device_firmware.delete().where(
                            t.device_firmware.c.device_id == device_id,
                            t.device_firmware.c.module == module,
                        )
                    )
                    db.execute(
                        t.device_firmware.insert().values(
                            device_id=device_id, module=module, version=version
                        )
                    )

        await self._run(update)
        return await self.get_device(product_key, device_name)

    @staticmethod
    def _write_tags(db: sa.Connection, device_id: int, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            if not key or len(key) > 64 or len(value) > 256:
                raise RegistryError(
                    f"tag {key!r}: keys are 1 to 64 characters, values up to 256", "invalid"
                )
        db.execute(
            t.device_tags.delete().where(
                t.device_tags.c.device_id == device_id, t.device_tags.c.key.in_(list(tags))
            )
        )
        db.execute(
            t.device_tags.insert(),
            [{"device_id": device_id, "key": k, "value": v} for k, v in tags.items()],
        )

    async def set_gateway(self, sub: DeviceKey, gateway: DeviceKey | None) -> None:
        """Put a sub-device under a gateway (topology add) or take it out (``None``)."""

        def update() -> None:
            with self._engine.begin() as db:
                sub_id = self._device_id(db, sub)
                gateway_id = self._device_id(db, gateway) if gateway else None
                db.execute(
                    t.devices.update().where(t.devices.c.id == sub_id).values(gateway_id=gateway_id)
                )

        await self._run(update)

    # -- presence ---------------------------------------------------------------------------

    def device_connected(self, product_key: str, device_name: str, address: str) -> None:
        self._note_presence((product_key, device_name), Event.CONNECTED, address)

    def device_disconnected(self, product_key: str, device_name: str) -> None:
        self._note_presence((product_key, device_name), Event.DISCONNECTED, "")

    def _note_presence(self, key: DeviceKey, event: Event, address: str) -> None:
        auth = self._devices.get(key)
        if auth is None:
            return
        try:
            auth.state = next_state(auth.state, event, ever_online=auth.ever_online)
        except RegistryError:
            log.warning("%s&%s: %s while %s", key[1], key[0], event.value, auth.state.value)
            return
        if event is Event.CONNECTED:
            auth.ever_online = True
        with self._presence_lock:
            previous = self._presence.get(key)
            ip = address.rsplit(":", 1)[0] if address else (previous[1] if previous else "")
            self._presence[key] = (event, ip, now_ms())
        if self._presence_timer is None:
            loop = asyncio.get_running_loop()
            self._presence_timer = loop.call_later(PRESENCE_FLUSH_DELAY, self._schedule_flush)

    def _schedule_flush(self) -> None:
        self._presence_timer = None
        self._in_background(self._flush_presence)

    async def flush_presence(self) -> None:
        if self._presence_timer is not None:
            self._presence_timer.cancel()
            self._presence_timer = None
        await self._run(self._flush_presence)

    def _flush_presence(self) -> None:
        """On the registry thread. The in-memory state is already right; this writes it."""
        with self._presence_lock:
            pending, self._presence = self._presence, {}
        if not pending:
            return
        rows = []
        for (pk, dn), (event, ip, at) in pending.items():
            auth = self._devices.get((pk, dn))
            if auth is None:
                continue
            online_at = at if event is Event.CONNECTED else None
            rows.append((auth.state.value, ip or None, online_at, online_at, auth.id))
        # The driver's own executemany: this runs at the rate devices come and go, and
        # SQLAlchemy's per-row parameter handling cost more than the database's work.
        with self._engine.begin() as db:
            if self._engine.dialect.paramstyle == "qmark":
                db.exec_driver_sql(_PRESENCE_SQL.format(*"?????"), rows)
            else:
                names = ("state", "ip", "at", "first", "id")
                placeholders = [f"%({name})s" for name in names]
                db.exec_driver_sql(
                    _PRESENCE_SQL.format(*placeholders),
                    [dict(zip(names, row, strict=True)) for row in rows],
                )

    # -- shadows ----------------------------------------------------------------------------

    async def load_shadows(self) -> dict[DeviceKey, Shadow]:
        def query() -> dict[DeviceKey, Shadow]:
            d, sh = t.devices, t.shadows
            select = sa.select(d.c.product_key, d.c.device_name, sh.c.document).join(
                sh, sh.c.device_id == d.c.id
            )
            with self._engine.connect() as db:
                return {
                    (row.product_key, row.device_name): msgspec.json.decode(
                        row.document, type=Shadow
                    )
                    for row in db.execute(select)
                }

        return await self._run(query)

    def save_shadow(self, product_key: str, device_name: str, shadow: Shadow) -> None:
        """Queue the write (the registry thread keeps the order); a failure is logged."""
        auth = self._devices.get((product_key, device_name))
        if auth is None:
            return
        document = msgspec.json.encode(shadow).decode()

        def write() -> None:
            sh = t.shadows
            with self._engine.begin() as db:
                db.execute(sh.delete().where(sh.c.device_id == auth.id))
                db.execute(
                    sh.insert().values(
                        device_id=auth.id,
                        document=document,
                        version=shadow.version,
                        updated_at=now_ms(),
                    )
                )

        self._in_background(write)

    def _in_background(self, write: Callable[[], None]) -> None:
        """Run ``write`` on the registry thread without waiting; a failure is logged."""
        future = asyncio.ensure_future(self._run(write))
        self._writes.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[Any]) -> None:
        self._writes.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("registry: a write failed", exc_info=future.exception())

    # -- groups -----------------------------------------------------------------------------

    async def create_group(self, name: str, description: str = "") -> Group:
        if not name.strip() or len(name) > 64:
            raise RegistryError("a group name is 1 to 64 characters", "invalid")

        def insert() -> None:
            with self._engine.begin() as db:
                try:
                    db.execute(
                        t.device_groups.insert().values(
                            name=name, description=description, created_at=now_ms()
                        )
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(f"group {name} exists", "conflict") from None

        await self._run(insert)
        return await self.get_group(name)

    async def list_groups(self) -> list[Group]:
        def query() -> list[Group]:
            g, m = t.device_groups, t.group_members
            size = sa.select(sa.func.count()).where(m.c.group_id == g.c.id).scalar_subquery()
            with self._engine.connect() as db:
                rows = db.execute(sa.select(g, size.label("size")).order_by(g.c.name))
                return [
                    Group(
                        name=r.name, description=r.description, created_at=r.created_at, size=r.size
                    )
                    for r in rows
                ]

        return await self._run(query)

    async def get_group(self, name: str) -> Group:
        for group in await self.list_groups():
            if group.name == name:
                return group
        raise RegistryError(f"no group {name}", "not_found")

    async def delete_group(self, name: str) -> None:
        def delete() -> None:
            with self._engine.begin() as db:
                result = db.execute(t.device_groups.delete().where(t.device_groups.c.name == name))
                if result.rowcount == 0:
                    raise RegistryError(f"no group {name}", "not_found")

        await self._run(delete)

    async def add_to_group(self, name: str, members: Iterable[DeviceKey]) -> Group:
        return await self._change_group(name, members, add=True)

    async def remove_from_group(self, name: str, members: Iterable[DeviceKey]) -> Group:
        return await self._change_group(name, members, add=False)

    async def _change_group(self, name: str, members: Iterable[DeviceKey], *, add: bool) -> Group:
        keys = list(members)

        def change() -> None:
            m = t.group_members
            with self._engine.begin() as db:
                group_id = db.execute(
                    sa.select(t.device_groups.c.id).where(t.device_groups.c.name == name)
                ).scalar_one_or_none()
                if group_id is None:
                    raise RegistryError(f"no group {name}", "not_found")
                for key in keys:
                    device_id = self._device_id(db, key)
                    db.execute(
                        m.delete().where(m.c.group_id == group_id, m.c.device_id == device_id)
                    )
                    if add:
                        db.execute(m.insert().values(group_id=group_id, device_id=device_id))

        await self._run(change)
        return await self.get_group(name)


_PRESENCE_SQL = (
    "UPDATE devices SET state = {0}, last_ip = COALESCE({1}, last_ip), "
    "last_online_at = COALESCE({2}, last_online_at), "
    "first_online_at = COALESCE(first_online_at, {3}) WHERE id = {4}"
)


def _device(row: Any, tags: dict[str, str], firmware: dict[str, str]) -> Device:
    location = None
    if row.lat is not None and row.lon is not None:
        location = Location(lat=row.lat, lon=row.lon, district=row.district)
    gateway = (row.gw_pk, row.gw_dn) if row.gw_pk is not None else None
    return Device(
        product_key=row.product_key,
        device_name=row.device_name,
        nickname=row.nickname,
        state=DeviceState(row.state),
        created_at=row.created_at,
        first_online_at=row.first_online_at,
        last_online_at=row.last_online_at,
        last_ip=row.last_ip,
        gateway=gateway,
        tags=tags,
        firmware=firmware,
        location=location,
    )
