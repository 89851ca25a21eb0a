"""Telemetry and attributes as the platform's ``PropertyValues``, with their idempotency keys.

ThingsBoard's messages carry no id, so a message is known again by what it is: a digest of
the device, the topic and the payload, and the entry's place in it. A value the device gave a
time (``{"ts", "values"}``) is that time's value: its resend (a QoS 1 message whose PUBACK was
lost) has the same key, and replaces the same point in the history. A value without a time
is taken when it arrives, and the same payload sent again a second later is another reading:
its key has the arrival time in it, so a resend of it is kept twice, at two arrival times —
at least once, as ThingsBoard keeps it.
"""

from __future__ import annotations

import hashlib

from hongshan.dialects.thingsboard.directory import Device
from hongshan.dialects.thingsboard.payloads import Telemetry
from hongshan.messages import DeviceRef, PropertyValues
from hongshan.pipeline.uplink import device_time


def message_digest(device: Device, topic: str, payload: bytes) -> bytes:
    digest = hashlib.blake2b(f"{device[0]}&{device[1]}\0{topic}\0".encode(), digest_size=8)
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
