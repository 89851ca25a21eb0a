"""``python -m bench.rules_eval``: how many times a second a compiled rule is evaluated,
in-process, beside the target of 500,000 a second for a simple WHERE (issue 14; eKuiper
publishes 150,000 evaluations a second for its multi-rule figure).

No broker, no bus: ``CompiledRule.holds`` (the WHERE alone) and ``CompiledRule.run`` (the WHERE,
then the SELECT where it holds) on 64 distinct property posts as Alibaba's rules engine gives
them (the thing-model data), half of them above the threshold. Each figure is the median of
five runs of ``--evaluations`` each; the table is markdown.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from hongshan.messages import DeviceRef
from hongshan.rules.compile import CompiledRule, compile
from hongshan.rules.message import RuleInput
from hongshan.rules.sql import parse

TARGET = 500_000
SIMPLE = 'SELECT * FROM "/+/+/thing/event/property/post" WHERE items.Temperature.value > 30'
RICHER = (
    "SELECT deviceName() AS device, items.Temperature.value AS t, "
    "round(items.Humidity.value) AS h, timestamp('yyyy-MM-dd HH:mm:ss') AS at "
    'FROM "/sys/+/+/thing/event/property/post" '
    "WHERE items.Temperature.value BETWEEN 30 AND 45 AND deviceName() LIKE 'lamp-%' "
    "AND (items.Humidity.value > 40 OR topic(2) IN ('a1BenchLamp', 'a1Other')) "
    "AND items.Power.value IS NOT NULL"
)


def messages(topic_prefix: str) -> list[RuleInput]:
    """64 property posts of 64 lamps, temperatures from 0 to 63 (half above 30)."""
    now = time.time_ns() // 1_000_000
    found = []
    for n in range(64):
        device = DeviceRef("a1BenchLamp", f"lamp-{n:05d}")
        payload: dict[str, Any] = {
            "iotId": f"iot{n:024d}",
            "productKey": device.product,
            "deviceName": device.device,
            "deviceType": "StreetLight",
            "gmtCreate": now,
            "items": {
                "Temperature": {"value": float(n), "time": now},
                "Humidity": {"value": 35.5 + n % 20, "time": now},
                "Power": {"value": n % 2, "time": now},
            },
        }
        topic = f"{topic_prefix}/{device.product}/{device.device}/thing/event/property/post"
        found.append(RuleInput(topic=topic, payload=payload, received=now, device=device))
    return found


def per_second(evaluate: Callable[[Any], Any], batch: list[Any], count: int) -> float:
    """``evaluate`` calls a second over ``count`` calls on ``batch``, the median of five runs."""
    rounds = max(1, count // len(batch))
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            for message in batch:
                evaluate(message)
        runs.append(rounds * len(batch) / (time.perf_counter() - started))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=640_000)
    args = parser.parse_args()

    started = time.perf_counter()
    rules: dict[str, CompiledRule] = {"simple": compile(parse(SIMPLE))}
    rules["richer"] = compile(parse(RICHER))
    built = (time.perf_counter() - started) / 2
    batches = {"simple": messages(""), "richer": messages("/sys")}
    for name, rule in rules.items():
        ran = sum(rule.run(message) is not None for message in batches[name])
        assert 0 < ran < len(batches[name]), f"{name}: the rule should run on some posts only"

    print(f"parse and compile: {built * 1e3:.2f} ms a rule")
    print()
    print("| rule | what | evaluations/s | target | rate / target |")
    print("|---|---|---:|---:|---:|")
    for name, rule in rules.items():
        for what, evaluate in (("WHERE", rule.holds), ("WHERE + SELECT", rule.run)):
            rate = per_second(evaluate, batches[name], args.evaluations)
            target = f"{TARGET:,}" if name == "simple" else "—"
            ratio = f"{rate / TARGET:.2f}" if name == "simple" else "—"
            print(f"| {name} | {what} | {rate:,.0f} | {target} | {ratio} |")
    print()
    print(f"simple: {SIMPLE}")
    print(f"richer: {RICHER}")


if __name__ == "__main__":
    main()
