"""``SceneBook``: the scenes a town keeps — checked, stored, and handed to the engine."""

from __future__ import annotations

import hmac
import secrets
from typing import Any, Protocol

from hongshan.errors import HongshanError
from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.rules.scene import (
    ChangedTrigger,
    DeviceValueCondition,
    EventTrigger,
    GroupAggregateCondition,
    SceneSpec,
    StoredScene,
    SunTriggerSpec,
    ThresholdTrigger,
    WebhookTrigger,
    scene_problem,
    trigger_kind,
)
from hongshan.services.rules.book import target_problem
from hongshan.services.rules.running import ActionNeeds
from hongshan.services.scenes.engine import SceneEngine
from hongshan.services.scenes.running import SceneTrace, build_scene, not_running
from hongshan.store.registry.scenes import SceneWait
from hongshan.things.model import EVERYWHERE, Group, Reach, RegistryError
from hongshan.things.tsl import ThingModel


class TriggerRefused(HongshanError):
    """A trigger of a scene sent without the admin token or the scene's trigger token: 401."""

    http_status = 401


class SceneStore(Protocol):
    """Where scenes are kept (``store.registry.scenes.SceneTable``)."""

    async def create(
        self, spec: SceneSpec, secret: str, token: str, tenant: str
    ) -> StoredScene: ...

    async def list_scenes(self, reach: Reach = EVERYWHERE) -> list[StoredScene]: ...

    async def get(self, scene_id: int) -> StoredScene: ...

    async def update(self, scene_id: int, spec: SceneSpec) -> StoredScene: ...

    async def set_enabled(self, scene_id: int, enabled: bool) -> StoredScene: ...

    async def delete(self, scene_id: int) -> None: ...

    async def waits(self) -> list[SceneWait]: ...

    async def drop_wait(self, wait_id: int) -> None: ...


class Things(Protocol):
    """What a scene's check asks of the registry (``things.directory.Directory``)."""

    def product_view(self, product_key: str) -> object | None: ...

    def thing_model_of(self, product_key: str) -> ThingModel | None: ...

    def device_known(self, product_key: str, device_name: str) -> bool: ...

    def tenant_of(self, product_key: str) -> str | None: ...


class Groups(Protocol):
    """A tenant's groups by name (``store.registry.groups.GroupTable``)."""

    async def get(self, name: str, tenant: str = ...) -> Group: ...

    def tenants_named(self, name: str) -> list[str]: ...


