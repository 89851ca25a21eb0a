"""Retained messages and persistent sessions in the deployment's SQLite file.

Implements ``hongshan.broker.state.BrokerStateStore``. The schema is the broker's own and small;
it is created here rather than through the registry's migrations because the broker must start
before (and without) the rest of the platform.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from hongshan.broker.message import Delivery, Message, SubscriptionOptions
from hongshan.broker.state import SavedMessage, SavedSession, SavedState, SavedWill
from hongshan.mqtt.packets import NO_PROPERTIES, Properties
from hongshan.store.sqlite.writer import SQLiteWriter

if TYPE_CHECKING:
    from hongshan.broker.session import OutState

SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_retained (
    topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL,
    properties BLOB, expires_at REAL
);
CREATE TABLE IF NOT EXISTS mqtt_sessions (
    client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL, disconnected_at REAL
);
CREATE TABLE IF NOT EXISTS mqtt_subscriptions (
    client_id TEXT NOT NULL, topic_filter TEXT NOT NULL, options BLOB NOT NULL,
    PRIMARY KEY (client_id, topic_filter)
);
CREATE TABLE IF NOT EXISTS mqtt_messages (
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, packet_id INTEGER NOT NULL, state TEXT NOT NULL,
    topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
    properties BLOB, expires_at REAL, sender TEXT NOT NULL,
    delivery_qos INTEGER NOT NULL, delivery_retain INTEGER NOT NULL, subscription_ids BLOB,
    PRIMARY KEY (client_id, seq)
);
CREATE TABLE IF NOT EXISTS mqtt_pending_wills (
    client_id TEXT PRIMARY KEY, record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS mqtt_incoming_qos2 (
    client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id)
);
"""

_msgpack = msgspec.msgpack.Encoder()
_props_decoder = msgspec.msgpack.Decoder(Properties)
_options_decoder = msgspec.msgpack.Decoder(SubscriptionOptions)
_ids_decoder = msgspec.msgpack.Decoder(tuple[int, ...])
_will_decoder = msgspec.msgpack.Decoder(SavedWill)


def _props(properties: Properties) -> bytes | None:
    return None if properties is NO_PROPERTIES else _msgpack.encode(properties)


def _unprops(blob: bytes | None) -> Properties:
    return NO_PROPERTIES if blob is None else _props_decoder.decode(blob)


