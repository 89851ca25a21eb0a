"""``python -m bench.profile signed|posts|acks``: one device scenario against Hongshan under py-spy.

Starts a seeded Hongshan as the benchmark does, samples it with ``py-spy record`` (1,000 Hz,
raw format) while the scenario runs, and prints the functions that took the most samples. The
figure it prints is depressed by py-spy itself; take the benchmark's, not this one's.
"""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import devices
from bench.run import LOOP_FACTORY
from bench.scenarios import Options
from bench.servers import started


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 else "posts"
    scenario = {
        "signed": devices.signed_connects,
        "posts": devices.property_posts,
        "acks": functools.partial(devices.acked_posts, burst=False),
    }[which]
    options = Options(duration=5)
    count = {
        "signed": options.devices,
        "posts": options.posting_devices,
        "acks": options.acking_devices,
    }[which]
    out = Path(f"/tmp/hongshan-profile-{which}.txt")
    with started("hongshan", prepare=lambda data_dir: devices.seed(data_dir, count)) as server:
        pid = str(server.process.pid)
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                *("record", "--pid", pid, "--duration", "8", "--rate", "1000"),
                *("--nonblocking", "-f", "raw", "-o", str(out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
            result = runner.run(scenario(server, options))
        spy.wait()
    print(result.values)
    own: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if samples.isdigit():
            own[re.sub(r":\d+\)", ")", stack.split(";")[-1])] += int(samples)
    total = sum(own.values()) or 1
    for frame, samples in own.most_common(30):
        print(f"{100 * samples / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