class SceneBook:
    """Creates, changes, enables, disables, deletes and triggers scenes: checks each (in
    itself, ``scene_problem``; the products, devices, properties, events, services and groups
    it names against the registry; a sun trigger's place), keeps it in the registry, and has
    the engine run the enabled ones — all of them at start (``load``), with the runs that were
    waiting in a delay. Runs nothing itself (``SceneEngine``)."""

    def __init__(
        self,
        store: SceneStore,
        engine: SceneEngine,
        *,
        things: Things,
        groups: Groups,
        needs: ActionNeeds,
    ) -> None:
        self._store = store
        self._engine = engine
        self._things = things
        self._groups = groups
        self._needs = needs

    async def load(self) -> int:
        """Run every enabled scene kept, and go on with the runs waiting in a delay; how many
        scenes run."""
        enabled = [scene for scene in await self._store.list_scenes() if scene.spec.enabled]
        for scene in enabled:
            self._engine.put(build_scene(scene, self._needs))
        for wait in await self._store.waits():
            running = self._engine.running(wait.scene_id)
            if running is None:
                await self._store.drop_wait(wait.id)
                continue
            self._engine.resume(running, wait.id, wait.due, wait.step, wait.data)
        return len(enabled)

    async def create(self, spec: SceneSpec, tenant: str = DEFAULT_TENANT) -> StoredScene:
        await self.check(spec, tenant)
        stored = await self._store.create(
            spec, secrets.token_hex(16), secrets.token_urlsafe(24), tenant
        )
        self._follow(stored)
        return stored

    async def update(self, scene_id: int, spec: SceneSpec) -> StoredScene:
        await self.check(spec, (await self._store.get(scene_id)).tenant)
        stored = await self._store.update(scene_id, spec)
        self._follow(stored)
        return stored

    async def set_enabled(self, scene_id: int, enabled: bool) -> StoredScene:
        """Enable or disable a scene; one enabled already keeps running (and its trace)."""
        stored = await self._store.set_enabled(scene_id, enabled)
        if not (enabled and self._engine.running(scene_id) is not None):
            self._follow(stored)
        return stored

    async def delete(self, scene_id: int) -> None:
        await self._store.delete(scene_id)
        self._engine.drop(scene_id)

    async def get(self, scene_id: int) -> StoredScene:
        return await self._store.get(scene_id)

    async def list_scenes(self, reach: Reach = EVERYWHERE) -> list[StoredScene]:
        return await self._store.list_scenes(reach)

    async def trace(self, scene_id: int) -> SceneTrace:
        """The scene's counters and last runs and non-runs since it was last (re)started."""
        await self._store.get(scene_id)  # (none: not found)
        running = self._engine.running(scene_id)
        return not_running(scene_id) if running is None else running.trace()

    async def trigger(
        self, scene_id: int, body: Any, *, admin: bool, token: str | None = None
    ) -> StoredScene:
        """Trigger a scene with ``body`` as the trigger's data: by an operator (``admin``:
        any enabled scene) or by an outside system with the scene's trigger token (a scene
        with a ``webhook`` trigger). Its conditions and mode apply as to any trigger."""
        stored = await self._store.get(scene_id)
        if not admin:
            if token is None or not hmac.compare_digest(token.encode(), stored.token.encode()):
                raise TriggerRefused(
                    "send the admin token, or the scene's trigger token (X-Hongshan-Scene-Token"
                    " or ?token=)"
                )
            if not any(isinstance(t, WebhookTrigger) for t in stored.spec.triggers):
                raise RegistryError(
                    f"scene {scene_id} has no webhook trigger: add {{type: webhook}} to its"
                    " triggers",
                    "conflict",
                )
        running = self._engine.running(scene_id)
        if running is None:
            raise RegistryError(f"scene {scene_id} is disabled: enable it first", "conflict")
        kind = "webhook" if not admin else "manual"
        self._engine.trigger(running, {"trigger": kind, "data": body})
        return stored

    def _follow(self, stored: StoredScene) -> None:
        if stored.spec.enabled:
            self._engine.put(build_scene(stored, self._needs))
        else:
            self._engine.drop(stored.id)

    # -- checks ----------------------------------------------------------------------------

    async def check(self, spec: SceneSpec, tenant: str | None = None) -> None:
        """Refuse (400) a scene that cannot run as written, naming what is wrong; a scene of
        ``tenant`` (None: any, the admin token's check) names that tenant's products,
        devices and groups only (another's are as if there were none)."""
        problem = scene_problem(spec)
        if problem is not None:
            raise RegistryError(problem, "invalid")
        for number, trigger in enumerate(spec.triggers, 1):
            where = f"trigger {number} ({trigger_kind(trigger)})"
            if isinstance(trigger, SunTriggerSpec):
                if trigger.place is None and self._engine.place is None:
                    raise RegistryError(
                        f"{where}: no place to watch the sun from: give the trigger a place"
                        " (latitude, longitude) or set the town's (the latitude and longitude"
                        " settings)",
                        "invalid",
                    )
                continue
            device = getattr(trigger, "device", None)
            if device is None:
                continue
            model = self._device(where, device.product_key, device.device_name, tenant)
            if model is None:
                continue
            if isinstance(trigger, ThresholdTrigger | ChangedTrigger):
                self._property(where, model, device.product_key, trigger.property)
            if isinstance(trigger, EventTrigger) and trigger.event not in model.event_map:
                raise RegistryError(
                    f"{where}: product {device.product_key}'s thing model has no event"
                    f" {trigger.event!r}",
                    "invalid",
                )
        conditions = [*spec.conditions.all, *spec.conditions.any]
        for number, condition in enumerate(conditions, 1):
            where = f"condition {number}"
            if isinstance(condition, DeviceValueCondition):
                pk = condition.product_key
                model = self._device(where, pk, condition.device_name, tenant)
                if model is not None:
                    self._property(where, model, pk, condition.property)
            elif isinstance(condition, GroupAggregateCondition):
                # (a group is named within the scene's tenant; the admin token's check,
                # of no tenant, within any)
                named = self._groups.tenants_named(condition.group)
                if not (named if tenant is None else tenant in named):
                    raise RegistryError(f"{where}: no group {condition.group}", "invalid")
        for number, step in enumerate(spec.actions, 1):
            problem = target_problem(step, self._things, tenant)
            if problem is not None:
                raise RegistryError(f"action {number} ({step.kind}): {problem}", "invalid")

    def _device(self, where: str, pk: str, dn: str | None, tenant: str | None) -> ThingModel | None:
        if self._things.product_view(pk) is None or (
            tenant is not None and self._things.tenant_of(pk) != tenant
        ):
            raise RegistryError(f"{where}: no product {pk}", "invalid")
        if dn is not None and not self._things.device_known(pk, dn):
            raise RegistryError(f"{where}: no device {dn} in product {pk}", "invalid")
        return self._things.thing_model_of(pk)

    def _property(self, where: str, model: ThingModel, pk: str, identifier: str) -> None:
        if identifier not in model.property_map:
            raise RegistryError(
                f"{where}: product {pk}'s thing model has no property {identifier!r}", "invalid"
            )
