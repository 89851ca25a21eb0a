"""Issue 12's hardening battery, the REST API on a bad day: on a full disk an admin write is
either durable when it is answered 200 or refused (503, and nothing changed), and health
recovers by itself once space is back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alibaba_device import make_product
from broker_peers import TIMEOUT, eventually
from disks import fill


def admin(server: Any) -> httpx.Client:
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    base = f"http://127.0.0.1:{server.ports['http']}"
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
def on_small_disk(
    small_disk: Path, make_server: Callable[..., Any]
) -> Iterator[Callable[[], tuple[Any, httpx.Client]]]:
    """``start()``: a server with its data on the small disk (the same data each time) and an
    admin client for it; started again after ``server.stop()``, it reads what was written."""
    clients: list[httpx.Client] = []

    def start() -> tuple[Any, httpx.Client]:
        server = make_server(data_dir=str(small_disk / "data"))
        clients.append(admin(server))
        return server, clients[-1]

    yield start
    for client in clients:
        client.close()


def test_a_retention_answered_on_a_full_disk_is_kept_after_a_restart(
    small_disk: Path, on_small_disk: Callable[[], tuple[Any, httpx.Client]]
) -> None:
    """Issue 12 case 15: on a full disk, PUT /api/products/{pk}/retention answered 200 and
    showed the new retention, and after space came back, a clean stop and a restart it was
    gone (the write was queued, the answer did not wait for it). It waits for the commit: a
    write that fails is a 503 and changes nothing; one answered 200 is there after a
    restart."""
    server, api = on_small_disk()
    pk = make_product(server).product_key
    url = f"/api/products/{pk}/retention"
    filler = fill(small_disk)
    refused = api.put(url, json={"rawDays": 5})
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "full" in refused.json()["detail"]
    assert api.get(url).json() == {"rawDays": None, "rollupDays": None, "own": False}
    filler.unlink()
    answered = api.put(url, json={"rawDays": 7, "rollupDays": 30})
    assert answered.status_code == 200, answered.text
    server.stop()
    server, api = on_small_disk()
    assert api.get(url).json() == {"rawDays": 7, "rollupDays": 30, "own": True}
    assert api.delete(url).is_success
    server.stop()
    server, api = on_small_disk()
    assert api.get(url).json()["own"] is False


def test_health_recovers_with_no_traffic_once_the_disk_has_room(
    small_disk: Path, on_small_disk: Callable[[], tuple[Any, httpx.Client]]
) -> None:
    """Issue 12 case 15: after a history write failed on a full disk and space was freed,
    health stayed 503 ("history" failing) for as long as no device sent anything: the
    history's problem cleared only when its next batch committed. A probe follows a failed
    write a second later (and again while it fails), so health recovers by itself."""
    server, api = on_small_disk()
    pk = make_product(server).product_key
    filler = fill(small_disk)
    # (a write of the history's with no device: a retention, refused while the disk is full)
    assert api.put(f"/api/products/{pk}/retention", json={"rawDays": 5}).status_code == 503
    status = api.get("/api/health")
    assert status.status_code == 503 and status.json()["failing"] == ["history"], status.text
    assert "full" in status.json()["history"]["problem"]
    filler.unlink()
    eventually(lambda: api.get("/api/health").status_code == 200, TIMEOUT, "health back to 200")
    assert api.get(f"/api/products/{pk}/retention").json()["own"] is False
