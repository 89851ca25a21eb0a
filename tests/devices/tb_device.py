"""A device process built on ThingsBoard's SDK (``tb-mqtt-client``), driven over stdin/stdout.

Run with the Python of ``.venv-tb`` (by ``tb_sdk.TbSdkDevice``, or by hand:
``.venv-tb/bin/python tests/devices/tb_device.py 127.0.0.1 1883 '{"token": "..."}'``).
Arguments: host, port, and options as JSON:

- ``token`` (the MQTT username, no password), or ``client_id``/``username``/``password``
  (ThingsBoard's basic MQTT credentials);
- ``gateway``: true for the SDK's gateway client (``TBGatewayMqttClient``);
- ``rpc_answers``: ``{"method": answer}``, what to reply to a server-side RPC of that method
  (any other method is only reported). Give objects: the SDK reads a ``str`` reply as JSON
  text, and one that is not kills its network thread; ``qos``: the SDK's QoS (its default 1).

Each SDK callback is written to stdout as one JSON line (``{"event": "rpc_request", "args":
[...]}``): ``connect`` (reason code and its name, refused ones too), ``session_limits`` (the
answer to the SDK's own ``getSessionLimits`` RPC), ``rpc_request``, ``attributes_update``,
``attributes_response``, ``rpc_response``, and for a gateway ``gw_rpc``, ``gw_attributes``,
``gw_attributes_response``, ``gw_device_disconnect``. Each line read from stdin is a call on
the SDK (``{"call": "send_telemetry", "args": [{"temperature": 21.5}]}``), answered with a
``result`` line; a publish's result says whether its PUBACK came (``published``). Calls that
take a callback (``request_attributes``, ``send_rpc_call``, ``gw_request_shared_attributes``,
``gw_request_client_attributes``) get one that reports what came back. This file uses nothing
of Hongshan's: it is a device.
"""

import json
import logging
import sys
import threading

from tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo
from tb_gateway_mqtt import TBGatewayMqttClient

_out = threading.Lock()


def emit(event, *args):
    with _out:
        sys.stdout.write(json.dumps({"event": event, "args": list(args)}, default=repr) + "\n")
        sys.stdout.flush()


def plain(value):
    """What the SDK returned, as JSON: a publish as its rc and whether it was acknowledged."""
    if isinstance(value, TBPublishInfo):
        infos = value.message_info if isinstance(value.message_info, list) else [value.message_info]
        value.get()  # waits up to a second per message for its PUBACK
        return {"rc": value.rc(), "published": all(info.is_published() for info in infos)}
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    return getattr(value, "value", value)


def reason(code):
    return [getattr(code, "value", code), code.getName() if hasattr(code, "getName") else None]


def main():
    host, port, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    answers = options.get("rpc_answers", {})
    login = {
        "username": options.get("token", options.get("username")),
        "password": options.get("password"),
        "client_id": options.get("client_id", ""),
        "quality_of_service": options.get("qos", 1),
    }
    gateway = options.get("gateway", False)
    sdk = (TBGatewayMqttClient if gateway else TBDeviceMqttClient)(host, port, **login)

    # what the SDK asked with its own getSessionLimits RPC, reported before the SDK applies it
    applies = sdk.service_configuration_callback

    def session_limits(request_id, response, *args, **kwargs):
        emit("session_limits", request_id, response)
        return applies(request_id, response, *args, **kwargs)

    sdk.service_configuration_callback = session_limits

    def on_rpc(request_id, content):
        emit("rpc_request", request_id, content)
        method = content.get("method") if isinstance(content, dict) else None
        if method in answers:
            sdk.send_rpc_reply(request_id, answers[method])

    sdk.set_server_side_rpc_request_handler(on_rpc)
    sdk.subscribe_to_all_attributes(lambda content, exc: emit("attributes_update", content))
    if gateway:

        def on_gw_rpc(client, content):
            emit("gw_rpc", content)
            data = content.get("data", {}) if isinstance(content, dict) else {}
            if data.get("method") in answers:
                sdk.gw_send_rpc_reply(content["device"], data["id"], answers[data["method"]])

        sdk.gw_set_server_side_rpc_request_handler(on_gw_rpc)
        sdk.device_disconnect_callback = lambda client, content: emit(
            "gw_device_disconnect", content
        )
        sdk.gw_subscribe_to_all_attributes(lambda content: emit("gw_attributes", content))

    def on_connect(client, userdata, flags, rc, *extra, tb_client=None):
        emit("connect", *reason(rc))

    callbacks = {
        "request_attributes": lambda content, exc: emit(
            "attributes_response", content, None if exc is None else repr(exc)
        ),
        "send_rpc_call": lambda request_id, content, exc: emit(
            "rpc_response", request_id, content, None if exc is None else repr(exc)
        ),
        "gw_request_shared_attributes": lambda content, exc: emit(
            "gw_attributes_response", content, None if exc is None else repr(exc)
        ),
    }
    callbacks["gw_request_client_attributes"] = callbacks["gw_request_shared_attributes"]

    # connect() sets its callback only after starting paho's loop, so a quick CONNACK finds
    # none (the SDK's race): set it first as well
    sdk._TBDeviceMqttClient__connect_callback = on_connect
    sdk.connect(callback=on_connect, keepalive=60)
    for line in sys.stdin:
        request = json.loads(line)
        name = request["call"]
        if name == "exit":
            break
        args = request.get("args", [])
        kwargs = request.get("kwargs", {})
        if name in callbacks:
            kwargs["callback"] = callbacks[name]
        try:
            result = plain(getattr(sdk, name)(*args, **kwargs))
        except Exception as exc:  # reported to the test, which decides
            emit("result", None, repr(exc))
            continue
        emit("result", result, None)
    sdk.stop()
    sdk.disconnect()


if __name__ == "__main__":
    main()
