"""Issue 15, the live API: the OpenAPI 3.1 document and its interactive page served from
files shipped in the package, with nothing loaded from a CDN."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest


class Assets(HTMLParser):
    """Every ``<script src>`` and ``<link href>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, url in attrs:
            if name == wanted and url:
                self.urls.append(url)


@pytest.mark.parametrize("page", ["/api/schema", "/api/schema/swagger"])
def test_the_docs_page_loads_only_our_own_files(server: Any, page: str) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.ports['http']}", timeout=10) as http:
        answer = http.get(page)
        assert answer.status_code == 200, answer.text
        assert "SwaggerUIBundle" in answer.text
        assets = Assets()
        assets.feed(answer.text)
        assert len(assets.urls) >= 3, assets.urls  # the bundle, its preset, its style
        for url in assets.urls:
            assert re.match(r"^/(?!/)", url), f"{url} is not a path on this server"
            fetched = http.get(url)
            assert fetched.status_code == 200, url
            assert len(fetched.content) > 0
        assert "cdn" not in answer.text.lower()


def test_no_page_that_would_load_a_cdn_is_served(server: Any) -> None:
    base = f"http://127.0.0.1:{server.ports['http']}/api/schema"
    for page in ("redoc", "rapidoc", "elements"):
        assert httpx.get(f"{base}/{page}", timeout=10).status_code == 404, page


def test_the_document_is_openapi_3_1(server: Any) -> None:
    base = f"http://127.0.0.1:{server.ports['http']}/api/schema"
    document = httpx.get(f"{base}/openapi.json", timeout=10).json()
    assert document["openapi"] == "3.1.0"
    assert "/api/health/ready" in document["paths"] and "/metrics" in document["paths"]
    assert httpx.get(f"{base}/openapi.yaml", timeout=10).status_code == 200
