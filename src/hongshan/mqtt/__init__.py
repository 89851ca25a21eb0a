"""MQTT 3.1, 3.1.1 and 5.0 as a sans-IO library: bytes in, packets out; packets in, bytes out.

No asyncio, no sockets, no logging of payloads — so it is tested without an event loop, fuzzed
directly, and shared by the broker, the simulator and the load generator. Modelled on h11.
"""
