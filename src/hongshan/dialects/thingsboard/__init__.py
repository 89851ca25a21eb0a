"""ThingsBoard's MQTT device API (``v1/devices/me/…``, ``v1/gateway/…``) as a dialect:
devices and gateways written for ThingsBoard work unchanged against Hongshan.

``topics`` is the API as a table, ``payloads`` its JSON read and written, ``values`` keys and
values against the thing model, ``login`` the access-token and basic MQTT logins, ``gateway``
a connection and the sub-devices it carries, ``calls`` the server-side RPCs on their way, and
``dialect.ThingsBoard`` the whole, as ``hongshan.dialects.port.Dialect``.
"""
