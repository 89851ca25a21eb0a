"""How each device is online right now, so that its coming and going are said once.

A device is online by its own MQTT connection, by a gateway carrying it (a sub-device logged in
through ``combine/login``), or both at once. Its status log and its registry state change when
the first of these begins and when the last ends, not at each: a sub-device logged in through
its gateway that also connects on its own, then drops that connection, is still online (the
gateway carries it); only the gateway's logout makes it offline. So a device's status log
alternates online, offline, online, …
"""

from __future__ import annotations

import enum

Device = tuple[str, str]  # (product key, device name)


class Way(enum.Enum):
    CONNECTION = "its own connection"
    GATEWAY = "a gateway"


class DevicePresence:
    """Each online device's ways of being online. Owns no connection and says nothing itself:
    ``came`` and ``went`` answer whether this was the device's coming or going."""

    def __init__(self) -> None:
        self._ways: dict[Device, set[Way]] = {}

    def came(self, device: Device, way: Way) -> bool:
        """``way`` began; whether the device was offline until now."""
        ways = self._ways.get(device)
        if ways is None:
            self._ways[device] = {way}
            return True
        ways.add(way)
        return False

    def went(self, device: Device, way: Way) -> bool:
        """``way`` ended; whether the device is offline now (False if it was not online by
        ``way``: nothing changed)."""
        ways = self._ways.get(device)
        if ways is None or way not in ways:
            return False
        ways.discard(way)
        if ways:
            return False
        del self._ways[device]
        return True

    def online(self, device: Device) -> bool:
        return device in self._ways

    def forget(self, product_key: str, device_name: str) -> None:
        self._ways.pop((product_key, device_name), None)
