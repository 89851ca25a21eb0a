"""Scraping a running server's ``/metrics`` as Prometheus does, and reading the answer with
prometheus-client's own parser (never our own reading of the format)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client, url: str = "/metrics") -> tuple[set[str], Samples]:
    """(the families' names, every sample by (name, labels)) of one scrape."""
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain"), answer.headers
    families: set[str] = set()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(answer.text):
        families.add(family.name)
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return families, samples


def value(samples: Samples, name: str, **labels: Any) -> float:
    """A sample's value; 0 when the scrape has no such series (not counted yet)."""
    return samples.get((name, frozenset((k, str(v)) for k, v in labels.items())), 0.0)
