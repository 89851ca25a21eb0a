"""Device protocols, each a plug-in (``port.Dialect``) that maps its devices' messages onto the
platform's neutral ones; registered here, and nowhere else.

``DIALECTS`` lists each dialect's factory by the protocol name a product says its devices
speak. The platform builds every one (``port.DialectNeeds``), serves commands for its protocol
with it, puts it on the broker, and asks the dialects in this order who a client is and what it
may do (``access``), before people and applications; the order changes no answer (each answers
for its own devices alone). Adding a dialect is one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hongshan.dialects.alink.plugin import Alink
from hongshan.dialects.port import DialectFactory
from hongshan.dialects.thingsboard.dialect import ThingsBoard
from hongshan.things import model

DIALECTS: tuple[tuple[str, DialectFactory], ...] = (
    (ThingsBoard.name, ThingsBoard.open),
    (Alink.name, Alink.open),
)


class _Product(Protocol):
    @property
    def protocol(self) -> model.Protocol: ...


class Products(Protocol):
    def product_view(self, product_key: str) -> _Product | None: ...


def protocol_of(products: Products) -> Callable[[str], str | None]:
    """Which dialect a product's devices speak (``Product.protocol``; None: no such product),
    for the bus to route commands by."""

    def protocol(product_key: str) -> str | None:
        view = products.product_view(product_key)
        return view.protocol.value if view is not None else None

    return protocol
