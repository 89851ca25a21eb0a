"""``POST /auth/register/device``: devices' dynamic registration over HTTP, as Alibaba documents
it ("Dynamic registration based on HTTPS"). The form and its answer are the Alink dialect's
(``dialects/alink/registration.py``); this serves them. Always HTTP 200 (the SDKs read the
body's ``code``). No admin token: the product secret is the credential."""

from __future__ import annotations

from typing import Any

from litestar import post
from litestar.params import URLEncodedBody

from hongshan.api.dependencies import DeviceRegistration, Provided


@post("/auth/register/device", status_code=200)
async def register_device(
    device_registration: Provided[DeviceRegistration], data: URLEncodedBody[dict[str, str]]
) -> dict[str, Any]:
    return await device_registration.answer(data)


ROUTES = (register_device,)
