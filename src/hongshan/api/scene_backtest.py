"""``POST /api/scenes/backtest``: a scene (its spec, or a stored scene's id) run over a range
of the history, doing nothing — when it would have run, by which trigger, whether its
conditions held, what each step would have done — and, with ``against``, compared with
another version on the same range.

The body: ``scene`` (a scene's spec as ``POST /api/scenes`` takes it, or a scene's id),
``from`` and ``to`` (ms since the epoch, or ISO 8601 with its offset; a time without one is
UTC), ``against`` (optional, the same as ``scene``), ``limit`` (triggers listed, 1 to 10,000;
every one is counted). A spec is checked as ``POST /api/scenes`` checks it (400, naming what
is wrong), an id that is no scene's is 404; a range longer than a year, or backwards, is
refused (400); a backtest stops after 50 million values or two minutes (``complete: false``,
``stoppedAt``). One runs at a time: a second waits for the first.
"""

from __future__ import annotations

import msgspec
from litestar import post
from litestar.params import JSONBody

from hongshan.api.auth import OPERATOR
from hongshan.api.dependencies import Provided
from hongshan.api.rule_backtest import moment
from hongshan.api.scope import Scope
from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.rules.scene import SceneSpec
from hongshan.services.rules.backtest import DEFAULT_LIMIT
from hongshan.services.scenes.backtest import SceneBacktest, SceneBacktester
from hongshan.services.scenes.book import SceneBook


class SceneBacktestAsked(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    scene: SceneSpec | int
    start: int | str = msgspec.field(name="from")
    end: int | str = msgspec.field(name="to")
    against: SceneSpec | int | None = None
    limit: int = DEFAULT_LIMIT


async def _scene(scenes: SceneBook, access: Scope, given: SceneSpec | int) -> tuple[SceneSpec, str]:
    """The scene and the tenant it runs in (a stored one's; a given one's: the principal's,
    for the admin token the default tenant)."""
    if isinstance(given, int):
        stored = await scenes.get(given)
        access.owned(stored.tenant, f"scene {given}")
        return stored.spec, stored.tenant
    tenant = access.principal.tenant
    await scenes.check(given, tenant)
    return given, tenant or DEFAULT_TENANT


@post("/api/scenes/backtest", status_code=200, opt=OPERATOR)
async def backtest_scene(
    access: Provided[Scope],
    scenes: Provided[SceneBook],
    scene_backtests: Provided[SceneBacktester],
    data: JSONBody[SceneBacktestAsked],
) -> SceneBacktest:
    """Over the history of the devices the scene names, of the principal's tenant (checked
    as a scene being saved); a group-limited principal may not."""
    access.unlimited("backtesting a scene")
    scene, tenant = await _scene(scenes, access, data.scene)
    against = None if data.against is None else (await _scene(scenes, access, data.against))[0]
    return await scene_backtests.run(
        scene,
        moment(data.start, "from"),
        moment(data.end, "to"),
        against=against,
        limit=data.limit,
        tenant=tenant,
    )


ROUTES = (backtest_scene,)
