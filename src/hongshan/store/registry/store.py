"""The registry on SQLAlchemy Core: products and devices (with their tags, firmware and
location), and the tables beside them: ``groups``, ``shadows``, presence, the ThingsBoard
logins of devices (``credentials``), ``rules``, ``alarms`` and the routes of their
notifications, ``commands``, ``scenes``, products' ``alarm_conditions``, ``users`` and their
``sessions``, the failed logins that lock usernames out (``lockouts``), ``api_keys`` and the
``audit`` log.

Every statement runs on the database's one thread (``database.Database``). What the broker
needs on every CONNECT and every message — a device's sealed secret and state, a product's
protocol, topic classes and thing model — is kept in memory by the registry's directory
(``things.directory.Directory``), loaded at start and told of this class's own writes once
they commit, so a CONNECT costs no query; so are the access tokens and basic MQTT credentials
(``credentials.CredentialTable``), and the devices' and groups' tags and groups' members
that rules and alarm conditions read on each message (``things.tag_directory.TagDirectory``).
(In a cluster, where several processes write one PostgreSQL registry, those copies will be
refreshed by registry events on the bus; until then each process sees only its own writes.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import msgspec
import sqlalchemy as sa

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.identity.secret_box import SecretBox, SecretUnreadable
from hongshan.store.registry import schema as t
from hongshan.store.registry.alarm_conditions import AlarmConditionTable
from hongshan.store.registry.alarms import AlarmTable, RouteTable
from hongshan.store.registry.api_keys import KeyTable
from hongshan.store.registry.audit import AuditTable
from hongshan.store.registry.commands import CommandTable
from hongshan.store.registry.credentials import CredentialTable, Pending
from hongshan.store.registry.database import Database, now_ms, row_id_of
from hongshan.store.registry.documents import DeviceDocuments
from hongshan.store.registry.groups import GroupTable
from hongshan.store.registry.lockouts import LockoutTable
from hongshan.store.registry.presence import PresenceWriter
from hongshan.store.registry.properties import PropertyTable
from hongshan.store.registry.reach import owned, tenant_known
from hongshan.store.registry.rules import RuleTable
from hongshan.store.registry.scenes import SceneTable
from hongshan.store.registry.tenants import TenantTable
from hongshan.store.registry.users import SessionTable, UserTable
from hongshan.things import device_query, first_seen, naming
from hongshan.things.device_query import device_of, place_of
from hongshan.things.directory import (
    DeviceKey,
    DeviceRecord,
    Directory,
    ProductView,
    device_context,
    product_context,
)
from hongshan.things.first_seen import FirstSeen
from hongshan.things.lifecycle import Event
from hongshan.things.model import (
    EVERYWHERE,
    DataFormat,
    Device,
    DeviceFilter,
    DevicePlace,
    DeviceState,
    Location,
    MqttBasic,
    NodeType,
    Product,
    Protocol,
    Reach,
    RegistryError,
    TopicClass,
)
from hongshan.things.tag_directory import TagDirectory
from hongshan.things.tsl import ThingModel
from hongshan.twin.desired import Desired
from hongshan.twin.shadow import Shadow

log = logging.getLogger("hongshan.registry")

ALL_DEVICES = DeviceFilter(limit=1_000_000)


class SQLRegistry:
    """Products and devices, their credentials, tags, groups and presence, in SQL (SQLite or
    PostgreSQL). Owns the registry's database, its tables' small stores, and the one
    ``Directory`` and ``TagDirectory`` the message path reads with no query: loaded at open,
    told of each change once it is committed (a group's, by ``groups``). Never speaks MQTT or
    HTTP, and leaves the domain's rules (a device's lifecycle, who may log in) to the
    directory.

    The directory's questions are asked of the registry too, by the dialects (which are handed
    the registry whole) and by the tests: ``product_view``, ``thing_model_of``, ``is_online``
    and the rest are the directory's own bound methods, set on the instance, so that on the
    message path each is still one call and one dict lookup."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._engine = db.engine
        self._run = db.run
        self._box = box
        self.directory = directory = Directory(box)
        self._devices = devices = directory.devices  # read here; changed by the directory
        self.product_view = directory.product_view
        self.thing_model_of = directory.thing_model_of
        self.node_type = directory.node_type
        self.device_known = directory.device_known
        self.is_online = directory.is_online
        self.activated = directory.activated
        self.credentials = directory.credentials
        self.registration_secret = directory.registration_secret
        self.online_devices = directory.online_devices
        self._presence = PresenceWriter(db, devices)
        self._logins = CredentialTable(db, devices, box)
        self.tags = tags = TagDirectory()
        self.groups = GroupTable(db, tags)
        self.shadows = DeviceDocuments(
            db, devices, t.shadows, Shadow, lambda shadow: {"version": shadow.version}
        )
        self.desired = DeviceDocuments(db, devices, t.desired_properties, Desired)
        self.properties = PropertyTable(db, devices)
        self.rules = RuleTable(db, box)
        self.alarms = AlarmTable(db)
        self.alarm_routes = RouteTable(db, box)
        self.commands = CommandTable(db)
        self.scenes = SceneTable(db, box)
        self.alarm_conditions = AlarmConditionTable(db)
        self.users = UserTable(db)
        self.sessions = SessionTable(db)
        self.lockouts = LockoutTable(db)
        self.api_keys = KeyTable(db)
        self.audit = AuditTable(db)
        self.tenants = TenantTable(db)
        self._closed = False
        # (pk, dn) of a device disabled or deleted (it must be cut off), and of one deleted
        # (what is kept of it in memory must go)
        self.on_device_disabled: list[Callable[[str, str], None]] = []
        self.on_device_deleted: list[Callable[[str, str], None]] = []

    @property
    def problem(self) -> str | None:
        """Why the last write nobody waited for failed (presence, latest values, shadows),
        until one succeeds (for the health endpoint)."""
        return self._db.problem

    @classmethod
    async def open(cls, url: str, box: SecretBox, *, schema: str | None = None) -> SQLRegistry:
        """Open (and migrate) the database and load what the message path keeps in memory."""
        registry = cls(await Database.open(url, schema=schema), box)
        try:
            await registry._run(registry._load)
        except BaseException:
            await registry._db.close()
            raise
        return registry

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._presence.flush_now()
        except sa.exc.SQLAlchemyError as exc:  # stopping goes on: said, and the rest closed
            log.error("registry: devices' presence not saved at stop: %s", exc)
        await self._db.close()

    def _load(self) -> None:
        directory = self.directory
        with self._engine.connect() as db:
            for row in db.execute(sa.select(t.products)):
                directory.put_product(row.product_key, self._product_view(row))
            d = t.devices
            named: dict[int, DeviceKey] = {}
            gateways: dict[DeviceKey, int] = {}
            for row in db.execute(sa.select(d).order_by(d.c.id)):
                key = (row.product_key, row.device_name)
                named[row.id] = key
                if row.gateway_id is not None:
                    gateways[key] = row.gateway_id
                record = DeviceRecord(
                    id=row.id,
                    sealed=row.device_secret,
                    state=DeviceState(row.state),
                    ever_online=row.first_online_at is not None,
                    place=(row.lat, row.lon, row.district),
                    nickname=row.nickname,
                    created_at=row.created_at,
                    first_online_at=row.first_online_at,
                    last_online_at=row.last_online_at,
                    last_ip=row.last_ip,
                )
                directory.add_device(key, record)
            for key, gateway_id in gateways.items():
                directory.set_gateway([key], named[gateway_id])
            firmware: dict[int, dict[str, str]] = {}
            for row in db.execute(sa.select(t.device_firmware)):
                firmware.setdefault(row.device_id, {})[row.module] = row.version
            for device_id, versions in firmware.items():
                directory.report_firmware(named[device_id], versions)
            self._load_tags(db, named)
            self.groups.load(db)
            no_password = self._logins.load(db)
        unreadable = directory.open_secrets()
        if unreadable and len(unreadable) == len(self._devices):
            raise SecretUnreadable(
                f"no device secret opens with this key ({len(unreadable)} devices): is "
                "secret.key (or HONGSHAN_SECRET_KEY) the one the registry was written with?"
            )
        for pk, dn in unreadable[:10]:
            log.error("registry: the secret of %s&%s does not open; it cannot log in", dn, pk)
        for pk, dn in no_password[:10]:
            log.error(
                "registry: the MQTT password of %s&%s does not open; it cannot log in", dn, pk
            )
        log.info(
            "registry: %d products, %d devices", len(directory.products), len(directory.devices)
        )

    def _load_tags(self, db: sa.Connection, named: Mapping[int, DeviceKey]) -> None:
        tags: dict[int, dict[str, str]] = {}
        for row in db.execute(sa.select(t.device_tags)):
            tags.setdefault(row.device_id, {})[row.key] = row.value
        for device_id, own in tags.items():
            if device_id in named:
                self.tags.change_device(named[device_id], own)

    # -- the logins the message path finds (in memory, no query) ----------------------------

    def device_by_token(self, token: str) -> DeviceKey | None:
        """The device whose access token this is (a thingsboard product's device logging in
        with the token as its MQTT username), whatever its state; None when none is."""
        return self._logins.by_token(token)

    def device_by_basic(
        self, client_id: str | None, username: str | None, password: str | bytes | None
    ) -> DeviceKey | None:
        """The device these basic MQTT credentials are (ThingsBoard's MQTT_BASIC), whatever
        its state: found by client id and username together, else by username alone, else by
        client id alone, as ThingsBoard does; a login that has a password wants it (compared
        in constant time), one without takes any. None when no device matches."""
        if isinstance(password, bytes):
            try:
                password = password.decode()
            except UnicodeDecodeError:
                return None
        return self._logins.by_basic(client_id or "", username or "", password or "")

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
            protocol=Protocol(row.protocol),
            schemaless=row.schemaless,
            tenant=row.tenant,
        )

    def _product(self, row: Any, *, with_secret: bool = False) -> Product:
        secret = None
        if with_secret:
            secret = self._box.open(row.product_secret, product_context(row.product_key))
        return Product(
            product_key=row.product_key,
            name=row.name,
            description=row.description,
            node_type=NodeType(row.node_type),
            data_format=DataFormat(row.data_format),
            dynamic_registration=row.dynamic_registration,
            topic_classes=tuple(msgspec.convert(row.topic_classes, list[TopicClass])),
            created_at=row.created_at,
            protocol=Protocol(row.protocol),
            schemaless=row.schemaless,
            product_secret=secret,
            tenant=row.tenant,
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
        protocol: Protocol = Protocol.ALINK,
        schemaless: bool = False,
        tenant: str = DEFAULT_TENANT,
    ) -> Product:
        """A new product of ``tenant``; ``product_key``/``product_secret`` keep an existing
        one's (a product moved from Alibaba Cloud, whose devices' firmware holds its key).
        ``protocol`` is what its devices speak, for good; a ``schemaless`` one's thing model
        grows from what they report (``add_first_seen_properties``)."""
        if not name.strip():
            raise RegistryError("a product needs a name", "invalid")
        pk = naming.check_product_key(product_key) if product_key else naming.new_product_key()
        topic_classes = [*topic_classes]
        for topic_class in topic_classes:
            naming.check_topic_class(topic_class.pattern)
        secret = product_secret or naming.new_product_secret()
        values = {
            "product_key": pk,
            "name": name,
            "description": description,
            "node_type": NodeType(node_type).value,
            "data_format": DataFormat(data_format).value,
            "dynamic_registration": dynamic_registration,
            "product_secret": self._box.seal(secret, product_context(pk)),
            "topic_classes": msgspec.to_builtins(list(topic_classes)),
            "thing_model": msgspec.json.encode(thing_model.to_json()).decode()
            if thing_model
            else None,
            "created_at": now_ms(),
            "protocol": Protocol(protocol).value,
            "schemaless": schemaless,
            "tenant": tenant,
        }

        def insert() -> Any:
            with self._engine.begin() as db:
                tenant_known(db, tenant)
                try:
                    db.execute(t.products.insert().values(values))
                except sa.exc.IntegrityError:
                    raise RegistryError(f"product {pk} exists", "conflict") from None
                return db.execute(sa.select(t.products).where(t.products.c.product_key == pk)).one()

        row = await self._run(insert)
        self.directory.put_product(pk, self._product_view(row))
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

    async def list_products(self, reach: Reach = EVERYWHERE) -> list[Product]:
        """The products of ``reach``'s tenant (every one's for the admin token's)."""
        p = t.products

        def query() -> list[Any]:
            select = sa.select(p).where(owned(reach, p.c.tenant)).order_by(p.c.created_at)
            with self._engine.connect() as db:
                return list(db.execute(select))

        return [self._product(row) for row in await self._run(query)]

    async def update_product(self, product_key: str, **changes: Any) -> Product:
        """Change a product's name, description, dynamic registration, topic classes, thing
        model (``thing_model=None`` removes it) or whether it is schemaless."""
        allowed = {
            "name",
            "description",
            "dynamic_registration",
            "topic_classes",
            "thing_model",
            "schemaless",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise RegistryError(f"cannot change {', '.join(sorted(unknown))}", "invalid")
        values = dict(changes)
        if not values:  # (an UPDATE with nothing to SET is not SQL)
            return await self.get_product(product_key)
        for topic_class in values.get("topic_classes") or ():
            naming.check_topic_class(topic_class.pattern)
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
        self.directory.put_product(product_key, self._product_view(row))
        return self._product(row)

    async def thing_model(self, product_key: str) -> ThingModel | None:
        row = await self._run(self._product_row, product_key)
        return ThingModel.from_json(row.thing_model) if row.thing_model else None

    async def add_first_seen_properties(
        self,
        product_key: str,
        values: Mapping[str, Any],
        *,
        access_mode: Literal["r", "rw"] = "r",
    ) -> FirstSeen:
        """Add to a schemaless product's thing model a property for each key of ``values`` it
        does not have, typed by its value (``things.first_seen``). Keys the model has cost no
        query. Returns what was added, and what could not be and why."""
        view = self.directory.product_view(product_key)
        if view is None:
            raise RegistryError(f"no product {product_key}", "not_found")
        if not view.schemaless:
            raise RegistryError(f"product {product_key} is not schemaless", "invalid")
        known = view.thing_model.property_map if view.thing_model is not None else {}
        if all(key in known for key in values):
            return FirstSeen()

        def update() -> tuple[ThingModel | None, FirstSeen]:
            # read, grown and written in one go on the one thread: two devices' first keys at
            # once are both kept
            with self._engine.begin() as db:
                stored = db.execute(
                    sa.select(t.products.c.thing_model).where(
                        t.products.c.product_key == product_key
                    )
                ).scalar_one()
                model = ThingModel.from_json(stored) if stored else None
                grown, seen = first_seen.extend(model, product_key, values, access_mode=access_mode)
                if seen.added and grown is not None:
                    document = msgspec.json.encode(grown.to_json()).decode()
                    db.execute(
                        t.products.update()
                        .where(t.products.c.product_key == product_key)
                        .values(thing_model=document)
                    )
                return grown, seen

        grown, seen = await self._run(update)
        current = self.directory.product_view(product_key)
        if seen.added and current is not None:
            self.directory.put_product(
                product_key, msgspec.structs.replace(current, thing_model=grown)
            )
        return seen

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
        self.directory.drop_product(product_key)

    # -- devices ----------------------------------------------------------------------------

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
        access_token: str | None = None,
    ) -> Device:
        """A new device with a fresh secret (returned once, in ``Device.device_secret``); a name is
        generated when none is given, as Alibaba's batch creation does. A thingsboard product's
        device also gets an access token, ``access_token`` or a fresh one (returned once too,
        in ``Device.access_token``)."""
        view = self.directory.product_view(product_key)
        if view is None:
            raise RegistryError(f"no product {product_key}", "not_found")
        dn = naming.check_device_name(device_name) if device_name else naming.new_device_name()
        if nickname:
            naming.check_nickname(nickname)
        token = self._token_for(view, (product_key, dn), access_token)
        secret = device_secret or naming.new_device_secret()
        sealed = self._box.seal(secret, device_context(product_key, dn))
        at = now_ms()

        def insert() -> int:
            with self._engine.begin() as db:
                gateway_id = row_id_of(db, gateway) if gateway else None
                try:
                    device_id = db.execute(
                        t.devices.insert()
                        .values(
                            product_key=product_key,
                            device_name=dn,
                            device_secret=sealed,
                            nickname=nickname,
                            state=DeviceState.INACTIVE.value,
                            created_at=at,
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
                if token is not None:
                    self._logins.write(db, {(product_key, dn): device_id}, [token])
                return int(device_id)

        device_id = await self._run(insert)
        if token is not None:
            self._logins.remember([token])
        record = DeviceRecord(
            id=device_id,
            sealed=sealed,
            state=DeviceState.INACTIVE,
            ever_online=False,
            place=(location.lat, location.lon, location.district) if location else (None, None, ""),
            nickname=nickname,
            created_at=at,
            gateway=gateway,
        )
        self.directory.add_device((product_key, dn), record)
        if tags:
            self.tags.change_device((product_key, dn), tags)
        device = await self.get_device(product_key, dn)
        return msgspec.structs.replace(
            device, device_secret=secret, access_token=token.token if token else None
        )

    def _token_for(self, view: ProductView, device: DeviceKey, given: str | None) -> Pending | None:
        """The access token a new device of this product gets: none for an Alink product."""
        if view.protocol is Protocol.THINGSBOARD:
            return self._logins.token(device, given)
        if given is not None:
            raise RegistryError(
                f"product {device[0]} speaks {view.protocol}: its devices log in with their "
                "device secret, not an access token",
                "invalid",
            )
        return None

    async def create_devices(
        self, product_key: str, names: Iterable[str], *, secrets: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Many devices in one transaction (Alibaba's batch registration); returns each name's
        secret. ``secrets`` keeps given ones (devices moved from Alibaba Cloud). All or none. A
        thingsboard product's devices get fresh access tokens (``access_tokens`` reads them)."""
        view = self.directory.product_view(product_key)
        if view is None:
            raise RegistryError(f"no product {product_key}", "not_found")
        given = secrets or {}
        created = {
            naming.check_device_name(name): given.get(name) or naming.new_device_secret()
            for name in names
        }
        sealed = {
            name: self._box.seal(secret, device_context(product_key, name))
            for name, secret in created.items()
        }
        at = now_ms()
        tokens = [
            pending
            for name in created
            if (pending := self._token_for(view, (product_key, name), None)) is not None
        ]

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
                keyed = {(product_key, name): device_id for name, device_id in ids.items()}
                self._logins.write(db, keyed, tokens)
                return ids

        ids = await self._run(insert)
        self._logins.remember(tokens)
        for name in created:  # (in the order of their ids)
            record = DeviceRecord(
                id=ids[name],
                sealed=sealed[name],
                state=DeviceState.INACTIVE,
                ever_online=False,
                created_at=at,
            )
            self.directory.add_device((product_key, name), record)
        return created

    async def get_device(
        self, product_key: str, device_name: str, *, with_secret: bool = False
    ) -> Device:
        key = (product_key, device_name)
        record = self._devices.get(key)
        if record is None:
            raise RegistryError(f"no device {device_name} in product {product_key}", "not_found")
        device = device_of(key, record, self.tags)
        if with_secret:
            credentials = await self.credentials(product_key, device_name)
            assert credentials is not None
            token, basic = await self._logins.read(key)
            device = msgspec.structs.replace(
                device,
                device_secret=credentials.device_secret,
                access_token=token,
                mqtt_basic=basic,
            )
        return device

    async def access_tokens(self, product_key: str, names: Iterable[str]) -> dict[str, str]:
        """The access tokens of these devices of a thingsboard product, in the clear (for an
        operator: a batch registration's answer); a device with none is left out."""
        found = await self._logins.tokens((product_key, name) for name in names)
        return {key[1]: token for key, token in found.items()}

    async def set_credentials(
        self,
        product_key: str,
        device_name: str,
        *,
        access_token: str | None = None,
        new_access_token: bool = False,
        mqtt_basic: MqttBasic | None = None,
    ) -> Device:
        """Give a thingsboard product's device another login, replacing the one it had: an
        access token (this one, or with ``new_access_token`` a fresh one) or basic MQTT
        credentials. An online device is cut off (``on_device_disabled``), as its old login
        no longer holds. Returns the device with its login."""
        key = (product_key, device_name)
        if key not in self._devices:
            raise RegistryError(f"no device {device_name} in product {product_key}", "not_found")
        view = self.directory.products[product_key]
        if view.protocol is not Protocol.THINGSBOARD:
            raise RegistryError(
                f"product {product_key} speaks {view.protocol}: its devices log in with their "
                "device secret",
                "invalid",
            )
        if (access_token is not None) + new_access_token + (mqtt_basic is not None) != 1:
            raise RegistryError(
                "give one of an access token, a new access token, or basic MQTT credentials",
                "invalid",
            )
        if mqtt_basic is not None:
            await self._logins.replace(self._logins.basic(key, mqtt_basic))
        else:
            await self._logins.replace(self._logins.token(key, access_token))
        for callback in self.on_device_disabled:
            callback(product_key, device_name)
        return await self.get_device(product_key, device_name, with_secret=True)

    def device_page(self, where: DeviceFilter = ALL_DEVICES) -> tuple[list[Device], int]:
        """The devices ``where`` selects (a page of them) and how many it selects in all:
        from memory (``things.device_query``), no query."""
        found, total = device_query.select(self.directory, self.tags, where)
        return [device_of(key, record, self.tags) for key, record in found], total

    async def list_devices(self, where: DeviceFilter = ALL_DEVICES) -> list[Device]:
        return self.device_page(where)[0]

    async def count_devices(self, where: DeviceFilter = ALL_DEVICES) -> int:
        return self.device_page(msgspec.structs.replace(where, limit=0))[1]

    async def device_places(self, where: DeviceFilter = ALL_DEVICES) -> list[DevicePlace]:
        """Name and place of each device ``where`` selects, without the rest of it (the
        console's map of a town's lamps): from memory."""
        found, _ = device_query.select(self.directory, self.tags, where)
        return [place_of(key, record) for key, record in found]

    async def set_enabled(self, product_key: str, device_name: str, enabled: bool) -> Device:
        """Disable (refused at CONNECT from now on; an online device is disconnected by the
        ``on_device_disabled`` callbacks) or enable again."""
        key = (product_key, device_name)
        state = self.directory.state_after(key, Event.ENABLED if enabled else Event.DISABLED)
        device_id = self._devices[key].id

        def update() -> None:
            self._presence.flush()
            with self._engine.begin() as db:
                db.execute(
                    t.devices.update().where(t.devices.c.id == device_id).values(state=state)
                )

        await self._run(update)
        self.directory.set_state(key, state)
        if not enabled:
            for callback in self.on_device_disabled:
                callback(product_key, device_name)
        return await self.get_device(product_key, device_name)

    async def delete_device(self, product_key: str, device_name: str) -> None:
        """Delete a device (its tags, firmware and group memberships go with it; its
        sub-devices lose their gateway). An online device is disconnected first."""
        key = (product_key, device_name)
        record = self._devices.get(key)
        if record is None:
            raise RegistryError(f"no device {device_name} in product {product_key}", "not_found")

        def delete() -> None:
            self._presence.flush()
            with self._engine.begin() as db:
                db.execute(t.devices.delete().where(t.devices.c.id == record.id))

        await self._run(delete)
        self.directory.drop_device(key)
        self.tags.drop_device(key)
        self._logins.forget(key)
        for callback in (*self.on_device_disabled, *self.on_device_deleted):
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
        gone = list(remove_tags)

        def update() -> None:
            with self._engine.begin() as db:
                device_id = row_id_of(db, key)
                values: dict[str, Any] = {}
                if nickname is not None:
                    values["nickname"] = nickname
                if location is not None:
                    values.update(lat=location.lat, lon=location.lon, district=location.district)
                if values:
                    db.execute(t.devices.update().where(t.devices.c.id == device_id).values(values))
                if tags:
                    self._write_tags(db, device_id, tags)
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
        if nickname is not None:
            self.directory.rename(key, nickname)
        if location is not None:
            self.directory.move(key, location)
        if firmware:
            self.directory.report_firmware(key, firmware)
        if tags or gone:  # (written in that order: a key in both is removed)
            self.tags.change_device(key, tags or {}, gone)
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

    # -- presence ---------------------------------------------------------------------------

    def device_connected(self, product_key: str, device_name: str, address: str) -> None:
        key = (product_key, device_name)
        ip, at = address.rsplit(":", 1)[0], now_ms()
        if self.directory.apply(key, Event.CONNECTED, ip=ip, at=at):
            self._presence.note(key, ip, at)

    def device_disconnected(self, product_key: str, device_name: str) -> None:
        key = (product_key, device_name)
        if self.directory.apply(key, Event.DISCONNECTED):
            self._presence.note(key, "", None)

    async def bind_gateway(self, gateway: DeviceKey, subs: list[DeviceKey]) -> list[DeviceKey]:
        """Put sub-devices under ``gateway`` (a gateway's topology add), each only if no other
        gateway has it — Alibaba's sub-device has one gateway at a time. Returns those another
        gateway has; then none of ``subs`` was bound (one transaction, all or nothing). Each
        UPDATE carries its own condition, so two gateways racing for one sub-device cannot
        both win."""

        class _Taken(Exception):
            pass

        def update() -> list[DeviceKey]:
            c = t.devices.c
            taken: list[DeviceKey] = []
            try:
                with self._engine.begin() as db:
                    gateway_id = row_id_of(db, gateway)
                    for sub in subs:
                        done = db.execute(
                            t.devices.update()
                            .where(
                                c.id == row_id_of(db, sub),
                                sa.or_(c.gateway_id.is_(None), c.gateway_id == gateway_id),
                            )
                            .values(gateway_id=gateway_id)
                        )
                        if done.rowcount != 1:
                            taken.append(sub)
                    if taken:
                        raise _Taken  # rolls the transaction back
            except _Taken:
                pass
            return taken

        taken = await self._run(update)
        if not taken:
            self.directory.set_gateway(subs, gateway)
        return taken

    async def unbind_gateway(
        self, sub: DeviceKey, gateway: DeviceKey | None = None
    ) -> DeviceKey | None:
        """Take a sub-device out of its gateway's topology: out of ``gateway``'s only (that
        gateway's topology delete), or out of whichever it has (an operator's unbind). Returns
        the gateway it was taken from; None when it had none, or another than ``gateway``. The
        UPDATE names the gateway it read, so it never undoes a binding made meanwhile by
        another gateway. ``RegistryError`` (not_found) when there is no such device."""
        devices = t.devices
        parent = devices.alias("parent")

        def update() -> DeviceKey | None:
            with self._engine.begin() as db:
                sub_id = row_id_of(db, sub)
                row = db.execute(
                    sa.select(parent.c.id, parent.c.product_key, parent.c.device_name)
                    .select_from(devices.join(parent, parent.c.id == devices.c.gateway_id))
                    .where(devices.c.id == sub_id)
                ).one_or_none()
                if row is None:
                    return None
                found = (str(row.product_key), str(row.device_name))
                if gateway is not None and found != gateway:
                    return None
                done = db.execute(
                    devices.update()
                    .where(devices.c.id == sub_id, devices.c.gateway_id == row.id)
                    .values(gateway_id=None)
                )
                return found if done.rowcount == 1 else None

        found = await self._run(update)
        if found is not None:
            self.directory.set_gateway([sub], None)
        return found
