"""The console's map with many devices (issue 15: smooth with 10,000): seeds Hongshan's registry
with located devices spread over the demo district (some sharing a pole), starts ``hongshan
serve``, opens ``/#/map`` in Debian's Chromium and prints

- time to first draw: from navigation to the first marker or cluster in the DOM;
- time to all loaded: until the map says it shows every device (markercluster's chunked
  loading is done);
- frame times while the map is dragged, and the time a zoom-in takes to settle.

    python -m bench.map                  # 10,000 devices
    python -m bench.map --devices 500    # a smoke run

Figures from a loaded machine say little; run it alone for numbers worth keeping."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import sync_playwright

from bench.chromium import launch
from bench.devices import PRODUCT_KEY, device_name, seed
from bench.servers import free_port, started

SOUTH, WEST = 31.4835, 120.4220  # the demo district's corner (tools/make_district.py)
HEIGHT, WIDTH = 0.0108, 0.0158  # its extent, degrees
FRAMES = """() => {
  window.benchFrames = [];
  let last = performance.now();
  const tick = (now) => {
    window.benchFrames.push(now - last);
    last = now;
    if (window.benchFrames.length < 2000) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def place(i: int, devices: int) -> tuple[float, float]:
    """Device ``i`` on a grid over the district; every tenth shares the pole before it."""
    if i % 10 == 9:
        i -= 1
    side = max(1, int(devices**0.5))
    row, column = divmod(i, side)
    return SOUTH + HEIGHT * row / side, WEST + WIDTH * column / side


def seed_located(data_dir: Path, devices: int) -> None:
    seed(data_dir, devices)
    from hongshan.store.registry import schema as t

    engine = sa.create_engine(f"sqlite:///{data_dir / 'registry.db'}")
    rows = [
        {"pk": PRODUCT_KEY, "dn": device_name(i), "lat": lat, "lon": lon}
        for i in range(devices)
        for lat, lon in [place(i, devices)]
    ]
    update = (
        t.devices.update()
        .where(
            t.devices.c.product_key == sa.bindparam("pk"),
            t.devices.c.device_name == sa.bindparam("dn"),
        )
        .values(lat=sa.bindparam("lat"), lon=sa.bindparam("lon"))
    )
    with engine.begin() as db:
        db.execute(update, rows)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    options = parser.parse_args()
    data: list[Path] = []

    def prepare(data_dir: Path) -> None:
        data.append(data_dir)
        seed_located(data_dir, options.devices)

    http_port = free_port()
    with started("hongshan", prepare=prepare, extra=["--http-port", str(http_port)]):
        token = (data[0] / "admin.token").read_text().strip()
        origin = f"http://127.0.0.1:{http_port}"
        with sync_playwright() as driver:
            browser = launch(driver)
            context = browser.new_context(
                viewport={"width": 1280, "height": 800},
                extra_http_headers={"Authorization": f"Bearer {token}"},
            )
            page = context.new_page()
            began = time.perf_counter()
            page.goto(f"{origin}/#/map")
            page.wait_for_selector(".marker, .cluster", timeout=120_000)
            first = time.perf_counter() - began
            everything = f"{options.devices:,} devices"
            page.wait_for_function(
                "(text) => document.querySelector('.filters .shown')?.textContent === text",
                arg=everything,
                timeout=300_000,
            )
            loaded = time.perf_counter() - began
            drawn = page.locator(".marker, .cluster").count()

            box = page.locator(".map").bounding_box()
            assert box is not None
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.evaluate(FRAMES)
            page.mouse.move(x, y)
            page.mouse.down()
            for step in range(60):
                page.mouse.move(x + 4 * step, y + 2 * step)
            page.mouse.up()
            frames = sorted(page.evaluate("() => window.benchFrames.slice(1)"))

            zooming = time.perf_counter()
            page.locator(".leaflet-control-zoom-in").click()
            page.wait_for_function(
                "() => !document.querySelector('.leaflet-zoom-anim')", timeout=30_000
            )
            zoomed = time.perf_counter() - zooming
            browser.close()

    p50 = statistics.median(frames) if frames else float("nan")
    p95 = frames[int(len(frames) * 0.95)] if frames else float("nan")
    print(f"devices: {options.devices:,} (markers and clusters in the DOM: {drawn})")
    print(f"first draw: {first * 1000:.0f} ms; all loaded: {loaded * 1000:.0f} ms")
    print(
        f"drag: {len(frames)} frames, p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
        f"max {frames[-1] if frames else float('nan'):.1f} ms"
    )
    print(f"zoom in settled: {zoomed * 1000:.0f} ms")


if __name__ == "__main__":
    main()
