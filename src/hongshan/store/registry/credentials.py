"""The logins of a thingsboard product's devices, as ThingsBoard has them: an access token (the
MQTT username, no password) or basic MQTT credentials (a client id, a username, or both, and
an optional password). A device has one or the other; setting one replaces the other.

``CredentialTable`` owns the ``device_credentials`` table and the indexes a CONNECT is looked
up in, kept in memory so that the lookup costs no query: token digest → device, and (client id,
username) → device and password. It never decides whether a device may connect (disabled or
not is the registry's; which login is tried first is the authenticator's), and it is written
only inside the registry's own transactions, in memory only once they commit.

Secrets are sealed (``SecretBox``) with the device they belong to as context; the token is also
kept as its digest, the index it is found by. Basic passwords are opened at start, as device
secrets are, so that a town's devices reconnecting after a restart cost no decryption each.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.identity.secret_box import SecretBox, SecretUnreadable
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database
from hongshan.things import naming
from hongshan.things.directory import DeviceKey, DeviceRecord
from hongshan.things.model import MqttBasic, RegistryError

TOKEN = "access-token"  # what a token digest is of (``SecretBox.digest``'s context)
Login = tuple[str, str]  # (client id, username), "" for one left out


def _token_context(key: DeviceKey) -> str:
    return f"access-token/{key[0]}/{key[1]}"


def _password_context(key: DeviceKey) -> str:
    return f"mqtt-password/{key[0]}/{key[1]}"


class _Basic(msgspec.Struct, frozen=True):
    device: DeviceKey
    password: str | None  # opened; None when any password (or none) will do


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """A device's new credentials, sealed and digested, to be written then remembered."""

    device: DeviceKey
    row: dict[str, Any]  # the device_credentials row, less device_id
    token: str | None = None
    digest: str | None = None
    login: Login | None = None
    password: str | None = None


