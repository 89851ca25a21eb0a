"""A device process built on Alibaba's SDK (``aliyun-iot-linkkit``), driven over stdin/stdout.

Run by ``linkkit_device.LinkkitDevice`` with the Python of ``.venv-linkkit``. Arguments: port,
product key, device name, device secret, TSL file ("" for none), answers as JSON
(``{"SetSchedule": [200, {"Accepted": 1}]}``). Each SDK callback is written to stdout as one
JSON line (``{"event": "prop_post", "args": [...]}``); each line read from stdin is a call on
the SDK (``{"call": "thing_post_property", "args": [...]}``), answered with a ``result`` line.
A seventh argument, JSON, passes the SDK's other ways in: ``product_secret`` with ``auth_type``
(dynamic registration), or ``client_id``, ``username`` and ``password`` (a registered token).
This file uses nothing of Hongshan's: it is a device.
"""

import json
import sys
import threading

from linkkit import linkkit

_out = threading.Lock()


def emit(event, *args):
    with _out:
        sys.stdout.write(json.dumps({"event": event, "args": list(args)}) + "\n")
        sys.stdout.flush()


def plain(value):
    """What the SDK returned, as JSON: its error codes are Enums, some results tuples."""
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    return getattr(value, "value", value)


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def main():
    port, pk, dn, secret, tsl, answers = sys.argv[1:7]
    answers = json.loads(answers)
    login = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
    sdk = linkkit.LinkKit(
        host_name="cn-shanghai", product_key=pk, device_name=dn, device_secret=secret, **login
    )
    sdk.config_mqtt(endpoint="127.0.0.1", port=int(port), secure="", keep_alive=60)
    if tsl:
        sdk.thing_setup(tsl)

    def on_call_service(identifier, request_id, params, userdata):
        emit("call_service", identifier, request_id, params)
        if identifier in answers:
            code, data = answers[identifier]
            sdk.thing_answer_service(identifier, request_id, code, data)

    sdk.on_device_dynamic_register = lambda rc, value, userdata: emit("registered", rc, value)
    sdk.on_device_dynamic_register_nwl_reply = lambda rc, cid, user, password: emit(
        "registered_nwl", rc, cid, user, password
    )
    sdk.on_connect = lambda flag, rc, userdata: emit("connect", rc)
    sdk.on_disconnect = lambda rc, userdata: emit("disconnect", rc)
    sdk.on_thing_enable = lambda userdata: emit("enable")
    sdk.on_thing_prop_post = lambda rid, code, data, msg, userdata: emit(
        "prop_post", rid, code, data, msg
    )
    sdk.on_thing_event_post = lambda event, rid, code, data, msg, userdata: emit(
        "event_post", event, rid, code, data, msg
    )
    sdk.on_thing_prop_changed = lambda params, userdata: emit("prop_changed", params)
    sdk.on_thing_call_service = on_call_service
    sdk.on_topic_message = lambda topic, payload, qos, userdata: emit(
        "topic_message", topic, text(payload)
    )
    sdk.on_topic_rrpc_message = lambda rid, topic, payload, qos, userdata: emit(
        "rrpc", rid, topic, text(payload)
    )
    sdk.on_thing_shadow_get = lambda payload, userdata: emit("shadow", payload)
    for kind in (
        "add_subdev_topo",
        "delete_subdev_topo",
        "login_subdev",
        "logout_subdev",
        "register_subdev",
    ):
        setattr(
            sdk,
            f"on_gateway_{kind}_reply",
            lambda rid, code, data, msg, userdata, kind=kind: emit(kind, rid, code, data, msg),
        )
    sdk.connect_async()
    for line in sys.stdin:
        request = json.loads(line)
        name = request["call"]
        if name == "exit":
            break
        args = request.get("args", [])
        if name == "thing_trigger_event":
            args = [tuple(args[0])]
        try:
            result = getattr(sdk, name)(*args)
        except Exception as exc:  # reported to the test, which decides
            emit("result", None, repr(exc))
            continue
        emit("result", plain(result), None)
    try:
        sdk.disconnect()
    finally:
        sdk.destroy()


if __name__ == "__main__":
    main()
