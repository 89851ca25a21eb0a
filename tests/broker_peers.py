"""Peers for the broker tests, none of them ours.

- ``Paho``: paho-mqtt 2.x (3.1.1 or 5.0) on its own network thread, its callbacks turned into
  events and queues so a test can wait for a CONNACK, a SUBACK, a PUBACK or a message.
- ``RawClient``: an MQTT client written here from the specification (OASIS MQTT 3.1.1 and 5.0,
  chapters 2 and 3), *not* from ``hongshan.mqtt``, for what no library will send: a client that
  goes silent, never acknowledges, exceeds a limit, or sends garbage.
- ``MosquittoSub``: the ``mosquitto_sub`` command line client in a subprocess.
"""

from __future__ import annotations

import queue
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = "127.0.0.1"
TIMEOUT = 10.0  # the longest any single wait in these tests may take

V311 = 4  # protocol level byte of CONNECT
V5 = 5

# Control packet types (MQTT 5.0 table 2-1; 3.1.1 has the same numbers up to 14).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)


def v5_props(packet_type: int, **values: Any) -> Properties:
    """paho ``Properties`` for one packet type, e.g. ``v5_props(PacketTypes.CONNECT, ...)``."""
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


# -- paho-mqtt --------------------------------------------------------------------------------


class Paho:
    """A paho-mqtt client on its own network thread. Never reconnects by itself: a test that
    expects the server to drop it wants to see it dropped."""

    def __init__(
        self,
        port: int,
        *,
        version: int = V5,
        client_id: str = "",
        clean: bool = True,
        transport: str = "tcp",
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        properties: Properties | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        will_properties: Properties | None = None,
        tls_ca: str | None = None,
    ) -> None:
        self.port = port
        self.version = version
        self.clean = clean
        self.keepalive = keepalive
        self.properties = properties
        protocol = paho.MQTTv5 if version == V5 else paho.MQTTv311
        kwargs: dict[str, Any] = {}
        if version != V5:
            kwargs["clean_session"] = clean
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            transport=transport,  # type: ignore[arg-type]
            reconnect_on_failure=False,
            **kwargs,
        )
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if tls_ca is not None:
            self.client.tls_set(ca_certs=tls_ca)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain, properties=will_properties)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack_reason: int | None = None
        self.session_present: bool | None = None
        self.connack_properties: Properties | None = None
        self.disconnect_reason: int | None = None
        self.disconnect_properties: Properties | None = None
        self._acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self._pub_reasons: dict[int, int] = {}
        c = self.client
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect
        self._started = False

    # callbacks, on paho's thread

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack_reason = reason.value
        self.session_present = bool(flags.session_present)
        self.connack_properties = props
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._acked:
            self._acks[mid] = [code.value for code in codes]
            self._acked.notify_all()

    def _on_unsubscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._acked:
            self._acks[mid] = codes
            self._acked.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._pub_reasons[mid] = reason.value

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.disconnect_reason = reason.value
        self.disconnect_properties = props
        self.disconnected.set()

    # the test's side

    def connect(self, *, wait: bool = True) -> Paho:
        """Connect; unless ``wait`` is false, wait for a successful CONNACK."""
        kwargs: dict[str, Any] = {}
        if self.version == V5:
            kwargs["clean_start"] = self.clean
            kwargs["properties"] = self.properties
        self.connected.clear()
        self.disconnected.clear()
        self.client.connect(HOST, self.port, keepalive=self.keepalive, **kwargs)
        self.client.loop_start()
        self._started = True
        if wait:
            assert self.connected.wait(TIMEOUT), "no CONNACK"
            assert self.connack_reason == 0, f"CONNACK refused: {self.connack_reason:#x}"
        return self

    def _wait_ack(self, mid: int) -> Any:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._acks, TIMEOUT), f"no ack for {mid}"
            return self._acks.pop(mid)

    def subscribe(
        self,
        topic: str | list[tuple[str, Any]],
        qos: int | Any = 0,
        properties: Properties | None = None,
    ) -> list[int]:
        """Subscribe and return the SUBACK's reason codes (granted QoS, or >= 0x80 refused).
        ``qos`` may be a paho ``SubscribeOptions`` (5.0); ``topic`` a list of (filter, qos)."""

        def options(qos: Any) -> Any:
            if self.version == V5 and isinstance(qos, int):
                return paho.SubscribeOptions(qos=qos)
            return qos

        if isinstance(topic, list):
            result, mid = self.client.subscribe(
                [(name, options(q)) for name, q in topic], properties=properties
            )
        elif self.version == V5:
            result, mid = self.client.subscribe((topic, options(qos)), properties=properties)
        else:
            result, mid = self.client.subscribe(topic, qos, properties=properties)
        assert result == paho.MQTT_ERR_SUCCESS, result
        assert mid is not None
        codes: list[int] = self._wait_ack(mid)
        return codes

    def unsubscribe(self, topic: str) -> None:
        result, mid = self.client.unsubscribe(topic)
        assert result == paho.MQTT_ERR_SUCCESS, result
        assert mid is not None
        self._wait_ack(mid)

    def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        wait: bool = True,
    ) -> int | None:
        """Publish; for QoS 1/2 wait for the PUBACK/PUBCOMP and return its reason code (0 in
        3.1.1), or None when none came (the server closed the connection instead)."""
        info = self.client.publish(topic, payload, qos, retain, properties=properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS, info.rc
        if qos == 0 or not wait:
            return 0
        deadline = time.monotonic() + TIMEOUT
        while not info.is_published():
            if self.disconnected.is_set() or time.monotonic() > deadline:
                return None
            info.wait_for_publish(0.05)
        return self._pub_reasons.pop(info.mid, 0)

    def publish_many(
        self, topic: str, bodies: Iterable[bytes | str], qos: int = 1, retain: bool = False
    ) -> list[int]:
        """Publish without waiting between messages, then wait for every acknowledgement;
        return their reason codes (in 3.1.1 always 0)."""
        infos = [self.client.publish(topic, body, qos, retain) for body in bodies]
        deadline = time.monotonic() + TIMEOUT
        for info in infos:
            assert info.rc == paho.MQTT_ERR_SUCCESS, info.rc
            if qos:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.001))
                assert info.is_published(), f"message {info.mid} not acknowledged"
        return [self._pub_reasons.pop(info.mid, 0) for info in infos]

    def get(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def take(self, count: int, timeout: float = TIMEOUT) -> list[paho.MQTTMessage]:
        deadline = time.monotonic() + timeout
        got = []
        for _ in range(count):
            remaining = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(remaining, 0.001)))
            except queue.Empty:
                raise AssertionError(f"{len(got)} of {count} messages within {timeout} s") from None
        return got

    def until(
        self, topic: str, timeout: float = TIMEOUT, payload: bytes | None = None
    ) -> list[paho.MQTTMessage]:
        """Messages received up to and including the first on ``topic`` (and with ``payload``,
        if given): a sentinel; what the server would have sent before it has arrived by then.
        (paho hands QoS 2 messages over at PUBREL: a sentinel's QoS must be the highest.)"""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            message = self.get(max(deadline - time.monotonic(), 0.001))
            got.append(message)
            if message.topic == topic and payload in (None, message.payload):
                return got

    def drain(self) -> list[paho.MQTTMessage]:
        got = []
        while True:
            try:
                got.append(self.messages.get_nowait())
            except queue.Empty:
                return got

    def disconnect(self, properties: Properties | None = None, reason: int | None = None) -> None:
        if self.client.is_connected():
            if reason is not None:
                from paho.mqtt.reasoncodes import ReasonCode

                code = ReasonCode(PacketTypes.DISCONNECT, identifier=reason)
                self.client.disconnect(reasoncode=code, properties=properties)
            else:
                self.client.disconnect(properties=properties)
            self.disconnected.wait(TIMEOUT)
        self.stop()

    def stop(self) -> None:
        if self._started:
            self._started = False
            if self.client.is_connected():
                self.client.disconnect()
            self.client.loop_stop()
            # paho keeps a socket pair to wake its loop and closes it only in __del__, which
            # may run after the sockets' own finalizers when they die in one garbage cycle at
            # exit (an unclosed-socket ResourceWarning, an error here); paho 2.2 has no public
            # close, so its reset is called here
            self.client._reset_sockets(sockpair_only=True)


