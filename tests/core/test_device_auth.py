"""Signed CONNECTs of Alibaba devices, checked against a device directory."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from hongshan.broker.auth import AllowAnonymous, Credentials
from hongshan.dialects.alink.device_auth import SignedConnectAuthenticator, device_identity
from hongshan.identity.alibaba import sign
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.things.model import DeviceCredentials

PK, DN, SECRET = "a14Xib5kdYd", "light1983432", "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq"
TS = "1539421321846"


class Directory:
    """The registry's answers for a fixed set of devices; ``product_secret`` set means the
    product allows dynamic registration; ``active`` lists devices that came online."""

    def __init__(
        self,
        *records: DeviceCredentials,
        product_secret: str | None = None,
        active: tuple[str, ...] = (),
    ) -> None:
        self.records = {(r.product_key, r.device_name): r for r in records}
        self.product_secret = product_secret
        self.active = active

    async def credentials(self, product_key: str, device_name: str) -> DeviceCredentials | None:
        return self.records.get((product_key, device_name))

    async def registration_secret(self, product_key: str) -> str | None:
        return self.product_secret

    def activated(self, product_key: str, device_name: str) -> bool | None:
        if (product_key, device_name) not in self.records:
            return None
        return device_name in self.active


def signed(
    secret: str = SECRET, *, method: str = "hmacsha1", ts: str = TS, dn: str = DN
) -> Credentials:
    fields = {"clientId": "SN1928339", "deviceName": dn, "productKey": PK, "timestamp": ts}
    return Credentials(
        client_id=f"SN1928339|securemode=3,signmethod={method},timestamp={ts}|",
        username=f"{dn}&{PK}",
        password=sign(secret, method, fields).encode(),
        address="127.0.0.1:5000",
    )


def directory(enabled: bool = True) -> Directory:
    return Directory(
        DeviceCredentials(product_key=PK, device_name=DN, device_secret=SECRET, enabled=enabled)
    )


def authenticator(enabled: bool = True) -> SignedConnectAuthenticator:
    return SignedConnectAuthenticator(directory(enabled), fallback=AllowAnonymous())


async def test_a_signed_connect_authenticates_as_the_device() -> None:
    verdict = await authenticator().authenticate(signed())
    assert verdict.reason_code == ReasonCode.SUCCESS
    assert verdict.username == device_identity(PK, DN) == f"{DN}&{PK}"


@pytest.mark.parametrize(
    "credentials",
    [
        signed("wrong-secret"),
        signed(dn="lamp-unknown"),
        Credentials(client_id="x|securemode=3|", username=f"{DN}&{PK}", password=None, address=""),
        Credentials(client_id="x|securemode=3", username=f"{DN}&{PK}", password=b"", address=""),
    ],
    ids=["wrong secret", "unknown device", "no password", "malformed client id"],
)
async def test_refusals_look_alike(credentials: Credentials) -> None:
    verdict = await authenticator().authenticate(credentials)
    assert verdict.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD


async def test_a_disabled_device_is_banned_once_its_signature_is_good() -> None:
    auth = authenticator(enabled=False)
    assert (await auth.authenticate(signed())).reason_code == ReasonCode.BANNED
    assert (await auth.authenticate(signed("x"))).reason_code == (
        ReasonCode.BAD_USER_NAME_OR_PASSWORD
    )


async def test_clock_skew_window_when_configured() -> None:
    now = int(TS) / 1000
    auth = SignedConnectAuthenticator(
        directory(), fallback=AllowAnonymous(), max_clock_skew=300, clock=lambda: now + 200,
    )  # fmt: skip
    assert (await auth.authenticate(signed())).reason_code == ReasonCode.SUCCESS
    late = SignedConnectAuthenticator(
        directory(), fallback=AllowAnonymous(), max_clock_skew=300, clock=lambda: now + 301,
    )  # fmt: skip
    assert (await late.authenticate(signed())).reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD


async def test_other_connects_go_to_the_fallback() -> None:
    plain = Credentials(client_id="dashboard", username=None, password=None, address="")
    verdict = await authenticator().authenticate(plain)
    assert verdict.reason_code == ReasonCode.SUCCESS and verdict.username is None


PRODUCT_SECRET = "ps" * 8


def registration(auth_type: str, secret: str = PRODUCT_SECRET, dn: str = DN) -> Credentials:
    content = f"deviceName{dn}productKey{PK}random42"
    password = hmac.new(secret.encode(), content.encode(), hashlib.sha256).hexdigest()
    return Credentials(
        client_id=f"{dn}.{PK}|random=42,authType={auth_type},securemode=2,signmethod=hmacsha256|",
        username=f"{dn}&{PK}",
        password=password.encode(),
        address="",
    )


@pytest.mark.parametrize(
    ("auth_type", "dn", "product_secret", "active", "accepted"),
    [
        ("register", DN, PRODUCT_SECRET, (), True),
        ("register", DN, None, (), False),  # the product does not allow it
        ("register", DN, PRODUCT_SECRET, (DN,), False),  # already came online
        ("register", "unknown-1", PRODUCT_SECRET, (), False),  # not pre-registered
        ("regnwl", "unknown-1", PRODUCT_SECRET, (), True),  # created on the fly
        ("regnwl", DN, PRODUCT_SECRET, (), True),  # exists, never online
        ("regnwl", DN, PRODUCT_SECRET, (DN,), False),
    ],
)
async def test_dynamic_registration(
    auth_type: str, dn: str, product_secret: str | None, active: tuple[str, ...], accepted: bool
) -> None:
    record = DeviceCredentials(product_key=PK, device_name=DN, device_secret=SECRET)
    found = Directory(record, product_secret=product_secret, active=active)
    verdict = await SignedConnectAuthenticator(found, fallback=AllowAnonymous()).authenticate(
        registration(auth_type, dn=dn)
    )
    if accepted:
        # accepted only to be answered: no identity, a session no plain client can take
        assert verdict.reason_code == ReasonCode.SUCCESS and verdict.username is None
        assert verdict.client_id == f"{PK}&{dn}&{auth_type}"
    else:
        assert verdict.reason_code == ReasonCode.NOT_AUTHORIZED


async def test_dynamic_registration_signed_with_another_secret_is_refused() -> None:
    record = DeviceCredentials(product_key=PK, device_name=DN, device_secret=SECRET)
    found = Directory(record, product_secret=PRODUCT_SECRET)
    verdict = await SignedConnectAuthenticator(found, fallback=AllowAnonymous()).authenticate(
        registration("register", secret="x" * 16)
    )
    assert verdict.reason_code == ReasonCode.NOT_AUTHORIZED
