"""Counters the broker keeps for ``$SYS/broker/...`` and the health endpoint."""

from __future__ import annotations

import time


class Stats:
    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "connections_total",
        "denied_delivery",
        "denied_publish",
        "denied_subscribe",
        "dropped",
        "messages_received",
        "messages_sent",
        "protocol_errors",
        "refused_connect",
        "refused_pending",
        "refused_publish",
        "refused_retained",
        "refused_subscribe",
        "started",
    )

    def __init__(self) -> None:
        self.started = time.time()
        self.messages_received = 0
        self.messages_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.dropped = 0
        self.connections_total = 0
        self.refused_connect = 0
        self.refused_pending = 0  # over max_pending_connections_per_address, closed at once
        self.refused_retained = 0
        # filters over max_subscriptions_per_client or max_subscription_bytes_per_client
        self.refused_subscribe = 0
        self.refused_publish = 0  # refused by a tap: a payload not of its dialect's format
        self.denied_publish = 0
        self.denied_delivery = 0
        self.denied_subscribe = 0
        self.protocol_errors = 0
