"""``python -m bench.rules_index``: the rules engine's cost per message with 10 rules and with
10,000 rules of distinct topic filters (issue 14: at most 1.5 times the cost with 10); and with
10, 100 and 1,000 rules that all hear every post (one FROM, WHEREs on its fields).

In-process, no broker and no bus: ``RuleEngine.on_uplink`` with the platform's ``$things``
source, each rule on one lamp's ``$things/a1BenchLamp/lamp-N/properties`` with a WHERE that
does not hold (the index and one evaluation, no action), and ``RuleEngine.on_published`` for a
client's publish on a topic with a rule (``town/lamp-N/report``) and on one without. The
messages go to the first 10 lamps, so both sizes run the same work but for the index. Each
figure is the median of five runs; the table is markdown.

The second table: every rule on ``$things/a1BenchLamp/+/properties``, a town whose rules all
watch one product — half comparing ``values.t`` with a threshold of their own, a quarter
``values.v``, a quarter with an AND (``values.t > … AND deviceName() LIKE …``); none holds, so
each uplink is decided for every rule (the WHERE index: a field read once, thresholds
bisected).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.rules_eval import per_second
from hongshan.messages import DeviceRef, PropertyValues
from hongshan.rules.compile import compile
from hongshan.rules.sql import parse
from hongshan.services.rules.engine import RuleEngine
from hongshan.services.rules.running import RunningRule
from hongshan.services.rules.sources import PlatformStreams

PRODUCT = "a1BenchLamp"


class Publish:
    """A client's publish as the broker hands it on."""

    __slots__ = ("payload", "sender", "topic")

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic = topic
        self.payload = payload
        self.sender = "bench"


def engine_with(count: int) -> RuleEngine:
    engine = RuleEngine(
        sources=[PlatformStreams()],
        publish=lambda *_: None,
        latest=lambda pk, dn: {},
        tags=lambda pk, dn: {},
    )
    for n in range(count):
        things = f'SELECT * FROM "$things/{PRODUCT}/lamp-{n}/properties" WHERE values.t > 1000'
        mqtt = f'SELECT * FROM "town/lamp-{n}/report" WHERE t > 1000'
        for rule_id, sql in ((2 * n + 1, things), (2 * n + 2, mqtt)):
            engine.put(
                RunningRule(
                    rule_id, f"r{rule_id}", compile(parse(sql)), actions=[], error_action=None,
                    max_per_second=1e9,
                )
            )  # fmt: skip
    return engine


def shared_engine(count: int) -> RuleEngine:
    engine = RuleEngine(
        sources=[PlatformStreams()],
        publish=lambda *_: None,
        latest=lambda pk, dn: {},
        tags=lambda pk, dn: {},
    )
    for n in range(count):
        where = {
            0: f"values.t > {1000 + n}",
            1: f"values.v < {-n}",
            2: f"values.t >= {2000 + n}",
            3: f"values.t > {3000 + n} AND deviceName() LIKE 'lamp-%'",
        }[n % 4]
        sql = f'SELECT * FROM "$things/{PRODUCT}/+/properties" WHERE {where}'
        engine.put(
            RunningRule(
                n, f"r{n}", compile(parse(sql)), actions=[], error_action=None,
                max_per_second=1e9,
            )
        )  # fmt: skip
    return engine


def per_message(handle: Callable[[Any], None], batch: list[Any], count: int) -> float:
    """Microseconds per message, the median of five runs."""
    return 1e6 / per_second(handle, batch, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--shared", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()
    now = int(time.time() * 1000)
    uplinks = [
        PropertyValues(
            device=DeviceRef(PRODUCT, f"lamp-{n}"), received=now, values={"t": n}, ts=now
        )
        for n in range(10)
    ]
    published = [Publish(f"town/lamp-{n}/report", b'{"t": 5}') for n in range(10)]
    unheard = [Publish(f"town/lamp-{n}/elsewhere", b'{"t": 5}') for n in range(10)]
    print(
        "| rules of each kind | $things uplink (µs) | publish, a rule (µs) | publish, none (µs) |"
    )
    print("|---:|---:|---:|---:|")
    figures: dict[int, float] = {}
    for size in args.sizes:
        engine = engine_with(size)
        things = per_message(engine.on_uplink, uplinks, args.messages)
        mqtt = per_message(engine.on_published, published, args.messages)
        none = per_message(engine.on_published, unheard, args.messages)
        figures[size] = things
        print(f"| {size:,} | {things:.2f} | {mqtt:.2f} | {none:.2f} |")
        asyncio.run(engine.stop())
    if len(figures) > 1:
        small, large = figures[min(figures)], figures[max(figures)]
        ratio = large / small
        print(f"\n$things: {max(figures):,} rules cost {ratio:.2f} times what {min(figures)} do")
    print("\n| rules on one FROM | $things uplink (µs) |")
    print("|---:|---:|")
    shared = [
        PropertyValues(
            device=DeviceRef(PRODUCT, f"lamp-{n}"), received=now, values={"t": n, "v": n}, ts=now
        )
        for n in range(10)
    ]
    for size in args.shared:
        engine = shared_engine(size)
        print(f"| {size:,} | {per_message(engine.on_uplink, shared, args.messages):.2f} |")
        asyncio.run(engine.stop())


if __name__ == "__main__":
    main()
