"""Scenes in the registry: each as written, whether it runs, its two sealed keys; and the runs
of scenes waiting in a delay step (``scene_waits``), so that a restart goes on with them."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.identity.secret_box import SecretBox
from hongshan.rules.scene import SceneSpec, StoredScene
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, now_ms
from hongshan.store.registry.reach import owned, tenant_known
from hongshan.things.model import EVERYWHERE, Reach, RegistryError

_spec = msgspec.json.Decoder(SceneSpec)
_data = msgspec.json.Decoder(dict[str, Any])

MAX_ID = 2**31 - 1  # (an INTEGER column's range on PostgreSQL)


class SceneWait(msgspec.Struct, frozen=True, kw_only=True):
    """A run of a scene in a delay: it goes on with step ``step`` at ``due`` (ms), with the
    trigger's ``data``."""

    id: int
    scene_id: int
    due: int
    step: int
    data: dict[str, Any]


def _secret_context(scene_id: int) -> str:
    return f"scene:{scene_id}"


def _token_context(scene_id: int) -> str:
    return f"scene-token:{scene_id}"


def _not_found(scene_id: int) -> RegistryError:
    return RegistryError(f"no scene {scene_id}", "not_found")


class SceneTable:
    """The ``scenes`` and ``scene_waits`` tables. Keeps a scene as written (checked before it
    gets here), its keys sealed; answers ``StoredScene``s with them open. Deleting a scene
    deletes its waits (a foreign key's cascade)."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def create(
        self, spec: SceneSpec, secret: str, token: str, tenant: str = DEFAULT_TENANT
    ) -> StoredScene:
        def insert() -> int:
            now = now_ms()
            with self._db.engine.begin() as db:
                tenant_known(db, tenant)
                try:
                    result = db.execute(
                        t.scenes.insert().values(
                            **_columns(spec),
                            secret="",
                            token="",
                            created_at=now,
                            updated_at=now,
                            tenant=tenant,
                        )
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(
                        f"a scene is named {spec.name} already", "conflict"
                    ) from None
                inserted = result.inserted_primary_key
                assert inserted is not None  # (an INSERT of one row)
                scene_id = int(inserted[0])
                db.execute(
                    t.scenes.update()
                    .where(t.scenes.c.id == scene_id)
                    .values(
                        secret=self._box.seal(secret, _secret_context(scene_id)),
                        token=self._box.seal(token, _token_context(scene_id)),
                    )
                )
                return scene_id

        return await self.get(await self._db.run(insert))

    async def list_scenes(self, reach: Reach = EVERYWHERE) -> list[StoredScene]:
        """The scenes of ``reach``'s tenant (every one's for the admin token's)."""
        s = t.scenes

        def query() -> list[Any]:
            select = sa.select(s).where(owned(reach, s.c.tenant)).order_by(s.c.id)
            with self._db.engine.connect() as db:
                return list(db.execute(select))

        return [self._scene(row) for row in await self._db.run(query)]

    async def get(self, scene_id: int) -> StoredScene:
        if not 0 < scene_id <= MAX_ID:
            raise _not_found(scene_id)

        def query() -> Any:
            with self._db.engine.connect() as db:
                return db.execute(sa.select(t.scenes).where(t.scenes.c.id == scene_id)).first()

        row = await self._db.run(query)
        if row is None:
            raise _not_found(scene_id)
        return self._scene(row)

    async def update(self, scene_id: int, spec: SceneSpec) -> StoredScene:
        await self._change(scene_id, _columns(spec), name=spec.name)
        return await self.get(scene_id)

    async def set_enabled(self, scene_id: int, enabled: bool) -> StoredScene:
        await self._change(scene_id, {"enabled": enabled})
        return await self.get(scene_id)

    async def delete(self, scene_id: int) -> None:
        if not 0 < scene_id <= MAX_ID:
            raise _not_found(scene_id)

        def delete() -> None:
            with self._db.engine.begin() as db:
                db.execute(t.scene_waits.delete().where(t.scene_waits.c.scene_id == scene_id))
                result = db.execute(t.scenes.delete().where(t.scenes.c.id == scene_id))
                if result.rowcount == 0:
                    raise _not_found(scene_id)

        await self._db.run(delete)

    # -- runs waiting in a delay -----------------------------------------------------------

    async def add_wait(self, scene_id: int, due: int, step: int, data: dict[str, Any]) -> int:
        """Keep a run waiting until ``due`` to go on with ``step``; its id."""

        def insert() -> int:
            with self._db.engine.begin() as db:
                result = db.execute(
                    t.scene_waits.insert().values(
                        scene_id=scene_id,
                        due=due,
                        step=step,
                        data=msgspec.json.encode(data).decode(),
                    )
                )
                inserted = result.inserted_primary_key
                assert inserted is not None
                return int(inserted[0])

        return await self._db.run(insert)

    async def drop_wait(self, wait_id: int) -> None:
        def delete() -> None:
            with self._db.engine.begin() as db:
                db.execute(t.scene_waits.delete().where(t.scene_waits.c.id == wait_id))

        await self._db.run(delete)

    async def waits(self) -> list[SceneWait]:
        """Every run waiting, the soonest first."""

        def query() -> list[Any]:
            with self._db.engine.connect() as db:
                w = t.scene_waits
                return list(db.execute(sa.select(w).order_by(w.c.due, w.c.id)))

        return [
            SceneWait(
                id=row.id,
                scene_id=row.scene_id,
                due=row.due,
                step=row.step,
                data=_data.decode(row.data),
            )
            for row in await self._db.run(query)
        ]

    # --------------------------------------------------------------------------------------

    async def _change(self, scene_id: int, values: dict[str, Any], name: str = "") -> None:
        if not 0 < scene_id <= MAX_ID:
            raise _not_found(scene_id)

        def update() -> None:
            with self._db.engine.begin() as db:
                try:
                    result = db.execute(
                        t.scenes.update()
                        .where(t.scenes.c.id == scene_id)
                        .values(**values, updated_at=now_ms())
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(f"a scene is named {name} already", "conflict") from None
                if result.rowcount == 0:
                    raise _not_found(scene_id)

        await self._db.run(update)

    def _scene(self, row: Any) -> StoredScene:
        spec = _spec.decode(row.spec)
        spec.enabled = row.enabled
        return StoredScene(
            id=row.id,
            spec=spec,
            secret=self._box.open(row.secret, _secret_context(row.id)),
            token=self._box.open(row.token, _token_context(row.id)),
            created_at=row.created_at,
            updated_at=row.updated_at,
            tenant=row.tenant,
        )


def _columns(spec: SceneSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "spec": msgspec.json.encode(spec).decode(),
        "enabled": spec.enabled,
    }