# -- a raw MQTT client, from the specification ----------------------------------------------


def varint(n: int) -> bytes:
    """Variable Byte Integer (MQTT 5.0 1.5.5, 3.1.1 2.2.3)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def packet(type_: int, flags: int, body: bytes) -> bytes:
    return bytes([type_ << 4 | flags]) + varint(len(body)) + body


# Property identifiers and their types (MQTT 5.0 2.2.2.2).
BYTE, U16, U32, VARINT, STRING, BINARY, PAIR = range(7)
PROPERTY_TYPES = {
    0x01: BYTE, 0x02: U32, 0x03: STRING, 0x08: STRING, 0x09: BINARY, 0x0B: VARINT,
    0x11: U32, 0x12: STRING, 0x13: U16, 0x15: STRING, 0x16: BINARY, 0x17: BYTE, 0x18: U32,
    0x19: BYTE, 0x1A: STRING, 0x1C: STRING, 0x1F: STRING, 0x21: U16, 0x22: U16, 0x23: U16,
    0x24: BYTE, 0x25: BYTE, 0x26: PAIR, 0x27: U32, 0x28: BYTE, 0x29: BYTE, 0x2A: BYTE,
}  # fmt: skip
SESSION_EXPIRY, RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM, TOPIC_ALIAS = 0x11, 0x21, 0x22, 0x23
MAXIMUM_PACKET_SIZE, WILL_DELAY, SUBSCRIPTION_ID = 0x27, 0x18, 0x0B


def props(values: dict[int, Any] | None = None) -> bytes:
    """A 5.0 property block: length, then each property (identifier, value)."""
    out = bytearray()
    for ident, value in (values or {}).items():
        kind = PROPERTY_TYPES[ident]
        out += varint(ident)
        if kind == BYTE:
            out.append(value)
        elif kind == U16:
            out += struct.pack("!H", value)
        elif kind == U32:
            out += struct.pack("!I", value)
        elif kind == VARINT:
            out += varint(value)
        elif kind in (STRING, BINARY):
            out += utf8(value)
        else:
            out += utf8(value[0]) + utf8(value[1])
    return varint(len(out)) + bytes(out)


def connect_packet(
    client_id: str,
    version: int = V5,
    clean: bool = True,
    keepalive: int = 60,
    will: Will | None = None,
    username: str | None = None,
    password: str | None = None,
    properties: dict[int, Any] | None = None,
) -> bytes:
    """CONNECT (3.1.2, 3.1.3)."""
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will is not None:
        flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
        if version == V5:
            payload += props(will.properties)
        payload += utf8(will.topic) + utf8(will.payload)
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += utf8(password)
    header = utf8("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == V5:
        header += props(properties)
    return packet(CONNECT, 0, header + payload)


def publish_packet(
    topic: str,
    payload: bytes,
    *,
    version: int = V5,
    qos: int = 0,
    packet_id: int | None = None,
    retain: bool = False,
    dup: bool = False,
    properties: dict[int, Any] | None = None,
) -> bytes:
    """PUBLISH (3.3)."""
    flags = qos << 1 | (1 if retain else 0) | (8 if dup else 0)
    body = utf8(topic)
    if qos:
        assert packet_id is not None
        body += struct.pack("!H", packet_id)
    if version == V5:
        body += props(properties)
    return packet(PUBLISH, flags, body + payload)


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    # filled in by RawClient.read according to the type
    reason: int | None = None  # CONNACK return code / reason code, DISCONNECT, PUBACK...
    session_present: bool = False
    packet_id: int | None = None
    topic: str = ""
    payload: bytes = b""
    properties: dict[int, Any] = field(default_factory=dict)
    codes: list[int] = field(default_factory=list)  # SUBACK / UNSUBACK

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 3

    @property
    def dup(self) -> bool:
        return bool(self.flags & 8)

    @property
    def retain(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: dict[int, Any] | None = None


class Closed(Exception):
    """The server closed the connection."""


class RawClient:
    """One TCP connection speaking MQTT bytes built here. Reading is explicit: nothing is read
    (or acknowledged) unless the test asks."""

    def __init__(self, port: int, *, rcvbuf: int | None = None, version: int = V5) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect((HOST, port))
        self.version = version
        self._buffer = b""
        self._eof = False

    # writing

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(
        self,
        client_id: str,
        *,
        clean: bool = True,
        keepalive: int = 60,
        will: Will | None = None,
        username: str | None = None,
        password: str | None = None,
        properties: dict[int, Any] | None = None,
        wait: bool = True,
    ) -> Packet | None:
        """Send CONNECT (3.1.2) and, when ``wait``, return the CONNACK."""
        self.send(
            connect_packet(
                client_id, self.version, clean, keepalive, will, username, password, properties
            )
        )
        if not wait:
            return None
        return self.expect(CONNACK)

    def subscribe(
        self,
        packet_id: int,
        filters: Sequence[tuple[str, int]],
        properties: dict[int, Any] | None = None,
    ) -> Packet:
        """SUBSCRIBE (3.8) with (filter, options byte) pairs; returns the SUBACK."""
        body = struct.pack("!H", packet_id)
        if self.version == V5:
            body += props(properties)
        for topic_filter, options in filters:
            body += utf8(topic_filter) + bytes([options])
        self.send(packet(SUBSCRIBE, 0x02, body))  # MQTT-3.8.1-1: flags 0010
        suback = self.expect(SUBACK)
        assert suback.packet_id == packet_id
        return suback

    def publish_bytes(self, topic: str, payload: bytes, **kwargs: Any) -> bytes:
        return publish_packet(topic, payload, version=self.version, **kwargs)

    def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        self.send(self.publish_bytes(topic, payload, **kwargs))

    def ack(self, type_: int, packet_id: int, reason: int | None = None) -> None:
        """PUBACK, PUBREC, PUBREL or PUBCOMP (PUBREL's flags are 0010: MQTT-3.6.1-1)."""
        body = struct.pack("!H", packet_id)
        if reason is not None:
            body += bytes([reason])
        self.send(packet(type_, 0x02 if type_ == PUBREL else 0, body))

    def ping(self) -> None:
        self.send(packet(PINGREQ, 0, b""))

    def disconnect(self, reason: int = 0, properties: dict[int, Any] | None = None) -> None:
        body = b""
        if self.version == V5 and (reason or properties):
            body = bytes([reason]) + props(properties)
        self.send(packet(DISCONNECT, 0, body))

    # reading

    def _fill(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        except TimeoutError:
            raise TimeoutError(f"nothing from the server within {timeout} s") from None
        if not chunk:
            self._eof = True
            raise Closed
        self._buffer += chunk

    def read(self, timeout: float = TIMEOUT) -> Packet:
        """The next packet; raises ``Closed`` at end of stream, ``TimeoutError`` if none came."""
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            if self._eof:
                raise Closed
            self._fill(max(deadline - time.monotonic(), 0.001))

    def _parse(self) -> Packet | None:
        data = self._buffer
        if len(data) < 2:
            return None
        length, multiplier, index = 0, 1, 1
        while True:
            if index >= len(data):
                return None
            byte = data[index]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            index += 1
            if not byte & 0x80:
                break
            assert index < 5, "server sent a malformed Remaining Length"
        if len(data) < index + length:
            return None
        body = data[index : index + length]
        self._buffer = data[index + length :]
        return self._decode(Packet(data[0] >> 4, data[0] & 0x0F, body))

    def _properties(self, body: bytes, at: int) -> tuple[dict[int, Any], int]:
        length, at = _read_varint(body, at)
        end = at + length
        values: dict[int, Any] = {}
        while at < end:
            ident, at = _read_varint(body, at)
            kind = PROPERTY_TYPES[ident]
            value: Any
            if kind == BYTE:
                value, at = body[at], at + 1
            elif kind == U16:
                value, at = struct.unpack_from("!H", body, at)[0], at + 2
            elif kind == U32:
                value, at = struct.unpack_from("!I", body, at)[0], at + 4
            elif kind == VARINT:
                value, at = _read_varint(body, at)
            elif kind in (STRING, BINARY):
                size = struct.unpack_from("!H", body, at)[0]
                value, at = body[at + 2 : at + 2 + size], at + 2 + size
                if kind == STRING:
                    value = value.decode()
            else:
                key_size = struct.unpack_from("!H", body, at)[0]
                key = body[at + 2 : at + 2 + key_size].decode()
                at += 2 + key_size
                size = struct.unpack_from("!H", body, at)[0]
                value, at = (key, body[at + 2 : at + 2 + size].decode()), at + 2 + size
            if ident in (0x26, 0x0B):  # may repeat
                values.setdefault(ident, []).append(value)
            else:
                values[ident] = value
        return values, end

    def _decode(self, p: Packet) -> Packet:
        body, v5 = p.body, self.version == V5
        if p.type == CONNACK:
            p.session_present = bool(body[0] & 1)
            p.reason = body[1]
            if v5 and len(body) > 2:
                p.properties, _ = self._properties(body, 2)
        elif p.type == PUBLISH:
            size = struct.unpack_from("!H", body)[0]
            p.topic = body[2 : 2 + size].decode()
            at = 2 + size
            if p.qos:
                p.packet_id = struct.unpack_from("!H", body, at)[0]
                at += 2
            if v5:
                p.properties, at = self._properties(body, at)
            p.payload = body[at:]
        elif p.type in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
            p.packet_id = struct.unpack_from("!H", body)[0]
            at = 2
            if p.type in (SUBACK, UNSUBACK):
                if v5:
                    p.properties, at = self._properties(body, at)
                p.codes = list(body[at:])
            elif v5:
                p.reason = body[2] if len(body) > 2 else 0
                if len(body) > 3:
                    p.properties, _ = self._properties(body, 3)
        elif p.type == DISCONNECT:
            p.reason = body[0] if body else 0
            if len(body) > 1:
                p.properties, _ = self._properties(body, 1)
        return p

    def expect(self, type_: int, timeout: float = TIMEOUT) -> Packet:
        got = self.read(timeout)
        assert got.type == type_, f"expected packet type {type_}, got {got}"
        return got

    def until_pong(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Send PINGREQ and return every packet the server sent before the PINGRESP: all the
        server had decided to send us before it read our PINGREQ has then arrived."""
        self.ping()
        got = []
        deadline = time.monotonic() + timeout
        while True:
            received = self.read(max(deadline - time.monotonic(), 0.001))
            if received.type == PINGRESP:
                return got
            got.append(received)

    def closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Wait for the server to close the connection; return what it sent before."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.read(max(deadline - time.monotonic(), 0.001)))
            except Closed:
                return got
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout} s: {got}") from None
            except AssertionError:  # malformed bytes from a closing connection
                return got

    def close(self) -> None:
        self.sock.close()


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value, multiplier = 0, 1
    while True:
        byte = data[at]
        at += 1
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            return value, at


# -- mosquitto command line clients -----------------------------------------------------------


class MosquittoSub:
    """``mosquitto_sub`` printing ``MSG|topic|qos|retain|payload`` lines; started once its
    SUBACK has arrived (read from its ``-d`` debug output)."""

    def __init__(self, port: int, topic: str, *args: str, version: str = "mqttv5") -> None:
        command = [
            "stdbuf", "-oL",  # line-buffered even into a pipe
            "mosquitto_sub", "-h", HOST, "-p", str(port), "-V", version, "-t", topic, "-d",
            "-F", "MSG|%t|%q|%r|%p", *args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def wait_subscribed(self) -> None:
        self._wait_line(lambda line: "SUBACK" in line)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _wait_line(self, match: Any) -> str:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"mosquitto_sub: nothing matching in {self.output}") from None
            if line is None:
                raise AssertionError(f"mosquitto_sub exited: {self.output}")
            self.output.append(line)
            if match(line):
                return line

    def messages(self, count: int) -> list[tuple[str, int, bool, str]]:
        got = []
        for _ in range(count):
            line = self._wait_line(lambda line: line.startswith("MSG|"))
            _, topic, qos, retain, payload = line.split("|", 4)
            got.append((topic, int(qos), retain == "1", payload))
        return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        self._pump_thread.join(TIMEOUT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def mosquitto_pub(
    port: int, topic: str, message: str | None, *args: str, version: str = "mqttv5", ok: bool = True
) -> str:
    """Run ``mosquitto_pub`` to completion and return its output; unless ``ok`` is false, fail
    the test if it failed. ``message`` None sends an empty payload (``-n``)."""
    body = ["-n"] if message is None else ["-m", message]
    done = subprocess.run(
        ["mosquitto_pub", "-h", HOST, "-p", str(port), "-V", version, "-t", topic, *body, *args],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def payloads(messages: Iterable[Any]) -> list[bytes]:
    return [bytes(m.payload) for m in messages]


def eventually(predicate: Any, timeout: float = TIMEOUT, what: str = "condition") -> None:
    """Poll server state the tests cannot observe through MQTT (e.g. a session expiring)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        time.sleep(0.02)
