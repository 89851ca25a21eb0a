"""``hongshan history query|log|aggregate`` as a user runs them, against a running server with
a little history in it."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from test_api_commands import run

from hongshan.store.history.model import LogKind

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z = 08:00 in Shanghai
MINUTE = 60_000


async def _committed(history: Any) -> None:
    await history.committed()


def seeded(server: Any) -> str:
    pk: str = server.run(server.platform.registry.create_product("Air")).product_key
    for n in (1, 2):
        server.run(server.platform.registry.create_device(pk, f"air-{n}"))
    history = server.platform.history

    def seed() -> None:
        for n in (1, 2):
            history.add_points(
                (pk, f"air-{n}"), [("PM25", T0 + m * MINUTE, n * 10 + m) for m in range(4)]
            )
        history.add_log((pk, "air-1"), LogKind.EVENT, "Smoke", T0 + 1, {"level": 3})

    server.call(seed)
    server.run(_committed(history))
    return pk


def test_history_from_the_command_line(server: Any) -> None:
    pk = seeded(server)
    window = (
        "--from",
        "2025-12-01T08:00:00",
        "--to",
        "2025-12-01T08:10:00",
        "--tz",
        "Asia/Shanghai",
    )
    table = run(
        server, "history", "query", "--device", f"{pk}/air-1", "--property", "PM25", *window
    ).stdout
    assert "2025-12-01T08:03:00.000+08:00" in table and "13" in table
    raw = run(
        server,
        "history",
        "query",
        "--device",
        f"{pk}/air-1",
        "--property",
        "PM25",
        *window,
        "--json",
    ).stdout
    assert json.loads(raw)["points"][0] == [T0, 10]
    hourly = run(
        server, "history", "query", "--device", f"{pk}/air-1", "--property", "PM25", *window,
        "--every", "1h", "--agg", "avg,max", "--csv",
    ).stdout  # fmt: skip
    rows = list(csv.reader(io.StringIO(hourly)))
    assert rows == [
        ["identifier", "key", "start", "time", "avg", "max"],
        ["PM25", "", str(T0), "2025-12-01T08:00:00.000+08:00", "11.5", "13"],
    ]
    log = run(
        server, "history", "log", "--device", f"{pk}/air-1", *window, "--kind", "event"
    ).stdout
    assert ("Smoke" in log and '{"level": 3}' in log) or "level" in log
    both = run(
        server, "history", "aggregate", "--property", "PM25", "--product", pk, "--every", "1d",
        "--agg", "avg,count", *window, "--json",
    ).stdout  # fmt: skip
    assert json.loads(both)["series"][0]["buckets"][0]["values"] == {"avg": 16.5, "count": 8}
    kept = json.loads(run(server, "history", "retention", pk, "--raw-days", "30", "--json").stdout)
    assert kept == {"rawDays": 30.0, "rollupDays": None, "own": True}
    forever = run(
        server, "history", "retention", pk, "--forever", "raw", "--rollup-days", "400", "--json"
    )
    assert json.loads(forever.stdout) == {"rawDays": None, "rollupDays": 400.0, "own": True}
    assert "own" in run(server, "history", "retention", pk).stdout
    reset = json.loads(run(server, "history", "retention", pk, "--default", "--json").stdout)
    assert reset["own"] is False
    wrong = run(server, "history", "query", "--device", "nobody", "--property", "PM25", check=False)
    assert wrong.returncode == 2 and "PRODUCT_KEY/DEVICE_NAME" in wrong.stderr
    bad = run(server, "history", "query", "--device", f"{pk}/air-1", "--property", "PM25",
              "--every", "fortnightly", check=False)  # fmt: skip
    assert bad.returncode == 1 and "400" in bad.stderr and "every=" in bad.stderr
