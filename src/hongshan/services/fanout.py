"""``FanOut``: one command to many devices — a group, a product's devices, a tag, a district —
as a batch of tracked commands, one per device, sent paced so that a town's 10,000 lamps are
switched without flooding the broker or the devices."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hongshan.errors import HongshanError
from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.messages import DeviceRef
from hongshan.messages.commands import (
    CommandBatch,
    CommandKind,
    CommandRecord,
    CommandState,
    Target,
)
from hongshan.services.commands import DeviceCommands
from hongshan.services.pacing import Pacer
from hongshan.store.registry.commands import CommandTable
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import EVERYWHERE, DeviceFilter, Reach, RegistryError

log = logging.getLogger("hongshan.commands")

ALL = 10_000_000  # (a filter's limit that is no limit)


class DeviceSelection:
    """The devices a ``Target`` chooses, asked of the registry (SQL for groups and tags, its
    memory for products and districts). Answers them in a stable order (by product and name)."""

    def __init__(self, registry: SQLRegistry) -> None:
        self._registry = registry

    async def devices(self, target: Target, reach: Reach = EVERYWHERE) -> list[DeviceRef]:
        """Within ``reach`` (a tenant's, a group-limited principal's): a group, product or
        tag chooses only the devices in it."""
        registry = self._registry
        directory = registry.directory
        if target.device_name is not None:
            assert target.product_key is not None
            if not directory.device_known(target.product_key, target.device_name):
                raise RegistryError(
                    f"no device {target.device_name} in product {target.product_key}", "not_found"
                )
            return [DeviceRef(target.product_key, target.device_name)]
        if target.product_key is not None and directory.product_view(target.product_key) is None:
            raise RegistryError(f"no product {target.product_key}", "not_found")
        if target.group is not None:
            reach = _group_reach(registry, target.group, reach)
            await registry.groups.get(target.group, reach.tenant or DEFAULT_TENANT)  # (404)
            where = DeviceFilter(group=target.group, limit=ALL, reach=reach)
        elif target.tag is not None:
            key, _, value = target.tag.partition(":")
            tags = {key: value}
            where = DeviceFilter(product_key=target.product_key, tags=tags, limit=ALL, reach=reach)
        else:
            where = DeviceFilter(product_key=target.product_key, limit=ALL, reach=reach)
        places = await registry.device_places(where)
        if target.district is not None:
            places = [place for place in places if place.district == target.district]
        chosen = sorted((p.product_key, p.device_name) for p in places)
        return [DeviceRef(pk, dn) for pk, dn in chosen]


class FanOut:
    """Batches: their records made and kept at once (one transaction), then sent paced in the
    background (``Pacer``) — each by ``DeviceCommands.dispatch``, so an offline device's
    command is queued (with a time to live) or failed as a single one would be. Owns the
    batches' sending; never keeps a state of its own (progress is the records')."""

    def __init__(
        self,
        commands: DeviceCommands,
        records: CommandTable,
        devices: Callable[[Target, Reach], Awaitable[list[DeviceRef]]],
        pacer: Pacer,
    ) -> None:
        """``pacer``: the one ``DeviceCommands`` sends its queues by too, so that a batch and
        the queues of lamps coming back together stay within one pace."""
        self._commands = commands
        self._records = records
        self._devices = devices
        self._pacer = pacer
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return self._pacer.in_flight

    @property
    def most_in_flight(self) -> int:
        return self._pacer.most_in_flight

    async def send(
        self,
        target: Target,
        kind: CommandKind,
        service: str,
        params: Any,
        *,
        wait: float | None,
        ttl: float | None,
        origin: str,
        reach: Reach = EVERYWHERE,
    ) -> CommandBatch:
        """Make a batch for the devices ``target`` chooses within ``reach`` and start sending
        it; answers the batch as kept (every record queued). ``RegistryError`` when it chooses
        none."""
        problem = target.problem()
        if problem is not None:
            raise RegistryError(problem, "invalid")
        devices = await self._devices(target, reach)
        if not devices:
            raise RegistryError(f"{target.describe()} has no device", "not_found")
        checked: set[str] = set()
        records = []
        for device in devices:
            record = self._commands.new_record(
                device, kind, service, params, wait, ttl, origin, checked=device.product in checked
            )
            checked.add(device.product)
            records.append(record)
        batch = CommandBatch(
            id=0,
            target=target,
            kind=kind,
            service=service,
            params=params,
            origin=origin,
            wait=records[0].wait,
            ttl=ttl,
            created_at=records[0].created_at,
            total=len(records),
            counts={CommandState.QUEUED.value: len(records)},
        )
        await self._records.add(records, batch)
        task = asyncio.create_task(self._pace(records))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch

    async def devices(self, target: Target, reach: Reach = EVERYWHERE) -> list[DeviceRef]:
        """The devices ``target`` chooses within ``reach`` (``RegistryError``: not_found for
        a device, group or product that is not there)."""
        return await self._devices(target, reach)

    async def batch(self, batch_id: int, reach: Reach = EVERYWHERE) -> CommandBatch:
        """The batch, counting only the commands of the devices within ``reach``."""
        batch = await self._records.batch(batch_id, reach)
        if batch is None:
            raise RegistryError(f"no command batch {batch_id}", "not_found")
        return batch

    async def _pace(self, records: list[CommandRecord]) -> None:
        for record in records:
            await self._pacer.start()
            task = asyncio.create_task(self._one(record))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(self, record: CommandRecord) -> None:
        try:
            await self._commands.dispatch(record)
        except HongshanError as exc:  # (kept in its record: failed)
            log.info("command %d of batch %s: %s", record.id, record.batch, exc)
        finally:
            self._pacer.done()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _group_reach(registry: SQLRegistry, name: str, reach: Reach) -> Reach:
    """``reach`` narrowed to the tenant whose group ``name`` is: ``reach``'s own; of every
    tenant (the admin token's), the one that has a group so named (a name is unique within a
    tenant only: several are a conflict)."""
    if reach.tenant is not None:
        return reach
    tenants = registry.groups.tenants_named(name)
    if len(tenants) > 1:
        raise RegistryError(
            f"group {name}: tenants {', '.join(tenants)} each have one; name the tenant",
            "conflict",
        )
    return Reach(tenant=tenants[0] if tenants else DEFAULT_TENANT, groups=reach.groups)
