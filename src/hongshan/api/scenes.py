"""``/api/scenes``: create, list, show, change, enable, disable, delete and export scenes, a
scene's trace (its counters, last runs and last non-runs with what stopped each), and its
trigger.

``POST /api/scenes/{id}/trigger`` is open to two callers: an operator with the admin token
(``Authorization: Bearer …``; any enabled scene, as ``scene run`` does), and an outside system
with the scene's own trigger token, shown when the scene is created or with ``?secret=true``,
sent as the ``X-Hongshan-Scene-Token`` header or ``?token=`` (only a scene with a ``webhook``
trigger). Its JSON body, if any, is the trigger's ``data``. Answered 202: the scene's
conditions and mode decide whether it runs (its trace says)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post, put
from litestar.exceptions import ClientException
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody

from hongshan.api.auth import OPERATOR, principal_in, require
from hongshan.api.dependencies import Provided
from hongshan.api.paging import BY_NAME_AND_TIMES, PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.identity.principals import Principal, Role
from hongshan.rules.scene import Conditions, Mode, SceneSpec, StepSpec, StoredScene, TriggerSpec
from hongshan.services.scenes.book import SceneBook
from hongshan.services.scenes.running import SceneTrace
from hongshan.things.model import RegistryError

SCENE = "/api/scenes/{scene_id:int}"


class SceneView(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A scene as the API shows it; ``secret`` (the key of its webhooks' signatures) and
    ``token`` (its trigger token) only when it is created, or asked for (``?secret=true``)."""

    id: int
    name: str
    description: str
    enabled: bool
    triggers: list[TriggerSpec]
    conditions: Conditions
    actions: list[StepSpec]
    mode: Mode
    max: int
    created_at: int
    updated_at: int
    secret: str | None = None
    token: str | None = None


class Triggered(msgspec.Struct, kw_only=True):
    id: int
    triggered: bool = True


def _view(scene: StoredScene, *, with_secret: bool = False) -> SceneView:
    spec = scene.spec
    return SceneView(
        id=scene.id,
        name=spec.name,
        description=spec.description,
        enabled=spec.enabled,
        triggers=spec.triggers,
        conditions=spec.conditions,
        actions=spec.actions,
        mode=spec.mode,
        max=spec.max,
        created_at=scene.created_at,
        updated_at=scene.updated_at,
        secret=scene.secret if with_secret else None,
        token=scene.token if with_secret else None,
    )


@post("/api/scenes", status_code=201, opt=OPERATOR)
async def create_scene(
    access: Provided[Scope],
    scenes: Provided[SceneBook],
    data: JSONBody[SceneSpec],
    tenant: FromQuery[str | None] = None,
) -> SceneView:
    """In the principal's tenant (the admin token's: ``?tenant=``, else ``default``): its
    triggers, conditions and actions may name that tenant's devices and groups only."""
    access.unlimited("creating a scene")
    made = await scenes.create(data, access.tenant_for_new(tenant))
    return _view(made, with_secret=True)


async def _reached(scenes: SceneBook, access: Scope, scene_id: int) -> StoredScene:
    """The scene, 404 (as for none) when it is another tenant's."""
    scene = await scenes.get(scene_id)
    access.owned(scene.tenant, f"scene {scene_id}")
    return scene


async def _changeable(scenes: SceneBook, access: Scope, scene_id: int) -> StoredScene:
    """The scene, for a change: 404 as ``_reached``, then 403 for a group-limited one."""
    scene = await _reached(scenes, access, scene_id)
    access.unlimited("changing a scene")
    return scene


@get("/api/scenes", dependencies=PAGED)
async def list_scenes(
    access: Provided[Scope], scenes: Provided[SceneBook], paging: Paged
) -> Page[SceneView]:
    """The tenant's; sorted by ``id`` (or ``name``, ``createdAt``, ``updatedAt``); ``q`` in
    the name."""
    return paging.in_memory(
        [_view(scene) for scene in await scenes.list_scenes(access.reach)],
        BY_NAME_AND_TIMES,
        default="id",
        text=lambda scene: scene.name,
    )


