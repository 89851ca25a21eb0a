"""Telemetry and attributes as the platform's ``PropertyValues``, with their idempotency keys.

ThingsBoard's messages carry no id, so a message is known again by what it is: a digest of
the device, the topic, the MQTT packet id and the payload (``message_digest``), which the
history keeps as the message's idempotency key (``taken``). A resend is told from a new
message by its DUP flag (set on every attempt but the first, MQTT-3.3.1-1): the same payload
sent again as a new message is another reading, and a value without a time then another
point (its uplink's key has its arrival time in it); a resend (DUP) whose key was taken (its
PUBACK was lost: a broken connection, a crash, a failed commit) is not kept again, and its
PUBACK waits for the first copy's commit. Each entry of a message has the digest and its place
in the message as its uplink's key.

A client that reuses one packet id for every message and resends one that never arrived
while the history still keeps the key of an earlier message with that id and payload (within
a minute, or among the device's last 64 QoS 1 messages) has the resend taken for that one: one
reading of an unchanged value is then lost, where ThingsBoard would have kept it.
"""

from __future__ import annotations

import hashlib

from hongshan.dialects.thingsboard.directory import Device
from hongshan.dialects.thingsboard.payloads import Telemetry
from hongshan.messages import DeviceRef, PropertyValues
from hongshan.pipeline.uplink import device_time


def message_digest(device: Device, topic: str, packet_id: int, payload: bytes) -> bytes:
    who = f"{device[0]}&{device[1]}\0{topic}\0{packet_id}\0"
    digest = hashlib.blake2b(who.encode(), digest_size=8)
    digest.update(payload)
    return digest.digest()


def property_values(
    device: Device, entries: list[Telemetry], *, now: int, digest: bytes = b""
) -> list[PropertyValues]:
    """One ``PropertyValues`` per entry that has values; ``digest`` (``message_digest``) for an
    at-least-once message, empty for one that is never resent (QoS 0: no key)."""
    ref = DeviceRef(*device)
    made = []
    for index, (ts, values) in enumerate(entries):
        if not values:
            continue
        key = b""
        if digest:
            key = digest + index.to_bytes(4, "big")
            if ts is None:
                key += now.to_bytes(8, "big")
        if ts is None:
            made.append(PropertyValues(device=ref, received=now, key=key, values=values, ts=now))
        else:
            at = device_time(ts, now)
            made.append(
                PropertyValues(
                    device=ref,
                    received=now,
                    key=key,
                    values=values,
                    ts=at,
                    device_time=dict.fromkeys(values, at),
                )
            )
    return made
