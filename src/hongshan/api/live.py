"""``/api/ws``: the live API, a WebSocket of JSON text frames (docs/api-live.md).

The client subscribes (``{"op":"subscribe","id":"s1","topic":"properties","device":"pk/dn"}``,
or ``"product"``, ``"group"``, or neither: everything its principal may see), unsubscribes and
pings; the server answers ``subscribed``, ``unsubscribed``, ``pong`` and ``error`` (the socket
stays open), and sends each matching change with the subscription's id (``sub``); what waits
for a socket goes as one frame, ``{"type":"batch","items":[…]}`` when it is more than one
message. The feed (``services.live.LiveFeed``) filters, batches and queues; this module only
reads the client's frames and writes the queued ones, each in a task of its own, so that a
client that reads slowly is dropped by the feed (closed 1013: too slow) and one that writes
nonsense is answered.

The upgrade is guarded as every API route (``api.auth``): without credentials it is answered
401, below viewer 403, over the principal's sockets 429 — before it is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from hongshan.api.auth import BEARER_SUBPROTOCOL
from hongshan.api.dependencies import Provided
from hongshan.identity.principals import Principal, Role
from hongshan.messages import DeviceRef
from hongshan.services.live import LiveFeed, LiveRefused, Scope, Subscriber, Topic

TOO_SLOW = 1013  # RFC 6455 7.4.1: "Try Again Later"; the client may come back
MAX_ID = 64  # characters of a subscription's id


class ClientMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    op: Literal["subscribe", "unsubscribe", "ping"]
    id: str | None = None
    topic: Topic | None = None
    device: str | None = None  # "productKey/deviceName"
    product: str | None = None
    group: str | None = None
    tenant: str | None = None  # the group's (the admin token's, where several have one)


_decode = msgspec.json.Decoder(ClientMessage).decode


@websocket("/api/ws", opt={"role": Role.VIEWER})
async def live(
    socket: WebSocket[Any, Any, Any],
    live_feed: Provided[LiveFeed],
    principal: Provided[Principal],
) -> None:
    try:
        subscriber = live_feed.join(principal)
    except LiveRefused as refused:  # before accepting: answered as HTTP 429
        await socket.close(code=4000 + refused.http_status, reason=refused.detail)
        return
    try:
        # (the token's subprotocol is never answered: only "bearer", when it was offered)
        offered = socket.scope.get("subprotocols") or []
        bearer = BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in offered else None
        await socket.accept(subprotocols=bearer)
        writer = asyncio.create_task(_write(socket, live_feed, subscriber))
        try:
            await _read(socket, live_feed, subscriber)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await writer
    finally:
        live_feed.leave(subscriber)


async def _write(socket: WebSocket[Any, Any, Any], feed: LiveFeed, subscriber: Subscriber) -> None:
    """The queued messages, in order, each time all that waits as one frame; once the feed
    dropped the subscriber, the close."""
    while True:
        frame = await feed.frame(subscriber)
        if frame is None:
            await socket.close(code=TOO_SLOW, reason="too slow: messages were not read in time")
            return
        await socket.send_text(frame)


async def _read(socket: WebSocket[Any, Any, Any], feed: LiveFeed, subscriber: Subscriber) -> None:
    """The client's frames, each answered, until it goes (or is closed)."""
    while not subscriber.dropped:
        event = await socket.receive()
        if event["type"] == "websocket.disconnect":
            return
        text, binary = event.get("text"), event.get("bytes")
        _answer(feed, subscriber, text if isinstance(text, str) else binary or b"")


def _answer(feed: LiveFeed, subscriber: Subscriber, data: Any) -> None:
    """One client frame (text, or bytes of JSON) answered."""
    try:
        message = _decode(data)
    except msgspec.DecodeError as exc:  # (ValidationError too)
        feed.reply(subscriber, {"type": "error", "id": _id_of(data), "detail": str(exc)})
        return
    try:
        if message.op == "ping":
            feed.reply(subscriber, {"type": "pong", "id": message.id})
        elif message.op == "subscribe":
            sub_id, topic = _named_id(message), message.topic
            if topic is None:
                raise LiveRefused("subscribe: name a topic: " + ", ".join(Topic))
            feed.subscribe(subscriber, sub_id, topic, _scope(message))
            feed.reply(subscriber, {"type": "subscribed", "id": sub_id})
        else:
            sub_id = _named_id(message)
            feed.unsubscribe(subscriber, sub_id)
            feed.reply(subscriber, {"type": "unsubscribed", "id": sub_id})
    except LiveRefused as refused:
        feed.reply(subscriber, {"type": "error", "id": message.id, "detail": refused.detail})


def _named_id(message: ClientMessage) -> str:
    if not message.id or len(message.id) > MAX_ID:
        raise LiveRefused(f"{message.op}: give an id of 1 to {MAX_ID} characters")
    return message.id


def _scope(message: ClientMessage) -> Scope:
    named = [name for name in ("device", "product", "group") if getattr(message, name)]
    if len(named) > 1:
        raise LiveRefused(f"subscribe: one of device, product, group, not {' and '.join(named)}")
    if message.device:
        product, slash, name = message.device.partition("/")
        if not (slash and product and name):
            raise LiveRefused(f"device: {message.device!r} is not 'productKey/deviceName'")
        return Scope(device=DeviceRef(product, name))
    return Scope(
        product=message.product or None,
        group=message.group or None,
        group_tenant=message.tenant or None,
    )


def _id_of(data: str | bytes) -> str | None:
    """The id of a message that did not decode, when it has one (the error names it)."""
    try:
        found = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    named = found.get("id") if isinstance(found, dict) else None
    return named if isinstance(named, str) else None


ROUTES = (live,)
