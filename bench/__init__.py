"""The MQTT benchmark: Hongshan's broker against Mosquitto, in the same run, on the same machine.

``python -m bench.run`` (``make bench``); see ``bench/README.md``. The load generator lives here
rather than in ``hongshan.sim`` because it must be cheaper than either server: pre-encoded
packets, asyncio Protocols, and a receive side that only walks fixed headers.
"""
