"""Alibaba's signed CONNECT, checked against the worked example in Alibaba's documentation."""

from __future__ import annotations

import pytest

from hongshan.identity.alibaba import (
    SignatureFormatError,
    parse_connect,
    sign,
    sign_content,
    split_client_id,
    verify_password,
)

# Alibaba's example: the triple, clientId SN1928339, timestamp 1539421321846, hmacsha1
EXAMPLE = {
    "product_key": "a14Xib5kdYd",
    "device_name": "light1983432",
    "secret": "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq",
    "client_id": "SN1928339|securemode=3,signmethod=hmacsha1,timestamp=1539421321846|",
    "password": "b2488041f64f425016b467ee1c94959ebd592ad1",
}


def test_documented_example() -> None:
    connect = parse_connect(EXAMPLE["client_id"], "light1983432&a14Xib5kdYd")
    assert connect.client_id == "SN1928339"
    assert (connect.product_key, connect.device_name) == ("a14Xib5kdYd", "light1983432")
    assert connect.params == {
        "securemode": "3",
        "signmethod": "hmacsha1",
        "timestamp": "1539421321846",
    }
    fields = {
        "clientId": "SN1928339",
        "deviceName": "light1983432",
        "productKey": "a14Xib5kdYd",
        "timestamp": "1539421321846",
    }
    assert sign_content(fields) == (
        "clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYdtimestamp1539421321846"
    )
    assert sign(EXAMPLE["secret"], "hmacsha1", fields) == EXAMPLE["password"]
    assert verify_password(connect, EXAMPLE["secret"], EXAMPLE["password"].encode())
    assert verify_password(connect, EXAMPLE["secret"], EXAMPLE["password"].upper().encode())
    assert not verify_password(connect, "another-secret", EXAMPLE["password"].encode())
    assert not verify_password(connect, EXAMPLE["secret"], None)
    assert not verify_password(connect, EXAMPLE["secret"], b"\xff\xfe")


@pytest.mark.parametrize("method", ["hmacmd5", "hmacsha1", "hmacsha256", "sha256"])
def test_every_sign_method_round_trips(method: str) -> None:
    # the way Alibaba's SDKs build it: the id is often "pk.dn" and extras ride along unsigned
    mqtt_id = f"a1pk.lamp-17|securemode=2,signmethod={method},_v=sdk-1.2,lan=Python,ext=1|"
    connect = parse_connect(mqtt_id, "lamp-17&a1pk")
    fields = {"clientId": "a1pk.lamp-17", "deviceName": "lamp-17", "productKey": "a1pk"}
    password = sign("s3cret", method, fields)
    assert verify_password(connect, "s3cret", password.encode())


def test_default_method_is_hmacmd5_and_timestamp_is_optional() -> None:
    connect = parse_connect("dev|securemode=3|", "dev&pk")
    assert connect.sign_method == "hmacmd5" and connect.timestamp is None
    password = sign("k", "hmacmd5", {"clientId": "dev", "deviceName": "dev", "productKey": "pk"})
    assert verify_password(connect, "k", password.encode())


@pytest.mark.parametrize(
    ("client_id", "username", "message"),
    [
        ("dev|securemode=3", "dev&pk", "must end with"),
        ("dev|securemode=3|x|", "dev&pk", "must end with"),
        ("dev|securemode|", "dev&pk", "not key=value"),
        ("dev|signmethod=rot13|", "dev&pk", "signmethod"),
        ("dev|securemode=3|", "dev", "deviceName&productKey"),
        ("dev|securemode=3|", "&pk", "deviceName&productKey"),
    ],
)
def test_malformed(client_id: str, username: str, message: str) -> None:
    with pytest.raises(SignatureFormatError, match=message):
        parse_connect(client_id, username)


def test_plain_client_id_has_no_params() -> None:
    assert split_client_id("plain-client") == ("plain-client", {})