@get(SCENE)
async def show_scene(
    access: Provided[Scope],
    scenes: Provided[SceneBook],
    principal: Provided[Principal],
    scene_id: FromPath[int],
    secret: FromQuery[bool] = False,
) -> SceneView:
    if secret:
        require(principal, Role.OPERATOR, "the scene's secret and token")
    return _view(await _reached(scenes, access, scene_id), with_secret=secret)


@get(SCENE + "/export")
async def export_scene(
    access: Provided[Scope], scenes: Provided[SceneBook], scene_id: FromPath[int]
) -> SceneSpec:
    """The scene as a file holds it (``POST /api/scenes`` takes it back)."""
    return (await _reached(scenes, access, scene_id)).spec


@put(SCENE, opt=OPERATOR)
async def change_scene(
    access: Provided[Scope],
    scenes: Provided[SceneBook],
    scene_id: FromPath[int],
    data: JSONBody[SceneSpec],
) -> SceneView:
    """The whole scene again (its id and keys stay); its runs under way are cancelled, its
    counters and trace start again."""
    await _changeable(scenes, access, scene_id)
    return _view(await scenes.update(scene_id, data))


@post(SCENE + "/enable", status_code=200, opt=OPERATOR)
async def enable_scene(
    access: Provided[Scope], scenes: Provided[SceneBook], scene_id: FromPath[int]
) -> SceneView:
    await _changeable(scenes, access, scene_id)
    return _view(await scenes.set_enabled(scene_id, True))


@post(SCENE + "/disable", status_code=200, opt=OPERATOR)
async def disable_scene(
    access: Provided[Scope], scenes: Provided[SceneBook], scene_id: FromPath[int]
) -> SceneView:
    """Stop running it: its runs under way are cancelled, those waiting in a delay too."""
    await _changeable(scenes, access, scene_id)
    return _view(await scenes.set_enabled(scene_id, False))


@delete(SCENE, status_code=204, opt=OPERATOR)
async def delete_scene(
    access: Provided[Scope], scenes: Provided[SceneBook], scene_id: FromPath[int]
) -> None:
    await _changeable(scenes, access, scene_id)
    await scenes.delete(scene_id)


@get(SCENE + "/trace")
async def scene_trace(
    access: Provided[Scope], scenes: Provided[SceneBook], scene_id: FromPath[int]
) -> SceneTrace:
    await _reached(scenes, access, scene_id)
    return await scenes.trace(scene_id)


@post(SCENE + "/trigger", status_code=202)
async def trigger_scene(
    scenes: Provided[SceneBook],
    scene_id: FromPath[int],
    request: Request[Any, Any, Any],
    token: FromQuery[str | None] = None,
    scene_token: Annotated[str | None, HeaderParameter(name="X-Hongshan-Scene-Token")] = None,
) -> Triggered:
    """Trigger the scene (admin token, or the scene's trigger token: module docstring)."""
    raw = await request.body()
    body: Any = None
    if raw.strip():
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ClientException(f"the body is no JSON: {exc}") from None
    principal = principal_in(request.scope)
    if principal is not None and not principal.in_tenant((await scenes.get(scene_id)).tenant):
        raise RegistryError(f"no scene {scene_id}", "not_found")  # (as for none: not theirs)
    admin = principal is not None and principal.may(Role.OPERATOR) and principal.groups is None
    given = scene_token or token
    await scenes.trigger(scene_id, body, admin=admin, token=given)
    return Triggered(id=scene_id)


ROUTES = (
    create_scene,
    list_scenes,
    show_scene,
    export_scene,
    change_scene,
    enable_scene,
    disable_scene,
    delete_scene,
    scene_trace,
)
OPEN_ROUTES = (trigger_scene,)  # (its guard notes an admin; the scene's token is checked here)
