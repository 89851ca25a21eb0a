"""The API's request: Litestar's, but a JSON body too deeply nested to decode is the client's
fault (400), not a ``RecursionError`` out of the decoder (which Litestar answers 500)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException


class APIRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            # msgspec's decoder recurses once per level and stops at Python's recursion limit
            raise ClientException(
                "the JSON body is nested too deeply to decode (its arrays and objects nest "
                "about a thousand levels or more)"
            ) from None
