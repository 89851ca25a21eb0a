"""The broker: sessions, subscriptions, retained messages, routing and the listeners.

It asks *who is this?* of an ``Authenticator`` and *may they?* of an ``Authorizer``, keeps what
must survive a restart in a ``BrokerStateStore``, and hands every accepted publish to the
subscribers its topic matches and to the taps (the dialects) its topic matches.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from hongshan import __version__
from hongshan.broker.admission import Admission, PendingConnections
from hongshan.broker.auth import Access, Authenticator, Authorizer, Client
from hongshan.broker.connection import MQTTConnection, both
from hongshan.broker.message import (
    SERVER_SIDE_SUBSCRIPTION,
    Delivery,
    Message,
    Refused,
    SubscriptionOptions,
)
from hongshan.broker.retained import RetainedStore, retained_weight
from hongshan.broker.session import OutState, Session, SessionLimits
from hongshan.broker.state import BrokerStateStore, SavedWill
from hongshan.broker.stats import Stats
from hongshan.broker.tls import TlsListener
from hongshan.config import Settings
from hongshan.errors import StoreUnavailable
from hongshan.mqtt.packets import NO_PROPERTIES, Will
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.mqtt.topics import parse_shared, topic_matches
from hongshan.mqtt.trie import SubscriptionTrie

log = logging.getLogger("hongshan.broker")

NEVER_EXPIRES = 0xFFFFFFFF
SharedKey = tuple[str, str]  # ("$share", group name)


class SharedGroup:
    """The members of one shared subscription group on one filter (MQTT 4.8.2). Each message goes
    to one member, round robin, preferring members that are connected."""

    __slots__ = ("_order", "cursor", "members")

    def __init__(self) -> None:
        self.members: dict[str, SubscriptionOptions] = {}
        self._order: list[str] = []  # member ids in joining order, for the round robin
        self.cursor = 0

    def add(self, client_id: str, options: SubscriptionOptions) -> None:
        if client_id not in self.members:
            self._order.append(client_id)
        self.members[client_id] = options

    def remove(self, client_id: str) -> None:
        if self.members.pop(client_id, None) is not None:
            self._order.remove(client_id)

    def pick(
        self, sessions: dict[str, Session], topic: str
    ) -> tuple[str, SubscriptionOptions] | None:
        """The member that gets a message on ``topic``: the next connected one that may
        receive it, else the next that may (it queues it); None when no member may. A member
        whose ACL holds ``topic`` back (its session's ``receive_filter``: a partial deny rule,
        a tenant user's other tenants) is passed over, so the group does not lose it."""
        order = self._order
        count = len(order)
        if not count:
            return None
        start = self.cursor % count
        waiting = -1
        for offset in range(count):
            client_id = order[(start + offset) % count]
            session = sessions.get(client_id)
            if session is not None:
                may_receive = session.receive_filter
                if may_receive is not None and not may_receive(topic):
                    continue
                if session.connection is not None:
                    self.cursor = start + offset + 1
                    return client_id, self.members[client_id]
            if waiting < 0:
                waiting = offset
        if waiting < 0:
            return None
        # nobody who may receive it is connected: persistent members queue it in turn
        self.cursor = start + waiting + 1
        client_id = order[(start + waiting) % count]
        return client_id, self.members[client_id]


# What a tap answers: True, it consumed the message (nobody else gets it); an awaitable, the
# publisher's acknowledgement waits for it (the history's commit of what the message said);
# ``Refused``, the message is refused (see there: nobody gets it and its publisher is told);
# None or False, nothing.
Tap = Callable[[Message], bool | Awaitable[None] | Refused | None]


class DerivedSubscription:
    """One subscription for a pattern many clients share, held by whichever session
    ``resolve(topic)`` names (or nobody, for None). A dialect's automatic subscriptions are the
    case (Alink's: ``dialects/alink/auto_subscriptions.py``): every device receives its own
    system topics; one trie entry and a function of the topic cost less than seven entries per
    device made at every CONNECT and removed at every disconnect."""

    __slots__ = ("options", "resolve")

    def __init__(self, resolve: Callable[[str], str | None], options: SubscriptionOptions):
        self.resolve = resolve
        self.options = options


class Broker:
    """The MQTT server's shared state and its routing: listeners, the sessions by client id
    (clean and persistent, takeover, expiry, wills), the subscription trie with shared and
    derived subscriptions, retained messages, taps, ``$SYS``. It owns what survives a restart
    through its ``BrokerStateStore``. It never parses bytes (each ``MQTTConnection`` does), and
    knows no device, dialect or pipeline: the platform reaches it through taps, derived
    subscriptions, ``send_to`` and the connect/disconnect listeners
    (``dialects.port.BrokerPort``), and the hearers of accepted publishes (the rules)."""

    def __init__(
        self,
        settings: Settings,
        *,
        authenticator: Authenticator,
        authorizer: Authorizer,
        store: BrokerStateStore,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.store = store
        self.stats = Stats()
        self.sessions: dict[str, Session] = {}
        self.session_limits = SessionLimits(
            max_queued=settings.max_queued_messages,
            max_queued_bytes=settings.max_queued_bytes,
            max_subscriptions=settings.max_subscriptions_per_client,
            max_subscription_bytes=settings.max_subscription_bytes_per_client,
        )
        self.connections: dict[str, MQTTConnection] = {}  # client id -> its live connection
        self.open_connections: set[MQTTConnection] = set()
        self.subscriptions: SubscriptionTrie[
            str | SharedKey | DerivedSubscription,
            SubscriptionOptions | SharedGroup | DerivedSubscription,
        ]
        self.subscriptions = SubscriptionTrie()
        self.retained = RetainedStore()
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._closers: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._tls: TlsListener | None = None
        # client id -> (timer, will, client): wills waiting out their will delay
        self._pending_wills: dict[str, tuple[asyncio.TimerHandle, Will, Client]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.pending = PendingConnections(settings.max_pending_connections_per_address, self.stats)
        # Hooks for the platform (presence, dialects); called on the event loop, must not block.
        self.on_connected: list[Callable[[Client, str], None]] = []  # (client, address)
        self.on_disconnected: list[Callable[[Client, str], None]] = []  # (client, why)
        # Server-side subscribers: every accepted publish whose topic matches a tap's filter is
        # handed to it (after the ACL, before delivery) — how dialects see devices' messages.
        self._taps: SubscriptionTrie[int, Tap] = SubscriptionTrie()
        self._tap_count = 0
        # Hearers of every client publish the taps accepted (refused ones never reach them),
        # consumed ones included, before delivery: the rules engine. Called on the event loop;
        # they must not block, and what they publish themselves is the server's own.
        self.on_published: list[Callable[[Message], None]] = []

    def background(self, task: asyncio.Task[Any]) -> None:
        """Keep a reference to a task until it is done (RUF006)."""
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # -- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        self._restore()
        loop = asyncio.get_running_loop()
        s = self.settings
        server = await loop.create_server(
            lambda: MQTTConnection(self, "tcp"), s.host, s.mqtt_port, backlog=4096
        )
        self._servers.append(server)
        self.ports["mqtt"] = server.sockets[0].getsockname()[1]
        if s.tls_port is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            assert s.tls_cert is not None and s.tls_key is not None
            context.load_cert_chain(s.tls_cert, s.tls_key)
            # admitted at accept, then encrypted (TlsListener): a client stalled in the TLS
            # handshake counts against its address's pending connections
            self._tls = TlsListener(self, context)
            port = await self._tls.open(s.host, s.tls_port)
            self.ports["mqtts"] = port
        if s.ws_port is not None:
            from hongshan.broker.websocket import serve_websocket

            port, closer = await serve_websocket(self, s.host, s.ws_port)
            self.ports["ws"] = port
            self._closers.append(closer)
        if s.sys_interval > 0:
            self.background(loop.create_task(self._publish_sys()))
        for name, port in self.ports.items():
            log.info("listening %s %s:%d", name, s.host, port)

    async def stop(self) -> None:
        """Stop accepting, tell 5.0 clients the server is going (0x8B), make state durable."""
        self._stopping = True
        for server in self._servers:
            server.close()
        if self._tls is not None:
            self._tls.close()
        for conn in list(self.open_connections):
            conn.disconnect(ReasonCode.SERVER_SHUTTING_DOWN)
        for closer in self._closers:
            await closer()
        for _ in range(100):
            if not self.open_connections:
                break
            await asyncio.sleep(0.01)
        for task in list(self._tasks):
            task.cancel()
        for timer, _, _ in self._pending_wills.values():
            timer.cancel()
        try:
            await self.store.committed()
        except StoreUnavailable as exc:  # said when it happened; stopping goes on regardless
            log.error("stopping with state not all durable: %s", exc)
        await self.store.close()

    def _restore(self) -> None:
        saved = self.store.load()
        now = time.time()
        for message in saved.retained:
            if message.remaining_expiry(now) != 0:
                self.retained.set(message)
            else:
                self.store.delete_retained(message.topic)
        for record in saved.sessions:
            if record.expiry_interval != NEVER_EXPIRES and record.disconnected_at is not None:
                left = record.disconnected_at + record.expiry_interval - now
                if left <= 0:
                    self.store.delete_session(record.client_id)
                    continue
            session = self._new_session(record.client_id, record.expiry_interval)
            session.stored = True
            session.disconnected_at = record.disconnected_at or now
            session.incoming_qos2 = set(record.incoming_qos2)
            over = 0
            for topic_filter, options in record.subscriptions.items():
                if session.subscription_refused(topic_filter) is not None:
                    # kept before the caps were set or lowered: the bounds hold after a restart
                    self.store.delete_subscription(record.client_id, topic_filter)
                    over += 1
                    continue
                self.subscribe(session, topic_filter, options, persist=False)
            if over:
                log.warning(
                    "session %r: %d subscriptions over max_subscriptions_per_client or "
                    "max_subscription_bytes_per_client dropped",
                    record.client_id,
                    over,
                )
            self._schedule_expiry(session)
        for saved_message in saved.messages:
            restored = self.sessions.get(saved_message.client_id)
            if restored is not None:
                restored.restore(
                    saved_message.packet_id,
                    saved_message.delivery,
                    saved_message.seq,
                    OutState(saved_message.state),
                )
        for saved_will in saved.wills:
            # a will whose delay ran out while the broker was down goes out now
            self._schedule_will(saved_will.client, saved_will.will, max(0.0, saved_will.due - now))
        if saved.sessions or saved.retained:
            log.info(
                "restored %d sessions, %d queued messages, %d retained messages",
                len(self.sessions),
                len(saved.messages),
                len(self.retained),
            )

    # -- connections and sessions -----------------------------------------------------------

    def admit(self, host: str) -> Admission | None:
        """A connection from ``host`` just accepted, on any listener: counted until it is
        CONNECTed or gone, or None when its host holds max_pending_connections_per_address
        such connections already (``PendingConnections``)."""
        return self.pending.admit(host)

    def connection_opened(self, conn: MQTTConnection) -> None:
        self.open_connections.add(conn)
        self.stats.connections_total += 1

    def _new_session(self, client_id: str, expiry_interval: int) -> Session:
        session = Session(
            client_id,
            store=self.store,
            stats=self.stats,
            limits=self.session_limits,
            expiry_interval=expiry_interval,
        )
        self.sessions[client_id] = session
        return session

    def session_room(self, client_id: str, expiry_interval: int) -> bool:
        """Whether a client may have a persistent session under ``client_id``: False when that
        would be a new one while the broker holds max_sessions sessions (connected or not).
        Each kept session holds memory and rows until it expires, and a client with a users
        file login (or none) can name ever new client ids; devices are bounded by the registry
        and are not asked. A session that ends with its connection is bounded by connections."""
        cap = self.settings.max_sessions
        if not cap or expiry_interval == 0 or len(self.sessions) < cap:
            return True
        return client_id in self.sessions  # resumed, or replaced by a clean start: none new

    def open_session(
        self, conn: MQTTConnection, client_id: str, clean_start: bool, expiry_interval: int
    ) -> tuple[Session, bool]:
        """Attach a newly accepted connection to its session; returns (session, present)."""
        old = self.connections.pop(client_id, None)
        if old is not None:
            # MQTT-3.1.4-2: the existing connection is closed; its will follows the usual rules
            # and a session that was to end with it ends (MQTT-3.1.2-6, 5.0 3.1.2.11.2).
            log.info("client %r taken over from %s by %s", client_id, old.address, conn.address)
            old_session = old.session
            if old.client is not None:
                self._notify_disconnected(old.client, "session taken over")
            self._on_abnormal_end(old, client_id)
            old.session = None
            old.disconnect(ReasonCode.SESSION_TAKEN_OVER)
            if old_session is not None:
                old_session.detach(time.time())
                if not old_session.persistent:
                    self._end_session(old_session)
        existing = self.sessions.get(client_id)
        present = False
        if existing is not None and clean_start:
            self._end_session(existing)
            existing = None
        if existing is not None:
            present = True
            session = existing
            pending = self._pending_wills.pop(client_id, None)
            if pending is not None:
                pending[0].cancel()  # MQTT-3.1.3-9: the session resumed before the will delay
                self.store.delete_will(client_id)
        else:
            session = self._new_session(client_id, expiry_interval)
        session.expiry_interval = expiry_interval
        if session.persistent:
            self.store.save_session(client_id, expiry_interval, None)
            session.stored = True
        elif session.stored:
            self.store.delete_session(client_id)
            session.stored = False
        self.connections[client_id] = conn
        if conn.client is not None:
            for connected in self.on_connected:
                connected(conn.client, conn.address)
        return session, present

    def _notify_disconnected(self, client: Client, why: str) -> None:
        for disconnected in self.on_disconnected:
            disconnected(client, why)

    def disconnect_client(self, client_id: str, reason: int, *, only: object = None) -> bool:
        """Close a client's connection with ``reason`` (5.0 DISCONNECT); False if not connected.
        ``only`` (from ``connection_of``): close that connection, not a newer one."""
        conn = self.connections.get(client_id)
        if conn is None or (only is not None and conn is not only):
            return False
        conn.disconnect(reason)
        return True

    def connection_of(self, client_id: str) -> object:
        """An opaque handle on the client's current connection (for ``disconnect_client``)."""
        return self.connections.get(client_id)

    def address_of(self, client_id: str) -> str:
        conn = self.connections.get(client_id)
        return conn.address if conn is not None else ""

    def access_of(self, client_id: str) -> Access | None:
        """The rights of a client's current connection."""
        conn = self.connections.get(client_id)
        return conn.access if conn is not None else None

    def access_changed(self, client_id: str) -> None:
        """A connected client's rights changed: forget remembered verdicts, and end the
        subscriptions its rights no longer cover (a gateway that logged a sub-device out)."""
        conn = self.connections.get(client_id)
        session = self.sessions.get(client_id)
        if conn is not None:
            conn.access_changed()
            if session is not None:
                self.prune_subscriptions(session, conn.access)

    def prune_subscriptions(self, session: Session, access: Access) -> None:
        """End the session's subscriptions that ``access`` no longer allows (also when a
        persistent session resumes under rights that changed while it was away)."""
        for topic_filter in list(session.subscriptions):
            _, bare = parse_shared(topic_filter)
            if not access.may_subscribe(bare):
                log.info("%r: subscription %r no longer allowed", session.client_id, topic_filter)
                self.unsubscribe(session, topic_filter)

    def derive(self, topic_filter: str, resolve: Callable[[str], str | None]) -> None:
        """Deliver what matches ``topic_filter`` to the session ``resolve(topic)`` names: QoS 1
        at most, and never a client's own messages back (``DerivedSubscription``)."""
        derived = DerivedSubscription(resolve, SERVER_SIDE_SUBSCRIPTION)
        self.subscriptions.subscribe(topic_filter, derived, derived)

    def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 1) -> bool:
        """A message for one session only, whatever it subscribed to (answers to dynamic
        registration, which nobody else may see); False when there is no such session.

        Sent at ``qos``, or lower when the session subscribed to the topic at lower: MQTT
        delivers at the lower of the message's QoS and the one granted (MQTT-3.8.4-6), the
        highest of every matching subscription's (MQTT-3.3.5-1). A topic it did not subscribe
        to has no grant: ``qos`` as asked."""
        session = self.sessions.get(client_id)
        if session is None:
            return False
        if qos:
            granted = -1
            for topic_filter, options in session.subscriptions.items():
                if options.qos > granted and topic_matches(parse_shared(topic_filter)[1], topic):
                    granted = options.qos
            if 0 <= granted < qos:
                qos = granted
        session.deliver(Delivery(Message(topic, payload, qos), qos, False, ()))
        return True

    def tap(self, topic_filter: str, handler: Tap) -> None:
        """Hand every publish of a client (wills included) matching ``topic_filter`` to
        ``handler`` as well — not the platform's own (``publish_from_server``, ``$SYS``). A
        handler that returns True has consumed it (an answer meant for the platform alone), and
        it is not delivered to subscribers. One that returns an awaitable holds the publisher's
        PUBACK or PUBREC until it is done, and a failure (``StoreUnavailable``) withholds it.
        One that returns ``Refused`` refuses it: the taps after it are not asked, and it goes
        no further (a dialect refusing its topics' malformed payloads should be their only
        tap)."""
        self._tap_count += 1
        self._taps.subscribe(topic_filter, self._tap_count, handler)

    def publish_from_server(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> None:
        """A message the platform itself sends (replies, commands, status): routed like any
        other, with no client of ours as its sender."""
        self.publish(Message(topic, payload, qos, retain))

    def connection_gone(self, conn: MQTTConnection) -> None:
        """The socket is closed (after any lingering)."""
        self.open_connections.discard(conn)

    def connection_closed(self, conn: MQTTConnection, *, was_connected: bool) -> None:
        """The connection is over for MQTT: detach its session, send its will if due."""
        client = conn.client
        if not was_connected or client is None:
            return
        if self.connections.get(client.client_id) is not conn:
            return  # taken over: handled in open_session
        del self.connections[client.client_id]
        self._notify_disconnected(client, conn.ended_by)
        session = conn.session
        if session is None:
            return
        now = time.time()
        session.detach(now)
        if not conn.clean_disconnect:
            self._on_abnormal_end(conn, client.client_id)
        if session.persistent:
            self.store.save_session(client.client_id, session.expiry_interval, now)
            session.stored = True
            self._schedule_expiry(session)
        else:
            self._end_session(session)

    def _on_abnormal_end(self, conn: MQTTConnection, client_id: str) -> None:
        """Send the will of a connection that ended without a normal DISCONNECT, after its will
        delay unless the session ends first or is resumed (MQTT 3.1.3.2)."""
        will, client = conn.will, conn.client
        conn.will = None
        if will is None or client is None or self._stopping:
            return
        delay = will.properties.will_delay_interval or 0
        session = conn.session
        if session is not None and session.expiry_interval < delay:
            delay = session.expiry_interval
        if delay <= 0:
            self._publish_will(will, client)
            return
        # kept in the store too, so that a restart within the delay does not lose it
        self.store.save_will(SavedWill(client, will, time.time() + delay))
        self._schedule_will(client, will, delay)

    def _schedule_will(self, client: Client, will: Will, delay: float) -> None:
        client_id = client.client_id
        previous = self._pending_wills.pop(client_id, None)
        if previous is not None:
            previous[0].cancel()
        timer = asyncio.get_running_loop().call_later(delay, self._fire_will, client_id)
        self._pending_wills[client_id] = (timer, will, client)

    def _fire_will(self, client_id: str) -> None:
        pending = self._pending_wills.pop(client_id, None)
        if pending is not None:
            pending[0].cancel()
            self.store.delete_will(client_id)
            self._publish_will(pending[1], pending[2])

    def _publish_will(self, will: Will, client: Client) -> None:
        allowed = self.authorizer.access(client).may_publish(will.topic)
        if not allowed or will.topic.startswith("$"):
            log.info("will of %r to %r not allowed", client.client_id, will.topic)
            return
        props = will.properties
        expires_at = None
        if props.message_expiry_interval is not None:
            expires_at = time.time() + props.message_expiry_interval
        forwarded = NO_PROPERTIES
        if props is not NO_PROPERTIES:
            forwarded = type(props)(
                payload_format_indicator=props.payload_format_indicator,
                content_type=props.content_type,
                response_topic=props.response_topic,
                correlation_data=props.correlation_data,
                user_properties=props.user_properties,
            )
        self.publish(
            Message(
                will.topic,
                will.payload,
                will.qos,
                will.retain,
                forwarded,
                expires_at,
                client.client_id,
            )
        )

    def _schedule_expiry(self, session: Session) -> None:
        if session.expiry_interval == NEVER_EXPIRES or session.connection is not None:
            return
        if session.expiry_handle is not None:
            session.expiry_handle.cancel()
        left = float(session.expiry_interval)
        if session.disconnected_at is not None:
            left = max(0.0, session.disconnected_at + session.expiry_interval - time.time())
        session.expiry_handle = asyncio.get_running_loop().call_later(left, self._expire, session)

    def _expire(self, session: Session) -> None:
        if self.sessions.get(session.client_id) is session and session.connection is None:
            log.info("session %r expired", session.client_id)
            self._end_session(session)

    def _end_session(self, session: Session) -> None:
        client_id = session.client_id
        if self.sessions.get(client_id) is session:
            del self.sessions[client_id]
        if session.expiry_handle is not None:
            session.expiry_handle.cancel()
        for topic_filter in list(session.subscriptions):
            self._remove_subscription(client_id, topic_filter)
            session.remove_subscription(topic_filter)
        # MQTT-3.1.3-9: a will still waiting out its delay is sent when the session ends.
        self._fire_will(client_id)
        if session.stored:
            self.store.delete_session(client_id)
            session.stored = False

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(
        self,
        session: Session,
        topic_filter: str,
        options: SubscriptionOptions,
        *,
        persist: bool = True,
    ) -> bool:
        """Add or replace a subscription; True if the session already had it (MQTT-3.8.4-3)."""
        group, bare = parse_shared(topic_filter)
        client_id = session.client_id
        if group is None:
            self.subscriptions.subscribe(bare, client_id, options)
        else:
            key = ("$share", group)
            subscribers = self.subscriptions.get(bare)
            shared = subscribers.get(key) if subscribers else None
            if not isinstance(shared, SharedGroup):
                shared = SharedGroup()
                self.subscriptions.subscribe(bare, key, shared)
            shared.add(client_id, options)
        existed = session.add_subscription(topic_filter, options)
        if persist and session.persistent:
            self.store.save_subscription(client_id, topic_filter, options)
        return existed

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        if not session.remove_subscription(topic_filter):
            return False
        self._remove_subscription(session.client_id, topic_filter)
        if session.persistent:
            self.store.delete_subscription(session.client_id, topic_filter)
        return True

    def _remove_subscription(self, client_id: str, topic_filter: str) -> None:
        group, bare = parse_shared(topic_filter)
        if group is None:
            self.subscriptions.unsubscribe(bare, client_id)
            return
        key = ("$share", group)
        subscribers = self.subscriptions.get(bare)
        shared = subscribers.get(key) if subscribers else None
        if isinstance(shared, SharedGroup):
            shared.remove(client_id)
            if not shared.members:
                self.subscriptions.unsubscribe(bare, key)

    # -- routing ----------------------------------------------------------------------------

    def publish(self, message: Message) -> Awaitable[None] | Refused | None:
        """Hand a message to the taps, deliver it to every matching subscription and keep it if
        retained. Returns what the publisher's acknowledgement of a QoS 1 or 2 message must
        wait for: the store's commit when a copy of it was written there, a tap's awaitable,
        or None; or a tap's ``Refused``, and then nothing of the message went further."""
        held: Awaitable[None] | None = None
        if self._tap_count and message.sender:
            consumed = False
            for taps in self._taps.matches(message.topic):
                for handler in taps.values():
                    try:
                        answer = handler(message)
                    except Exception:  # a dialect's bug must not cost the publisher its message
                        log.exception("tap on %r failed", message.topic)
                        continue
                    if answer is True:
                        consumed = True
                    elif isinstance(answer, Refused):
                        self.stats.refused_publish += 1
                        return answer
                    elif answer:
                        held = answer if held is None else both(held, answer)
            if consumed:
                if self.on_published and message.sender:
                    self._heard(message)
                return held
        if self.on_published and message.sender:
            self._heard(message)
        if not self._route(message) or not message.qos:
            return held  # (a retained QoS 0 message is written too, but nobody waits for it)
        committed = self.store.committed()
        return committed if held is None else both(held, committed)

    def _heard(self, message: Message) -> None:
        for hearer in self.on_published:
            try:
                hearer(message)
            except Exception:  # a hearer's bug must not cost the publisher its message
                log.exception("publish hearer on %r failed", message.topic)

    def _route(self, message: Message) -> bool:
        """Deliver and retain; True when something was written to the store."""
        stored = False
        if message.retain:
            stored = self._retain(message)
        matches = self.subscriptions.matches(message.topic)
        if not matches:
            return stored
        sessions = self.sessions
        if len(matches) == 1:
            # one matching filter: no client can appear twice, nothing to merge
            for key, value in matches[0].items():
                if type(value) is SubscriptionOptions:
                    assert isinstance(key, str)
                    if value.no_local and key == message.sender:
                        continue  # MQTT-3.8.3-3
                    delivery = Delivery(
                        message,
                        value.qos if value.qos < message.qos else message.qos,
                        message.retain and value.retain_as_published,
                        value.subscription_ids,
                    )
                    stored = sessions[key].deliver(delivery) or stored
                elif type(value) is DerivedSubscription:
                    client_id = value.resolve(message.topic)
                    if client_id is None or client_id == message.sender:
                        continue  # nobody's, or the client's own message (no-local)
                    session = sessions.get(client_id)
                    if session is not None:
                        qos = min(value.options.qos, message.qos)
                        stored = session.deliver(Delivery(message, qos, False, ())) or stored
                else:
                    assert isinstance(value, SharedGroup)
                    stored = self._deliver_shared(value, message) or stored
            return stored
        targets: dict[str, list[Any]] = {}
        for subscribers in matches:
            for key, value in subscribers.items():
                if type(value) is SubscriptionOptions:
                    assert isinstance(key, str)
                    self._merge_target(targets, key, value, message)
                elif type(value) is DerivedSubscription:
                    client_id = value.resolve(message.topic)
                    if client_id is not None and client_id in sessions:
                        self._merge_target(targets, client_id, value.options, message)
                else:
                    assert isinstance(value, SharedGroup)
                    stored = self._deliver_shared(value, message) or stored
        for client_id, (qos, retain, ids) in targets.items():
            delivery = Delivery(message, min(qos, message.qos), retain, tuple(ids))
            stored = sessions[client_id].deliver(delivery) or stored
        return stored

    def _deliver_shared(self, group: SharedGroup, message: Message) -> bool:
        """One member of a shared subscription group gets the message (MQTT 4.8.2); the RETAIN
        flag is never kept for it."""
        picked = group.pick(self.sessions, message.topic)
        if picked is None:
            return False
        client_id, options = picked
        delivery = Delivery(
            message,
            min(options.qos, message.qos),
            False,
            options.subscription_ids,
        )
        return self.sessions[client_id].deliver(delivery)

    @staticmethod
    def _merge_target(
        targets: dict[str, list[Any]],
        client_id: str,
        options: SubscriptionOptions,
        message: Message,
    ) -> None:
        """Overlapping subscriptions of one client get one copy, at the highest QoS, carrying
        every matching subscription identifier (MQTT-3.3.4-2, -3)."""
        if options.no_local and client_id == message.sender:
            return  # MQTT-3.8.3-3
        retain = message.retain and options.retain_as_published
        target = targets.get(client_id)
        if target is None:
            targets[client_id] = [options.qos, retain, list(options.subscription_ids)]
            return
        target[0] = max(target[0], options.qos)
        target[1] = target[1] or retain
        if options.subscription_id is not None:
            target[2].append(options.subscription_id)

    def retained_matching(self, topic_filter: str) -> list[Message]:
        """The retained messages a new subscription receives; expired ones are deleted here
        (MQTT-3.3.2-5: an expired message is not delivered, retained or not)."""
        now = time.time()
        found = []
        for message in list(self.retained.matching(topic_filter)):
            if message.remaining_expiry(now) == 0:
                self.retained.delete(message.topic)
                self.store.delete_retained(message.topic)
            else:
                found.append(message)
        return found

    def _retain(self, message: Message) -> bool:
        if not message.payload:
            # MQTT-3.3.1-10: an empty retained message deletes the one kept for the topic
            if self.retained.delete(message.topic) and not message.topic.startswith("$"):
                self.store.delete_retained(message.topic)
                return True
            return False
        settings = self.settings
        previous = self.retained.get(message.topic)
        grows = retained_weight(message) - (0 if previous is None else retained_weight(previous))
        over_bytes = grows > 0 and self.retained.bytes + grows > settings.max_retained_bytes
        if (
            over_bytes or (len(self.retained) >= settings.max_retained_messages and not previous)
        ) and not message.topic.startswith("$"):
            # A device publishing retained messages to ever new topics (or ever larger ones)
            # must not grow the broker without bound: the message is delivered, not kept.
            self.stats.refused_retained += 1
            if self.stats.refused_retained == 1:
                log.warning(
                    "max_retained_messages (%d) or max_retained_bytes (%d) reached",
                    settings.max_retained_messages,
                    settings.max_retained_bytes,
                )
            if previous is not None:
                # the older message it would have replaced is not the topic's latest any more
                self.retained.delete(message.topic)
                self.store.delete_retained(message.topic)
                return True
            return False
        self.retained.set(message)
        if message.topic.startswith("$"):
            return False
        self.store.save_retained(message)
        return True

    # -- $SYS -------------------------------------------------------------------------------

    def sys_values(self) -> dict[str, str]:
        s = self.stats
        connected = len(self.connections)
        return {
            "version": f"hongshan {__version__}",
            "uptime": f"{int(time.time() - s.started)} seconds",
            "clients/connected": str(connected),
            "clients/total": str(len(self.sessions)),
            "clients/disconnected": str(len(self.sessions) - connected),
            "messages/received": str(s.messages_received),
            "messages/sent": str(s.messages_sent),
            "messages/dropped": str(s.dropped),
            "messages/refused": str(s.refused_publish),
            "bytes/received": str(s.bytes_received),
            "bytes/sent": str(s.bytes_sent),
            "subscriptions/count": str(len(self.subscriptions)),
            "subscriptions/refused": str(s.refused_subscribe),
            "retained messages/count": str(len(self.retained)),
            "retained messages/refused": str(s.refused_retained),
            "connections/refused": str(s.refused_connect),
            "connections/refused pending": str(s.refused_pending),
            "denied/publish": str(s.denied_publish),
            "denied/subscribe": str(s.denied_subscribe),
            "denied/delivery": str(s.denied_delivery),
            "protocol errors": str(s.protocol_errors),
        }

    async def _publish_sys(self) -> None:
        while True:
            for name, value in self.sys_values().items():
                self.publish(Message(f"$SYS/broker/{name}", value.encode(), 0, True))
            await asyncio.sleep(self.settings.sys_interval)
