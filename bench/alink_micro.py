"""``python -m bench.alink_micro``: the Alink dialect's own cost per property post, in-process.

No sockets and no broker: ``AlinkDialect.on_message`` with the streetlight thing model and the
latest-values twin, on 64 distinct posts of five properties, and the parts it is made of. A
microbenchmark to compare versions of the dialect with; the throughput that counts is
``python -m bench.run --only posts``.
"""

from __future__ import annotations

import time
import timeit
from pathlib import Path

from bench.devices import post_body
from hongshan.bus.local import LocalBus
from hongshan.dialects.alink import messages
from hongshan.dialects.alink.dialect import AlinkDialect
from hongshan.dialects.alink.topics import parse
from hongshan.messages import DeviceRef, PropertyValues
from hongshan.pipeline.uplink import Pipeline
from hongshan.things.tsl import ThingModel
from hongshan.twin.properties import PropertyTwin

TSL = Path(__file__).parent.parent / "tests" / "things" / "data" / "streetlight.json"
TOPIC = "/sys/a1BenchLamp/lamp-00001/thing/event/property/post"
N = 200_000


def main() -> None:
    model = ThingModel.from_json(TSL.read_bytes())
    twin = PropertyTwin()
    dialect = AlinkDialect(
        thing_model=lambda _pk: model,
        online=lambda _pk, _dn: True,
        publish=lambda _topic, _payload, _qos: None,
        bus=LocalBus(Pipeline([twin]), protocol_of=lambda _pk: "alink"),
    )
    posts = [post_body(n) for n in range(64)]
    counter = iter(range(10**9))

    def one_post() -> None:
        dialect.on_message(TOPIC, posts[next(counter) & 63])

    params = messages.decode_request(posts[0]).params
    now = int(time.time() * 1000)
    uplink = PropertyValues(
        device=DeviceRef("a1BenchLamp", "lamp-00001"), received=now, values=params, ts=now
    )
    parts = {
        "on_message (all of it)": one_post,
        "decode the request": lambda: messages.decode_request(posts[0]),
        "check 5 properties": lambda: model.read_property_post(params),
        "parse the topic": lambda: parse(TOPIC),
        "encode the reply": lambda: messages.reply_bytes(
            "1", 200, "thing.event.property.post", "ok"
        ),
        "update the twin": lambda: twin.on_uplink(uplink),
    }
    for name, fn in parts.items():
        seconds = timeit.timeit(fn, number=N)
        print(f"{name:26s} {seconds / N * 1e6:6.2f} µs")


if __name__ == "__main__":
    main()