class CredentialTable:
    def __init__(
        self, db: Database, devices: Mapping[DeviceKey, DeviceRecord], box: SecretBox
    ) -> None:
        self._db = db
        self._devices = devices
        self._box = box
        self._tokens: dict[str, DeviceKey] = {}  # token digest -> device
        self._logins: dict[Login, _Basic] = {}
        self._held: dict[DeviceKey, str | Login] = {}  # what each device has: digest or login

    def load(self, db: sa.Connection) -> list[DeviceKey]:
        """Read every device's credentials (at start, on the database's thread, once the
        devices are loaded); returns the devices whose password does not open with this key
        (they cannot log in)."""
        names = {record.id: key for key, record in self._devices.items()}
        unreadable = []
        for row in db.execute(sa.select(t.device_credentials)):
            key = names.get(row.device_id)
            if key is None:
                continue
            if row.token_digest is not None:
                self._tokens[row.token_digest] = key
                self._held[key] = row.token_digest
                continue
            login = (row.client_id or "", row.username or "")
            password = None
            if row.password is not None:
                try:
                    password = self._box.open(row.password, _password_context(key))
                except SecretUnreadable:
                    unreadable.append(key)
                    continue
            self._logins[login] = _Basic(key, password)
            self._held[key] = login
        return unreadable

    # -- what a CONNECT asks (in memory) ----------------------------------------------------

    def by_token(self, token: str) -> DeviceKey | None:
        # (a digest equal to a stored one is that token: compared as digests, nothing of the
        # token is given away by how long a lookup takes)
        return self._tokens.get(self._box.digest(token, TOKEN))

    def by_basic(self, client_id: str, username: str, password: str) -> DeviceKey | None:
        """ThingsBoard's order: the client id and username together, then the username alone,
        then the client id alone; a login with a password wants exactly that password."""
        tried: list[Login] = []
        if username:
            tried += [(client_id, username), ("", username)]
        if client_id:
            tried.append((client_id, ""))
        for login in tried:
            found = self._logins.get(login)
            if found is None:
                continue
            if found.password is not None and not hmac.compare_digest(
                found.password.encode(), password.encode()
            ):
                return None
            return found.device
        return None

    # -- writing ----------------------------------------------------------------------------

    def token(self, device: DeviceKey, token: str | None = None) -> Pending:
        """A token for ``device``: this one, or a new one as ThingsBoard makes them. A token
        another device has is refused here (and by the table's unique index, in the end)."""
        token = naming.check_access_token(token) if token else naming.new_access_token()
        digest = self._box.digest(token, TOKEN)
        if self._tokens.get(digest, device) != device:
            raise RegistryError("that access token is another device's", "conflict")
        sealed = self._box.seal(token, _token_context(device))
        row = {
            "token_digest": digest,
            "access_token": sealed,
            "client_id": None,
            "username": None,
            "password": None,
        }
        return Pending(device=device, row=row, token=token, digest=digest)

    def basic(self, device: DeviceKey, credentials: MqttBasic) -> Pending:
        client_id, username = credentials.client_id or "", credentials.username or ""
        password = credentials.password or ""
        naming.check_mqtt_login(client_id, username, password)
        login = (client_id, username)
        found = self._logins.get(login)
        if found is not None and found.device != device:
            raise RegistryError("those basic MQTT credentials are another device's", "conflict")
        sealed = self._box.seal(password, _password_context(device)) if password else None
        row = {
            "token_digest": None,
            "access_token": None,
            "client_id": client_id,
            "username": username,
            "password": sealed,
        }
        return Pending(device=device, row=row, login=login, password=password or None)

    def write(
        self, db: sa.Connection, device_ids: Mapping[DeviceKey, int], pending: Iterable[Pending]
    ) -> None:
        """Write (replacing what they had) inside the caller's transaction, on the thread."""
        rows = [{"device_id": device_ids[p.device], **p.row} for p in pending]
        if not rows:
            return
        db.execute(
            t.device_credentials.delete().where(
                t.device_credentials.c.device_id.in_([row["device_id"] for row in rows])
            )
        )
        try:
            db.execute(t.device_credentials.insert(), rows)
        except sa.exc.IntegrityError:
            raise RegistryError(
                "those credentials are another device's (access token, or client id and username)",
                "conflict",
            ) from None

    def remember(self, pending: Iterable[Pending]) -> None:
        """Once written and committed: the indexes follow."""
        for p in pending:
            self.forget(p.device)
            if p.digest is not None:
                self._tokens[p.digest] = p.device
                self._held[p.device] = p.digest
            elif p.login is not None:
                self._logins[p.login] = _Basic(p.device, p.password)
                self._held[p.device] = p.login

    def forget(self, device: DeviceKey) -> None:
        held = self._held.pop(device, None)
        if isinstance(held, str):
            self._tokens.pop(held, None)
        elif held is not None:
            self._logins.pop(held, None)

    async def read(self, device: DeviceKey) -> tuple[str | None, MqttBasic | None]:
        """The device's token or basic credentials in the clear (an operator asked)."""
        record = self._devices.get(device)
        if record is None:
            raise RegistryError(f"no device {device[1]} in product {device[0]}", "not_found")

        def read() -> tuple[str | None, MqttBasic | None]:
            with self._db.engine.connect() as db:
                return self._read(db, device, record.id)

        return await self._db.run(read)

    async def tokens(self, devices: Iterable[DeviceKey]) -> dict[DeviceKey, str]:
        """The access tokens of these devices in the clear; one with none is left out."""
        wanted = [(key, record.id) for key in devices if (record := self._devices.get(key))]

        def read() -> dict[DeviceKey, str]:
            found = {}
            with self._db.engine.connect() as db:
                for key, device_id in wanted:
                    token, _ = self._read(db, key, device_id)
                    if token is not None:
                        found[key] = token
            return found

        return await self._db.run(read)

    async def replace(self, pending: Pending) -> None:
        """Write a device's new credentials in a transaction of their own, then remember them."""
        device_id = self._devices[pending.device].id

        def write() -> None:
            with self._db.engine.begin() as db:
                self.write(db, {pending.device: device_id}, [pending])

        await self._db.run(write)
        self.remember([pending])

    def _read(
        self, db: sa.Connection, device: DeviceKey, device_id: int
    ) -> tuple[str | None, MqttBasic | None]:
        row = db.execute(
            sa.select(t.device_credentials).where(t.device_credentials.c.device_id == device_id)
        ).one_or_none()
        if row is None:
            return None, None
        if row.access_token is not None:
            return self._box.open(row.access_token, _token_context(device)), None
        password = self._box.open(row.password, _password_context(device)) if row.password else None
        basic = MqttBasic(
            client_id=row.client_id or None, username=row.username or None, password=password
        )
        return None, basic