class SQLiteBrokerState:
    def __init__(self, path: str | Path, *, loop: asyncio.AbstractEventLoop) -> None:
        # a failed batch is kept and written again (a full disk): a session, a retained
        # message or a QoS 2 id accepted is not lost, and ``problem`` clears with no traffic
        self._writer = SQLiteWriter(path, loop=loop, keep_failed=True)
        self._writer.conn.executescript(SCHEMA)
        self._seq = itertools.count(1)

    def load(self) -> SavedState:
        conn = self._writer.conn
        retained = [
            Message(topic, payload, qos, True, _unprops(props), expires_at)
            for topic, payload, qos, props, expires_at in conn.execute(
                "SELECT topic, payload, qos, properties, expires_at FROM mqtt_retained"
            )
        ]
        sessions: dict[str, SavedSession] = {}
        for client_id, expiry, disconnected_at in conn.execute(
            "SELECT client_id, expiry_interval, disconnected_at FROM mqtt_sessions"
        ):
            sessions[client_id] = SavedSession(client_id, expiry, disconnected_at, {}, set())
        for client_id, topic_filter, options in conn.execute(
            "SELECT client_id, topic_filter, options FROM mqtt_subscriptions"
        ):
            if client_id in sessions:
                sessions[client_id].subscriptions[topic_filter] = _options_decoder.decode(options)
        for client_id, packet_id in conn.execute(
            "SELECT client_id, packet_id FROM mqtt_incoming_qos2"
        ):
            if client_id in sessions:
                sessions[client_id].incoming_qos2.add(packet_id)
        messages = []
        for row in conn.execute(
            "SELECT client_id, seq, packet_id, state, topic, payload, qos, retain, properties,"
            " expires_at, sender, delivery_qos, delivery_retain, subscription_ids"
            " FROM mqtt_messages ORDER BY client_id, seq"
        ):
            (client_id, seq, packet_id, state, topic, payload, qos, retain, props) = row[:9]
            expires_at, sender, delivery_qos, delivery_retain, ids = row[9:]
            message = Message(
                topic, payload, qos, bool(retain), _unprops(props), expires_at, sender
            )
            delivery = Delivery(
                message,
                delivery_qos,
                bool(delivery_retain),
                _ids_decoder.decode(ids) if ids else (),
            )
            messages.append(SavedMessage(client_id, seq, packet_id, state, delivery))
        last_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM mqtt_messages").fetchone()[0]
        self._seq = itertools.count(last_seq + 1)
        wills = [
            _will_decoder.decode(record)
            for (record,) in conn.execute("SELECT record FROM mqtt_pending_wills")
        ]
        return SavedState(retained, list(sessions.values()), messages, wills)

    def next_seq(self) -> int:
        return next(self._seq)

    def save_retained(self, message: Message) -> None:
        self._writer.execute_latest(
            ("retained", message.topic),
            "INSERT OR REPLACE INTO mqtt_retained VALUES (?, ?, ?, ?, ?)",
            (
                message.topic,
                message.payload,
                message.qos,
                _props(message.properties),
                message.expires_at,
            ),
        )

    def delete_retained(self, topic: str) -> None:
        self._writer.execute_latest(
            ("retained", topic), "DELETE FROM mqtt_retained WHERE topic = ?", (topic,)
        )

    def save_session(
        self, client_id: str, expiry_interval: int, disconnected_at: float | None
    ) -> None:
        self._writer.execute(
            "INSERT OR REPLACE INTO mqtt_sessions VALUES (?, ?, ?)",
            (client_id, expiry_interval, disconnected_at),
        )

    def delete_session(self, client_id: str) -> None:
        for table in ("mqtt_sessions", "mqtt_subscriptions", "mqtt_messages", "mqtt_incoming_qos2"):
            self._writer.execute(f"DELETE FROM {table} WHERE client_id = ?", (client_id,))

    def save_subscription(
        self, client_id: str, topic_filter: str, options: SubscriptionOptions
    ) -> None:
        self._writer.execute(
            "INSERT OR REPLACE INTO mqtt_subscriptions VALUES (?, ?, ?)",
            (client_id, topic_filter, _msgpack.encode(options)),
        )

    def delete_subscription(self, client_id: str, topic_filter: str) -> None:
        self._writer.execute(
            "DELETE FROM mqtt_subscriptions WHERE client_id = ? AND topic_filter = ?",
            (client_id, topic_filter),
        )

    def save_message(self, client_id: str, seq: int, delivery: Delivery, packet_id: int) -> None:
        m = delivery.message
        self._writer.execute(
            "INSERT OR REPLACE INTO mqtt_messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                client_id,
                seq,
                packet_id,
                "publish",
                m.topic,
                m.payload,
                m.qos,
                m.retain,
                _props(m.properties),
                m.expires_at,
                m.sender,
                delivery.qos,
                delivery.retain,
                _msgpack.encode(delivery.subscription_ids) if delivery.subscription_ids else None,
            ),
        )

    def update_message(self, client_id: str, seq: int, packet_id: int, state: OutState) -> None:
        self._writer.execute(
            "UPDATE mqtt_messages SET packet_id = ?, state = ? WHERE client_id = ? AND seq = ?",
            (packet_id, state.value, client_id, seq),
        )

    def delete_message(self, client_id: str, seq: int) -> None:
        self._writer.execute(
            "DELETE FROM mqtt_messages WHERE client_id = ? AND seq = ?", (client_id, seq)
        )

    def save_will(self, will: SavedWill) -> None:
        self._writer.execute(
            "INSERT OR REPLACE INTO mqtt_pending_wills VALUES (?, ?)",
            (will.client.client_id, _msgpack.encode(will)),
        )

    def delete_will(self, client_id: str) -> None:
        self._writer.execute("DELETE FROM mqtt_pending_wills WHERE client_id = ?", (client_id,))

    def save_incoming_qos2(self, client_id: str, packet_id: int) -> None:
        self._writer.execute(
            "INSERT OR REPLACE INTO mqtt_incoming_qos2 VALUES (?, ?)", (client_id, packet_id)
        )

    def delete_incoming_qos2(self, client_id: str, packet_id: int) -> None:
        self._writer.execute(
            "DELETE FROM mqtt_incoming_qos2 WHERE client_id = ? AND packet_id = ?",
            (client_id, packet_id),
        )

    def committed(self) -> Awaitable[None]:
        return self._writer.committed()

    @property
    def problem(self) -> str | None:
        """Why the last write failed, until one succeeds (for the health endpoint)."""
        return self._writer.error

    async def close(self) -> None:
        await self._writer.close()
