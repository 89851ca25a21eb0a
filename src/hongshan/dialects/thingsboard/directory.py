"""What the ThingsBoard dialect asks of the registry, as narrow Protocols (the registry,
``store.registry.SQLRegistry``, answers them as it is)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from hongshan.things.model import NodeType
from hongshan.things.tsl import ThingModel

Device = tuple[str, str]  # (product key, device name)
THINGSBOARD = "thingsboard"  # a product's ``protocol`` when its devices speak this API


class ProductFacts(Protocol):
    """What the message path needs of a product (the registry's in-memory product view)."""

    @property
    def node_type(self) -> NodeType: ...

    @property
    def thing_model(self) -> ThingModel | None: ...

    @property
    def protocol(self) -> str: ...

    @property
    def schemaless(self) -> bool: ...


class DeviceState(Protocol):
    @property
    def enabled(self) -> bool: ...


class DeviceDirectory(Protocol):
    """The registry as the dialect uses it: logins, products, devices (all in memory but the
    writes: creating a sub-device, growing a schemaless thing model)."""

    on_device_disabled: list[Callable[[str, str], None]]
    on_device_deleted: list[Callable[[str, str], None]]

    def device_by_token(self, token: str) -> Device | None: ...

    def device_by_basic(
        self, client_id: str | None, username: str | None, password: str | bytes | None
    ) -> Device | None: ...

    async def credentials(self, product_key: str, device_name: str) -> DeviceState | None: ...

    def product_view(self, product_key: str) -> ProductFacts | None: ...

    def device_known(self, product_key: str, device_name: str) -> bool: ...

    async def create_device(
        self, product_key: str, device_name: str | None = None, *, gateway: Device | None = None
    ) -> Any: ...

    async def add_first_seen_properties(self, product_key: str, values: Mapping[str, Any]) -> Any:
        """Add to a schemaless product's thing model a property for each new key."""


def speaks_thingsboard(view: ProductFacts | None) -> bool:
    return view is not None and view.protocol == THINGSBOARD
