"""``/api/products``: create (optionally with a thing model; speaking Alink or ThingsBoard's
device API; schemaless or not), list, show, change, delete, and the thing model imported and
exported as Alibaba's TSL JSON, unchanged."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from hongshan.api.auth import require
from hongshan.api.dependencies import Provided
from hongshan.api.paging import PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.identity.principals import Principal, Role
from hongshan.store.registry.store import SQLRegistry
from hongshan.things import naming
from hongshan.things.model import (
    DataFormat,
    NodeType,
    Product,
    Protocol,
    RegistryError,
    TopicClass,
)
from hongshan.things.tsl import ThingModel


class NewProduct(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    name: str
    description: str = ""
    node_type: NodeType = NodeType.DEVICE
    data_format: DataFormat = DataFormat.ALINK
    dynamic_registration: bool = False
    topic_classes: list[TopicClass] = []
    thing_model: dict[str, Any] | None = None  # Alibaba's TSL JSON
    product_key: str | None = None  # keep a product's key when moving it from Alibaba Cloud
    product_secret: str | None = None
    protocol: Protocol = Protocol.ALINK  # what its devices speak, for good
    schemaless: bool = False  # its thing model grows from what its devices report
    tenant: str | None = None  # the admin token's choice (default: "default"); else one's own


class ProductChange(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    name: str | None = None
    description: str | None = None
    dynamic_registration: bool | None = None
    topic_classes: list[TopicClass] | None = None
    schemaless: bool | None = None


@post("/api/products", status_code=201)
async def create_product(
    access: Provided[Scope], registry: Provided[SQLRegistry], data: JSONBody[NewProduct]
) -> Product:
    tenant = access.tenant_for_new(data.tenant)
    naming.check_product_name(data.name)
    model = ThingModel.from_json(data.thing_model) if data.thing_model is not None else None
    return await registry.create_product(
        data.name,
        description=data.description,
        node_type=data.node_type,
        data_format=data.data_format,
        dynamic_registration=data.dynamic_registration,
        topic_classes=data.topic_classes,
        thing_model=model,
        product_key=data.product_key,
        product_secret=data.product_secret,
        protocol=data.protocol,
        schemaless=data.schemaless,
        tenant=tenant,
    )


@get("/api/products", dependencies=PAGED)
async def list_products(
    access: Provided[Scope], registry: Provided[SQLRegistry], paging: Paged
) -> Page[Product]:
    """The principal's tenant's; sorted by ``name`` (or ``productKey``, ``createdAt``);
    ``q`` in the name or key."""
    return paging.in_memory(
        await registry.list_products(access.reach),
        {"name": _name, "productKey": _key, "createdAt": _created},
        default="name",
        text=lambda product: f"{product.name} {product.product_key}",
    )


def _name(product: Product) -> str:
    return product.name


def _key(product: Product) -> str:
    return product.product_key


def _created(product: Product) -> int:
    return product.created_at


@get("/api/products/{pk:str}")
async def show_product(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    principal: Provided[Principal],
    pk: FromPath[str],
    secret: FromQuery[bool] = False,
) -> Product:
    access.product(pk)
    if secret:
        require(principal, Role.ADMIN, "the product's secret")
    return await registry.get_product(pk, with_secret=secret)


@patch("/api/products/{pk:str}")
async def change_product(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    pk: FromPath[str],
    data: JSONBody[ProductChange],
) -> Product:
    access.product(pk)
    if data.name is not None:
        naming.check_product_name(data.name)
    changes = {
        name: value for name, value in msgspec.structs.asdict(data).items() if value is not None
    }
    return await registry.update_product(pk, **changes)


@delete("/api/products/{pk:str}", status_code=204)
async def delete_product(
    access: Provided[Scope], registry: Provided[SQLRegistry], pk: FromPath[str]
) -> None:
    access.product(pk)
    await registry.delete_product(pk)


@get("/api/products/{pk:str}/thing-model")
async def export_thing_model(
    access: Provided[Scope], registry: Provided[SQLRegistry], pk: FromPath[str]
) -> dict[str, Any]:
    access.product(pk)
    model = await registry.thing_model(pk)
    if model is None:
        raise RegistryError(f"product {pk} has no thing model", "not_found")
    return model.to_json()


@put("/api/products/{pk:str}/thing-model")
async def import_thing_model(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    pk: FromPath[str],
    data: JSONBody[dict[str, Any]],
) -> dict[str, Any]:
    access.product(pk)
    model = ThingModel.from_json(data)
    await registry.update_product(pk, thing_model=model)
    return model.to_json()


ROUTES = (
    create_product,
    list_products,
    show_product,
    change_product,
    delete_product,
    export_thing_model,
    import_thing_model,
)
