"""One client connection: thin glue between a transport and the sans-IO codec.

Bytes in go to the ``Decoder``; each packet goes to its handler; the broker and the session do
the rest. Writes are gathered during one turn of the event loop and flushed once, so a
subscriber receiving from a hundred publishers gets one ``send()`` per turn, not one per message.
A peer's malformed or forbidden packet closes that one connection — with a DISCONNECT carrying
the reason code where MQTT 5.0 allows it — and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

import msgspec

from hongshan.broker.auth import NO_ACCESS, Access, Client, Credentials
from hongshan.broker.message import Delivery, Message, Refused, SubscriptionOptions
from hongshan.broker.outbound import (
    PUBACK_BYTE,
    PUBREC_BYTE,
    encode_delivery,
    encode_delivery_v5,
    success_ack,
)
from hongshan.errors import RemoteProtocolError, StoreUnavailable
from hongshan.failure_log import FailureLog
from hongshan.mqtt.codec import NEED_DATA, Decoder, encode
from hongshan.mqtt.memo import TopicMemo
from hongshan.mqtt.packets import (
    MQTT_5,
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
)
from hongshan.mqtt.reason_codes import ReasonCode, connack_code_for_v3
from hongshan.mqtt.topics import (
    over_limits,
    parse_shared,
    validate_topic_filter,
    validate_topic_name,
)

if TYPE_CHECKING:
    from hongshan.broker.admission import Admission
    from hongshan.broker.server import Broker
    from hongshan.broker.session import Session

log = logging.getLogger("hongshan.broker")
# a store that cannot write closes every connection waiting on it, again as each comes back:
# said once per kind of failure per interval, not once per connection
_NOT_ACKNOWLEDGING = FailureLog(
    log, "clients disconnected, their messages not acknowledged", again="acknowledging again"
)

# Above this many bytes waiting to be written, a connection stops taking QoS 0 messages
# directly and the session queues (and, when full, drops) them instead.
WRITE_HIGH_WATER = 256 * 1024
_ACL_CACHE_SIZE = 512  # topics per connection whose publish verdict is remembered
# ... and their bytes: tens of thousands of connections each hold one. Topics longer than an
# eighth of it (1 KiB) are checked each time, never kept.
_ACL_CACHE_BYTES = 8 * 1024
# The topics a connection's outgoing aliases name, bytes: a 5.0 client may ask for 65,535
# aliases, and each would hold a topic of up to max_topic_length. Beyond it, no new aliases.
_OUT_ALIAS_BYTES = 64 * 1024
_PINGRESP = b"\xd0\x00"

# How long a connection we are closing after a DISCONNECT or CONNACK with a reason code keeps
# reading (and discarding): a client still sending (a PUBREL, say) would otherwise get a TCP
# reset and never read the reason code we sent it.
LINGER_SECONDS = 2.0

# NEW: waiting for CONNECT; CONNECTING: authenticating; CONNECTED; CLOSING: a DISCONNECT was
# received; CLOSED: the broker has forgotten this connection (the socket may still linger).
NEW, CONNECTING, CONNECTED, CLOSING, CLOSED = range(5)


class Transport(Protocol):
    """What a connection needs of its transport: asyncio's and uvloop's TCP and TLS transports
    (uvloop's are not ``asyncio.Transport`` subclasses) and the WebSocket adapter."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...

    def can_write_eof(self) -> bool: ...

    def write_eof(self) -> None: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...


def _reason_name(code: int) -> str:
    """``session taken over`` for 0x8E: a reason code as words, for logs and status history."""
    try:
        return ReasonCode(code).name.lower().replace("_", " ")
    except ValueError:
        return hex(code)


def both(first: Awaitable[None], second: Awaitable[None]) -> Awaitable[None]:
    """Done when both are; fails with the first failure (an acknowledgement waiting on two
    stores: the broker's and the history's)."""
    return cast(Awaitable[None], asyncio.gather(first, second))


class MQTTConnection(asyncio.Protocol):
    """One client's connection: feeds the codec the transport's bytes, answers each packet
    (CONNECT negotiation, topic aliases, Receive Maximum, inbound QoS 2, keep-alive, the ACL
    verdicts it remembers), and writes what its session sends, once per loop turn. It owns no
    session state that outlives it (the ``Session`` does) and never routes a message itself
    (the ``Broker`` does)."""

    # A town keeps tens of thousands of these open: slots, and the rarely used containers
    # (aliases, the queue of acknowledgements waiting for the store) made on first use.
    __slots__ = (
        "_acks",
        "_acl_cache",
        "_admission",
        "_flush_scheduled",
        "_in_aliases",
        "_loop",
        "_out",
        "_out_aliases",
        "_out_size",
        "_paused",
        "_timer",
        "_waiting_pubacks",
        "access",
        "address",
        "broker",
        "clean_disconnect",
        "client",
        "client_alias_max",
        "client_max_packet",
        "decoder",
        "ended_by",
        "keep_alive",
        "last_received",
        "level",
        "listener",
        "send_quota",
        "session",
        "state",
        "transport",
        "will",
    )

    def __init__(self, broker: Broker, listener: str, admission: Admission | None = None) -> None:
        self.broker = broker
        self.listener = listener
        settings = broker.settings
        self.decoder = Decoder(server=True, max_packet_size=settings.max_packet_size)
        self.transport: Transport | None = None
        self.state = NEW
        self.level = 4
        self.address = ""
        self.client: Client | None = None
        self.access: Access = NO_ACCESS  # until the authorizer answers at CONNECT
        self.session: Session | None = None
        self.will: Will | None = None
        self.keep_alive = 0
        self.last_received = time.monotonic()
        self.clean_disconnect = False
        self.ended_by = "connection lost"  # why it ended, once it has (a device's status log)
        # what the client told us it can take (MQTT 5.0 CONNECT properties)
        self.send_quota = 65535
        self.client_max_packet: int | None = None
        self.client_alias_max = 0
        self._out_aliases: TopicMemo[int] | None = None
        self._in_aliases: dict[int, str] | None = None
        self._acl_cache: TopicMemo[bool] | None = None
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._acks: deque[tuple[asyncio.Future[None] | None, bytes]] | None = None
        self._waiting_pubacks = 0  # PUBACKs held back behind the store (Receive Maximum)
        # counted against its address until CONNECTed: by its listener since the accept (TLS,
        # WebSocket: their handshakes came first), else from connection_made
        self._admission = admission
        self._loop = asyncio.get_running_loop()

    # -- transport callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.address = f"{peer[0]}:{peer[1]}"
            if self._admission is None:
                self._admission = self.broker.admit(peer[0])
                if self._admission is None:
                    self.state = CLOSED
                    self.transport.close()
                    return
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.broker.connection_opened(self)
        # Before CONNECT a client has connect_timeout seconds (from the accept: a listener's
        # handshake included) and nothing but CONNECT to send.
        wait = self.broker.settings.connect_timeout
        if self._admission is not None:
            wait = self._admission.time_left(wait)
        self._timer = self._loop.call_later(wait, self._close)

    def data_received(self, data: bytes) -> None:
        if self.state == CLOSED:
            return  # lingering after our reason code: read and discard
        self.last_received = time.monotonic()
        self.broker.stats.bytes_received += len(data)
        self.decoder.receive_data(data)
        self._process()
        # This connection's own answers (acknowledgements, and PUBLISHes its PUBACKs let out of
        # the window) leave now rather than at the end of the loop's turn: a round trip is then
        # shorter than a turn spent reading a hundred other sockets. What other connections
        # wrote to it still waits for the turn's end, so a fan-in is written in one batch.
        if self._flush_scheduled:
            self._flush()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._no_longer_pending()
        self._end()
        if self._timer is not None:
            self._timer.cancel()
        self.broker.connection_gone(self)

    def _no_longer_pending(self) -> None:
        admission = self._admission
        if admission is not None:
            self._admission = None
            admission.release()

    def _end(self) -> None:
        """Let the broker forget this connection (once): detach the session, send the will
        unless a normal DISCONNECT discarded it, end a session that expires with it."""
        previous = self.state
        if previous == CLOSED:
            return
        self.state = CLOSED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._forget_acks()
        self.broker.connection_closed(self, was_connected=previous in (CONNECTED, CLOSING))

    def pause_writing(self) -> None:
        # A client that sends requests but does not read the answers is not read either, so it
        # cannot make our buffers grow (the session queues and drops its messages meanwhile).
        self._paused = True
        if self.state == CONNECTED and self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self.state == CONNECTED and self.transport is not None:
            self.transport.resume_reading()
        if self.session is not None and self.state == CONNECTED:
            self.session.pump()

    # -- the read loop ----------------------------------------------------------------------

    def _process(self) -> None:
        decoder = self.decoder
        handlers = _HANDLERS
        while self.state == CONNECTED or self.state == NEW:
            try:
                packet = decoder.next_packet()
                if packet is NEED_DATA:
                    return
                handlers[type(packet)](self, packet)
            except RemoteProtocolError as exc:
                self._protocol_error(exc)
                return

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self.broker.stats.protocol_errors += 1
        self.ended_by = f"protocol error: {_reason_name(exc.reason_code)}"
        log.info("closing %s (%s): %s", self._who(), hex(exc.reason_code), exc)
        if self.state == NEW:
            if exc.reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
                # MQTT-3.1.2-2: answer an unknown level with return code 1, in 3.1.1 form.
                self._write(encode(ConnAck(reason_code=1), 4))
            elif self.decoder.protocol_level == MQTT_5:
                self._write(encode(ConnAck(reason_code=exc.reason_code), MQTT_5))
        elif self.level == MQTT_5:
            self._write(encode(Disconnect(reason_code=exc.reason_code), MQTT_5))
        self._close_after_reply()

    def _who(self) -> str:
        client_id = self.client.client_id if self.client else "?"
        return f"client {client_id!r} from {self.address or '?'} ({self.listener})"

    # -- writing ----------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return not self._paused and self._out_size < WRITE_HIGH_WATER and self.state == CONNECTED

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        self._out = []
        self.broker.stats.bytes_sent += self._out_size
        self._out_size = 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        # A pump that stopped because this turn's output reached WRITE_HIGH_WATER goes on now
        # that the output is in the transport (which says pause_writing if it is full).
        session = self.session
        if session is not None and session.queue and self.writable:
            session.pump()

    def _close(self) -> None:
        if self._flush_scheduled:
            self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _close_after_reply(self) -> None:
        """Close after a DISCONNECT or CONNACK carrying a reason code: the broker forgets the
        connection now; the socket sends its last bytes and FIN, then reads and discards what
        the client still sends until it closes too or LINGER_SECONDS pass (MQTT-3.14.4-1)."""
        if self._flush_scheduled:
            self._flush()
        self._end()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
            self._timer = self._loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def disconnect(self, reason: int) -> None:
        """Close this connection from our side, telling a 5.0 client why."""
        self.ended_by = _reason_name(reason)
        if self.state == CLOSED:
            self._close()  # already lingering: stop waiting
            return
        if self.state == CONNECTED and self.level == MQTT_5:
            self._write(encode(Disconnect(reason_code=reason), MQTT_5))
        self._close_after_reply()

    def send_publish(self, delivery: Delivery, packet_id: int, dup: bool) -> None:
        message = delivery.message
        if self.level == MQTT_5 and (
            delivery.subscription_ids or message.expires_at is not None or self.client_alias_max
        ):
            self._send_v5_publish(delivery, packet_id, dup)
            return
        data = encode_delivery(delivery, packet_id, dup, self.level)
        if self._discard_if_too_large(data, packet_id):
            return
        self.broker.stats.messages_sent += 1
        self._write(data)

    def _discard_if_too_large(self, data: bytes, packet_id: int) -> bool:
        if self.client_max_packet is None or len(data) <= self.client_max_packet:
            return False
        # MQTT-3.1.2-25: a packet larger than the client's limit is discarded as if sent.
        self.broker.stats.dropped += 1
        if packet_id and self.session is not None:
            self._loop.call_soon(self.session.discard, packet_id)
        return True

    def _send_v5_publish(self, delivery: Delivery, packet_id: int, dup: bool) -> None:
        """A 5.0 PUBLISH whose properties differ per delivery: remaining expiry, subscription
        identifiers, a topic alias."""
        message = delivery.message
        expiry = message.remaining_expiry()
        if expiry == 0:
            if packet_id and self.session is not None:
                self._loop.call_soon(self.session.discard, packet_id)
            return
        topic = message.topic
        alias: int | None = None
        new_alias = False
        aliases = self._out_aliases
        if self.client_alias_max:
            if aliases is None:
                aliases = self._out_aliases = TopicMemo(self.client_alias_max, _OUT_ALIAS_BYTES)
            alias = aliases.get(topic)
            if alias is not None:
                topic = ""
            elif aliases.has_room(topic):
                alias = len(aliases) + 1
                new_alias = True
        data = encode_delivery_v5(delivery, packet_id, dup, topic, alias, expiry)
        if self._discard_if_too_large(data, packet_id):
            return  # an alias the client never received must not be used later
        if new_alias and aliases is not None and alias is not None:
            aliases.remember(topic, alias)
        self.broker.stats.messages_sent += 1
        self._write(data)

    def send_pubrel(self, packet_id: int) -> None:
        self._write(encode(PubRel(packet_id=packet_id), self.level))

    def _send_ack(self, data: bytes, wait: Awaitable[None] | None = None) -> None:
        """Acknowledgements leave in the order their PUBLISHes came (MQTT-4.6.0-2), and one that
        must wait for the store holds back those after it."""
        acks = self._acks
        if wait is None and not acks:
            self._write(data)
            return
        if acks is None:
            acks = self._acks = deque()
        acks.append((None if wait is None else asyncio.ensure_future(wait), data))
        if data[0] == PUBACK_BYTE:
            self._waiting_pubacks += 1
        if len(acks) == 1:
            self._drain_acks()

    def _drain_acks(self, _: object = None) -> None:
        """Write the acknowledgements whose waits are over, in order, up to the first whose
        wait is not (it calls this again when it is): a callback, not a task a connection."""
        acks = self._acks
        while acks and self.state != CLOSED:
            wait, data = acks[0]
            if wait is not None:
                if not wait.done():
                    wait.add_done_callback(self._drain_acks)
                    return
                failure = asyncio.CancelledError() if wait.cancelled() else wait.exception()
                if failure is not None:  # (closed on a turn of its own, not inside a handler)
                    self._loop.call_soon(self._not_acknowledging, failure)
                    return
                # the stores commit again: after failures, one line says acknowledgements resume
                _NOT_ACKNOWLEDGING.succeeded()
            acks.popleft()
            if data[0] == PUBACK_BYTE:
                self._waiting_pubacks -= 1
            self._write(data)

    def _not_acknowledging(self, failure: BaseException) -> None:
        """Not acknowledged, so the client keeps the message and sends it again."""
        if self.state == CLOSED:
            return
        if isinstance(failure, StoreUnavailable):
            _NOT_ACKNOWLEDGING.failed(str(failure))
        else:  # a fault of ours: it costs this connection only
            log.error("%s: not acknowledging", self._who(), exc_info=failure)
        self._forget_acks()
        self.disconnect(ReasonCode.UNSPECIFIED_ERROR)

    def _forget_acks(self) -> None:
        """The waits of acknowledgements that will not be sent: their failures (soon, or told
        with the first) are seen, as nobody awaits them."""
        for wait, _ in self._acks or ():
            if wait is not None:
                wait.add_done_callback(_outcome_seen)
        self._acks = None

    # -- CONNECT ----------------------------------------------------------------------------

    def _on_connect(self, packet: Connect) -> None:
        # The connect timeout keeps running until CONNACK: a client whose authentication hangs
        # (or waits behind a burst of password checks) is not held open for ever.
        self.state = CONNECTING
        if self.transport is not None:
            self.transport.pause_reading()
        task = self._loop.create_task(self._connect(packet))
        self.broker.background(task)

    async def _connect(self, packet: Connect) -> None:
        try:
            accepted = await self._accept(packet)
        except RemoteProtocolError as exc:
            self.state = NEW
            self._protocol_error(exc)
            return
        except Exception:
            # a fault of ours (an authenticator that broke, say) costs this connection only
            log.exception("accepting %s failed", self._who())
            if self.state == CONNECTED:
                self.disconnect(ReasonCode.UNSPECIFIED_ERROR)
            else:
                self.state = NEW
                self._refuse(ReasonCode.UNSPECIFIED_ERROR)
            return
        if not accepted or self.state == CLOSED:
            return
        if self.transport is not None:
            self.transport.resume_reading()
        self._process()

    async def _accept(self, packet: Connect) -> bool:
        self.level = level = packet.protocol_level
        props = packet.properties
        broker = self.broker
        settings = broker.settings
        client_id = packet.client_id
        assigned: str | None = None
        if not client_id:
            if level < MQTT_5 and not packet.clean_start:
                return self._refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID)  # MQTT-3.1.3-8
            client_id = assigned = f"auto-{uuid.uuid4().hex}"
        if props.authentication_method is not None:
            return self._refuse(ReasonCode.BAD_AUTHENTICATION_METHOD)
        if packet.will is not None:
            validate_topic_name(packet.will.topic)
            why = over_limits(
                packet.will.topic, settings.max_topic_length, settings.max_topic_levels
            )
            if why is not None:
                # 5.0: CONNACK 0x90, "the Will Topic Name is not malformed, but is not accepted
                # by this Server" (3.2.2.2); 3.1.1 has no return code for it, so the connection
                # is closed without a CONNACK (MQTT-3.2.2-6).
                raise RemoteProtocolError(f"will topic {why}", ReasonCode.TOPIC_NAME_INVALID)
        verdict = await broker.authenticator.authenticate(
            Credentials(
                client_id=client_id,
                username=packet.username,
                password=packet.password,
                address=self.address,
                tls=self.listener == "tls",
            )
        )
        if self.state == CLOSED:
            return False
        if verdict.reason_code != ReasonCode.SUCCESS:
            broker.stats.refused_connect += 1
            log.info(
                "refused %r from %s: %s",
                client_id,
                self.address,
                ReasonCode(verdict.reason_code).name,
            )
            return self._refuse(verdict.reason_code)
        # The authenticator says who this is; a username it did not verify is not an identity
        # (an anonymous client claiming "admin" must not get admin's ACL rules).
        username = verdict.username
        if verdict.client_id is not None:
            client_id = verdict.client_id
            if assigned is not None:  # (the client is told the id it is kept under)
                assigned = client_id
        self.client = Client(
            client_id=client_id,
            username=username,
            address=self.address,
            protocol_level=level,
            labels=verdict.labels,
        )
        self.will = packet.will
        # keep-alive, capped by the server (MQTT-3.2.2-21: Server Keep Alive replaces it)
        keep_alive = packet.keep_alive
        server_keep_alive: int | None = None
        if level < MQTT_5:
            if keep_alive > settings.max_keepalive:
                # A 3.1.1 client cannot be told a shorter keep-alive and would be cut off while
                # idle; refuse it at once, as Mosquitto does (return code 2). One that asks
                # for none (0) gets none.
                log.info(
                    "refused %r: keep-alive %ss, the maximum is %ss",
                    client_id,
                    keep_alive,
                    settings.max_keepalive,
                )
                return self._refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID)
        elif keep_alive > settings.max_keepalive or (
            keep_alive == 0 and settings.max_keepalive < 65535
        ):
            keep_alive = server_keep_alive = settings.max_keepalive
        self.keep_alive = keep_alive
        # Our window toward the client: its Receive Maximum (MQTT-3.3.4-9), and never more than
        # max_inflight, so a 3.1.1 client that never acknowledges holds at most that many.
        self.send_quota = settings.max_inflight
        if level == MQTT_5:
            if props.receive_maximum is not None:
                self.send_quota = min(props.receive_maximum, settings.max_inflight)
            self.client_max_packet = props.maximum_packet_size
            self.client_alias_max = props.topic_alias_maximum or 0
            expiry = props.session_expiry_interval or 0
        else:
            expiry = 0 if packet.clean_start else 0xFFFFFFFF
        capped_expiry: int | None = None
        if expiry > settings.session_expiry_max:
            expiry = capped_expiry = settings.session_expiry_max
        if verdict.client_id is None and not broker.session_room(client_id, expiry):
            broker.stats.refused_connect += 1
            log.info("refused %r from %s: max_sessions reached", client_id, self.address)
            # 5.0: 0x97 Quota exceeded; 3.1.1: 3 Server unavailable
            return self._refuse(ReasonCode.QUOTA_EXCEEDED)
        self.access = broker.authorizer.access(self.client)
        session, present = broker.open_session(self, client_id, packet.clean_start, expiry)
        session.receive_filter = self.access.receive_filter
        if present:
            broker.prune_subscriptions(session, self.access)
        self.session = session
        connack_props = NO_PROPERTIES
        if level == MQTT_5:
            connack_props = Properties(
                receive_maximum=settings.max_inflight,
                maximum_packet_size=settings.max_packet_size,
                topic_alias_maximum=settings.topic_alias_maximum,
                retain_available=1,
                wildcard_subscription_available=1,
                subscription_identifier_available=1,
                shared_subscription_available=1,
                assigned_client_identifier=assigned,
                server_keep_alive=server_keep_alive,
                session_expiry_interval=capped_expiry,
            )
        self._write(encode(ConnAck(session_present=present, properties=connack_props), level))
        self.state = CONNECTED
        self._no_longer_pending()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if keep_alive:
            self._arm_keep_alive()
        session.attach(self)
        return True

    def _refuse(self, reason: int) -> bool:
        code = reason if self.level == MQTT_5 else connack_code_for_v3(reason)
        self._write(encode(ConnAck(reason_code=code), self.level))
        self._close_after_reply()
        return False

    def access_changed(self) -> None:
        """The client's rights changed (a gateway's sub-devices): forget remembered verdicts."""
        self._acl_cache = None

    def _arm_keep_alive(self) -> None:
        # MQTT-3.1.2-24: one and a half keep-alive periods without a packet close the connection
        limit = self.keep_alive * 1.5
        left = self.last_received + limit - time.monotonic()
        if left <= 0:
            log.info("%s: keep-alive of %ss expired", self._who(), self.keep_alive)
            self.disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)
            return
        self._timer = self._loop.call_later(left, self._arm_keep_alive)

    # -- PUBLISH in -------------------------------------------------------------------------

    def _on_publish(self, packet: Publish) -> None:
        broker = self.broker
        broker.stats.messages_received += 1
        topic = packet.topic
        props = packet.properties
        qos = packet.qos
        level5 = self.level == MQTT_5
        settings = broker.settings
        if topic:  # (an aliased topic was checked when its alias was set)
            why = over_limits(topic, settings.max_topic_length, settings.max_topic_levels)
            if why is not None:
                self._topic_not_accepted(packet, why)
                return
        if level5 and props is not NO_PROPERTIES:
            alias = props.topic_alias
            if alias is not None:
                if alias > self.broker.settings.topic_alias_maximum:
                    raise RemoteProtocolError(
                        f"topic alias {alias} above our maximum", ReasonCode.TOPIC_ALIAS_INVALID
                    )
                aliases = self._in_aliases
                if aliases is None:
                    aliases = self._in_aliases = {}
                if topic:
                    aliases[alias] = topic
                else:
                    known = aliases.get(alias)
                    if known is None:
                        raise RemoteProtocolError(
                            f"topic alias {alias} was never set", ReasonCode.PROTOCOL_ERROR
                        )
                    topic = known
        session = self.session
        assert session is not None and self.client is not None
        if (
            level5
            and qos
            and self._waiting_pubacks + len(session.incoming_qos2) >= broker.settings.max_inflight
            and packet.packet_id not in session.incoming_qos2
        ):
            # MQTT-3.3.4-7/-8: more unacknowledged QoS 1/2 PUBLISHes than our Receive Maximum
            raise RemoteProtocolError(
                "receive maximum exceeded", ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
            )
        if qos == 2 and packet.packet_id in session.incoming_qos2:
            # A resend of a QoS 2 message we already took (method B, MQTT 4.3.3): answer again,
            # once the first copy is durable.
            wait = broker.store.committed() if session.persistent else None
            self._send_ack(success_ack(PUBREC_BYTE, packet.packet_id), wait)
            return
        cache = self._acl_cache
        if cache is None:
            cache = self._acl_cache = TopicMemo(_ACL_CACHE_SIZE, _ACL_CACHE_BYTES)
        allowed = cache.get(topic)
        if allowed is None:
            allowed = not topic.startswith("$") and self.access.may_publish(topic)
            cache.remember(topic, allowed)
        if not allowed:
            broker.stats.denied_publish += 1
            log.info("%s may not publish to %r", self._who(), topic)
            reason = ReasonCode.NOT_AUTHORIZED if level5 else 0
            if qos == 1:
                self._send_ack(
                    encode(PubAck(packet_id=packet.packet_id, reason_code=reason), self.level)
                )
            elif qos == 2:
                self._send_ack(
                    encode(PubRec(packet_id=packet.packet_id, reason_code=reason), self.level)
                )
            return
        expires_at = None
        if level5 and props.message_expiry_interval is not None:
            expires_at = time.time() + props.message_expiry_interval
        forwarded = props
        if (
            level5
            and props is not NO_PROPERTIES
            and (props.topic_alias is not None or props.subscription_identifiers)
        ):
            forwarded = msgspec.structs.replace(
                props,
                topic_alias=None,
                subscription_identifiers=(),
                message_expiry_interval=None,
            )
        elif expires_at is not None:
            forwarded = msgspec.structs.replace(props, message_expiry_interval=None)
        message = Message(
            topic,
            packet.payload,
            qos,
            packet.retain,
            forwarded,
            expires_at,
            self.client.client_id,
            packet.packet_id,
            packet.dup,
        )
        outcome = broker.publish(message)
        if qos == 0:
            return
        if isinstance(outcome, Refused):  # by a tap: not accepted (MQTT 5.0, 3.4.2.1)
            reason = outcome.reason_code if level5 else 0
            ack = PubAck if qos == 1 else PubRec  # (a refused QoS 2 flow ends at PUBREC)
            self._send_ack(encode(ack(packet_id=packet.packet_id, reason_code=reason), self.level))
            return
        wait = outcome
        if qos == 1:
            self._send_ack(success_ack(PUBACK_BYTE, packet.packet_id), wait)
        else:
            session.incoming_qos2.add(packet.packet_id)
            if session.persistent:
                broker.store.save_incoming_qos2(session.client_id, packet.packet_id)
                committed = broker.store.committed()
                wait = committed if wait is None else both(wait, committed)
            self._send_ack(success_ack(PUBREC_BYTE, packet.packet_id), wait)

    def _topic_not_accepted(self, packet: Publish, why: str) -> None:
        """A topic over max_topic_length or max_topic_levels: nothing of the message is taken.
        A 5.0 QoS 1 or 2 message is refused in its PUBACK or PUBREC with 0x90, "not malformed,
        but not accepted by this Server" (3.4.2.1, 3.5.2.1), and the connection goes on; EMQX
        disconnects even then, but the acknowledgement says it without costing the device its
        connection. QoS 0 has no acknowledgement and 3.1.1 no reason codes: there, as in EMQX,
        the connection ends, with DISCONNECT 0x90 in 5.0 (4.13.2)."""
        self.broker.stats.denied_publish += 1
        if self.level == MQTT_5 and packet.qos:
            log.info("%s: topic name refused: %s", self._who(), why)
            answer = PubAck if packet.qos == 1 else PubRec
            reason = ReasonCode.TOPIC_NAME_INVALID
            self._send_ack(encode(answer(packet_id=packet.packet_id, reason_code=reason), MQTT_5))
            return
        raise RemoteProtocolError(f"topic name {why}", ReasonCode.TOPIC_NAME_INVALID)

    def _on_pubrel(self, packet: PubRel) -> None:
        session = self.session
        assert session is not None
        reason = 0
        wait = None
        if packet.packet_id in session.incoming_qos2:
            session.incoming_qos2.discard(packet.packet_id)
            if session.persistent:
                # MQTT-4.3.3-12: after PUBCOMP the packet id is free; a restart must not bring
                # it back and swallow the next message that uses it.
                self.broker.store.delete_incoming_qos2(session.client_id, packet.packet_id)
                wait = self.broker.store.committed()
        elif self.level == MQTT_5:
            reason = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND
        self._send_ack(
            encode(PubComp(packet_id=packet.packet_id, reason_code=reason), self.level), wait
        )

    # -- acknowledgements of our PUBLISHes --------------------------------------------------

    def _on_puback(self, packet: PubAck) -> None:
        assert self.session is not None
        self.session.puback(packet.packet_id)

    def _on_pubrec(self, packet: PubRec) -> None:
        assert self.session is not None
        failed = packet.reason_code >= 0x80
        if self.session.pubrec(packet.packet_id, failed):
            if not failed:
                # MQTT-4.3.3-6: once PUBREL is out the PUBLISH must never be resent, so the new
                # state is made durable first.
                wait = self.broker.store.committed() if self.session.persistent else None
                self._send_ack(encode(PubRel(packet_id=packet.packet_id), self.level), wait)
        elif not failed:
            reason = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND if self.level == MQTT_5 else 0
            self._write(encode(PubRel(packet_id=packet.packet_id, reason_code=reason), self.level))

    def _on_pubcomp(self, packet: PubComp) -> None:
        assert self.session is not None
        self.session.pubcomp(packet.packet_id)

    # -- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------

    def _on_subscribe(self, packet: Subscribe) -> None:
        broker = self.broker
        session, client = self.session, self.client
        assert session is not None and client is not None
        level5 = self.level == MQTT_5
        sub_ids = packet.properties.subscription_identifiers
        sub_id = sub_ids[0] if sub_ids else None
        codes: list[int] = []
        retained: list[Delivery] = []
        refused, quota = 0, ""
        for sub in packet.subscriptions:
            topic_filter = sub.topic_filter
            try:
                group, bare = parse_shared(topic_filter)
                validate_topic_filter(bare)
                why = over_limits(
                    topic_filter,
                    broker.settings.max_topic_length,
                    # '$share/{group}/' adds two levels that are not the filter's
                    broker.settings.max_topic_levels + (0 if group is None else 2),
                )
                if why is not None:  # 5.0: 0x8F, not accepted by this Server (3.9.3)
                    log.info("%s: topic filter refused: %s", self._who(), why)
                    raise RemoteProtocolError(why, ReasonCode.TOPIC_FILTER_INVALID)
            except RemoteProtocolError:
                codes.append(ReasonCode.TOPIC_FILTER_INVALID if level5 else 0x80)
                continue
            # a shared subscription is authorized by its filter, as Mosquitto does
            if not self.access.may_subscribe(bare):
                broker.stats.denied_subscribe += 1
                log.info("%s may not subscribe to %r", self._who(), topic_filter)
                codes.append(ReasonCode.NOT_AUTHORIZED if level5 else 0x80)
                continue
            over_quota = session.subscription_refused(topic_filter)
            if over_quota is not None:
                # each subscription is memory (and rows) for as long as the session lives
                broker.stats.refused_subscribe += 1
                refused, quota = refused + 1, over_quota
                codes.append(ReasonCode.QUOTA_EXCEEDED if level5 else 0x80)
                continue
            qos = min(sub.qos, 2)
            options = SubscriptionOptions(
                qos=qos,
                no_local=sub.no_local,
                retain_as_published=sub.retain_as_published,
                retain_handling=sub.retain_handling,
                subscription_id=sub_id,
            )
            existed = broker.subscribe(session, topic_filter, options)
            codes.append(qos)
            if group is None and (
                sub.retain_handling == 0 or (sub.retain_handling == 1 and not existed)
            ):
                ids = (sub_id,) if sub_id is not None else ()
                retained.extend(
                    # MQTT-3.3.1-9: retained messages sent on subscribe keep RETAIN=1
                    Delivery(message, min(qos, message.qos), True, ids)
                    for message in broker.retained_matching(bare)
                )
        if refused:  # one line for the packet, not one for each of its filters
            log.info("%s: %d topic filters refused (0x97): %s", self._who(), refused, quota)
        self._write(
            encode(SubAck(packet_id=packet.packet_id, reason_codes=tuple(codes)), self.level)
        )
        for delivery in retained:
            session.deliver(delivery)

    def _on_unsubscribe(self, packet: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes = tuple(
            ReasonCode.SUCCESS
            if self.broker.unsubscribe(session, topic_filter)
            else ReasonCode.NO_SUBSCRIPTION_EXISTED
            for topic_filter in packet.topic_filters
        )
        reply = UnsubAck(
            packet_id=packet.packet_id, reason_codes=codes if self.level == MQTT_5 else ()
        )
        self._write(encode(reply, self.level))

    # -- the rest ---------------------------------------------------------------------------

    def _on_pingreq(self, packet: PingReq) -> None:
        self._write(_PINGRESP)

    def _on_disconnect(self, packet: Disconnect) -> None:
        session = self.session
        assert session is not None
        expiry = packet.properties.session_expiry_interval
        if expiry is not None:
            if session.expiry_interval == 0 and expiry != 0:
                # MQTT-3.14.2-2: a session that was to end cannot be revived at DISCONNECT
                raise RemoteProtocolError(
                    "session expiry set at DISCONNECT after 0 at CONNECT", ReasonCode.PROTOCOL_ERROR
                )
            session.expiry_interval = min(expiry, self.broker.settings.session_expiry_max)
        # MQTT-3.14.4-3: a normal DISCONNECT discards the will; 0x04 asks for it to be sent.
        self.clean_disconnect = packet.reason_code != ReasonCode.DISCONNECT_WITH_WILL_MESSAGE
        self.ended_by = "disconnect" if self.clean_disconnect else "disconnect with will"
        if self.clean_disconnect:
            self.will = None
        self.state = CLOSING
        self._close()

    def _on_auth(self, packet: Auth) -> None:
        raise RemoteProtocolError(
            "enhanced authentication is not supported", ReasonCode.PROTOCOL_ERROR
        )


_HANDLERS: dict[type[Packet], Callable[[MQTTConnection, Any], None]] = {
    Connect: MQTTConnection._on_connect,  # the decoder refuses a second one (MQTT-3.1.0-2)
    Publish: MQTTConnection._on_publish,
    PubAck: MQTTConnection._on_puback,
    PubRec: MQTTConnection._on_pubrec,
    PubRel: MQTTConnection._on_pubrel,
    PubComp: MQTTConnection._on_pubcomp,
    Subscribe: MQTTConnection._on_subscribe,
    Unsubscribe: MQTTConnection._on_unsubscribe,
    PingReq: MQTTConnection._on_pingreq,
    Disconnect: MQTTConnection._on_disconnect,
    Auth: MQTTConnection._on_auth,
}


def _outcome_seen(future: asyncio.Future[None]) -> None:
    """Marks a wait's failure as seen: it was told in the log with the first one."""
    if not future.cancelled():
        future.exception()
