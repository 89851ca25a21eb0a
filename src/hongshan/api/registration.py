"""``POST /auth/register/device``: dynamic registration over HTTP, as Alibaba documents it
("Dynamic registration based on HTTPS"): form fields ``productKey``, ``deviceName``, ``random``,
``sign`` (HMAC of ``deviceName{dn}productKey{pk}random{r}`` under the product secret) and
``signMethod``; the answer is ``{"code": 200, "data": {productKey, deviceName, deviceSecret},
"message": "success"}``, or a ``code`` and ``message`` saying why not (always HTTP 200, as the
SDKs read ``code``). No admin token: the product secret is the credential. Only a product with
dynamic registration on, and only a device created beforehand that never came online."""

from __future__ import annotations

from typing import Any

from litestar import post
from litestar.params import URLEncodedBody

from hongshan.api.dependencies import Provided
from hongshan.identity.registration import NOT_ALLOWED, registration_refusal
from hongshan.store.registry.store import SQLRegistry

REQUEST_INVALID = 460
AUTH_FAILED = 401


def _answer(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "data": data, "message": message}


@post("/auth/register/device", status_code=200)
async def register_device(
    registry: Provided[SQLRegistry], data: URLEncodedBody[dict[str, str]]
) -> dict[str, Any]:
    fields = {k: data.get(k, "") for k in ("productKey", "deviceName", "random", "sign")}
    if not all(fields.values()):
        missing = ", ".join(k for k, v in fields.items() if not v)
        return _answer(REQUEST_INVALID, f"request parameter error: missing {missing}")
    pk, dn = fields["productKey"], fields["deviceName"]
    method = data.get("signMethod") or data.get("signmethod") or "hmacmd5"
    signature = (method, fields["random"], fields["sign"])
    refusal = await registration_refusal(registry, pk, dn, create=False, signature=signature)
    if refusal == NOT_ALLOWED:
        return _answer(AUTH_FAILED, "request auth error")
    if refusal is not None:
        return _answer(AUTH_FAILED, f"request auth error: {refusal}")
    device = await registry.get_device(pk, dn, with_secret=True)
    triple = {"productKey": pk, "deviceName": dn, "deviceSecret": device.device_secret}
    return _answer(200, "success", triple)


ROUTES = (register_device,)
