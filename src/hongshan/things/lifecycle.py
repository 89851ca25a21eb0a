"""A device's lifecycle in one table (the way h11 keeps its states in ``_state.py``).

::

    inactive ──connected──▶ online ──disconnected──▶ offline ──connected──▶ online
        │                     │                         │
        └──────disabled───────┴────────disabled─────────┘──▶ disabled
                                                               │ enabled
                                  offline if it was ever online, else inactive

A disabled device is refused at CONNECT, so ``connected`` never reaches it; disabling an online
device disconnects it (the registry's caller does that), and the state is ``disabled`` at once.
"""

from __future__ import annotations

import enum

from hongshan.things.model import DeviceState, RegistryError

INACTIVE, ONLINE, OFFLINE, DISABLED = (
    DeviceState.INACTIVE,
    DeviceState.ONLINE,
    DeviceState.OFFLINE,
    DeviceState.DISABLED,
)


class Event(enum.Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    DISABLED = "disabled"
    ENABLED = "enabled"


# (state, event) -> next state; ENABLED's target depends on whether the device was ever online
_TABLE: dict[tuple[DeviceState, Event], DeviceState] = {
    (INACTIVE, Event.CONNECTED): ONLINE,
    (OFFLINE, Event.CONNECTED): ONLINE,
    (ONLINE, Event.CONNECTED): ONLINE,  # a takeover: a second connection of the same device
    (ONLINE, Event.DISCONNECTED): OFFLINE,
    (OFFLINE, Event.DISCONNECTED): OFFLINE,
    (INACTIVE, Event.DISCONNECTED): INACTIVE,
    (DISABLED, Event.DISCONNECTED): DISABLED,  # the connection it was cut off from closing
    (INACTIVE, Event.DISABLED): DISABLED,
    (ONLINE, Event.DISABLED): DISABLED,
    (OFFLINE, Event.DISABLED): DISABLED,
    (DISABLED, Event.DISABLED): DISABLED,
    (INACTIVE, Event.ENABLED): INACTIVE,
    (ONLINE, Event.ENABLED): ONLINE,
    (OFFLINE, Event.ENABLED): OFFLINE,
}


def next_state(state: DeviceState, event: Event, *, ever_online: bool) -> DeviceState:
    if state is DISABLED and event is Event.ENABLED:
        return OFFLINE if ever_online else INACTIVE
    try:
        return _TABLE[state, event]
    except KeyError:
        raise RegistryError(f"a {state.value} device cannot be {event.value}", "conflict") from None
