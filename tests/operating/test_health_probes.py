"""Issue 15, operating it: liveness and readiness apart. ``/api/health/live`` answers while
the loop runs; ``/api/health/ready`` is 503 (problem+json, naming the store and why) while a
store cannot write, and ready again once it can."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from alibaba_device import make_product
from broker_peers import TIMEOUT, eventually
from disks import fill


def test_live_and_ready_answer_on_a_running_server(server: Any) -> None:
    base = f"http://127.0.0.1:{server.ports['http']}"
    live = httpx.get(f"{base}/api/health/live", timeout=10)
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = httpx.get(f"{base}/api/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "stores": ["history", "registry", "broker_state"]}
    assert httpx.get(f"{base}/api/health", timeout=10).json()["status"] == "ok"


def test_ready_is_503_naming_the_store_that_cannot_write(
    small_disk: Path, make_server: Callable[..., Any]
) -> None:
    server = make_server(data_dir=str(small_disk / "data"))
    token = (small_disk / "data" / "admin.token").read_text().strip()
    base = f"http://127.0.0.1:{server.ports['http']}"
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        pk = make_product(server).product_key
        filler = fill(small_disk)
        # (a write of the history's: a product's retention, refused on the full disk)
        assert api.put(f"/api/products/{pk}/retention", json={"rawDays": 5}).status_code == 503
        ready = api.get("/api/health/ready")
        assert ready.status_code == 503, ready.text
        assert ready.headers["content-type"].startswith("application/problem+json")
        body = ready.json()
        assert list(body["failing"]) == ["history"]
        assert "full" in body["failing"]["history"]
        assert body["detail"].startswith("a store cannot write: history: ")
        assert api.get("/api/health/live").status_code == 200  # alive all the same
        filler.unlink()
        eventually(lambda: api.get("/api/health/ready").status_code == 200, TIMEOUT, "ready again")


def test_ready_says_starting_then_stopping(make_server: Callable[..., Any]) -> None:
    """The platform's own phases: not ready before its start ends nor once its stop begins."""
    server = make_server()
    platform = server.platform
    base = f"http://127.0.0.1:{server.ports['http']}"
    server.call(lambda: setattr(platform, "ready", False))
    starting = httpx.get(f"{base}/api/health/ready", timeout=10)
    assert starting.status_code == 503 and starting.json()["phase"] == "starting"
    server.call(lambda: setattr(platform, "stopping", True))
    stopping = httpx.get(f"{base}/api/health/ready", timeout=10)
    assert stopping.status_code == 503 and stopping.json()["phase"] == "stopping"
    assert "stopping" in stopping.json()["detail"]
